/*
 * rule_fixed.c - fixed window: at most N per window of T, windows aligned to multiples of T
 * since the Unix epoch, as servers that reset "at the top of the minute" count.
 *
 * State word (64 bits):
 *   frozen:1  see update.c
 *   gen:1     the parity of the alignment the window number belongs to (clock.c)
 *   count:30  units admitted in that window (a carried-over debt may exceed N; N < 2^30)
 *   window:32 the counted window's number (wall ns / T) mod 2^32
 * T >= 100 ms, so the window number wraps after 13.6 years at the earliest. A word with a
 * count whose window is up to 2^31 windows ahead of now was reserved by a waiter; any
 * other window is an old one (count 0 now).
 * Decisions only read CLOCK_MONOTONIC: the wall clock only sets the windows' alignment
 * (header.wall_offset_ns), measured at creation and again at most once a second, and
 * changed only when it drifted by more than RL_WALL_DRIFT_NS (clock.c).
 *
 * Re-alignment. A word of the previous alignment (the other parity) is read as the new
 * alignment's word: its old window O, as it spans real time under the old alignment, has
 * its count c carried as a debt into the new window W that holds O's last instant. Why no
 * window ever holds more than N across the change, in either alignment:
 *   - W starts after O starts (W holds O's end, and both last T), so of all the old
 *     windows only O overlaps W: before the change W received at most c units (O's), and
 *     after it W admits N - c more at most, as the debt is counted.
 *   - New windows after W start at or after O's end: they hold only units admitted under
 *     the new alignment, at most N each.
 *   - A new window before W (one that overlaps O's start) admits nothing after the change:
 *     the word names W, ahead of it, so requests wait for W (as behind a reservation).
 *   - O itself, an old window, receives after the change only what W admits before O
 *     ends: c + (N - c) = N at most.
 * Each word changes alignment once, by the CAS that commits the translated word; every
 * process meeting a word of the other parity takes the header's alignment first
 * (rl__wall_sync), so no process writes an old-alignment word once a new one is in place.
 * What this cannot see: two re-alignments within one window's life (each at least a second
 * apart) make a word two generations old read as current; its count may then be lost, once.
 * And windows counted before the change, under the wrong alignment, may have let up to 2N
 * into one real window: the change ends that, it cannot undo it.
 *
 * Margin: a request admitted at t reaches the server up to `margin` later, perhaps in the
 * next window, where we did not count it. So no request is admitted in the last `margin`
 * of a window (a dead zone, at most T/2); it waits for the next window instead.
 */
#include "rule.h"

#define WIN_MASK  0xffffffffULL
#define WIN_HALF  0x80000000ULL
#define COUNT_MAX 0x3fffffffULL
#define GEN_SHIFT 62

/* An alignment: the wall clock's reading at relative instant 0, and its parity. */
struct align {
    int64_t base;
    uint64_t gen;
};

static uint64_t word_win(uint64_t w)
{
    return w & WIN_MASK;
}
static uint64_t word_count(uint64_t w)
{
    return (w >> 32) & COUNT_MAX;
}
static uint64_t word_gen(uint64_t w)
{
    return (w >> GEN_SHIFT) & 1;
}
static uint64_t window_word(const struct align *a, uint64_t win, uint64_t count)
{
    return a->gen << GEN_SHIFT | (count < COUNT_MAX ? count : COUNT_MAX) << 32 | (win & WIN_MASK);
}

/* The alignment in force for this process (prev: the one before). The offsets are
 * process-local copies (internal.h), validated when they were taken. */
static struct align align_of(const struct rule_ctx *c, bool prev)
{
    const rl_table *t = c->table;
    /* O2: acquire pairs with clock.c's adopt: a new offset's prev is visible with it. */
    int64_t cur = (int64_t)rl__load_acquire(&t->wall->offset);
    int64_t off = prev ? (int64_t)rl__load_relaxed(&t->wall->prev) : cur; /* ordered by O2 */
    return (struct align){(int64_t)t->epoch_ns + off, (uint64_t)off & 1};
}

/* Window number of relative instant t (saturating: instants may come from damaged words). */
static uint64_t window_of(const struct align *a, uint64_t period, uint64_t t)
{
    int64_t base = a->base;
    uint64_t wall = base >= 0 ? rl__sat_add(t, (uint64_t)base)
                              : (t > (uint64_t)-base ? t - (uint64_t)-base : 0);
    return wall / period;
}

/* Relative instant at which window w starts; RL_NEVER if beyond any clock. */
static uint64_t window_start(const struct align *a, uint64_t period, uint64_t w)
{
    if (w > UINT64_MAX / period)
        return RL_NEVER;
    uint64_t wall = w * period;
    int64_t base = a->base;
    if (base < 0)
        return rl__sat_add(wall, (uint64_t)-base);
    return wall > (uint64_t)base ? wall - (uint64_t)base : 0;
}

/* The full number of a word's window (mod 2^32) as the nearest to window `near`. */
static uint64_t full_window(uint64_t word, uint64_t near)
{
    uint64_t ahead = (word_win(word) - near) & WIN_MASK;
    if (ahead < WIN_HALF)
        return near + ahead;
    uint64_t behind = WIN_MASK + 1 - ahead;
    return near > behind ? near - behind : 0;
}

/*
 * The rule's word as a word of the alignment in force (cur), at instant now: a word of the
 * previous alignment has its count carried into the current alignment's window that holds
 * its window's last instant (see the top of this file).
 */
static uint64_t current_word(const struct rule_ctx *c, const struct align *cur, uint64_t now)
{
    uint64_t w = c->word & ~RL_FROZEN, period = c->r.period_ns;
    if (word_gen(w) == cur->gen || word_count(w) == 0)
        return word_gen(w) == cur->gen ? w : window_word(cur, 0, 0);
    struct align old = align_of(c, true);
    uint64_t end = window_start(&old, period, full_window(w, window_of(&old, period, now)) + 1);
    if (end == RL_NEVER || end == 0)
        return window_word(cur, 0, 0);
    return window_word(cur, window_of(cur, period, end - 1), word_count(w));
}

/* The alignment for deciding on the loaded word: a word of the other parity may mean
 * another process re-aligned the table; then this process takes the header's first. */
static struct align align_for(const struct rule_ctx *c)
{
    struct align a = align_of(c, false);
    if (word_gen(c->word) != a.gen && word_count(c->word) != 0) {
        rl__wall_sync(c->table);
        a = align_of(c, false);
    }
    return a;
}

static uint64_t dead_zone(const struct rule_ctx *c)
{
    uint64_t half = c->r.period_ns / 2;
    return c->margin_ns < half ? c->margin_ns : half;
}

enum rule_result rl__fixed_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                    uint64_t *earliest)
{
    uint64_t limit = c->r.limit, period = c->r.period_ns;
    if (cost > limit) {
        *earliest = RL_NEVER;
        return RULE_OK;
    }
    rl__wall_check(c->table, now);
    struct align a = align_for(c);
    uint64_t word = current_word(c, &a, now);
    uint64_t w = window_of(&a, period, now), t = now;
    if (now + dead_zone(c) >= window_start(&a, period, w + 1))
        t = window_start(&a, period, ++w);
    uint64_t ahead = (word_win(word) - w) & WIN_MASK, used = 0;
    if (ahead < WIN_HALF && (ahead == 0 || word_count(word) > 0)) {
        /* The word counts this window (ahead 0) or a later one a waiter reserved (or a
         * re-alignment carried a debt into): this window's leftover is forfeited, requests
         * queue behind it. */
        if (ahead)
            t = window_start(&a, period, w += ahead);
        used = word_count(word);
    }
    *earliest = used + cost <= limit ? t : window_start(&a, period, w + 1);
    return RULE_OK;
}

bool rl__fixed_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost)
{
    (void)cost;
    /* A word up to 2^31 windows ahead of now reads as a reservation (see above); a later
     * window would read as an old one, and its count would be lost. */
    struct align a = align_for(c);
    uint64_t period = c->r.period_ns, w = window_of(&a, period, d);
    return window_start(&a, period, w) != RL_NEVER && w - window_of(&a, period, now) < WIN_HALF;
}

uint64_t rl__fixed_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    struct align a = align_for(c);
    uint64_t word = current_word(c, &a, d);
    uint64_t w = window_of(&a, c->r.period_ns, d);
    uint64_t same = word_win(word) == (w & WIN_MASK);
    return window_word(&a, w, (same ? word_count(word) : 0) + cost);
}

void rl__fixed_reset(const struct rule_ctx *c, uint64_t now)
{
    struct align a = align_of(c, false);
    uint64_t fresh = window_word(&a, window_of(&a, c->r.period_ns, now), 0);
    /* Z1 as in rl__gcra_reset: a frozen word stays as it is. */
    uint64_t v = rl__load_acquire(c->state);
    while (!(v & RL_FROZEN) && !rl__cas_acq_rel(c->state, &v, fresh))
        ;
}

uint64_t rl__fixed_used(const struct rule_ctx *c, uint64_t now)
{
    struct align a = align_for(c);
    uint64_t word = current_word(c, &a, now);
    uint64_t w = window_of(&a, c->r.period_ns, now);
    /* This window's count, or a later window's a waiter reserved: decisions at `now` queue
     * behind it (rl__fixed_earliest), so it counts now. A bucket with a reservation ahead
     * is not idle, and a switch carries the reserved units. */
    uint64_t ahead = (word_win(word) - w) & WIN_MASK;
    return ahead < WIN_HALF ? word_count(word) : 0;
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
