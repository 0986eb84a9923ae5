/*
 * shm_index.c - the lock-free index from bucket name to bucket number.
 *
 * Open addressing with linear probing over index_slots words (see shm_format.h for the
 * word encoding). Slots only ever go from empty to final, so a lookup that reaches an
 * empty slot has proven the name absent at that instant.
 *
 * Creating a bucket is two steps: (1) fill a freshly numbered record and release-store
 * its state BUILT; (2) CAS an empty index slot to point at it. A creator that dies after
 * (1) leaves an unreachable record (one bucket of capacity lost, never a wrong answer);
 * one that dies after (2) has finished. Two creators of one name: the first CAS wins,
 * the loser finds the winner's slot while probing and uses the winner's bucket.
 */
#include <string.h>

#include "internal.h"

uint64_t rl__name_hash(const char *name)
{
    /* FNV-1a, then a final mix so the low bits (slot) and high bits (tag) both vary. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

uint32_t rl__bucket_count(const rl_table *t)
{
    /* Relaxed: a count for display and iteration bounds; records are validated by state. */
    uint64_t n = rl__load_relaxed(&t->hdr->next_bucket);
    return n < t->capacity ? (uint32_t)n : t->capacity;
}

static bool slot_names(const rl_table *t, uint64_t slot, uint32_t tag, const char *name,
                       uint32_t *no)
{
    if ((uint32_t)(slot >> 32) != tag)
        return false;
    uint64_t n = (slot & 0xffffffffULL) - 1;
    if (n >= t->capacity)
        return false; /* a damaged slot names no bucket */
    const struct shm_bucket *b = &t->buckets[n];
    /* A1: acquire pairs with the release store of state (R1 in bucket.c): the name and
     * every other field are complete. The slot load itself was acquire too. */
    if (rl__load32_acquire(&b->state) != RL_BUCKET_BUILT)
        return false;
    /* A deleted record (policy_off 0) names nothing: the probe goes on, and a bucket of
     * the same name defined again sits further along (rl_bucket_delete). Seq_cst: X2. */
    if (rl__load_seq_cst(&b->policy_off) == 0)
        return false;
    if (strncmp(b->name, name, sizeof(b->name)) != 0)
        return false;
    *no = (uint32_t)n;
    return true;
}

int rl__index_find(const rl_table *t, const char *name, uint32_t *no)
{
    uint64_t h = rl__name_hash(name);
    uint32_t mask = t->index_slots - 1, tag = (uint32_t)(h >> 32);
    for (uint32_t i = 0; i <= mask; i++) {
        /* A2: acquire pairs with the CAS that published the slot (C1 below). */
        uint64_t slot = rl__load_acquire(&t->index[(h + i) & mask]);
        if (slot == RL_INDEX_EMPTY)
            return RL_ENOENT;
        if (slot_names(t, slot, tag, name, no))
            return 0;
    }
    return RL_ENOENT;
}

int rl__index_insert(rl_table *t, const char *name, uint32_t no, uint32_t *winner)
{
    uint64_t h = rl__name_hash(name);
    uint32_t mask = t->index_slots - 1, tag = (uint32_t)(h >> 32);
    uint64_t mine = ((uint64_t)tag << 32) | (no + 1ULL);
    for (uint32_t i = 0; i <= mask; i++) {
        rl_atomic64 *slot = &t->index[(h + i) & mask];
        uint64_t seen = RL_INDEX_EMPTY;
        /* C1: the CAS releases the record filled before it (and acquires a winner's). */
        if (rl__cas_acq_rel(slot, &seen, mine)) {
            *winner = no;
            return 0;
        }
        if (slot_names(t, seen, tag, name, winner))
            return 0;
    }
    return RL_EFULL; /* unreachable while index_slots >= 2 * capacity */
}
