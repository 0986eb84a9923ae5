/*
 * shm_index.c - the lock-free index from bucket name to bucket number.
 *
 * Open addressing with linear probing over index_slots words (shm_format.h has the
 * encoding: empty, pending, live, tombstone). A slot never becomes empty again once it was
 * claimed, so a probe that reaches an empty slot has seen every slot its name can hold.
 * Every slot access is seq_cst (I1); callers run inside a section, so a record found
 * through a live slot is not reused before the section ends (record.c).
 *
 * A name answers to the record of a live slot of its probe chain whose record is built,
 * not deleted (policy_off != 0) and holds the name. Creating bucket N with record r:
 *
 *   1. Walk the chain up to an empty slot. A live slot for N: use it. A pending slot for
 *      N: abort it (CAS to tombstone). Claim the first tombstone or the empty slot: CAS it
 *      to pending(r). A lost CAS walks again.
 *   2. Scan the whole chain up to an empty slot (past our own). A live slot for N: abort
 *      ours (CAS to tombstone) and use that one. A pending slot for N: abort it.
 *   3. CAS ours from pending(r) to live(r). If that fails, someone aborted us: go to 1
 *      (bounded, RL_CREATE_TRIES).
 *
 * At most one live slot for N. Take two creators X and Y whose confirmations (3) both
 * succeeded, X's claim (1) first in the seq_cst order. Every slot before X's was non-empty
 * when X walked past it, before X's claim, and slots never empty again: so Y's scan (2),
 * which follows Y's claim, hence X's, reaches X's slot and reads it after X's claim. It
 * reads pending(X): Y aborts it, so X's confirmation fails unless it came first, and then
 * Y's abort fails, Y reads live(X) and aborts itself; live(X): Y aborts itself; a
 * tombstone: X was aborted. Each case contradicts one success. A creator that found a live
 * slot for N (1, 2) in a section uses it; one that was created after a deletion counts
 * afresh, as a bucket defined again does.
 *
 * Deletion: policy_off goes to 0 (the linearization point, bucket.c), then whoever CASes
 * the live slot of a deleted record to a tombstone retires the record (record.c): the
 * deleter, or any creator that passes it (a deleter killed in between is helped). A
 * creator killed anywhere leaves a pending slot (aborted by the next creator of its name,
 * reused by any creator after), or a live slot (done), or a tombstone. Its record is lost
 * (one bucket of capacity until a resize), never a wrong answer, and nothing waits on it.
 */
#include <string.h>

#include "internal.h"

#define NO_MASK 0x7fffffffULL

uint32_t rl__bucket_count(const rl_table *t)
{
    /* Relaxed: a count for display and iteration bounds; records are validated by state. */
    uint64_t n = rl__load_relaxed(&t->hdr->next_bucket);
    return n < t->capacity ? (uint32_t)n : t->capacity;
}

uint32_t rl__index_empty(const rl_table *t)
{
    uint32_t empty = 0;
    /* Relaxed: a count for display. A slot never becomes empty again, so a slot read empty
     * was empty until then. */
    for (uint32_t i = 0; i < t->index_slots; i++)
        empty += rl__load_relaxed(&t->index[i]) == RL_INDEX_EMPTY;
    return empty;
}

static uint64_t slot_word(uint32_t tag, uint32_t no, bool pending)
{
    return (uint64_t)tag << 32 | (pending ? RL_INDEX_PENDING : 0) | (no + 1ULL);
}

/* The record a live or pending slot names (tag checked), or -1. */
static int64_t slot_record(const rl_table *t, uint64_t slot, uint32_t tag)
{
    uint64_t n = (slot & NO_MASK) - 1;
    if ((uint32_t)(slot >> 32) != tag || (slot & NO_MASK) == 0 || n >= t->capacity)
        return -1; /* another name, a tombstone, or a damaged slot */
    return (int64_t)n;
}

/* Record n holds `name`, built: its generation (never 0), or 0. The generation is read
 * before and after the name, so a record rebuilt under a reader without a section (a
 * read-only table) is not taken for the name. */
static uint32_t record_names(const rl_table *t, uint32_t n, const char *name, bool live)
{
    const struct shm_bucket *b = &t->buckets[n];
    /* A1: acquire pairs with the release store of state (R1 in bucket.c): the name and
     * every other field are complete. */
    if (rl__load32_acquire(&b->state) != RL_BUCKET_BUILT)
        return 0;
    /* A deleted record (policy_off 0) names nothing. Seq_cst: X2. */
    if (live && rl__load_seq_cst(&b->policy_off) == 0)
        return 0;
    uint64_t life = rl__load_acquire(&b->life); /* A9: pairs with R3, via R1 */
    if (strncmp(b->name, name, sizeof(b->name)) != 0)
        return 0;
    if (rl__load_acquire(&b->life) != life || (uint32_t)(life >> 32) == 0) /* A9 */
        return 0;
    return (uint32_t)(life >> 32);
}

int rl__index_find(const rl_table *t, const char *name, uint32_t *no, uint32_t *gen)
{
    uint64_t h = rl__name_hash(name);
    uint32_t mask = t->index_slots - 1, tag = (uint32_t)(h >> 32);
    for (uint32_t i = 0; i <= mask; i++) {
        uint64_t slot = rl__load_seq_cst(&t->index[(h + i) & mask]); /* I1 */
        if (slot == RL_INDEX_EMPTY)
            return RL_ENOENT;
        int64_t n = slot_record(t, slot, tag);
        if (n < 0 || (slot & RL_INDEX_PENDING))
            continue;
        uint32_t g = record_names(t, (uint32_t)n, name, true);
        if (g) {
            *no = (uint32_t)n;
            *gen = g;
            return 0;
        }
    }
    return RL_ENOENT;
}

/* A live slot whose record was deleted: make it a tombstone; the winner retires the record. */
static void help_tomb(rl_table *t, rl_atomic64 *slot, uint64_t seen)
{
    uint64_t n = (seen & NO_MASK) - 1;
    if ((seen & RL_INDEX_PENDING) || (seen & NO_MASK) == 0 || n >= t->capacity)
        return;
    const struct shm_bucket *b = &t->buckets[n];
    /* A1, X2. Live and deleted: its deleter retires it once the slot is a tombstone. */
    if (rl__load32_acquire(&b->state) != RL_BUCKET_BUILT || rl__load_seq_cst(&b->policy_off) != 0)
        return;
    if (rl__cas_seq_cst(slot, &seen, RL_INDEX_TOMB)) /* I1 */
        rl__record_retire(t, (uint32_t)n);
}

/* What a walk of the chain found. */
struct walk {
    int64_t live;    /* a live slot's record for the name, or -1 */
    uint32_t gen;    /* its generation */
    int64_t claim;   /* the first tombstone or empty slot (index), or -1 */
    uint64_t before; /* the word seen there */
};

/* Walk the chain of `name` (hash h) up to an empty slot: abort pending slots for the name
 * but `mine`, tomb live slots of deleted records, and note a live slot for the name. */
static void walk_chain(rl_table *t, const char *name, uint64_t h, uint64_t mine, struct walk *w)
{
    uint32_t mask = t->index_slots - 1, tag = (uint32_t)(h >> 32);
    *w = (struct walk){-1, 0, -1, 0};
    for (uint32_t i = 0; i <= mask; i++) {
        rl_atomic64 *slot = &t->index[(h + i) & mask];
        uint64_t seen = rl__load_seq_cst(slot); /* I1 */
        if ((seen == RL_INDEX_EMPTY || seen == RL_INDEX_TOMB) && w->claim < 0) {
            w->claim = (h + i) & mask;
            w->before = seen;
        }
        if (seen == RL_INDEX_EMPTY)
            return;
        help_tomb(t, slot, seen);
        int64_t n = slot_record(t, seen, tag);
        if (n < 0 || seen == mine)
            continue;
        bool pending = seen & RL_INDEX_PENDING;
        uint32_t g = record_names(t, (uint32_t)n, name, !pending);
        if (!g)
            continue;
        if (!pending && w->live < 0) {
            w->live = n;
            w->gen = g;
        }
        if (pending) /* I1: abort it; its creator starts again */
            rl__cas_seq_cst(slot, &seen, RL_INDEX_TOMB);
    }
}

/* Steps 1 to 3 once: 1 live (*winner set), 0 aborted (try again), or RL_EFULL. */
static int insert_once(rl_table *t, const char *name, uint32_t no, uint32_t *winner, uint32_t *gen)
{
    uint64_t h = rl__name_hash(name);
    uint64_t mine = slot_word((uint32_t)(h >> 32), no, true);
    struct walk w;
    for (;;) { /* 1 */
        walk_chain(t, name, h, mine, &w);
        if (w.live >= 0) {
            *winner = (uint32_t)w.live;
            *gen = w.gen;
            return 1;
        }
        if (w.claim < 0)
            return rl__fail(RL_EFULL, "table %s: the index is full", t->path);
        /* I1: the record (R1) is published with the claim. */
        if (rl__cas_seq_cst(&t->index[w.claim], &w.before, mine))
            break;
    }
    rl_atomic64 *slot = &t->index[w.claim];
    walk_chain(t, name, h, mine, &w); /* 2 */
    uint64_t cur = mine;
    if (w.live >= 0) {
        rl__cas_seq_cst(slot, &cur, RL_INDEX_TOMB); /* I1: ours aborted, if not already */
        *winner = (uint32_t)w.live;
        *gen = w.gen;
        return 1;
    }
    if (!rl__cas_seq_cst(slot, &cur, mine & ~RL_INDEX_PENDING)) /* 3, I1 */
        return 0;
    *winner = no;
    *gen = (uint32_t)(rl__load_relaxed(&t->buckets[no].life) >> 32); /* relaxed: ours */
    return 1;
}

int rl__index_insert(rl_table *t, const char *name, uint32_t no, uint32_t *winner, uint32_t *gen)
{
    int rc = insert_once(t, name, no, winner, gen);
    return rc < 0 ? rc : rc == 0;
}

bool rl__index_unlink(rl_table *t, const char *name, uint32_t no)
{
    uint64_t h = rl__name_hash(name);
    uint32_t mask = t->index_slots - 1;
    uint64_t live = slot_word((uint32_t)(h >> 32), no, false);
    for (uint32_t i = 0; i <= mask; i++) {
        rl_atomic64 *slot = &t->index[(h + i) & mask];
        uint64_t seen = rl__load_seq_cst(slot); /* I1 */
        if (seen == RL_INDEX_EMPTY)
            return false;
        if (seen == live && rl__cas_seq_cst(slot, &seen, RL_INDEX_TOMB)) {
            rl__record_retire(t, no);
            return true;
        }
    }
    return false;
}
