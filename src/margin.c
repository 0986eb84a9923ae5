/*
 * margin.c - a margin that corrects itself, and the delay it is measured against.
 *
 * A request is admitted here at instant d and counted by the server when it arrives,
 * some delay later. The margin makes every window longer than the server's by that
 * much. When the delay exceeds it, the server counts more in its window than we did in
 * ours, and answers 429 although our rules admitted the request. Then the pool widens the
 * bucket's margin (shm_bucket.margin, shared through the table):
 *
 *   widen:   m <- min(C, f(m)),  f(m) = m + max(m / 2, 1 ms)
 *   narrow:  m <- m - max((m - floor) / 4, 1 us), one step per D of reports without a 429
 *            floor = max(m0, min(q, C)); at m0 the learned margin is forgotten
 *
 * m starts at m0, the configured margin, and never goes below it: decisions use
 * max(m0, learned). C, the ceiling, is max(m0, min(T / 10, 60 s)) for the bucket's shortest
 * period T.
 * D is 64 T, kept within 1 s .. 15 min. q is the p99 estimate of the delay from decision
 * to response, measured by every report that carries the decision instant.
 *
 * Only a 429 for a request decided after the previous widening widens (it claims the
 * widening: widened_at in shm_bucket.backoff, by CAS, M3). Requests already in flight when
 * that 429 came answer 429 too, but they are the same event: they widen nothing. A report
 * killed between its claim and its margin CAS loses that one widening; the next 429 for a
 * request decided after the claim widens.
 *
 * q: a frugal streaming quantile. A sample above q raises it by q / 16 with probability
 * 0.99; one below lowers it by q / 16 with probability 0.01. It settles where 1% of the
 * samples lie above, and moves the shared word for about 2% of the responses.
 */
#include <bsd/stdlib.h>

#include "margin.h"

#define DELAY_MAX    ((1ULL << RL_MARGIN_DELAY_BITS) - 1)
#define STEPS_MAX    ((1ULL << RL_MARGIN_STEPS_BITS) - 1)
#define DELAY_SHIFT  RL_MARGIN_LEARNED_BITS
#define STEPS_SHIFT  (RL_MARGIN_LEARNED_BITS + RL_MARGIN_DELAY_BITS)
#define SEC_NS       1000000000ULL
#define NARROW_SLOTS 64 /* D = 64 T */

struct margin {
    uint64_t learned, delay, steps; /* µs, µs, count */
};

struct limits {
    uint64_t configured, ceiling; /* µs */
    uint64_t narrow_every_ns;     /* D */
};

static struct margin unpack(uint64_t w)
{
    return (struct margin){.learned = rl__margin_learned_us(w),
                           .delay = (w >> DELAY_SHIFT) & DELAY_MAX,
                           .steps = w >> STEPS_SHIFT};
}

static uint64_t pack(const struct margin *m)
{
    return m->learned | m->delay << DELAY_SHIFT | m->steps << STEPS_SHIFT;
}

static void limits_of(const struct policy_view *v, struct limits *l)
{
    uint64_t t = UINT64_MAX;
    for (uint32_t i = 0; i < v->nrules; i++)
        t = rl__min(t, v->rules[i].period_ns);
    l->configured = (v->margin_ns + 999) / 1000;
    l->ceiling = rl__max(l->configured, rl__min(t / 10, RL_MARGIN_MAX_NS) / 1000);
    l->narrow_every_ns =
        t > 15 * 60 * SEC_NS / NARROW_SLOTS ? 15 * 60 * SEC_NS : rl__max(t * NARROW_SLOTS, SEC_NS);
}

static uint64_t floor_of(const struct margin *m, const struct limits *l)
{
    return rl__max(l->configured, rl__min(m->delay, l->ceiling));
}

static uint64_t delay_sample(uint64_t q, uint64_t x)
{
    uint64_t step = q / 16 ? q / 16 : 1;
    if (q == 0)
        return x ? x : 1;
    if (x > q && arc4random_uniform(100) < 99)
        return rl__min(q + step, DELAY_MAX);
    if (x < q && arc4random_uniform(100) == 0)
        return q > step ? q - step : 1;
    return q;
}

static void widen(struct margin *m, const struct limits *l)
{
    uint64_t cur = rl__max(m->learned, l->configured);
    m->learned = rl__min(l->ceiling, cur + rl__max(cur / 2, 1000));
}

/* The steps due after `quiet` ns without a 429, taken from those already taken. */
static void narrow(struct margin *m, const struct limits *l, uint64_t quiet)
{
    uint64_t due = rl__min(quiet / l->narrow_every_ns, STEPS_MAX), floor = floor_of(m, l);
    if (m->learned == 0 || due <= m->steps)
        return;
    for (; m->steps < due && m->learned > floor; m->steps++)
        m->learned -= rl__max((m->learned - floor) / 4, 1);
    m->steps = due;
    if (m->learned <= l->configured)
        m->learned = 0;
}

/* True if a 429 for a request decided at `decided` is the first since the last widening:
 * then widened_at moves to now. M3: CAS (the count beside it may move meanwhile). */
static bool claim_widening(rl_atomic64 *word, uint64_t decided, uint64_t now)
{
    uint64_t cur = rl__load_relaxed(word);
    for (;;) {
        if (decided == 0 || decided < cur >> 8)
            return false;
        uint64_t at = rl__min(now, (1ULL << 56) - 1) << 8;
        if (rl__cas_acq_rel(word, &cur, (cur & RL_BACKOFF_MASK) | at))
            return true;
    }
}

bool rl__margin_report(const rl_bucket *b, const struct policy_view *v, int status,
                       uint64_t decided, uint64_t now, bool again)
{
    bool owner = status == 429 && claim_widening(&b->rec->backoff, decided, now);
    struct limits l;
    limits_of(v, &l);
    /* Relaxed: raised by this report or another before; a stale value delays a step. */
    uint64_t last = rl__load_relaxed(&b->rec->last_429);
    uint64_t cur = rl__load_relaxed(&b->rec->margin), want; /* M1 */
    bool widened;
    do {
        struct margin m = unpack(cur);
        uint64_t before = rl__max(m.learned, l.configured);
        if (decided && now > decided)
            m.delay = delay_sample(m.delay, rl__min((now - decided) / 1000, DELAY_MAX));
        if (status == 429) {
            if (!again) /* steps count from last_429, which this 429 raised */
                m.steps = 0;
            if (owner)
                widen(&m, &l);
        } else if (status < 400) {
            narrow(&m, &l, now > last ? now - last : 0);
        }
        widened = rl__max(m.learned, l.configured) > before;
        want = pack(&m);
        /* M2: CAS, so that concurrent reports each count; the word orders nothing. */
    } while (want != cur && !rl__cas_acq_rel(&b->rec->margin, &cur, want));
    return widened;
}

void rl__margin_read(const rl_bucket *b, const struct policy_view *v, struct rl_margin_state *out)
{
    struct limits l;
    limits_of(v, &l);
    struct margin m = unpack(rl__load_relaxed(&b->rec->margin)); /* M1 */
    uint64_t q = m.delay * 1000, five_ms = 5000000;
    out->effective_ns = rl__max(m.learned * 1000, v->margin_ns);
    out->learned_ns = m.learned * 1000;
    out->ceiling_ns = l.ceiling * 1000;
    out->delay_p99_ns = q;
    out->narrowing_steps = (unsigned)m.steps;
    out->narrow_every_ns = l.narrow_every_ns;
    /* A quarter above the p99, rounded up to 5 ms. */
    out->recommended_ns =
        q ? rl__min(((q + q / 4 + five_ms - 1) / five_ms) * five_ms, RL_MARGIN_MAX_NS) : 0;
}
