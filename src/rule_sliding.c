/*
 * rule_sliding.c - exact sliding window: at most N units in ANY rolling window of T.
 *
 * The rule keeps a log of the last N admitted units: log[k mod N] holds the instant of
 * unit k. Unit k may be admitted at instant d only if unit k-N was admitted at or before
 * d - T - margin. Admission instants are non-decreasing in k. So unit k and unit k-N are
 * always at least T apart, and no window of T holds more than N units.
 *
 * Head word (the rule's state word), 64 bits:
 *   frozen:1 see update.c
 *   pos:19   units admitted so far, mod 4N (N <= 2^17)
 *   last:44  ceil(admission instant of the latest unit) in ticks of RL_TICK_NS
 * Log word, 64 bits:
 *   lap:2    (k / N) mod 4 of the unit whose instant it holds
 *   tick:44  ceil(its admission instant) in ticks
 *
 * Claiming units k..k+c-1 is ONE CAS on the head: pos -> pos+c, last -> ceil(d). The
 * decision reads log[k-N .. k+c-1-N] before it. The c log words are written after the
 * CAS, so a writer may be slow, or die, between the CAS and the writes. That is safe:
 *  - A log word not yet written for unit j still shows lap(j-N). Whoever needs it (the
 *    claimer of unit j+N) "helps": it CASes (lap(j), head.last) into it. head.last is at
 *    least unit j's true instant, since instants are non-decreasing. So the helped word is
 *    conservative. It can only make later decisions stricter: under-admission at worst,
 *    and only when a writer stalls for a whole lap of N units.
 *  - A writer or helper only replaces a word that still holds lap(j-N), and only with a
 *    tick at or before d - T (or tick 0, "never used"). A newer lap's tick is always later
 *    than that. So a late writer never overwrites a newer lap (R2 has the one exception).
 *
 * Ticks, not ns, are what must be ordered. Helping uses head.last as an upper bound of
 * every claimed unit's tick, and rl__sliding_remaining's binary search needs ticks that
 * rise with k. Both hold if each unit's tick is >= the previous unit's. So a decision's
 * instant is at least (last - 1 tick) + 1 ns, the first instant whose ceiling is `last`
 * (scan() below). Ordering ns instead would push a decision whose clock read came a
 * little before the previous decision's (same tick) into the future, for nothing.
 */
#include "rule.h"

#define TICK_MASK ((1ULL << 44) - 1)

static uint64_t head_pos(uint64_t w)
{
    return (w & ~RL_FROZEN) >> 44;
}
static uint64_t head_last(uint64_t w)
{
    return w & TICK_MASK;
}
static uint64_t log_lap(uint64_t w)
{
    return w >> 62;
}
static uint64_t log_tick(uint64_t w)
{
    return w & TICK_MASK;
}
static uint64_t head_word(uint64_t pos, uint64_t tick)
{
    return pos << 44 | (tick & TICK_MASK);
}
static uint64_t entry_word(uint64_t lap, uint64_t tick)
{
    return lap << 62 | (tick & TICK_MASK);
}
static uint64_t ceil_tick(uint64_t ns)
{
    return ns / RL_TICK_NS + (ns % RL_TICK_NS != 0);
}

static rl_atomic64 *log_word(const struct rule_ctx *c, uint64_t k)
{
    return &c->log[k % c->r.limit];
}

static uint64_t lap_of(const struct rule_ctx *c, uint64_t k)
{
    return (k / c->r.limit) % 4;
}

/*
 * Instant (tick) recorded for unit j (j in 0..4N-1, mod 4N). `floor_tick` is a tick known
 * to be >= unit j's instant (head.last of a later head). An unwritten entry counts as
 * floor_tick: with `help`, it is also written so (W1). RULE_STALE if the word shows a newer
 * lap: our head is outdated.
 */
static enum rule_result unit_tick(const struct rule_ctx *c, uint64_t j, uint64_t floor_tick,
                                  bool help, uint64_t *tick)
{
    uint64_t n4 = 4 * c->r.limit;
    rl_atomic64 *w = log_word(c, j);
    /* L1: acquire pairs with the CAS that wrote the word (W1/W2): we use its tick. */
    uint64_t v = rl__load_acquire(w);
    if (log_lap(v) == lap_of(c, j)) {
        *tick = log_tick(v);
        return RULE_OK;
    }
    bool unwritten = log_lap(v) == lap_of(c, (j + n4 - c->r.limit) % n4);
    /* R2: any other lap means one of two things.
     * - Our head is outdated: retry.
     * - The head has not moved: the entry is inconsistent (a damaged file, or a writer
     *   stalled for three whole laps across a reset).
     * After repeated retries acquire.c sets `repair`. An entry that is wrong for the
     * unchanged head is then stamped like an unwritten one. That is conservative, and it
     * keeps a bad entry from wedging the bucket. */
    if (!unwritten && !(c->repair && rl__load_acquire(c->state) == c->word))
        return RULE_STALE;
    if (!help) { /* inspection, or a read-only table: assume the conservative instant */
        *tick = floor_tick;
        return RULE_OK;
    }
    /* W1: unit j was claimed but its writer has not written it (yet): help. */
    uint64_t helped = entry_word(lap_of(c, j), floor_tick);
    if ((log_tick(v) <= floor_tick || c->repair) && rl__cas_acq_rel(w, &v, helped)) {
        *tick = floor_tick;
        return RULE_OK;
    }
    return RULE_STALE; /* someone wrote it meanwhile: reload and look again */
}

/* earliest, helping unwritten entries if `help`. */
static enum rule_result scan(const struct rule_ctx *c, uint64_t now, uint32_t cost, bool help,
                             uint64_t *earliest)
{
    uint64_t n = c->r.limit, n4 = 4 * n;
    if (cost > n) {
        *earliest = RL_NEVER;
        return RULE_OK;
    }
    uint64_t pos = head_pos(c->word), last = head_last(c->word);
    if (pos >= n4)
        return RULE_STALE; /* damaged head: acquire.c reports RL_ECORRUPT after retries */
    /* Ordered after the previous unit in ticks (see the top of this file). */
    uint64_t at = rl__max(now, last ? (last - 1) * RL_TICK_NS + 1 : 0);
    uint64_t span = c->r.period_ns + c->margin_ns;
    for (uint64_t i = 0; i < cost; i++) {
        uint64_t tick, prev = (pos + i + n4 - n) % n4; /* unit k+i-N */
        if (unit_tick(c, prev, last, help, &tick) != RULE_OK)
            return RULE_STALE;
        if (tick) /* tick 0: never used (or reset) */
            at = rl__max(at, rl__sat_add(tick * RL_TICK_NS, span));
    }
    *earliest = at;
    return RULE_OK;
}

enum rule_result rl__sliding_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                      uint64_t *earliest)
{
    return scan(c, now, cost, !c->table->read_only, earliest);
}

bool rl__sliding_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost)
{
    (void)c, (void)now, (void)cost;
    /* head.last and the log hold 44 bits of ticks (55 years): a later instant would wrap. */
    return ceil_tick(d) <= TICK_MASK;
}

uint64_t rl__sliding_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    uint64_t pos = (head_pos(c->word) + cost) % (4 * c->r.limit);
    return head_word(pos, rl__max(head_last(c->word), ceil_tick(d)));
}

void rl__sliding_finalize(const struct rule_ctx *c, uint64_t old_word, uint64_t new_word)
{
    uint64_t n4 = 4 * c->r.limit, n = c->r.limit;
    /* floor(T): the decision proved old + T <= d, so old + floor(T) <= ceil(d) = tick. */
    uint64_t tick = head_last(new_word), span_ticks = c->r.period_ns / RL_TICK_NS;
    for (uint64_t k = head_pos(old_word); k != head_pos(new_word); k = (k + 1) % n4) {
        rl_atomic64 *w = log_word(c, k);
        uint64_t v = rl__load_acquire(w);
        uint64_t prev_lap = lap_of(c, (k + n4 - n) % n4);
        /* W2: replace only the previous lap's word, and only if it is that old: a helper
         * may have written it already, and after a long stall even newer laps may be
         * there; both have later ticks than tick - T. Release publishes nothing else but
         * pairs with L1 for the tick itself. */
        while (log_lap(v) == prev_lap && (log_tick(v) == 0 || log_tick(v) + span_ticks <= tick) &&
               !rl__cas_acq_rel(w, &v, entry_word(lap_of(c, k), tick)))
            ;
    }
}

void rl__sliding_reset(const struct rule_ctx *c, uint64_t now)
{
    (void)now;
    /* Tick 0 means "never": every logged unit expires at once. Laps are kept, so the
     * helping protocol above is undisturbed. A writer racing the reset retries its CAS.
     * Z1: acq_rel CAS on each log word, loaded by L1. */
    for (uint64_t k = 0; k < c->r.limit; k++) {
        rl_atomic64 *w = log_word(c, k);
        uint64_t v = rl__load_acquire(w);
        while (!rl__cas_acq_rel(w, &v, entry_word(log_lap(v), 0)))
            ;
    }
}

uint64_t rl__sliding_remaining(const struct rule_ctx *c, uint64_t now)
{
    /* Units j = pos-N .. pos-1 sit at log[(pos + i) mod N], oldest first. Their ticks rise
     * with j (helped entries only run late). So the expired ones are a prefix: binary
     * search for its length. Unwritten entries count as not expired. Relaxed loads: a
     * snapshot for reporting, never for deciding. */
    uint64_t n = c->r.limit, n4 = 4 * n, pos = head_pos(c->word);
    uint64_t span = c->r.period_ns + c->margin_ns, lo = 0, hi = n;
    if (pos >= n4)
        return 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, j = (pos + mid + n4 - n) % n4;
        uint64_t v = rl__load_relaxed(log_word(c, j));
        bool expired = log_lap(v) == lap_of(c, j) &&
                       (log_tick(v) == 0 || rl__sat_add(log_tick(v) * RL_TICK_NS, span) <= now);
        if (expired)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint64_t rl__sliding_used(const struct rule_ctx *c, uint64_t now)
{
    return c->r.limit - rl__sliding_remaining(c, now);
}

void rl__sliding_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out)
{
    out->remaining = rl__sliding_remaining(c, now);
    out->used = c->r.limit - out->remaining;
    uint64_t next = now;
    if (scan(c, now, 1, false, &next) != RULE_OK)
        next = now;
    out->next_free_ns = next > now ? next - now : 0;
}

uint64_t rl__sliding_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess)
{
    /* The log holds at most N stamps: the rest is the caller's (carry_excess). */
    uint64_t n = c->r.limit, tick = ceil_tick(at);
    *excess = units > n ? units - n : 0;
    units = units < n ? units : n;
    /* Entries hold units -N..-1 (lap 3). The last `units` of them get tick ceil(at), so new
     * units 0..N-units-1 are free and the rest wait until at + T. Any helper writes the same
     * values; the CAS from the fresh value makes the writes idempotent. */
    for (uint64_t k = n - units; k < n; k++) {
        uint64_t fresh = entry_word(3, 0);
        rl__cas_acq_rel(log_word(c, k), &fresh, entry_word(3, tick));
    }
    /* Head: pos 0, last = ceil(at) in ticks, so new units are ordered after the seeded. */
    return units ? tick : 0;
}
