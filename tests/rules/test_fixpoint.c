/*
 * test_fixpoint.c - a decision's instant is a true fixpoint of its rules (issue 13, item 11):
 * every committed instant is one every rule admits, however many rounds the fixed windows'
 * dead zones take to agree.
 *
 * The clocks are virtual (the test links with --wrap=clock_gettime,clock_nanosleep): a
 * blocking acquire's sleep moves CLOCK_MONOTONIC to its turn at once, and the test moves it
 * on by varied amounts between decisions. So thousands of waits take no time and every
 * instant is exact.
 */
#include <time.h>

#include "fixture.h"

TestSuite(fixpoint, .init = fixture_setup, .fini = fixture_teardown, .timeout = 50);

#define WALL_OFFSET_NS (1700000000ULL * NS_PER_SEC + 123456789) /* CLOCK_REALTIME - MONOTONIC */

static uint64_t g_mono = 1000 * NS_PER_SEC; /* the virtual CLOCK_MONOTONIC, ns */

int __wrap_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_nanosleep(clockid_t id, int flags, const struct timespec *req,
                           struct timespec *rem);

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
    uint64_t t = id == CLOCK_REALTIME ? g_mono + WALL_OFFSET_NS : g_mono;
    *ts = (struct timespec){(time_t)(t / NS_PER_SEC), (long)(t % NS_PER_SEC)};
    return 0;
}

int __wrap_clock_nanosleep(clockid_t id, int flags, const struct timespec *req,
                           struct timespec *rem)
{
    (void)id, (void)rem;
    uint64_t t = (uint64_t)req->tv_sec * NS_PER_SEC + (uint64_t)req->tv_nsec;
    if (!(flags & TIMER_ABSTIME))
        t += g_mono;
    g_mono = t > g_mono ? t : g_mono;
    return 0;
}

/* Deterministic pseudo-random steps (xorshift). */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/*
 * `decisions` blocking acquires of 1 unit at varied instants. Each admission's instant d
 * (wall clock: w) must be admitted by every rule, exactly:
 *  - fixed window T with dead zone z = min(margin, T/2): w mod T + z < T, and a window
 *    later than the rule's previous admission (limit 1);
 *  - sliding window T (limit 1): d at least T + margin after the previous admission.
 */
static void check_policy(const char *text, unsigned decisions)
{
    struct rl_policy pol = policy_of(text);
    rl_table *t = table_create(4);
    rl_bucket *b = define(t, "b", text, NULL);
    uint64_t wall_off = (uint64_t)t->hdr->wall_offset_ns, seed = 0x9e3779b97f4a7c15ULL;
    uint64_t last[RL_MAX_RULES] = {0};
    bool any[RL_MAX_RULES] = {false};
    for (unsigned k = 0; k < decisions; k++) {
        struct rl_decision dec;
        g_mono += next_rand(&seed) % (3 * NS_PER_SEC / 2);
        int rc = rl_acquire(b, 1, UINT64_MAX, &dec);
        cr_assert_eq(rc, 0, "%s: decision %u: %s (%s)", text, k, rl_err_name(rc), rl_errdetail());
        uint64_t d = dec.at_ns, w = d + wall_off;
        cr_assert_eq(g_mono, d, "%s: decision %u slept until its turn", text, k);
        for (unsigned i = 0; i < pol.nrules; i++) {
            const struct rl_rule *r = &pol.rules[i];
            if (r->kind == RL_FIXED) {
                uint64_t z = pol.margin_ns < r->period_ns / 2 ? pol.margin_ns : r->period_ns / 2;
                cr_assert_lt(w % r->period_ns + z, r->period_ns,
                             "%s: decision %u at wall %" PRIu64 " is in rule %u's dead zone", text,
                             k, w, i);
                cr_assert(!any[i] || w / r->period_ns > last[i],
                          "%s: decision %u: rule %u's window %" PRIu64 " already has its unit",
                          text, k, i, w / r->period_ns);
                last[i] = w / r->period_ns;
            } else {
                cr_assert(!any[i] || d >= last[i] + r->period_ns + pol.margin_ns,
                          "%s: decision %u: rule %u admitted %" PRIu64 " ns after the last", text,
                          k, i, d - last[i]);
                last[i] = d;
            }
            any[i] = true;
        }
    }
    rl_table_close(t);
    unlink(g_path);
}

Test(fixpoint, four_fixed_windows_with_wide_dead_zones)
{
    check_policy("1/254ms fixed, 1/249ms fixed, 1/245ms fixed, 1/236ms fixed margin 60s", 3000);
}

Test(fixpoint, sliding_windows_and_a_fixed_dead_zone)
{
    check_policy("1/1s, 1/750ms, 1/700ms, 1/400ms fixed margin 500ms", 3000);
}

Test(fixpoint, fixed_windows_of_several_periods)
{
    check_policy("1/1s fixed, 1/750ms fixed, 1/700ms fixed, 1/400ms fixed margin 500ms", 3000);
}
