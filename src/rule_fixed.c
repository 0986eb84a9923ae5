/*
 * rule_fixed.c - fixed window: at most N per window of T, windows aligned to multiples of T
 * since the Unix epoch, as servers that reset "at the top of the minute" count.
 *
 * State word (64 bits):
 *   frozen:1  see update.c
 *   count:31  units admitted in that window (a carried-over debt may exceed N)
 *   window:32 the counted window's number (wall ns / T) mod 2^32
 * T >= 100 ms, so the window number wraps after 13.6 years at the earliest. A word with a
 * count whose window is up to 2^31 windows ahead of now was reserved by a waiter; any
 * other window is an old one (count 0 now).
 * The wall clock is read once, at table creation (header.wall_offset_ns); decisions only
 * read CLOCK_MONOTONIC, so a clock step changes nothing.
 *
 * Margin: a request admitted at t reaches the server up to `margin` later, perhaps in the
 * next window, where we did not count it. So no request is admitted in the last `margin`
 * of a window (a dead zone, at most T/2); it waits for the next window instead.
 */
#include "rule.h"

#define WIN_MASK  0xffffffffULL
#define WIN_HALF  0x80000000ULL
#define COUNT_MAX 0x7fffffffULL

static uint64_t word_win(uint64_t w)
{
    return w & WIN_MASK;
}
static uint64_t word_count(uint64_t w)
{
    return (w & ~RL_FROZEN) >> 32;
}
static uint64_t window_word(uint64_t win, uint64_t count)
{
    return (count < COUNT_MAX ? count : COUNT_MAX) << 32 | (win & WIN_MASK);
}

/* The wall clock's reading at relative instant 0 (header fields checked at attach to keep
 * this within int64_t). */
static int64_t wall_base(const struct rule_ctx *c)
{
    const struct shm_header *h = c->table->hdr;
    return (int64_t)h->epoch_ns + h->wall_offset_ns;
}

/* Window number of relative instant t (saturating: instants may come from damaged words). */
static uint64_t window_of(const struct rule_ctx *c, uint64_t t)
{
    int64_t base = wall_base(c);
    uint64_t wall = base >= 0 ? rl__sat_add(t, (uint64_t)base)
                              : (t > (uint64_t)-base ? t - (uint64_t)-base : 0);
    return wall / c->r.period_ns;
}

/* Relative instant at which window w starts; RL_NEVER if beyond any clock. */
static uint64_t window_start(const struct rule_ctx *c, uint64_t w)
{
    if (w > UINT64_MAX / c->r.period_ns)
        return RL_NEVER;
    uint64_t wall = w * c->r.period_ns;
    int64_t base = wall_base(c);
    if (base < 0)
        return rl__sat_add(wall, (uint64_t)-base);
    return wall > (uint64_t)base ? wall - (uint64_t)base : 0;
}

static uint64_t dead_zone(const struct rule_ctx *c)
{
    uint64_t half = c->r.period_ns / 2;
    return c->margin_ns < half ? c->margin_ns : half;
}

enum rule_result rl__fixed_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                    uint64_t *earliest)
{
    uint64_t limit = c->r.limit;
    if (cost > limit) {
        *earliest = RL_NEVER;
        return RULE_OK;
    }
    uint64_t w = window_of(c, now), t = now;
    if (now + dead_zone(c) >= window_start(c, w + 1))
        t = window_start(c, ++w);
    uint64_t ahead = (word_win(c->word) - w) & WIN_MASK, used = 0;
    if (ahead < WIN_HALF && (ahead == 0 || word_count(c->word) > 0)) {
        /* The word counts this window (ahead 0) or a later one a waiter reserved: this
         * window's leftover is forfeited, requests queue behind the reservation. */
        if (ahead)
            t = window_start(c, w += ahead);
        used = word_count(c->word);
    }
    *earliest = used + cost <= limit ? t : window_start(c, w + 1);
    return RULE_OK;
}

bool rl__fixed_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost)
{
    (void)cost;
    /* A word up to 2^31 windows ahead of now reads as a reservation (see above); a later
     * window would read as an old one, and its count would be lost. */
    uint64_t w = window_of(c, d);
    return window_start(c, w) != RL_NEVER && w - window_of(c, now) < WIN_HALF;
}

uint64_t rl__fixed_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    uint64_t w = window_of(c, d);
    uint64_t same = word_win(c->word) == (w & WIN_MASK);
    return window_word(w, (same ? word_count(c->word) : 0) + cost);
}

void rl__fixed_reset(const struct rule_ctx *c, uint64_t now)
{
    /* Z1 as in rl__gcra_reset: a frozen word stays as it is. */
    uint64_t v = rl__load_acquire(c->state);
    while (!(v & RL_FROZEN) && !rl__cas_acq_rel(c->state, &v, window_word(window_of(c, now), 0)))
        ;
}

uint64_t rl__fixed_used(const struct rule_ctx *c, uint64_t now)
{
    uint64_t w = window_of(c, now);
    return word_win(c->word) == (w & WIN_MASK) ? word_count(c->word) : 0;
}

void rl__fixed_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out)
{
    uint64_t used = rl__fixed_used(c, now);
    out->used = used;
    out->remaining = used < c->r.limit ? c->r.limit - used : 0;
    uint64_t next = 0;
    rl__fixed_earliest(c, now, 1, &next);
    out->next_free_ns = next > now ? next - now : 0;
    if (out->next_free_ns)
        out->remaining = 0;
}

uint64_t rl__fixed_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess)
{
    *excess = 0; /* the count records any debt, even beyond N */
    return units ? rl__fixed_next_word(c, at, (uint32_t)units) : 0;
}
