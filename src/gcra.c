/*
 * gcra.c - token bucket as GCRA: sustained N per T, burst capacity B.
 *
 * State word = TAT (theoretical arrival time, relative ns, below 2^63). I = ceil(T/N) ns per unit.
 * A request of `cost` units at instant t is admitted iff
 *     max(TAT, t) - t <= (B - cost) * I - margin
 * i.e. the bucket holds at least `cost` tokens with `margin` to spare, and then
 *     TAT' = max(TAT, t) + cost * I.
 * Processing requests out of instant order only makes TAT larger (max() is monotone),
 * so a decision made with an instant read slightly before another process's is never
 * more permissive than the time-ordered one.
 */
#include "internal.h"

/* Allowance in ns: how far TAT may run ahead of the instant (may be negative). */
static int64_t allowance(const struct rule_ctx *c, uint32_t cost)
{
    const struct shm_rule *r = c->rule;
    return (int64_t)((r->burst - cost) * r->interval_ns) - (int64_t)c->margin_ns;
}

int gcra_earliest(struct rule_ctx *c, uint64_t now, uint32_t cost, uint64_t *earliest)
{
    if (cost > c->rule->burst) {
        *earliest = RL_NEVER;
        return RULE_OK;
    }
    int64_t at = (int64_t)c->word - allowance(c, cost);
    *earliest = at > (int64_t)now ? (uint64_t)at : now;
    return RULE_OK;
}

uint64_t gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    return rl_max(c->word, d) + cost * c->rule->interval_ns;
}

void gcra_reset(struct rule_ctx *c, uint64_t now)
{
    (void)now;
    /* TAT 0 is "full" at every instant. A frozen word belongs to a block being replaced
     * and stays as it is (bucket.c then resets the new block). */
    uint64_t v = rl_load_acquire(&c->rule->word);
    while (!(v & RL_FROZEN) && !rl_cas(&c->rule->word, &v, 0))
        ;
}

void gcra_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out)
{
    const struct shm_rule *r = c->rule;
    uint64_t ahead = c->word > now ? c->word - now : 0;
    uint64_t used = (ahead + r->interval_ns - 1) / r->interval_ns;
    out->used = used < r->burst ? used : r->burst;
    int64_t spare = (int64_t)(r->burst * r->interval_ns) - (int64_t)ahead - (int64_t)c->margin_ns;
    out->remaining = spare > 0 ? (uint64_t)spare / r->interval_ns : 0;
    uint64_t next = 0;
    gcra_earliest((struct rule_ctx *)c, now, 1, &next);
    out->next_free_ns = next > now ? next - now : 0;
}
