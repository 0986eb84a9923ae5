/*
 * record.c - bucket records given back and reused: the record limbo and free list.
 *
 * A deleted bucket's record (policy_off 0) may still be read: by a section that found it
 * through its index slot before the slot became a tombstone, or by a handle made for it.
 * So it is reused as a policy block is (reclaim.c), by the same epoch:
 *
 *   retire  J1: after its slot went to a tombstone (seq_cst, shm_index.c), r = E; the
 *           record's state becomes LIMBO | r and it goes on rec_limbo[r % 3].
 *   free    a record stamped r goes on rec_free once E >= r + 2 (the proof of reclaim.c:
 *           every section that could have reached it through the index has ended).
 *   reuse   J2: a creator pops it, raises its generation (life), fills it, and publishes
 *           policy_off by a release store (R3), then the state (R1).
 *
 * Handles outlive sections. A handle keeps the generation of the record it was made for;
 * every use loads policy_off (seq_cst, in a section), then the generation: a reference
 * published by R3 brings the raised generation with it, and the handle answers RL_ENOENT
 * (rl__bucket_live). A reference of 0 (deleted, on a list) answers RL_ENOENT as well.
 *
 * Lists are Treiber stacks whose heads are tag:32 | no + 1 (the tag counts changes, so a
 * stale pop fails its CAS); a record's link is the low half of its life word. A process
 * killed between a pop and the push that follows leaks that one record (one bucket of
 * capacity until a resize, never a wrong answer), as a creator killed while building one
 * does.
 */
#include "internal.h"

#define LINK_MASK   0xffffffffULL
#define STAMP_MASK  0x7fffffffU
#define COLLECT_MAX 256

static uint64_t head_next(uint64_t cur, uint64_t link)
{
    return ((cur >> 32) + 1) << 32 | link;
}

/* J3: push record no on a list (the caller owns it). */
static void push(const rl_table *t, rl_atomic64 *list, uint32_t no)
{
    rl_atomic64 *life = &t->buckets[no].life;
    uint64_t gen = rl__load_relaxed(life) & ~LINK_MASK; /* relaxed: ours alone */
    uint64_t cur = rl__load_acquire(list);
    do /* relaxed: published by the CAS's release */
        rl__store_relaxed(life, gen | (cur & LINK_MASK));
    while (!rl__cas_acq_rel(list, &cur, head_next(cur, no + 1ULL)));
}

/* What a pop accepts: a limbo record whose grace period is over, or a spare one. */
static bool pop_ok(const struct shm_bucket *rec, bool limbo, uint64_t epoch)
{
    uint32_t st = rl__load32_acquire(&rec->state); /* J4: pairs with the release before J3 */
    if (!limbo)
        return st == RL_BUCKET_SPARE;
    uint32_t age = ((uint32_t)epoch - (st & STAMP_MASK)) & STAMP_MASK;
    return (st & RL_BUCKET_LIMBO) && age >= 2 && age < (1U << 30);
}

/* J5: pop the head record if pop_ok takes it: its number, or -1. */
static int64_t pop(const rl_table *t, rl_atomic64 *list, bool limbo, uint64_t epoch)
{
    uint64_t cur = rl__load_acquire(list); /* J5: acquire pairs with J3: its link */
    for (;;) {
        uint64_t link = cur & LINK_MASK;
        if (link == 0 || link > t->capacity)
            return -1; /* empty, or damaged: never hands out a record */
        const struct shm_bucket *rec = &t->buckets[link - 1];
        if (!pop_ok(rec, limbo, epoch)) {
            /* Not due, damaged, or popped and reused since we read the head: look again
             * only in the last case (the head moved). J5. */
            uint64_t again = rl__load_acquire(list);
            if (again == cur)
                return -1;
            cur = again;
            continue;
        }
        /* Relaxed: if the record was popped meanwhile, the tag moved and the CAS fails. */
        uint64_t next = rl__load_relaxed(&rec->life) & LINK_MASK;
        if (rl__cas_acq_rel(list, &cur, head_next(cur, next)))
            return (int64_t)(link - 1);
    }
}

void rl__record_retire(rl_table *t, uint32_t no)
{
    /* J1: after the slot's tombstone in the seq_cst order: a section that found the slot
     * live registered before this load. */
    uint64_t e = rl__load_seq_cst(&t->hdr->epoch);
    rl__store32_release(&t->buckets[no].state, RL_BUCKET_LIMBO | ((uint32_t)e & STAMP_MASK));
    rl__fetch_add_relaxed(&t->hdr->rec_spare, 1); /* relaxed: a statistic */
    push(t, &t->hdr->rec_limbo[e % 3], no);
}

void rl__record_collect(rl_table *t)
{
    uint64_t e = rl__load_seq_cst(&t->hdr->epoch);
    if (e < 2)
        return;
    rl_atomic64 *due = &t->hdr->rec_limbo[(e - 2) % 3];
    for (unsigned n = 0; n < COLLECT_MAX; n++) {
        int64_t no = pop(t, due, true, e);
        if (no < 0)
            return;
        rl__store32_release(&t->buckets[no].state, RL_BUCKET_SPARE); /* J4 */
        push(t, &t->hdr->rec_free, (uint32_t)no);
    }
}

int rl__record_take(rl_table *t, uint32_t *no)
{
    int64_t got = pop(t, &t->hdr->rec_free, false, 0);
    if (got >= 0) {
        rl__fetch_add_relaxed(&t->hdr->rec_spare, (uint64_t)-1); /* relaxed: a statistic */
        *no = (uint32_t)got;
        return 0;
    }
    uint64_t n;
    if (rl__claim(&t->hdr->next_bucket, 1, t->capacity, &n) < 0)
        return RL_EFULL;
    *no = (uint32_t)n;
    return 0;
}

uint32_t rl__record_next_gen(const struct shm_bucket *rec)
{
    /* Relaxed: the record is ours alone until R3 publishes it. Never 0: a record never
     * built has generation 0, and no handle is made for it. */
    uint32_t gen = (uint32_t)(rl__load_relaxed(&rec->life) >> 32) + 1;
    return gen ? gen : 1;
}

uint32_t rl__record_spare(const rl_table *t)
{
    uint64_t n = rl__load_relaxed(&t->hdr->rec_spare); /* relaxed: a statistic */
    return n < t->capacity ? (uint32_t)n : t->capacity;
}
