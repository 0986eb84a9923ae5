/*
 * applied.c - the header's applied_digest word: which config the table's buckets and
 * templates are known to match, so that a process applying an unchanged config (the
 * preload shim does on every start) can skip reading the whole table.
 *
 * The word's encoding is in shm_format.h. Orderings:
 *   Y1  acquire load (rl__applied_load): pairs with Y3, so a process that sees a digest
 *       also sees every change the apply that set it made.
 *   Y2  acq_rel CAS (bump): moves the word to the next count. A change made by
 *       define or update bumps before it (a process killed in between leaves "unknown")
 *       and after it (the release: an apply that starts later and acquires this count
 *       sees the change).
 *   Y3  acq_rel CAS (rl__applied_publish): from the count the apply left to the digest.
 *       It fails if any other bump came in between: then the word stays "unknown".
 */
#include "internal.h"

#define APPLIED (1ULL << 63)

/* The apply this thread is running: its table and the count it last left in the word. */
static _Thread_local struct {
    const rl_table *table;
    uint64_t count;
} mine;

static uint64_t next_count(uint64_t w)
{
    uint64_t n = w & APPLIED ? 1 : (w + 1) & ~APPLIED;
    return n ? n : 1;
}

/* Y2: move the word on; returns the count it left. */
static uint64_t bump(rl_table *t)
{
    uint64_t w = rl__load_relaxed(&t->hdr->applied_digest), n; /* the CAS checks it */
    do
        n = next_count(w);
    while (!rl__cas_acq_rel(&t->hdr->applied_digest, &w, n));
    if (mine.table == t && w == mine.count)
        mine.count = n; /* this thread's apply moved it: still its own count */
    return n;
}

uint64_t rl__applied_load(const rl_table *t)
{
    return rl__load_acquire(&t->hdr->applied_digest); /* Y1 */
}

void rl__applied_forget(rl_table *t)
{
    bump(t);
}

void rl__applied_begin(rl_table *t)
{
    mine.table = NULL;
    uint64_t n = bump(t);
    mine.table = t;
    mine.count = n;
}

bool rl__applied_publish(rl_table *t, uint64_t digest)
{
    uint64_t expected = mine.count;
    bool mine_still = mine.table == t;
    mine.table = NULL;
    /* Y3: only if nothing but this apply moved the word since rl__applied_begin. */
    return mine_still && digest &&
           rl__cas_acq_rel(&t->hdr->applied_digest, &expected, digest | APPLIED);
}
