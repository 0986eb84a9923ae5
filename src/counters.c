/*
 * counters.c - a bucket's statistics: count an admission, read the counters back.
 * The counts are relaxed: statistics order nothing.
 */
#include "internal.h"

/* One fetch_add for an admission of one unit. */
void rl__count_admission(rl_bucket *x, rl_atomic64 *admitted, uint32_t cost)
{
    rl__fetch_add_relaxed(admitted, 1);
    if (cost > 1)
        rl__fetch_add_relaxed(&x->rec->counters.extra_units, cost - 1);
}

/* Admissions the GCRA fast path counted in the bucket's policy blocks (shm_rule.admitted):
 * every block from the first to the current one, along next_off (a switch always moves to
 * a higher offset, past the block it replaces). A damaged chain ends the walk early, and so
 * does RL_BLOCK_WALK_MAX: a statistic, never out of bounds, never a long walk. */
static uint64_t block_admissions(const rl_bucket *b)
{
    const rl_table *t = b->table;
    uint64_t off = b->rec->first_policy_off, sum = 0;
    /* Acquire, as A3: the blocks up to the current one are published. */
    uint64_t current = rl__load_acquire(&b->rec->policy_off);
    const uint64_t least = sizeof(struct shm_policy) + sizeof(struct shm_rule);
    for (unsigned steps = 0; steps < RL_BLOCK_WALK_MAX && off % RL_ALIGN == 0; steps++) {
        const struct shm_policy *p = rl__arena_at(t, off, least);
        if (!p)
            break;
        sum += rl__load_relaxed(&p->rules[0].admitted); /* relaxed: a statistic */
        /* Acquire: pairs with S2's release, which published the next block. */
        uint64_t next = rl__load_acquire(&p->next_off);
        if (off == current || next < off + least)
            break;
        off = next;
    }
    return sum;
}

void rl__counters_read(const rl_bucket *b, struct rl_counters *out)
{
    const struct shm_counters *s = &b->rec->counters;
    /* Relaxed: statistics, each value on its own. */
    out->admitted = rl__load_relaxed(&s->admitted) + block_admissions(b);
    out->admitted_units = out->admitted + rl__load_relaxed(&s->extra_units);
    out->rejected = rl__load_relaxed(&s->rejected);
    out->waited = rl__load_relaxed(&s->waited);
    out->waited_ns = rl__load_relaxed(&s->waited_ns);
    out->dry_run_rejected = rl__load_relaxed(&s->dry_run_rejected);
    out->resets = rl__load_relaxed(&s->resets);
    out->reported_429 = rl__load_relaxed(&s->reported_429);
}
