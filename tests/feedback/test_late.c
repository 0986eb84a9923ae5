/*
 * test_late.c - a waiter that wakes late for its turn takes a fresh one (src/acquire.c,
 * retake_late). The test is linked with -Wl,--wrap=clock_nanosleep: an armed process wakes
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
