/*
 * test_late.c - a waiter that wakes late for its turn takes a fresh one (src/acquire.c,
 * retake_late), and so does an admission rechecked late before its send (rl_acquire_recheck).
 * The test is linked with -Wl,--wrap=clock_nanosleep: an armed process wakes
 * from every absolute sleep LATE_MS late, as a process the scheduler left waiting does on
 * a loaded host. Every invariant is exact: more lateness from the machine itself only makes
 * each wake-up later still.
 */
#include <criterion/criterion.h>
#include <time.h>

#include "ratelimit.h"

#include "fixture.h"

int __real_clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                           struct timespec *rem);
int __wrap_clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                           struct timespec *rem);

TestSuite(late, .init = fixture_open, .fini = fixture_close, .timeout = 60);

#define LATE_MS 50 /* how late an armed process wakes: beyond half of a 20 ms margin */

static bool armed;

int __wrap_clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                           struct timespec *rem)
{
    int rc = __real_clock_nanosleep(clock, flags, req, rem);
    if (rc == 0 && armed && (flags & TIMER_ABSTIME)) {
        struct timespec more = {0, LATE_MS * 1000000L};
        while (__real_clock_nanosleep(CLOCK_MONOTONIC, 0, &more, &more) == EINTR)
            ;
    }
    return rc;
}

static struct rl_counters counters_of(rl_bucket *b)
{
    struct rl_bucket_info info;
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    return info.counters;
}

/* One unit now, so that the next request must wait 1020 ms (a window of 1 s counted
 * 1020 ms long with the margin): a machine that stalls the test up to 0.95 s changes no
 * count. Returns the admission instant. */
static uint64_t fill(rl_bucket *b)
{
    struct rl_decision d;
    cr_assert_eq(rl_try_acquire(b, 1, &d), 0);
    return d.at_ns;
}

/* Before: the late turn was used; the request reached the server 50 ms after the instant
 * the rules had counted it at, beyond the margin. */
Test(late, a_late_wake_takes_a_fresh_turn_twice_at_most)
{
    rl_bucket *b = define(g_table, "late", "1/1s margin 20ms", NULL);
    uint64_t first = fill(b);
    struct rl_decision d;
    armed = true;
    int rc = rl_acquire(b, 1, 10 * NS_PER_SEC, &d);
    armed = false;
    cr_assert_eq(rc, 0);
    struct rl_counters c = counters_of(b);
    cr_expect_eq(c.waited, 3, "the turn and two fresh ones after late wake-ups: %llu",
                 (unsigned long long)c.waited);
    cr_expect_eq(c.admitted, 2, "the first unit and one request: the late turns are unused");
    cr_expect_geq(d.at_ns, first + 3 * 1020 * NS_PER_MS, "the third turn, after two unused ones");
    cr_expect_geq(rl_now_ns(), d.at_ns, "never back before the turn it returns");
}

/* A fresh turn the timeout leaves no room for: the late turn stands (never a timeout for a
 * request that had its turn). */
Test(late, a_late_wake_past_the_deadline_keeps_its_turn)
{
    rl_bucket *b = define(g_table, "deadline", "1/1s margin 20ms", NULL);
    uint64_t first = fill(b);
    struct rl_decision d;
    armed = true;
    int rc = rl_acquire(b, 1, 1030 * NS_PER_MS, &d); /* the turn at 1020 ms fits; a wake at 1070 */
    armed = false;
    cr_assert_eq(rc, 0, "the late turn stands: %s", rl_strerror(rc));
    struct rl_counters c = counters_of(b);
    cr_expect_eq(c.waited, 1);
    cr_expect_eq(c.admitted, 2);
    cr_expect_eq(c.rejected, 0, "no refusal counted for the retake that did not fit");
    cr_expect_lt(d.at_ns, first + 2 * 1020 * NS_PER_MS, "the first turn");
}

/* With margin 0 the rules cover no delay: there is no lateness to correct. */
Test(late, margin_0_never_retakes)
{
    rl_bucket *b = define(g_table, "exact", "1/1s margin 0", NULL);
    fill(b);
    armed = true;
    int rc = rl_acquire(b, 1, 10 * NS_PER_SEC, NULL);
    armed = false;
    cr_assert_eq(rc, 0);
    cr_expect_eq(counters_of(b).waited, 1);
}

/* rl_acquire_recheck: the admission it is given is late when more than half the margin
 * passed since its instant. The sleeps below are relative (never lengthened by the wrap):
 * a stall of the machine only makes an admission later. */
static struct rl_decision admit(rl_bucket *b)
{
    struct rl_decision d;
    cr_assert_eq(rl_try_acquire(b, 1, &d), 0);
    return d;
}

static void pause_ms(long ms)
{
    struct timespec t = {0, ms * 1000000L};
    while (nanosleep(&t, &t) != 0)
        ;
}

/* Admitted, then paused 50 ms: the recheck leaves the admission as it was, with one
 * admission and no refusal counted. */
static rl_bucket *expect_a_late_admission_stands(const char *name, const char *rules)
{
    rl_bucket *b = define(g_table, name, rules, NULL);
    struct rl_decision d = admit(b), before = d;
    pause_ms(50);
    cr_assert_eq(rl_acquire_recheck(b, 1, 0, &d), 0);
    cr_expect_eq(d.at_ns, before.at_ns, "the decision is unchanged");
    struct rl_counters c = counters_of(b);
    cr_expect_eq(c.admitted, 1);
    cr_expect_eq(c.rejected, 0, "a retake that did not fit is no refusal");
    return b;
}

/* Not late: a limit of 30 s (margin 60 s), which no stall of a loaded machine passes. */
Test(late, a_fresh_admission_stands)
{
    rl_bucket *b = define(g_table, "recheck-fresh", "2/1h margin 60s", NULL);
    struct rl_decision d = admit(b), before = d;
    cr_assert_eq(rl_acquire_recheck(b, 1, 0, &d), 0);
    cr_expect_eq(d.at_ns, before.at_ns, "the decision is unchanged");
    struct rl_counters c = counters_of(b);
    cr_expect_eq(c.admitted, 1);
    cr_expect_eq(c.waited, 0);
}

/* Late, budget left: a fresh turn at once; the stale unit stays counted, so of 3 units one
 * more is left. */
Test(late, a_late_admission_takes_a_fresh_turn)
{
    rl_bucket *b = define(g_table, "recheck-late", "3/10s margin 40ms", NULL);
    struct rl_decision d = admit(b), before = d;
    pause_ms(50);
    cr_assert_eq(rl_acquire_recheck(b, 1, 0, &d), 1, "%s", rl_errdetail());
    cr_expect_geq(d.at_ns, before.at_ns + 50 * NS_PER_MS, "the fresh turn is now");
    cr_expect_eq(counters_of(b).admitted, 1, "one request: the stale turn is unused");
    struct rl_decision x;
    cr_expect_eq(rl_try_acquire(b, 1, &x), 0, "the third unit");
    cr_expect_eq(rl_try_acquire(b, 1, &x), RL_ELIMITED, "the stale unit stays counted");
}

/* Late, no fresh turn within the timeout: the stale admission stands. */
Test(late, a_late_admission_without_a_fresh_turn_stands)
{
    expect_a_late_admission_stands("recheck-full", "1/10s margin 40ms");
}

/* Late, a fresh turn within the timeout: it sleeps for it (a window of 1 s counted 1020 ms
 * long after the stale unit). */
Test(late, a_late_admission_waits_for_a_fresh_turn)
{
    rl_bucket *b = define(g_table, "recheck-wait", "1/1s margin 20ms", NULL);
    struct rl_decision d = admit(b), before = d;
    pause_ms(15);
    cr_assert_eq(rl_acquire_recheck(b, 1, 10 * NS_PER_SEC, &d), 1, "%s", rl_errdetail());
    cr_expect_geq(d.at_ns, before.at_ns + 1020 * NS_PER_MS, "the next window's turn");
    cr_expect_geq(rl_now_ns(), d.at_ns, "it slept until the turn");
    struct rl_counters c = counters_of(b);
    cr_expect_eq(c.admitted, 1, "one request");
    cr_expect_geq(c.waited, 1);
}

/* With margin 0 the rules cover no delay: nothing to recheck. And what it refuses. */
Test(late, a_recheck_never_retakes_with_margin_0)
{
    rl_bucket *b = expect_a_late_admission_stands("recheck-exact", "2/10s margin 0");
    struct rl_decision d = admit(b), refused;
    cr_assert_eq(rl_try_acquire(b, 1, &refused), RL_ELIMITED);
    cr_expect_eq(rl_acquire_recheck(b, 1, 0, &refused), RL_EINVAL, "a refusal's decision");
    cr_expect_eq(rl_acquire_recheck(b, 1, 0, NULL), RL_EINVAL);
    cr_expect_eq(rl_acquire_recheck(NULL, 1, 0, &d), RL_EINVAL);
    cr_expect_eq(rl_acquire_recheck(b, 0, 0, &d), RL_EINVAL);
}
