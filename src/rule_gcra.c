/*
 * rule_gcra.c - token bucket as GCRA: sustained N per T, burst capacity B.
 *
 * State word = TAT (theoretical arrival time, relative ns). A decision never writes a TAT
 * above TAT_MAX (3 * 2^61, about 220 years): a turn that would need a later one is refused.
 * That keeps TAT clear of RL_FROZEN (bit 63), with room for the margin and a full burst.
 * I = ceil(T/N) ns per unit. A request of `cost` units (cost <= B) at instant t is
 * admitted iff TAT is 0 (always) or
 *     TAT - t <= (B - cost) * I - margin
 * that is, the bucket holds at least `cost` tokens counting from `margin` later. Then
 *     TAT' = max(TAT, t) + cost * I.
 * Processing requests out of instant order only makes TAT larger (max() is monotone).
 * So a decision made with an instant read slightly before another process's is never
 * more permissive than the time-ordered one.
 */
#include "rule.h"

#define TAT_MAX (3ULL << 61)

uint64_t rl__gcra_interval(uint64_t limit, uint64_t period_ns)
{
    return (period_ns + limit - 1) / limit; /* rounded up: never faster than N per T */
}

uint64_t rl__gcra_earliest_for(const struct rule_params *r, uint64_t margin_ns, uint64_t tat,
                               uint64_t now, uint32_t cost)
{
    if (cost > r->burst)
        return RL_NEVER;
    /* TAT 0: nothing counted yet (a new or reset bucket), so no margin to keep either.
     * Otherwise the request is admissible once TAT + margin - (B - cost) * I has passed.
     * The arithmetic saturates: a damaged TAT may be anything below 2^63. */
    uint64_t allowed = (r->burst - cost) * r->interval_ns; /* <= 2^62 (rl_policy_check) */
    uint64_t due = rl__sat_add(tat, margin_ns);
    return tat && due > allowed ? rl__max(now, due - allowed) : now;
}

enum rule_result rl__gcra_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                   uint64_t *earliest)
{
    *earliest = rl__gcra_earliest_for(&c->r, c->margin_ns, c->word, now, cost);
    return RULE_OK;
}

uint64_t rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns)
{
    return rl__max(tat, d) + cost * interval_ns;
}

bool rl__gcra_fits_for(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns)
{
    /* No overflow: tat < 2^63 (not frozen), d < TAT_MAX, cost * I <= 2^62 (rl_policy_check). */
    return tat < RL_FROZEN && d < TAT_MAX && rl__max(tat, d) + cost * interval_ns <= TAT_MAX;
}

bool rl__gcra_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost)
{
    (void)now;
    return rl__gcra_fits_for(c->word, d, cost, c->r.interval_ns);
}

uint64_t rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    return rl__gcra_tat_after(c->word, d, cost, c->r.interval_ns);
}

void rl__gcra_reset(const struct rule_ctx *c, uint64_t now)
{
    (void)now;
    /* TAT 0 is "full" at every instant. A frozen word belongs to a block being replaced
     * and stays as it is (bucket.c then resets the new block). Z1: acq_rel CAS, a state
     * word like C2's, loaded by A5. */
    uint64_t v = rl__load_acquire(c->state);
    while (!(v & RL_FROZEN) && !rl__cas_acq_rel(c->state, &v, 0))
        ;
}

uint64_t rl__gcra_used(const struct rule_ctx *c, uint64_t now)
{
    uint64_t ahead = c->word > now ? c->word - now : 0;
    return (ahead + c->r.interval_ns - 1) / c->r.interval_ns;
}

void rl__gcra_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out)
{
    const struct rule_params *r = &c->r;
    uint64_t used = rl__gcra_used(c, now);
    out->used = used < r->burst ? used : r->burst;
    /* Tokens: B minus what TAT + margin still holds at `now` (none once it has passed). */
    uint64_t due = c->word ? rl__sat_add(c->word, c->margin_ns) : 0;
    uint64_t held = due > now ? due - now : 0, room = r->burst * r->interval_ns;
    out->remaining = room > held ? (room - held) / r->interval_ns : 0;
    uint64_t next = rl__gcra_earliest_for(r, c->margin_ns, c->word, now, 1);
    out->next_free_ns = next > now ? next - now : 0;
}

uint64_t rl__gcra_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess)
{
    *excess = 0; /* a TAT records any debt, even beyond the burst, up to TAT_MAX */
    uint64_t interval = c->r.interval_ns;
    if (at >= TAT_MAX || units > (TAT_MAX - at) / interval)
        return TAT_MAX;
    return at + units * interval;
}
