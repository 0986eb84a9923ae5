/*
 * test_rules.c - decisions of one bucket: sliding window, GCRA and fixed window counts,
 * costs, waits, blocking acquires and timeouts, reset, bucket info, dry-run.
 *
 * Deterministic on a loaded machine: periods are long (1 h or more) so nothing expires
 * during a test, or the assertions are on invariants that hold at any speed (instants of
 * admissions, never durations of calls).
 */
#include <pthread.h>
#include <time.h>

#include "fixture.h"
#include "rule.h"

static rl_table *T;

static void done(void)
{
    rl_table_close(T);
    T = NULL;
}

static void rules_fini(void)
{
    done();
    fixture_teardown();
}

TestSuite(rules, .init = fixture_setup, .fini = rules_fini, .timeout = 50);

static rl_bucket *bucket(const char *policy)
{
    if (!T)
        T = table_create(32);
    static unsigned n;
    char name[32];
    snprintf(name, sizeof(name), "b%u", n++);
    return define(T, name, policy, NULL);
}

static int try1(rl_bucket *b, uint32_t cost, struct rl_decision *d)
{
    memset(d, 0xa5, sizeof(*d));
    int rc = rl_try_acquire(b, cost, d);
    cr_assert(rc == 0 || rc == RL_ELIMITED, "try_acquire(%u): %s (%s)", cost, rl_err_name(rc),
              rl_errdetail());
    return rc;
}

/* ------------------------------------------------------------ sliding window */

Test(rules, sliding_admits_exactly_n)
{
    rl_bucket *b = bucket("10/1h margin 0");
    struct rl_decision d;
    uint64_t first = 0;
    for (unsigned i = 0; i < 10; i++) {
        uint64_t before = rl_now_ns();
        cr_assert_eq(try1(b, 1, &d), 0, "request %u refused", i + 1);
        uint64_t after = rl_now_ns();
        cr_expect(d.at_ns >= before && d.at_ns <= after, "admitted now, at_ns in the call");
        cr_expect_eq(d.wait_ns, 0);
        cr_expect_eq(d.remaining, 9 - i, "remaining %" PRIu64 " after %u", d.remaining, i + 1);
        cr_expect_not(d.dry_run_rejected);
        if (i == 0)
            first = d.at_ns;
    }
    uint64_t before = rl_now_ns();
    cr_assert_eq(try1(b, 1, &d), RL_ELIMITED);
    /* Unit 1 expires T after it was admitted (rounded up to a 100 us tick). */
    uint64_t expires = first + NS_PER_H;
    cr_expect(d.wait_ns <= NS_PER_H + RL_TICK_NS, "wait %" PRIu64, d.wait_ns);
    cr_expect(d.at_ns + d.wait_ns >= expires && d.at_ns + d.wait_ns <= expires + RL_TICK_NS,
              "would be admitted at %" PRIu64 ", unit 1 expires at %" PRIu64, d.at_ns + d.wait_ns,
              expires);
    cr_expect_geq(d.at_ns, before);
    cr_expect_eq(d.remaining, 0);
    cr_expect_eq(try1(b, 1, &d), RL_ELIMITED, "a refusal consumes nothing, and frees nothing");

    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.rules[0].used, 10);
    cr_expect_eq(i.rules[0].remaining, 0);
    cr_expect_eq(i.counters.admitted, 10);
    cr_expect_eq(i.counters.admitted_units, 10);
    cr_expect_eq(i.counters.rejected, 2);
    done();
}

Test(rules, sliding_wait_includes_the_margin)
{
    rl_bucket *b = bucket("3/1h margin 50ms");
    struct rl_decision d, first;
    cr_assert_eq(try1(b, 1, &first), 0);
    cr_assert_eq(try1(b, 2, &d), 0);
    cr_assert_eq(try1(b, 1, &d), RL_ELIMITED);
    uint64_t expires = first.at_ns + NS_PER_H + 50 * NS_PER_MS;
    cr_expect(d.at_ns + d.wait_ns >= expires && d.at_ns + d.wait_ns <= expires + RL_TICK_NS,
              "wait %" PRIu64 " ns", d.wait_ns);
    done();
}

Test(rules, sliding_costs)
{
    rl_bucket *b = bucket("10/1h");
    struct rl_decision d;
    cr_assert_eq(try1(b, 4, &d), 0);
    cr_expect_eq(d.remaining, 6);
    cr_assert_eq(try1(b, 4, &d), 0);
    cr_expect_eq(d.remaining, 2);
    cr_expect_eq(try1(b, 3, &d), RL_ELIMITED, "3 more do not fit in 2");
    cr_expect_eq(d.remaining, 2);
    cr_expect_gt(d.wait_ns, NS_PER_H / 2);
    cr_expect_eq(used_of(b, 0), 8, "a refused request of cost 3 took nothing");
    cr_assert_eq(try1(b, 2, &d), 0);
    cr_expect_eq(d.remaining, 0);
    cr_expect_eq(try1(b, 1, &d), RL_ELIMITED);

    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.counters.admitted, 3);
    cr_expect_eq(i.counters.admitted_units, 10);
    cr_expect_eq(i.counters.rejected, 2);
    done();
}

Test(rules, cost_above_capacity_or_zero)
{
    rl_bucket *s = bucket("10/1h"), *g = bucket("10/1h burst 4 margin 0"),
              *f = bucket("5/366d fixed");
    struct rl_decision d;
    cr_expect_eq(rl_try_acquire(s, 11, &d), RL_ECOST);
    cr_expect_eq(rl_acquire(s, 11, NS_PER_SEC, &d), RL_ECOST);
    cr_expect_eq(rl_try_acquire(g, 5, &d), RL_ECOST, "GCRA capacity is the burst");
    cr_expect_eq(rl_try_acquire(f, 6, &d), RL_ECOST);
    cr_expect_eq(rl_try_acquire(s, UINT32_MAX, &d), RL_ECOST);
    cr_expect_eq(rl_try_acquire(s, 0, &d), RL_EINVAL);
    cr_expect_eq(rl_try_acquire(NULL, 1, &d), RL_EINVAL);
    /* ECOST neither consumes nor counts as a refusal of the budget. */
    cr_expect_eq(used_of(s, 0), 0);
    cr_expect_eq(used_of(g, 0), 0);
    cr_expect_eq(used_of(f, 0), 0);
    cr_expect_eq(try1(s, 10, &d), 0);
    cr_expect_eq(try1(g, 4, &d), 0);
    cr_expect_eq(try1(f, 5, &d), 0);
    done();
}

Test(rules, sliding_never_more_than_n_in_any_window)
{
    /* Blocking acquires across several laps of the log (4N units per lap): unit k and unit
     * k-N are always at least T apart, whatever the machine's speed. */
    rl_bucket *b = bucket("2/20ms margin 0");
    uint64_t at[24];
    for (unsigned k = 0; k < 24; k++) {
        struct rl_decision d;
        cr_assert_eq(rl_acquire(b, 1, 10 * NS_PER_SEC, &d), 0);
        cr_expect_geq(rl_now_ns(), d.at_ns, "returned before its instant");
        at[k] = d.at_ns;
        if (k >= 1)
            cr_expect_geq(at[k], at[k - 1], "instants go backwards at %u", k);
        if (k >= 2)
            cr_expect_geq(at[k] - at[k - 2], 20 * NS_PER_MS, "3 units within 20 ms at unit %u", k);
    }
    done();
}

/* ------------------------------------------------------------ GCRA */

Test(rules, gcra_burst_one)
{
    rl_bucket *b = bucket("1/4s burst 1 margin 0");
    struct rl_decision d, first;
    cr_assert_eq(try1(b, 1, &first), 0);
    if (try1(b, 1, &d) == RL_ELIMITED) {
        cr_expect(d.wait_ns > 0 && d.wait_ns <= 4 * NS_PER_SEC, "wait %" PRIu64, d.wait_ns);
        cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + 4 * NS_PER_SEC,
                     "the next slot is exactly T/N after the first admission");
    } else { /* only if this process stalled for 4 s between the two calls */
        cr_expect_geq(d.at_ns, first.at_ns + 4 * NS_PER_SEC, "two admissions within 4 s");
    }

    rl_bucket *h = bucket("1/1h burst 1 margin 0");
    cr_assert_eq(try1(h, 1, &first), 0);
    cr_assert_eq(try1(h, 1, &d), RL_ELIMITED);
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + NS_PER_H);
    cr_expect_eq(try1(h, 1, &d), RL_ELIMITED);
    cr_expect_eq(info_of(h).rules[0].used, 1);
    done();
}

Test(rules, gcra_burst_three)
{
    rl_bucket *b = bucket("10/1h burst 3 margin 0");
    struct rl_decision d, first;
    cr_assert_eq(try1(b, 1, &first), 0);
    cr_expect_eq(first.remaining, 2);
    cr_assert_eq(try1(b, 1, &d), 0);
    cr_assert_eq(try1(b, 1, &d), 0);
    cr_expect_eq(d.remaining, 0);
    cr_assert_eq(try1(b, 1, &d), RL_ELIMITED, "a burst of 3 admits exactly 3 back to back");
    /* The 4th fits when the first token comes back: TAT - (B-1)*I = first + I. */
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + 6 * NS_PER_MIN);

    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.rules[0].used, 3);
    cr_expect_eq(i.rules[0].remaining, 0);
    cr_expect(i.rules[0].next_free_ns > 5 * NS_PER_MIN && i.rules[0].next_free_ns <= 6 * NS_PER_MIN,
              "next_free_ns %" PRIu64, i.rules[0].next_free_ns);
    done();
}

Test(rules, gcra_margin_keeps_tolerance_in_reserve)
{
    /* margin 60 s of a 6 min interval: the third of a burst of 3 must wait ~60 s. */
    rl_bucket *b = bucket("10/1h burst 3 margin 60s");
    struct rl_decision d, first;
    cr_assert_eq(try1(b, 1, &first), 0);
    cr_assert_eq(try1(b, 1, &d), 0);
    cr_assert_eq(try1(b, 1, &d), RL_ELIMITED);
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + NS_PER_MIN);
    done();
}

/*
 * A margin above the burst's span, tau = (B - 1) * I: "100/1h burst 2 margin 60s" has
 * I = 36 s, tau = 36 s. Each unit then takes I' = ceil((I + m) / B) = 48 s (rule_gcra.c):
 * any 3 units span 96 s = 2 * I - tau + m, the least that keeps the server's GCRA when
 * requests take up to m to arrive. (Spacing every unit I + m - tau = 60 s apart, as
 * GCRA(I, tau - m) does, loses budget for nothing: 100/s instead of 10^8/s for
 * "100000000/1s burst 1000000" at the default 20 ms.)
 */
Test(rules, gcra_margin_above_the_burst_spaces_units_by_the_burst)
{
    rl_bucket *b = bucket("100/1h burst 2 margin 60s");
    struct rl_decision d, first;
    cr_assert_eq(try1(b, 1, &first), 0);
    cr_assert_eq(try1(b, 1, &d), RL_ELIMITED);
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + 48 * NS_PER_SEC, "one unit after I' = 48 s");
    cr_expect_eq(try1(b, 2, &d), RL_ELIMITED);
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + 96 * NS_PER_SEC, "two after 2 I' = 96 s");
    cr_expect_eq(info_of(b).rules[0].used, 1);

    /* A full burst at once, then the next unit I + m = B * I' = 96 s later. */
    rl_bucket *c = bucket("100/1h burst 2 margin 60s");
    cr_assert_eq(try1(c, 2, &first), 0);
    cr_assert_eq(try1(c, 1, &d), RL_ELIMITED);
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + 96 * NS_PER_SEC);
    cr_expect_eq(info_of(c).rules[0].used, 2);
    done();
}

Test(rules, gcra_costs)
{
    rl_bucket *b = bucket("10/1h burst 5 margin 0");
    struct rl_decision d, first;
    cr_assert_eq(try1(b, 5, &first), 0);
    cr_expect_eq(first.remaining, 0);
    cr_expect_eq(try1(b, 1, &d), RL_ELIMITED);
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + 6 * NS_PER_MIN);
    cr_expect_eq(try1(b, 3, &d), RL_ELIMITED);
    cr_expect_eq(d.at_ns + d.wait_ns, first.at_ns + 18 * NS_PER_MIN);
    cr_expect_eq(used_of(b, 0), 5);
    done();
}

/*
 * A lone GCRA bucket takes the fast path (acquire_gcra.c); the same rule next to a rule that
 * never binds takes the general one. Fed the same requests, both must decide alike: same
 * outcome, same units left, same earliest instant (the two calls read the clock a moment
 * apart, and the periods are hours long).
 */
static void expect_same_decisions(rl_bucket *fast, rl_bucket *general)
{
    static const uint32_t costs[] = {1, 2, 1, 1, 3, 1, 4, 1, 2, 4, 1000};
    for (unsigned i = 0; i < sizeof(costs) / sizeof(costs[0]); i++) {
        struct rl_decision f = {0}, g = {0};
        int rf = rl_try_acquire(fast, costs[i], &f), rg = rl_try_acquire(general, costs[i], &g);
        cr_expect_eq(rf, rg, "request %u (cost %u): %s vs %s", i, costs[i], rl_err_name(rf),
                     rl_err_name(rg));
        cr_expect_eq(f.remaining, g.remaining, "request %u: remaining", i);
        cr_expect_eq(f.dry_run_rejected, g.dry_run_rejected);
        uint64_t ef = f.at_ns + f.wait_ns, eg = g.at_ns + g.wait_ns;
        cr_expect_lt(ef > eg ? ef - eg : eg - ef, NS_PER_SEC, "request %u: earliest instants", i);
    }
    struct rl_bucket_info fi = info_of(fast), gi = info_of(general);
    cr_expect_eq(fi.counters.admitted, gi.counters.admitted);
    cr_expect_eq(fi.counters.admitted_units, gi.counters.admitted_units);
    cr_expect_eq(fi.counters.rejected, gi.counters.rejected);
}

Test(rules, gcra_fast_path_decides_as_the_general_path)
{
    expect_same_decisions(bucket("10/1h burst 6 margin 0"),
                          bucket("10/1h burst 6, 1000000/1h burst 1000000 margin 0"));
    expect_same_decisions(bucket("4/1h burst 4 margin 50s"),
                          bucket("4/1h burst 4, 1000000/1h burst 1000000 margin 50s"));
    expect_same_decisions(bucket("100/1h burst 6 margin 60s"),
                          bucket("100/1h burst 6, 1000000/1h burst 1000000 margin 60s"));
    /* Chains: GCRA under GCRA (fast) against the same chain with a fixed window added. */
    define(T, "fp", "12/1h burst 5 margin 0", NULL);
    define(T, "gp", "12/1h burst 5, 1000000/1h fixed margin 0", NULL);
    expect_same_decisions(define(T, "fp/c", "20/1h burst 8 margin 0", "fp"),
                          define(T, "gp/c", "20/1h burst 8 margin 0", "gp"));
    done();
}

/*
 * BUG (gcra.c gcra_earliest): a fresh or reset GCRA word is TAT 0, which gcra_reset calls
 * "full at every instant". But the admission test is TAT - t <= (B - cost) * I - margin;
 * when margin > (B - cost) * I (e.g. burst 1, any margin), TAT 0 only admits once
 * t >= margin, i.e. for the first `margin` ns after the TABLE was created (t is relative
 * to the table's epoch) a full bucket refuses. "1/4s burst 1" (the README's example, default
 * margin 20 ms) refuses its first request for 20 ms after creation; with margin 60s, for a
 * minute.
 */
Test(rules, gcra_full_bucket_admits_on_a_fresh_table)
{
    rl_bucket *b = bucket("1/1h burst 1 margin 60s");
    struct rl_decision d;
    int rc = try1(b, 1, &d);
    cr_expect_eq(rc, 0, "a new bucket's first request refused, wait %" PRIu64 " ns", d.wait_ns);
    done();
}

Test(rules, gcra_spacing_under_blocking_acquires)
{
    rl_bucket *b = bucket("1/15ms burst 1 margin 0");
    uint64_t prev = 0;
    for (unsigned k = 0; k < 12; k++) {
        struct rl_decision d;
        cr_assert_eq(rl_acquire(b, 1, 10 * NS_PER_SEC, &d), 0);
        cr_expect_geq(rl_now_ns(), d.at_ns);
        if (k)
            cr_expect_geq(d.at_ns - prev, 15 * NS_PER_MS, "two within 15 ms at %u", k);
        prev = d.at_ns;
    }
    done();
}

/* ------------------------------------------------------------ fixed window */

Test(rules, fixed_window_count)
{
    /* A 366-day window: the test never straddles a window boundary. */
    rl_bucket *b = bucket("5/366d fixed");
    struct rl_decision d;
    for (unsigned i = 0; i < 5; i++) {
        cr_assert_eq(try1(b, 1, &d), 0, "request %u", i + 1);
        cr_expect_eq(d.remaining, 4 - i);
    }
    cr_assert_eq(try1(b, 1, &d), RL_ELIMITED);
    cr_expect(d.wait_ns > 0 && d.wait_ns <= RL_PERIOD_MAX_NS, "wait %" PRIu64, d.wait_ns);
    /* It would be admitted at the start of the next window, a multiple of T in wall time. */
    int64_t wall = (int64_t)(d.at_ns + d.wait_ns) + T->hdr->wall_offset_ns;
    cr_expect_eq((uint64_t)wall % RL_PERIOD_MAX_NS, 0, "next window starts at wall %" PRId64, wall);
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.rules[0].used, 5);
    cr_expect_eq(i.rules[0].remaining, 0);
    cr_expect_eq(i.rules[0].next_free_ns > 0, true);
    done();
}

Test(rules, fixed_window_costs)
{
    rl_bucket *b = bucket("10/366d fixed");
    struct rl_decision d;
    cr_assert_eq(try1(b, 7, &d), 0);
    cr_expect_eq(d.remaining, 3);
    cr_expect_eq(try1(b, 4, &d), RL_ELIMITED);
    cr_expect_eq(used_of(b, 0), 7);
    cr_assert_eq(try1(b, 3, &d), 0);
    cr_expect_eq(try1(b, 1, &d), RL_ELIMITED);
    cr_expect_eq(used_of(b, 0), 10);
    done();
}

/*
 * A fixed-window period between lo_ms and hi_ms whose current window number mod 2^24 (the
 * 24-bit window field of the state word) lies in the lower half (`upper` false) or the
 * upper half (`upper` true), at least 2^20 windows away from either edge so that it stays
 * there for the whole test.
 */
static uint64_t fixed_period_ns(uint64_t lo_ms, uint64_t hi_ms, bool upper)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
    for (uint64_t ms = lo_ms; ms <= hi_ms; ms++) {
        uint64_t n = (wall / (ms * NS_PER_MS)) & 0xffffff;
        uint64_t lo = upper ? (1u << 23) + (1u << 20) : 1u << 20;
        if (n >= lo && n <= lo + (1u << 23) - (2u << 20))
            return ms * NS_PER_MS;
    }
    cr_assert_fail("no period between %" PRIu64 " and %" PRIu64 " ms", lo_ms, hi_ms);
    return 0;
}

Test(rules, fixed_window_under_blocking_acquires)
{
    uint64_t period = fixed_period_ns(100, 300, false);
    char policy[64];
    snprintf(policy, sizeof(policy), "2/%" PRIu64 "ms fixed margin 0", period / NS_PER_MS);
    rl_bucket *b = bucket(policy);
    uint64_t at[10];
    for (unsigned k = 0; k < 10; k++) {
        struct rl_decision d;
        int rc = rl_acquire(b, 1, 10 * NS_PER_SEC, &d);
        cr_assert_eq(rc, 0, "%s: acquire %u: %s (%s), wait %" PRIu64, policy, k, rl_err_name(rc),
                     rl_errdetail(), d.wait_ns);
        cr_expect_geq(rl_now_ns(), d.at_ns);
        at[k] = d.at_ns;
    }
    /* At most 2 admissions per aligned window (wall clock). */
    for (unsigned k = 2; k < 10; k++) {
        uint64_t w0 = (uint64_t)((int64_t)at[k - 2] + T->hdr->wall_offset_ns) / period;
        uint64_t w2 = (uint64_t)((int64_t)at[k] + T->hdr->wall_offset_ns) / period;
        cr_expect_neq(w0, w2, "3 admissions in one window at %u", k);
    }
    done();
}

/*
 * Regression: a new fixed-window word (window 0, count 0) once read as a waiter's
 * reservation of a window far ahead whenever the current window number mod 2^24 was above
 * 2^23, and the bucket refused for years. A word with count 0 is never a reservation. The
 * periods are picked so that the old encoding's trigger holds (upper) or not (lower).
 */
Test(rules, fixed_window_fresh_bucket_admits)
{
    for (int upper = 0; upper <= 1; upper++) {
        uint64_t period = fixed_period_ns(1000, 120000, upper);
        char policy[64];
        snprintf(policy, sizeof(policy), "3/%" PRIu64 "ms fixed margin 0", period / NS_PER_MS);
        rl_bucket *b = bucket(policy);
        struct rl_decision d;
        int rc = try1(b, 1, &d);
        cr_expect_eq(rc, 0,
                     "new bucket '%s' (window %" PRIu64 " mod 2^24) refused: wait %" PRIu64
                     " ns (%.1f days)",
                     policy,
                     (uint64_t)(((int64_t)d.at_ns + T->hdr->wall_offset_ns) / (int64_t)period) &
                         0xffffff,
                     d.wait_ns, (double)d.wait_ns / 86400e9);
    }
    done();
}

/*
 * Regression: a word last written long ago (here 2^24 + 1000 windows: 19 days at T = 100
 * ms) must not look like a reservation of a window ahead. The window field now has 32
 * bits and T >= 100 ms, so only an idle time beyond 2^31 windows (6.8 years at 100 ms)
 * could still alias (fixed.c). Simulated by writing such an old word (count 3).
 */
Test(rules, fixed_window_long_idle_is_not_a_reservation)
{
    uint64_t period = fixed_period_ns(1000, 120000, false);
    char policy[64];
    snprintf(policy, sizeof(policy), "5/%" PRIu64 "ms fixed margin 0", period / NS_PER_MS);
    rl_bucket *b = bucket(policy);
    struct rl_decision d;
    cr_assert_eq(try1(b, 1, &d), 0);
    uint64_t win = (uint64_t)((int64_t)d.at_ns + T->hdr->wall_offset_ns) / period;
    uint64_t old = (win - (1u << 24) - 1000) & 0xffffffff;
    struct policy_view v;
    cr_assert_eq(rl__bucket_view(b, &v), 0);
    atomic_store(&v.block->rules[0].word, 3ULL << 32 | old);
    int rc = try1(b, 1, &d);
    cr_expect_eq(rc, 0, "a word from %u windows ago blocks the bucket for %.1f hours",
                 (1u << 24) + 1000, (double)d.wait_ns / 3600e9);
    done();
}

/* ------------------------------------------------------------ several rules */

Test(rules, all_rules_must_pass)
{
    rl_bucket *b = bucket("5/1h, 3/2h burst 3 margin 0");
    cr_expect_eq(admit_run(b, 10), 3, "the GCRA rule is the tighter one");
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.rules[0].used, 3, "the refused request took nothing from the sliding rule");
    cr_expect_eq(i.rules[1].used, 3);

    b = bucket("3/1h, 5/1h burst 5, 4/366d fixed margin 0");
    cr_expect_eq(admit_run(b, 10), 3, "the sliding rule is the tighter one");
    i = info_of(b);
    cr_expect_eq(i.rules[0].used, 3);
    cr_expect_eq(i.rules[1].used, 3, "the refused request took nothing from the GCRA rule");
    cr_expect_eq(i.rules[2].used, 3, "the refused request took nothing from the fixed rule");
    cr_expect_eq(i.counters.rejected, 1);

    /* With a cost: 2+2 fit the sliding 5 and the fixed 4; a third 2 fits neither. */
    b = bucket("5/1h, 4/366d fixed");
    struct rl_decision d;
    cr_assert_eq(try1(b, 2, &d), 0);
    cr_assert_eq(try1(b, 2, &d), 0);
    cr_expect_eq(d.remaining, 0, "the tightest rule has nothing left");
    cr_expect_eq(try1(b, 1, &d), RL_ELIMITED);
    i = info_of(b);
    cr_expect_eq(i.rules[0].used, 4);
    cr_expect_eq(i.rules[0].remaining, 1);
    cr_expect_eq(i.rules[1].used, 4);
    done();
}

/* ------------------------------------------------------------ blocking acquire */

Test(rules, acquire_timeout_consumes_nothing)
{
    rl_bucket *s = bucket("2/1h margin 0");
    struct rl_decision d, t;
    cr_assert_eq(try1(s, 2, &d), 0);
    cr_assert_eq(try1(s, 1, &d), RL_ELIMITED);
    memset(&t, 0, sizeof(t));
    cr_expect_eq(rl_acquire(s, 1, 50 * NS_PER_MS, &t), RL_ETIMEDOUT);
    cr_expect_gt(t.wait_ns, 50 * NS_PER_MS, "wait_ns says how long it would have been");
    cr_expect_eq(t.at_ns + t.wait_ns, d.at_ns + d.wait_ns, "the same turn as try_acquire saw");
    cr_expect_eq(rl_acquire(s, 1, 0, &t), RL_ETIMEDOUT);
    cr_expect_eq(used_of(s, 0), 2);
    struct rl_decision again;
    cr_expect_eq(try1(s, 1, &again), RL_ELIMITED);
    cr_expect_eq(again.at_ns + again.wait_ns, d.at_ns + d.wait_ns, "the timeout reserved nothing");
    struct rl_bucket_info i = info_of(s);
    cr_expect_eq(i.counters.rejected, 4, "try refusals and timeouts are counted");
    cr_expect_eq(i.counters.waited, 0);
    cr_expect_eq(i.counters.admitted, 1);

    rl_bucket *g = bucket("1/1h burst 1 margin 0");
    cr_assert_eq(try1(g, 1, &d), 0);
    struct rl_bucket_info before = info_of(g);
    cr_expect_eq(rl_acquire(g, 1, 10 * NS_PER_MS, &t), RL_ETIMEDOUT);
    cr_expect_eq(rl_acquire(g, 1, 10 * NS_PER_MS, NULL), RL_ETIMEDOUT);
    cr_expect_eq(try1(g, 1, &again), RL_ELIMITED);
    cr_expect_eq(again.at_ns + again.wait_ns, d.at_ns + NS_PER_H, "TAT unchanged by timeouts");
    cr_expect_eq(info_of(g).rules[0].used, before.rules[0].used);

    rl_bucket *f = bucket("1/366d fixed");
    cr_assert_eq(try1(f, 1, &d), 0);
    cr_expect_eq(rl_acquire(f, 1, NS_PER_SEC, &t), RL_ETIMEDOUT);
    cr_expect_eq(used_of(f, 0), 1);
    done();
}

Test(rules, acquire_waits_for_its_turn)
{
    rl_bucket *b = bucket("2/200ms margin 0");
    struct rl_decision d1, d2, d3;
    cr_assert_eq(rl_acquire(b, 1, NS_PER_SEC, &d1), 0);
    cr_assert_eq(rl_acquire(b, 1, NS_PER_SEC, &d2), 0);
    cr_assert_eq(rl_acquire(b, 1, 5 * NS_PER_SEC, &d3), 0);
    uint64_t now = rl_now_ns();
    cr_expect_geq(now, d3.at_ns, "returned %" PRIu64 " ns before its instant", d3.at_ns - now);
    cr_expect_geq(d3.at_ns, d1.at_ns + 200 * NS_PER_MS, "third unit within T of the first");
    cr_expect_eq(d3.wait_ns, 0);
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.counters.admitted, 3);
    cr_expect_leq(i.counters.waited, 1);
    cr_expect_eq(i.counters.rejected, 0);
    done();
}

Test(rules, acquire_without_decision)
{
    rl_bucket *b = bucket("3/1h");
    cr_expect_eq(rl_acquire(b, 1, 0, NULL), 0);
    cr_expect_eq(rl_try_acquire(b, 2, NULL), 0);
    cr_expect_eq(rl_try_acquire(b, 1, NULL), RL_ELIMITED);
    cr_expect_eq(rl_acquire(b, 1, 0, NULL), RL_ETIMEDOUT);
    done();
}

struct waiter_arg {
    rl_bucket *b;
    uint64_t at[3];
    int rc[3];
};

static void *waiter(void *p)
{
    struct waiter_arg *a = p;
    for (unsigned k = 0; k < 3; k++) {
        struct rl_decision d;
        a->rc[k] = rl_acquire(a->b, 1, 20 * NS_PER_SEC, &d);
        a->at[k] = d.at_ns;
        if (rl_now_ns() < d.at_ns)
            a->rc[k] = -1000; /* woke before its turn */
    }
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

Test(rules, concurrent_waiters_get_distinct_turns)
{
    rl_bucket *b = bucket("2/30ms margin 0");
    struct waiter_arg args[4];
    pthread_t th[4];
    for (unsigned i = 0; i < 4; i++) {
        args[i] = (struct waiter_arg){.b = b};
        cr_assert_eq(pthread_create(&th[i], NULL, waiter, &args[i]), 0);
    }
    uint64_t all[12];
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        for (unsigned k = 0; k < 3; k++) {
            cr_expect_eq(args[i].rc[k], 0, "waiter %u, acquire %u: %d", i, k, args[i].rc[k]);
            all[i * 3 + k] = args[i].at[k];
        }
    }
    qsort(all, 12, sizeof(all[0]), cmp_u64);
    for (unsigned k = 2; k < 12; k++)
        cr_expect_geq(all[k] - all[k - 2], 30 * NS_PER_MS, "3 admissions within 30 ms at %u", k);
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.counters.admitted, 12);
    done();
}

/* The fast path counts admissions in the policy block, the general path in the record: a
 * bucket's counters add both up, over every block it ever had. */
Test(rules, admissions_are_counted_across_paths_and_rule_switches)
{
    rl_bucket *b = bucket("100/1h burst 20 margin 0");
    struct rl_policy two = policy_of("100/1h burst 20, 1000/1h margin 0"),
                     one = policy_of("200/1h burst 20 margin 0");
    cr_expect_eq(admit_run(b, 3), 3);            /* fast path, first block */
    cr_assert_eq(rl_try_acquire(b, 2, NULL), 0); /* fast, two units */
    cr_assert_eq(rl_bucket_update(b, &two), 0);
    cr_expect_eq(admit_run(b, 2), 2); /* general path */
    cr_assert_eq(rl_bucket_update(b, &one), 0);
    cr_expect_eq(admit_run(b, 4), 4); /* fast path, third block */
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.counters.admitted, 10);
    cr_expect_eq(i.counters.admitted_units, 11);
    done();
}

/* ------------------------------------------------------------ reset */

Test(rules, reset_restores_the_budget)
{
    rl_bucket *s = bucket("3/1h"), *g = bucket("10/1h burst 3 margin 0"),
              *f = bucket("3/366d fixed"), *m = bucket("3/1h, 2/1h burst 2 margin 0");
    rl_bucket *all[] = {s, g, f, m};
    unsigned expect[] = {3, 3, 3, 2};
    for (unsigned k = 0; k < 4; k++) {
        cr_expect_eq(admit_run(all[k], 10), expect[k], "bucket %u before reset", k);
        cr_assert_eq(rl_bucket_reset(all[k]), 0);
        struct rl_bucket_info i = info_of(all[k]);
        for (unsigned r = 0; r < i.policy.nrules; r++) {
            cr_expect_eq(i.rules[r].used, 0, "bucket %u rule %u used after reset", k, r);
            cr_expect_eq(i.rules[r].next_free_ns, 0, "bucket %u rule %u", k, r);
        }
        cr_expect_eq(i.counters.resets, 1);
        cr_expect_eq(i.counters.admitted, expect[k], "counters are kept");
        cr_expect_eq(i.counters.rejected, 1);
        cr_expect_eq(admit_run(all[k], 10), expect[k], "bucket %u after reset", k);
        cr_assert_eq(rl_bucket_reset(all[k]), 0);
        cr_assert_eq(rl_bucket_reset(all[k]), 0);
        cr_expect_eq(info_of(all[k]).counters.resets, 3);
    }
    done();
}

/* ------------------------------------------------------------ inspection */

Test(rules, bucket_info_fields)
{
    rl_bucket *b = bucket("2/1h, 5/366d fixed margin 10ms");
    struct rl_bucket_info i = info_of(b);
    cr_expect_str_eq(i.name, rl_bucket_name(b));
    cr_expect_str_eq(i.parent, "");
    struct rl_policy p = policy_of("2/1h, 5/366d fixed margin 10ms");
    cr_expect_eq(i.policy.nrules, 2);
    cr_expect_eq(i.policy.margin_ns, 10 * NS_PER_MS);
    cr_expect_eq(i.policy.flags, 0);
    for (unsigned r = 0; r < 2; r++) {
        cr_expect_eq(i.policy.rules[r].kind, p.rules[r].kind);
        cr_expect_eq(i.policy.rules[r].limit, p.rules[r].limit);
        cr_expect_eq(i.policy.rules[r].period_ns, p.rules[r].period_ns);
        cr_expect_eq(i.rules[r].rule.kind, p.rules[r].kind);
        cr_expect_eq(i.rules[r].rule.limit, p.rules[r].limit);
        cr_expect_eq(i.rules[r].used, 0);
        cr_expect_eq(i.rules[r].remaining, p.rules[r].limit);
        cr_expect_eq(i.rules[r].next_free_ns, 0);
    }
    cr_expect_eq(i.counters.admitted, 0);
    cr_expect_eq(i.counters.rejected, 0);

    struct rl_decision d, first;
    cr_assert_eq(try1(b, 1, &first), 0);
    cr_assert_eq(try1(b, 1, &d), 0);
    cr_assert_eq(try1(b, 1, &d), RL_ELIMITED);
    uint64_t before = rl_now_ns();
    i = info_of(b);
    uint64_t after = rl_now_ns();
    cr_expect(i.now_ns >= before && i.now_ns <= after, "now_ns is the reading instant");
    cr_expect_eq(i.rules[0].used, 2);
    cr_expect_eq(i.rules[0].remaining, 0);
    uint64_t free_at = i.now_ns + i.rules[0].next_free_ns;
    uint64_t expect_at = first.at_ns + NS_PER_H + 10 * NS_PER_MS;
    cr_expect(free_at >= expect_at && free_at <= expect_at + RL_TICK_NS, "next_free_ns %" PRIu64,
              i.rules[0].next_free_ns);
    cr_expect_eq(i.rules[1].used, 2);
    cr_expect_eq(i.rules[1].remaining, 3);
    cr_expect_eq(i.rules[1].next_free_ns, 0);
    cr_expect_eq(i.counters.admitted, 2);
    cr_expect_eq(i.counters.admitted_units, 2);
    cr_expect_eq(i.counters.rejected, 1);
    cr_expect_eq(i.counters.dry_run_rejected, 0);
    cr_expect_eq(i.counters.resets, 0);
    done();
}

/* ------------------------------------------------------------ dry-run */

Test(rules, dry_run_admits_everything)
{
    rl_bucket *b = bucket("2/1h dry-run");
    struct rl_decision d;
    for (unsigned k = 0; k < 6; k++) {
        cr_assert_eq(try1(b, 1, &d), 0, "dry-run refused request %u", k + 1);
        cr_expect_eq(d.dry_run_rejected, k >= 2, "request %u: dry_run_rejected %d", k + 1,
                     d.dry_run_rejected);
        cr_expect_eq(d.wait_ns, 0);
    }
    cr_expect_eq(rl_acquire(b, 1, 0, &d), 0);
    cr_expect(d.dry_run_rejected);
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.policy.flags, RL_POLICY_DRY_RUN);
    cr_expect_eq(i.counters.admitted, 7);
    cr_expect_eq(i.counters.rejected, 0);
    cr_expect_eq(i.counters.dry_run_rejected, 5);
    cr_expect_eq(i.rules[0].used, 2, "would-be refusals are not counted in the window");
    /* Cost above capacity is still an error. */
    cr_expect_eq(rl_try_acquire(b, 3, &d), RL_ECOST);

    rl_bucket *g = bucket("10/1h burst 1 margin 0 dry-run");
    for (unsigned k = 0; k < 3; k++)
        cr_expect_eq(try1(g, 1, &d), 0);
    cr_expect_eq(info_of(g).counters.dry_run_rejected, 2);
    done();
}

/*
 * BUG (acquire.c count_admitted): counters.dry_run_rejected is documented as "requests that
 * would have been refused", but it is incremented once per dry-run RULE that would refuse,
 * so one request refused by two rules of a dry-run bucket counts 2.
 */
Test(rules, dry_run_counts_requests_not_rules)
{
    rl_bucket *b = bucket("1/1h, 1/2h dry-run");
    struct rl_decision d;
    cr_assert_eq(try1(b, 1, &d), 0);
    cr_assert_eq(try1(b, 1, &d), 0);
    cr_expect(d.dry_run_rejected);
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.counters.admitted, 2);
    cr_expect_eq(i.counters.dry_run_rejected, 1, "one refused request counted %" PRIu64 " times",
                 i.counters.dry_run_rejected);
    done();
}

Test(rules, costs_beyond_any_rule_are_refused_at_the_boundary)
{
    const char *rules[] = {"5/1h", "5/1h burst 5", "5/1h fixed"};
    for (int k = 0; k < 3; k++) {
        rl_bucket *b = bucket(rules[k]);
        cr_assert_eq(rl_try_acquire(b, 5, NULL), 0, "%s: cost N fits", rules[k]);
        cr_assert_eq(rl_try_acquire(b, 6, NULL), RL_ECOST, "%s: cost N+1 never fits", rules[k]);
        cr_assert_eq(rl_try_acquire(b, UINT32_MAX, NULL), RL_ECOST, "%s", rules[k]);
        cr_assert_eq(rl_acquire(b, UINT32_MAX, 1000, NULL), RL_ECOST, "%s", rules[k]);
        cr_assert_eq(rl_try_acquire(b, 0, NULL), RL_EINVAL);
    }
}

/* ------------------------------------------------------------ state ranges (issue 13, item 4) */

/* The state word of rule r of bucket b, as stored. */
static uint64_t word_of(rl_bucket *b, unsigned r)
{
    struct policy_view v;
    cr_assert_eq(rl__bucket_view(b, &v), 0);
    return atomic_load(&v.block->rules[r].word);
}

static void word_set(rl_bucket *b, unsigned r, uint64_t w)
{
    struct policy_view v;
    cr_assert_eq(rl__bucket_view(b, &v), 0);
    atomic_store(&v.block->rules[r].word, w);
}

/* 145 units of 1/366d: a TAT about 145 years ahead. A turn after it (another 145 years)
 * was written into the frozen bit and wedged the bucket; it is refused now. */
Test(rules, gcra_turn_beyond_the_tat_range_is_refused)
{
    struct rl_decision d;
    rl_bucket *b = bucket("1/366d burst 145");
    cr_assert_eq(try1(b, 145, &d), 0);
    uint64_t tat = word_of(b, 0);
    for (int k = 0; k < 2; k++) {
        int rc = rl_acquire(b, 145, UINT64_MAX, &d);
        cr_assert_eq(rc, RL_ETIMEDOUT, "acquire %d: %s (%s)", k, rl_err_name(rc), rl_errdetail());
        uint64_t now = d.at_ns - T->hdr->epoch_ns, margin = info_of(b).policy.margin_ns;
        cr_expect_eq(d.wait_ns, tat + margin - now, "the turn it could not take");
        cr_expect_eq(word_of(b, 0), tat, "nothing reserved");
    }
    cr_expect_eq(try1(b, 1, &d), RL_ELIMITED);
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.rules[0].used, 145);
    cr_expect_eq(i.rules[0].remaining, 0);
    cr_expect_eq(i.counters.admitted, 1);
    cr_assert_eq(rl_bucket_reset(b), 0);
    cr_expect_eq(word_of(b, 0), 0);
    cr_expect_eq(try1(b, 145, &d), 0);
    done();
}

/* The bounds themselves, exactly: GCRA TAT at most 3 * 2^61, sliding ticks 44 bits. */
Test(rules, rule_fits_at_the_edge_of_its_range)
{
    rl_bucket *g = bucket("1/366d burst 145"), *s = bucket("5/1s");
    struct policy_view gv, sv;
    struct rule_ctx c;
    cr_assert_eq(rl__bucket_view(g, &gv), 0);
    cr_assert_eq(rl__bucket_view(s, &sv), 0);
    rl__rule_ctx_load(&c, T, &gv, 0);
    uint64_t i = gv.rules[0].interval_ns, max = 3ULL << 61;
    cr_expect(rl__rule_fits(&c, 1, max - 145 * i, 145));
    cr_expect(!rl__rule_fits(&c, 1, max - 145 * i + 1, 145));
    c.word = max - 2 * i; /* a debt ahead of d: TAT + cost * I counts */
    cr_expect(rl__rule_fits(&c, 1, 1, 2));
    cr_expect(!rl__rule_fits(&c, 1, 1, 3));
    c.word = RL_FROZEN | 1;
    cr_expect(!rl__rule_fits(&c, 1, 1, 1), "a frozen TAT never fits");
    rl__rule_ctx_load(&c, T, &sv, 0);
    uint64_t last = ((1ULL << 44) - 1) * RL_TICK_NS;
    cr_expect(rl__rule_fits(&c, 1, last, 1));
    cr_expect(!rl__rule_fits(&c, 1, last + 1, 1));
    done();
}

/* A GCRA rule 60 years in debt pushes the chain's turn past the sliding log's 44-bit ticks,
 * and 7 years past a 100 ms fixed window's 2^31 windows: refused, nothing reserved. */
Test(rules, far_turns_beyond_sliding_and_fixed_ranges_are_refused)
{
    const char *policies[] = {"1/366d burst 60, 100/1s", "1/366d burst 7, 100/100ms fixed"};
    uint32_t costs[] = {60, 7};
    for (unsigned k = 0; k < 2; k++) {
        struct rl_decision d;
        rl_bucket *b = bucket(policies[k]);
        /* A wait, not a try: the 100 ms fixed window may be in its closing margin now. */
        cr_assert_eq(rl_acquire(b, costs[k], NS_PER_SEC, &d), 0, "%s", policies[k]);
        uint64_t w0 = word_of(b, 0), w1 = word_of(b, 1);
        int rc = rl_acquire(b, costs[k], UINT64_MAX, &d);
        cr_assert_eq(rc, RL_ETIMEDOUT, "%s: %s (%s)", policies[k], rl_err_name(rc), rl_errdetail());
        cr_expect_eq(word_of(b, 0), w0, "%s: the GCRA word is unchanged", policies[k]);
        cr_expect_eq(word_of(b, 1), w1, "%s: the window word is unchanged", policies[k]);
    }
    done();
}

/* A frozen word whose block has no successor (no switch can finish it) wedged the bucket:
 * every decision failed and reset did nothing. Reset now moves the bucket to a fresh copy
 * of its rules. */
Test(rules, reset_repairs_a_frozen_word_with_no_successor)
{
    const char *policies[] = {"5/1h burst 5 margin 0", "5/1h fixed", "5/1h", "5/1h, 4/1h fixed"};
    for (unsigned k = 0; k < 4; k++) {
        struct rl_decision d;
        rl_bucket *b = bucket(policies[k]);
        cr_assert_eq(try1(b, 2, &d), 0);
        uint64_t off = atomic_load(&b->rec->policy_off);
        word_set(b, 0, word_of(b, 0) | RL_FROZEN);
        cr_expect_eq(rl_try_acquire(b, 1, &d), RL_ECORRUPT, "%s: wedged", policies[k]);
        cr_assert_eq(rl_bucket_reset(b), 0, "%s: %s", policies[k], rl_errdetail());
        cr_expect_neq(atomic_load(&b->rec->policy_off), off, "%s: a fresh block", policies[k]);
        struct rl_bucket_info i = info_of(b);
        char have[128], want[128];
        cr_expect_str_eq(rules_of(&i.policy, have, sizeof(have)),
                         canonical(policies[k], want, sizeof(want)), "the same rules");
        for (unsigned r = 0; r < i.policy.nrules; r++)
            cr_expect_eq(i.rules[r].used, 0, "%s rule %u", policies[k], r);
        cr_expect_eq(admit_run(b, 10), k == 3 ? 4 : 5, "%s: the full budget", policies[k]);
        uint64_t fresh = atomic_load(&b->rec->policy_off);
        cr_assert_eq(rl_bucket_reset(b), 0);
        cr_expect_eq(atomic_load(&b->rec->policy_off), fresh, "a sound bucket keeps its block");
    }
    done();
}

/* ------------------------------------------------------------ re-alignment */

/* CLOCK_REALTIME - CLOCK_MONOTONIC, as precisely as two readings allow. */
static int64_t real_offset(void)
{
    struct timespec w;
    uint64_t m0 = rl_now_ns();
    clock_gettime(CLOCK_REALTIME, &w);
    uint64_t m1 = rl_now_ns();
    return (int64_t)w.tv_sec * 1000000000LL + w.tv_nsec - (int64_t)(m0 + (m1 - m0) / 2);
}

/* The real (wall-clock) window of a CLOCK_MONOTONIC instant. */
static int64_t real_window(uint64_t mono, int64_t offset, uint64_t period)
{
    return ((int64_t)mono + offset) / (int64_t)period;
}

/*
 * A table made while the wall clock was 1 s behind (at boot, before NTP): its fixed windows
 * of 2 s are off by half a window. Two units are taken in such a window O, then the drift
 * check runs: the table is re-aligned, and O's count is carried as a debt. Across the
 * change no real window holds more than N: counting O's two units in every real window O
 * overlaps, plus every unit admitted afterwards.
 */
Test(rules, fixed_window_realigns_without_excess)
{
    const uint64_t period = 2 * NS_PER_SEC;
    rl_bucket *b = bucket("2/2s fixed margin 0");
    int64_t wrong = (real_offset() - (int64_t)NS_PER_SEC) & ~1LL; /* parity 0, as made */
    atomic_store(&T->hdr->wall_offset_ns, (uint64_t)wrong);
    atomic_store(&T->hdr->wall_offset_prev, (uint64_t)wrong);
    atomic_store(&T->wall->offset, (uint64_t)wrong);
    atomic_store(&T->wall->prev, (uint64_t)wrong);
    uint64_t lo, hi;
    int64_t base = (int64_t)T->epoch_ns + wrong;
    for (int tries = 0;; tries++) { /* two units within one (misaligned) window O */
        cr_assert_lt(tries, 5, "never two instants in one window");
        rl_bucket_reset(b);
        atomic_store(&T->wall->checked, rl__clock_rel(T)); /* not due for a second */
        lo = rl_now_ns();
        cr_assert_eq(admit_run(b, 2), 2);
        hi = rl_now_ns();
        if (((int64_t)lo - (int64_t)T->epoch_ns + base) / (int64_t)period ==
            ((int64_t)hi - (int64_t)T->epoch_ns + base) / (int64_t)period)
            break;
    }
    /* O's span, in CLOCK_MONOTONIC ns. */
    int64_t o_start =
        ((int64_t)lo - (int64_t)T->epoch_ns + base) / (int64_t)period * (int64_t)period - base +
        (int64_t)T->epoch_ns;
    int64_t o_end = o_start + (int64_t)period;

    atomic_store(&T->wall->checked, 0); /* the drift check is due */
    uint64_t at[4];
    for (unsigned k = 0; k < 4; k++) {
        struct rl_decision d;
        int rc = rl_acquire(b, 1, 10 * NS_PER_SEC, &d);
        cr_assert_eq(rc, 0, "acquire %u: %s (%s)", k, rl_err_name(rc), rl_errdetail());
        at[k] = d.at_ns;
    }
    int64_t now_off = (int64_t)atomic_load(&T->hdr->wall_offset_ns), off = real_offset();
    cr_expect_eq(now_off & 1, 1, "the table was not re-aligned (a new generation)");
    cr_expect(now_off - off < (int64_t)NS_PER_MS && off - now_off < (int64_t)NS_PER_MS,
              "the new alignment is %" PRId64 " ns off the clocks", now_off - off);
    /* Real windows: those of the new alignment, the clocks' to within 1 ms (checked above;
     * the library's reading and ours differ by the time between two clock reads). */
    if (now_off - off < (int64_t)NS_PER_MS && off - now_off < (int64_t)NS_PER_MS)
        off = now_off;
    int64_t first = real_window((uint64_t)o_start, off, period);
    for (int64_t w = first; w <= real_window(at[3], off, period); w++) {
        int64_t w_start = w * (int64_t)period - off, w_end = w_start + (int64_t)period;
        unsigned n = w_start < o_end && o_start < w_end ? 2 : 0;
        for (unsigned k = 0; k < 4; k++)
            n += real_window(at[k], off, period) == w;
        cr_expect_leq(n, 2,
                      "real window %" PRId64 " holds %u units (O: %" PRId64 "..%" PRId64
                      ", window %" PRId64 "..%" PRId64 "; after %" PRIu64 " %" PRIu64 " %" PRIu64
                      " %" PRIu64 ")",
                      w - first, n, o_start, o_end, w_start, w_end, at[0], at[1], at[2], at[3]);
    }
    done();
}
