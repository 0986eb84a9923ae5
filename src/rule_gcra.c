/*
 * rule_gcra.c - token bucket as GCRA: sustained N per T, burst capacity B.
 *
 * State word = TAT (theoretical arrival time, relative ns). A decision never writes a TAT
 * above TAT_MAX (3 * 2^61, about 220 years): a turn that would need a later one is refused.
 * That keeps TAT clear of RL_FROZEN (bit 63), with room for the margin and a full burst.
 * I = ceil(T/N) ns per unit. A request of `cost` units (cost <= B) at instant t is
 * admitted iff TAT is 0 (always) or
 *     TAT - t <= (B - cost) * I' - m'
 * that is, the bucket holds at least `cost` tokens counting from `m'` later. Then
 *     TAT' = max(TAT, t) + cost * I'.
 * Processing requests out of instant order only makes TAT larger (max() is monotone).
 * So a decision made with an instant read slightly before another process's is never
 * more permissive than the time-ordered one.
 *
 * I' and m' come from I and the margin m (rl__gcra_run). The server runs GCRA(I, tau),
 * tau = (B - 1) * I: it takes n units arriving within a span S iff n <= B or
 * S >= (n - 1) * I - tau. A request reaches it up to m after its decision, so n units
 * decided within a span D may arrive within max(0, D - m). The decisions must therefore
 * keep, for every n > B:
 *     D >= (n - 1) * I - tau + m.                                          (1)
 * - m <= tau: I' = I, m' = m. The test above is GCRA(I, tau - m), which gives (1) exactly.
 * - m > tau: GCRA(I, tau - m) would space every two units I + m - tau apart (about m for a
 *   fast rule with a small burst: 100/s instead of 100,000,000/s for "100000000/1s burst
 *   1000000" at 20 ms). Instead I' = ceil((I + m) / B) and m' = (B - 1) * I', so the test
 *   is TAT + (cost - 1) * I' <= t: any n units span at least (n - 1) * I', and for n > B
 *   (n - 1) * (I' - I) >= B * (I' - I) >= m - tau gives (1). The rate is then B / (I + m),
 *   the most (1) allows: every B + 1 units need I + m.
 * At m = tau both give I' = I. A wider m gives a larger I' and a stricter test, so a
 * margin widened after 429s (margin.c) only ever adds to what the configured one keeps.
 */
#include "rule.h"

#define TAT_MAX (3ULL << 61)

uint64_t rl__gcra_interval(uint64_t limit, uint64_t period_ns)
{
    return (period_ns + limit - 1) / limit; /* rounded up: never faster than N per T */
}

struct gcra_run rl__gcra_run(const struct rule_params *r, uint64_t margin_ns)
{
    /* No overflow: B * I <= 2^62 (rl_policy_check) and m <= 60 s. */
    if (margin_ns <= (r->burst - 1) * r->interval_ns)
        return (struct gcra_run){r->interval_ns, margin_ns};
    uint64_t step = (r->interval_ns + margin_ns + r->burst - 1) / r->burst;
    return (struct gcra_run){step, (r->burst - 1) * step};
}

uint64_t rl__gcra_earliest_for(const struct rule_params *r, uint64_t margin_ns, uint64_t tat,
                               uint64_t now, uint32_t cost)
{
    if (cost > r->burst)
        return RL_NEVER;
    /* TAT 0: nothing counted yet (a new or reset bucket), so no margin to keep either.
     * Otherwise the request is admissible once TAT + m' - (B - cost) * I' has passed.
     * The arithmetic saturates: a damaged TAT may be anything below 2^63. */
    struct gcra_run run = rl__gcra_run(r, margin_ns);
    uint64_t allowed = (r->burst - cost) * run.interval_ns; /* < I + m + B: no overflow */
    uint64_t due = rl__sat_add(tat, run.margin_ns);
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
    /* No overflow: tat < 2^63 (not frozen), d < TAT_MAX, cost * I' < 2^62 + m + B. */
    return tat < RL_FROZEN && d < TAT_MAX && rl__max(tat, d) + cost * interval_ns <= TAT_MAX;
}

bool rl__gcra_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost)
{
    (void)now;
    return rl__gcra_fits_for(c->word, d, cost, rl__gcra_run(&c->r, c->margin_ns).interval_ns);
}

uint64_t rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    return rl__gcra_tat_after(c->word, d, cost, rl__gcra_run(&c->r, c->margin_ns).interval_ns);
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
    uint64_t step = rl__gcra_run(&c->r, c->margin_ns).interval_ns;
    return (ahead + step - 1) / step;
}

void rl__gcra_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out)
{
    const struct rule_params *r = &c->r;
    uint64_t used = rl__gcra_used(c, now);
    out->used = used < r->burst ? used : r->burst;
    /* Tokens: B minus what TAT + m' still holds at `now` (none once it has passed). */
    struct gcra_run run = rl__gcra_run(r, c->margin_ns);
    uint64_t due = c->word ? rl__sat_add(c->word, run.margin_ns) : 0;
    uint64_t held = due > now ? due - now : 0, room = r->burst * run.interval_ns;
    out->remaining = room > held ? (room - held) / run.interval_ns : 0;
    uint64_t next = rl__gcra_earliest_for(r, c->margin_ns, c->word, now, 1);
    out->next_free_ns = next > now ? next - now : 0;
}

uint64_t rl__gcra_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess)
{
    *excess = 0; /* a TAT records any debt, even beyond the burst, up to TAT_MAX */
    uint64_t interval = rl__gcra_run(&c->r, c->margin_ns).interval_ns; /* as if admitted */
    if (at >= TAT_MAX || units > (TAT_MAX - at) / interval)
        return TAT_MAX;
    return at + units * interval;
}
