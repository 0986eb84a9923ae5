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

/* Admissions the GCRA fast path counted in the bucket's current policy block
 * (shm_rule.admitted); those of the blocks it replaced were folded into the record when
 * they were retired and freed (reclaim.c). Inside the caller's section. */
static uint64_t block_admissions(const rl_bucket *b)
{
    /* X2, A3: a reference loaded inside the section. */
    uint64_t ref = rl__load_seq_cst(&b->rec->policy_off);
    const struct shm_policy *p = rl__arena_at(b->table, rl__ref_off(ref),
                                              sizeof(struct shm_policy) + sizeof(struct shm_rule));
    return p && ref ? rl__load_relaxed(&p->rules[0].admitted) : 0; /* relaxed: a statistic */
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
