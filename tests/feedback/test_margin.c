/* The self-correcting margin (src/margin.c) and the delay it is measured against. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <time.h>

#include "ratelimit.h"

#include "fixture.h"

TestSuite(margin, .init = fixture_open, .fini = fixture_close);

/* The widening step of README "Server feedback", in µs: f(m) = m + max(m / 2, 1 ms). */
static uint64_t f_us(uint64_t m)
{
    return m + (m / 2 > 1000 ? m / 2 : 1000);
}

static struct rl_margin_state margin_of(rl_bucket *b)
{
    struct rl_bucket_info info;
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    return info.margin;
}

/* Admit one request and report `status` for it, as rl_call does. No pause: the 429 carries
 * no Retry-After and the caller accepts pauses of at most 1 ns. */
static struct rl_feedback admit_and_report(rl_bucket *b, int status)
{
    struct rl_decision d;
    struct rl_feedback fb;
    struct rl_response r = RL_RESPONSE_INIT;
    cr_assert_eq(rl_try_acquire(b, 1, &d), 0);
    r.status = status;
    r.max_cooldown_ns = 1;
    r.decided_ns = d.at_ns;
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    return fb;
}

Test(margin, starts_at_the_configured_margin)
{
    rl_bucket *b = define(g_table, "fresh", "1000/1s margin 20ms", NULL);
    struct rl_margin_state m = margin_of(b);
    cr_assert_eq(m.effective_ns, 20 * NS_PER_MS);
    cr_assert_eq(m.learned_ns, 0);
    cr_assert_eq(m.ceiling_ns, 100 * NS_PER_MS, "a tenth of the shortest period");
    cr_assert_eq(m.delay_p99_ns, 0, "no delay measured yet");
    cr_assert_eq(m.recommended_ns, 0);
}

Test(margin, k_admitted_429s_widen_it_to_exactly_f_k)
{
    rl_bucket *b = define(g_table, "widen", "1000/1s margin 20ms", NULL);
    uint64_t want = 20000, ceiling = 100000; /* µs */
    for (int k = 1; k <= 6; k++) {
        struct rl_feedback fb = admit_and_report(b, 429);
        uint64_t next = f_us(want) < ceiling ? f_us(want) : ceiling;
        cr_assert_eq(fb.widened, next > want, "429 %d", k);
        want = next;
        cr_assert_eq(margin_of(b).effective_ns, want * 1000, "after %d 429s: %llu ns", k,
                     (unsigned long long)margin_of(b).effective_ns);
    }
    cr_assert_eq(want, ceiling, "six steps reach the ceiling");
}

Test(margin, a_zero_margin_widens_by_a_millisecond)
{
    rl_bucket *b = define(g_table, "zero", "1000/1s margin 0ms", NULL);
    admit_and_report(b, 429);
    cr_assert_eq(margin_of(b).effective_ns, NS_PER_MS);
    admit_and_report(b, 429);
    cr_assert_eq(margin_of(b).effective_ns, 2 * NS_PER_MS);
}

Test(margin, in_flight_429s_widen_once)
{
    rl_bucket *b = define(g_table, "flight", "1000/1s margin 20ms", NULL);
    struct rl_decision d[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(rl_try_acquire(b, 1, &d[i]), 0);
    int widened = 0;
    for (int i = 0; i < 4; i++) {
        struct rl_response r = RL_RESPONSE_INIT;
        struct rl_feedback fb;
        r.status = 429;
        r.max_cooldown_ns = 1;
        r.decided_ns = d[i].at_ns;
        cr_assert_eq(rl_report(b, &r, &fb), 0);
        widened += fb.widened;
    }
    cr_assert_eq(widened, 1, "requests decided before the first 429 are the same event");
    cr_assert_eq(margin_of(b).effective_ns, 30 * NS_PER_MS);
}

Test(margin, widens_only_on_429s_the_rules_admitted)
{
    rl_bucket *b = define(g_table, "unknown", "1000/1s margin 20ms", NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    struct rl_feedback fb;
    r.status = 429;
    r.max_cooldown_ns = 1;
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    cr_assert(!fb.widened, "no decision instant: not known to be admitted");
    r.status = 503;
    r.retry_after = "0";
    r.decided_ns = rl_now_ns();
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    cr_assert(!fb.widened, "a 503 is not a count the server made");
    for (int i = 0; i < 50; i++)
        cr_assert(!admit_and_report(b, 200).widened);
    cr_assert_eq(margin_of(b).effective_ns, 20 * NS_PER_MS);
    cr_assert_eq(margin_of(b).learned_ns, 0);
}

Test(margin, never_below_the_configured_margin)
{
    /* Period 15 ms: ceiling max(1 ms, 1.5 ms); a narrowing step per second. */
    rl_bucket *b = define(g_table, "floor", "100000/15ms margin 1ms", NULL);
    admit_and_report(b, 429);
    admit_and_report(b, 429);
    struct rl_margin_state m = margin_of(b);
    cr_assert_eq(m.effective_ns, 1500 * 1000, "widened to the ceiling");
    cr_assert_eq(m.narrow_every_ns, NS_PER_SEC);
    struct timespec ts = {1, 200000000};
    nanosleep(&ts, NULL);
    for (int i = 0; i < 200; i++) {
        admit_and_report(b, 200);
        m = margin_of(b);
        cr_assert(m.effective_ns >= NS_PER_MS && m.effective_ns <= m.ceiling_ns, "%llu",
                  (unsigned long long)m.effective_ns);
        cr_assert(m.learned_ns == 0 || m.learned_ns > NS_PER_MS, "learned is above or forgotten");
    }
    cr_assert(m.narrowing_steps >= 1, "a second without a 429 is a narrowing step");
    /* A wider configured margin wins over a narrower learned one. */
    struct rl_policy p;
    cr_assert_eq(rl_policy_parse("100000/15ms margin 7ms", &p, NULL), 0);
    cr_assert_eq(rl_bucket_update(b, &p), 0);
    cr_assert_eq(margin_of(b).effective_ns, 7 * NS_PER_MS);
}

Test(margin, the_table_shares_it)
{
    rl_bucket *b = define(g_table, "shared", "1000/1s margin 20ms", NULL);
    admit_and_report(b, 429);
    rl_table *t2 = table_open_opts(g_path, 0, 1024, 0);
    rl_bucket *b2;
    cr_assert_eq(rl_bucket_lookup(t2, "shared", &b2), 0);
    cr_assert_eq(margin_of(b2).effective_ns, 30 * NS_PER_MS, "another attachment sees it");
    rl_table_close(t2);
}

Test(margin, delays_are_measured_and_recommended)
{
    rl_bucket *b = define(g_table, "delay", "1000/1s", NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 200;
    r.decided_ns = rl_now_ns();
    struct timespec ts = {0, 30 * NS_PER_MS}; /* as if the answer took 30 ms */
    nanosleep(&ts, NULL);
    cr_assert_eq(rl_report(b, &r, NULL), 0);
    uint64_t after = rl_now_ns();
    struct rl_margin_state m = margin_of(b);
    /* The first sample is the estimate, in whole µs: between the 30 ms slept and what
     * passed since the decision, however long the sleep and the report took. */
    cr_assert(m.delay_p99_ns >= 30 * NS_PER_MS - 1000 && m.delay_p99_ns <= after - r.decided_ns,
              "%llu ns", (unsigned long long)m.delay_p99_ns);
    cr_assert_eq(m.recommended_ns % (5 * NS_PER_MS), 0, "rounded up to 5 ms");
    cr_assert(m.recommended_ns >= m.delay_p99_ns + m.delay_p99_ns / 4);
    cr_assert_eq(m.effective_ns, RL_MARGIN_DEFAULT_NS, "delays alone widen nothing");
}

static int answer_200(void *arg, struct rl_response *r)
{
    *(uint64_t *)arg = r->decided_ns;
    r->status = 200;
    return 0;
}

Test(margin, rl_call_reports_the_decision_instant)
{
    rl_bucket *b = define(g_table, "call", "1000/1s", NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    uint64_t seen = 1, before = rl_now_ns();
    cr_assert_eq(rl_call(b, 1, 0, 1, answer_200, &seen, &r), 0);
    cr_assert_eq(seen, 0, "cleared before the callback, like every field");
    cr_assert(r.decided_ns >= before && r.decided_ns <= rl_now_ns());
    cr_assert(margin_of(b).delay_p99_ns > 0, "the delay was measured");
}

Test(margin, retry_after_ends_the_zero_remaining_tightening)
{
    rl_bucket *b = define(g_table, "rolling", "100/1s", NULL);
    char reset[32];
    uint64_t t0 = rl_now_ns(); /* the reset names a second at least 29 s after this instant */
    snprintf(reset, sizeof(reset), "%lld", (long long)time(NULL) + 30);
    struct rl_response r = RL_RESPONSE_INIT;
    struct rl_feedback fb;
    r.status = 429;
    r.retry_after = "1";
    r.remaining = "0";
    r.reset = reset; /* the whole budget is back in 30 s; one unit is back in 1 s */
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    cr_assert(fb.tightened);
    cr_assert_eq(fb.cooldown_ns, NS_PER_SEC);
    struct rl_bucket_info info;
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    /* Tight until the Retry-After instant, not the reset (ticks of 100 us, rounded up). */
    cr_assert(info.feedback.server_reset_ns <= NS_PER_SEC + 100000, "%llu ns",
              (unsigned long long)info.feedback.server_reset_ns);
    struct rl_decision d;
    cr_assert_eq(rl_try_acquire(b, 1, &d), RL_ELIMITED, "no admission before Retry-After");
    cr_assert(d.wait_ns > 0 && d.wait_ns <= NS_PER_SEC + 100000);
    /* Without Retry-After the server's reset still holds. */
    rl_bucket *c = define(g_table, "rolling2", "100/1s", NULL);
    r.status = 200;
    r.retry_after = NULL;
    cr_assert_eq(rl_report(c, &r, &fb), 0);
    cr_assert_eq(rl_bucket_info(c, &info), 0);
    /* The reset names a whole second 29..30 s after t0, and a whole-second reset holds 1 s
     * less than it names: at least 28 s after t0, less what has passed since (a loaded
     * machine included), one tick of rounding aside. */
    uint64_t passed = rl_now_ns() - t0;
    cr_assert(info.feedback.server_reset_ns + passed >= 28 * NS_PER_SEC - 100000, "%llu ns",
              (unsigned long long)info.feedback.server_reset_ns);
}
