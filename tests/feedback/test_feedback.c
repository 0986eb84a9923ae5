/* Server feedback shared by the pool: cool-down, backoff, reconciliation, rl_call. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"

#include "fixture.h"

#define SEC 1000000000ULL

TestSuite(feedback, .init = fixture_open, .fini = fixture_close);

/* A pause or reset that the report set to end `len` after it, seen later: it is within
 * [len - passed, len], `passed` the time since t0 (an instant before the report), however
 * slow the machine; with one 100 µs tick of rounding either way. */
static bool ends_after(uint64_t seen, uint64_t len, uint64_t t0)
{
    uint64_t passed = rl_now_ns() - t0, tick = 100000;
    return seen + passed + tick >= len && seen <= len + tick;
}

Test(feedback, retry_after_pauses_everyone)
{
    rl_bucket *b = define(g_table, "foundry", "200/60s", NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "30";
    struct rl_feedback fb;
    struct rl_decision d;
    uint64_t t0 = rl_now_ns();
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 30 * SEC);
    cr_assert_eq(rl_try_acquire(b, 1, &d), RL_ELIMITED);
    cr_assert(ends_after(d.wait_ns, 30 * SEC, t0), "wait %llu", (unsigned long long)d.wait_ns);
    cr_assert_eq(rl_acquire(b, 1, SEC, &d), RL_ETIMEDOUT, "a 1 s timeout cannot outlast it");
    struct rl_bucket_info info;
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    cr_assert_eq(info.counters.reported_429, 1);
    cr_assert(ends_after(info.feedback.cooldown_ns, 30 * SEC, t0));
    cr_assert(info.feedback.last_429_ns > 0 && info.feedback.last_429_ns <= rl_now_ns());
    cr_assert_eq(info.rules[0].used, 0, "refusals during the pause consume nothing");
    cr_assert_eq(rl_bucket_reset(b), 0);
    cr_assert_eq(rl_try_acquire(b, 1, NULL), 0, "a reset ends the pause");
}

Test(feedback, children_pause_with_their_parent)
{
    struct rl_policy p;
    rl_bucket *plan = define(g_table, "ti", "120/1m burst 20", NULL), *child;
    cr_assert_eq(rl_policy_parse("30/1m", &p, NULL), 0);
    cr_assert_eq(rl_bucket_define(g_table, "ti/reporting", &p, "ti", &child), 0);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "5";
    cr_assert_eq(rl_report(plan, &r, NULL), 0);
    cr_assert_eq(rl_try_acquire(child, 1, NULL), RL_ELIMITED);
}

Test(feedback, hostile_values_never_pause_forever)
{
    rl_bucket *b = define(g_table, "hostile", "10/1s", NULL);
    struct rl_feedback fb;
    struct rl_response huge = RL_RESPONSE_INIT;
    huge.status = 429;
    huge.retry_after = "99999999999";
    cr_assert_eq(rl_report(b, &huge, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 3600 * SEC, "capped at the default maximum of 1 h");
    struct rl_response capped = RL_RESPONSE_INIT;
    capped.status = 429;
    capped.retry_after = "600";
    capped.max_cooldown_ns = 2 * SEC;
    cr_assert_eq(rl_report(b, &capped, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 2 * SEC, "capped at max_cooldown_ns");
    struct rl_response garbage = RL_RESPONSE_INIT;
    garbage.status = 429;
    garbage.retry_after = "-5";
    garbage.reset = "yesterday";
    garbage.remaining = "lots";
    garbage.limit = "\xff\xfe";
    garbage.ratelimit = "r=;t=";
    garbage.ratelimit_policy = "q=-1";
    cr_assert_eq(rl_report(b, &garbage, &fb), 0);
    cr_assert_eq(fb.ignored, RL_IGNORED_RETRY_AFTER | RL_IGNORED_RESET | RL_IGNORED_REMAINING |
                                 RL_IGNORED_LIMIT | RL_IGNORED_RATELIMIT);
    cr_assert(fb.cooldown_ns < SEC * 2, "garbage falls back to a first backoff step (< 1 s)");
    struct rl_response bad_status = RL_RESPONSE_INIT;
    bad_status.status = 1000;
    cr_assert_eq(rl_report(b, &bad_status, NULL), RL_EINVAL);
}

Test(feedback, backoff_is_shared_and_reset_by_success)
{
    rl_bucket *b = define(g_table, "backoff", "10/1s", NULL);
    struct rl_response r429 = RL_RESPONSE_INIT;
    r429.status = 429;
    struct rl_response ok = RL_RESPONSE_INIT;
    ok.status = 200;
    struct rl_feedback fb;
    pid_t pid = fork();
    if (pid == 0) { /* another worker of the pool gets the first 429 */
        rl_bucket *mine;
        _exit(rl_bucket_lookup(g_table, "backoff", &mine) || rl_report(mine, &r429, NULL));
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(rl_report(b, &r429, &fb), 0);
    cr_assert_eq(fb.backoff, 2, "the pool escalates together");
    cr_assert(fb.cooldown_ns < 2 * SEC, "full jitter below 1 s * 2^1");
    cr_assert_eq(rl_report(b, &ok, &fb), 0);
    cr_assert_eq(rl_report(b, &r429, &fb), 0);
    cr_assert_eq(fb.backoff, 1, "a success starts the count again");
}

Test(feedback, service_unavailable_pauses_only_with_retry_after)
{
    rl_bucket *b = define(g_table, "busy", "10/1s", NULL);
    struct rl_response plain = RL_RESPONSE_INIT;
    plain.status = 503;
    struct rl_response told = RL_RESPONSE_INIT;
    told.status = 503;
    told.retry_after = "3";
    struct rl_feedback fb;
    cr_assert_eq(rl_report(b, &plain, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 0);
    cr_assert_eq(rl_report(b, &told, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 3 * SEC);
}

Test(feedback, reset_header_gives_the_pause_when_nothing_remains)
{
    rl_bucket *b = define(g_table, "reset", "10/1s", NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.remaining = "0";
    r.reset = "7";
    struct rl_feedback fb;
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 7 * SEC);
    struct rl_response ietf = RL_RESPONSE_INIT;
    ietf.status = 429;
    ietf.ratelimit = "\"default\";r=0;t=9";
    cr_assert_eq(rl_report(b, &ietf, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 9 * SEC);
}

Test(feedback, reconciliation_tightens_never_loosens)
{
    rl_bucket *b = define(g_table, "acme", "100/1h", NULL);
    struct rl_response low = RL_RESPONSE_INIT;
    low.status = 200;
    low.remaining = "3";
    low.reset = "600";
    struct rl_feedback fb;
    uint64_t t0 = rl_now_ns();
    cr_assert_eq(rl_report(b, &low, &fb), 0);
    cr_assert(fb.tightened);
    cr_assert_eq(drain(b), 3, "the server's view (3 left) wins over ours (100)");
    struct rl_bucket_info info;
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    cr_assert_eq(info.feedback.server_remaining, 0);
    /* A whole-second reset holds 1 s less than it names. */
    cr_assert(ends_after(info.feedback.server_reset_ns, 599 * SEC, t0));

    rl_bucket *c = define(g_table, "roomy", "5/1h", NULL);
    struct rl_response high = RL_RESPONSE_INIT;
    high.status = 200;
    high.remaining = "500";
    high.reset = "600";
    cr_assert_eq(rl_report(c, &high, &fb), 0);
    cr_assert_not(fb.tightened, "a server with more room never loosens our rules");
    cr_assert_eq(drain(c), 5);
}

Test(feedback, read_only_tables_cannot_report)
{
    rl_bucket *b = define(g_table, "ro", "10/1s", NULL);
    (void)b;
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *ro;
    rl_bucket *rb;
    o.path = g_path;
    o.flags = RL_OPEN_READONLY;
    cr_assert_eq(rl_table_open(&o, &ro), 0);
    cr_assert_eq(rl_bucket_lookup(ro, "ro", &rb), 0);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    cr_assert_eq(rl_report(rb, &r, NULL), RL_EPERM);
    rl_table_close(ro);
}

struct script {
    int statuses[4];
    unsigned calls;
};

static int scripted(void *arg, struct rl_response *resp)
{
    struct script *s = arg;
    resp->status = s->statuses[s->calls++];
    resp->retry_after = resp->status == 429 ? "0" : NULL;
    return 0;
}

static int failing(void *arg, struct rl_response *resp)
{
    (void)arg;
    (void)resp;
    return -42;
}

Test(feedback, rl_call_retries_429s_up_to_the_limit)
{
    rl_bucket *b = define(g_table, "call", "100/1s", NULL);
    struct rl_response last = RL_RESPONSE_INIT;
    struct script s = {{429, 429, 200, 200}, 0};
    cr_assert_eq(rl_call(b, 1, SEC, 3, scripted, &s, &last), 0);
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(last.status, 200);
    struct script never = {{429, 429, 429, 429}, 0};
    cr_assert_eq(rl_call(b, 1, SEC, 2, scripted, &never, &last), RL_ELIMITED);
    cr_assert_eq(never.calls, 2);
    cr_assert_eq(rl_call(b, 1, SEC, 2, failing, NULL, &last), -42, "callback errors stop it");
    cr_assert_eq(rl_call(b, 1, SEC, 0, scripted, &s, &last), RL_EINVAL);
}

/* A response from a caller built against a newer header: fields this library does not
 * know follow, and are ignored. */
struct newer_response {
    struct rl_response r;
    uint64_t unknown[4];
};

Test(feedback, response_size_is_checked)
{
    rl_bucket *b = define(g_table, "sized", "100/1s", NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 200;
    r.size = 0;
    cr_assert_eq(rl_report(b, &r, NULL), RL_EINVAL, "a response without RL_RESPONSE_INIT");
    r.size = offsetof(struct rl_response, max_cooldown_ns) + sizeof(uint64_t) - 1;
    cr_assert_eq(rl_report(b, &r, NULL), RL_EINVAL, "smaller than the first version");
    struct newer_response n = {RL_RESPONSE_INIT, {~0ULL, ~0ULL, ~0ULL, ~0ULL}};
    struct rl_feedback fb;
    n.r.size = sizeof(n);
    n.r.status = 429;
    n.r.retry_after = "7";
    cr_assert_eq(rl_report(b, &n.r, &fb), 0);
    cr_assert_eq(fb.cooldown_ns, 7 * SEC);
    cr_assert_eq(fb.ignored, 0);
}

Test(feedback, rl_call_checks_the_response_size_and_keeps_it)
{
    rl_bucket *b = define(g_table, "sized_call", "100/1s", NULL);
    struct script s = {{200}, 0};
    struct newer_response n = {RL_RESPONSE_INIT, {1, 2, 3, 4}};
    n.r.size = 0;
    cr_assert_eq(rl_call(b, 1, SEC, 1, scripted, &s, &n.r), RL_EINVAL);
    cr_assert_eq(s.calls, 0, "no request is sent with a bad response");
    n.r.size = sizeof(n);
    cr_assert_eq(rl_call(b, 1, SEC, 1, scripted, &s, &n.r), 0);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(n.r.size, sizeof(n), "the size survives the clearing");
    cr_assert_eq(n.r.status, 200);
    cr_assert_eq(n.unknown[0], 1, "the unknown tail is the caller's: left alone");
    cr_assert_eq(n.unknown[3], 4);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* A pool of blocked waiters; one of them gets a 429: nobody is admitted during the pause. */
struct pause_log {
    atomic_uint n;
    uint64_t at[64], woke[64];
};

Test(feedback, a_429_pauses_the_whole_pool, .timeout = 60)
{
    rl_bucket *b = define(g_table, "pool", "4/400ms margin 0", NULL);
    struct pause_log *log =
        mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(log, MAP_FAILED);
    cr_assert_eq(drain(b), 4);
    for (int i = 0; i < 12; i++)
        if (fork() == 0) { /* each waits for a turn: 4 per 400 ms */
            struct rl_decision d;
            if (rl_acquire(b, 1, 30 * SEC, &d) != 0)
                _exit(1);
            unsigned k = atomic_fetch_add(&log->n, 1);
            log->at[k] = d.at_ns;
            log->woke[k] = rl_now_ns();
            _exit(0);
        }
    /* Report once every waiter has its turn (bounded wait, no fixed sleep): on an idle
     * machine turns at +400 ms, +800 ms, +1200 ms, inside the pause. */
    for (unsigned k = 0; k < 30000 && info_of(b).counters.admitted < 16; k++)
        usleep(1000);
    cr_assert_eq(info_of(b).counters.admitted, 16, "the 12 waiters took their turns");
    uint64_t reported = rl_now_ns();
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "1";
    cr_assert_eq(rl_report(b, &r, NULL), 0);
    int status, failed = 0;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    cr_assert_eq(failed, 0);
    cr_assert_eq(log->n, 12);
    /* A turn before the report stands (a busy machine may start a waiter that late);
     * every later one moves beyond the pause. */
    for (unsigned i = 0; i < 12; i++) {
        if (log->at[i] < reported)
            continue;
        cr_assert(log->woke[i] >= reported + SEC, "admitted during the pause");
        cr_assert(log->at[i] >= reported + SEC, "a turn inside the pause stood");
    }
    qsort(log->at, 12, sizeof(log->at[0]), cmp_u64);
    for (unsigned i = 4; i < 12; i++)
        cr_assert(log->at[i] - log->at[i - 4] >= 400000000ULL, "resumed over the limit");
}

/* 8 workers' requests, all sent before the first 429 came back, each answered 429 without
 * any header: one event, one step of the backoff, one pause. */
Test(feedback, in_flight_429s_are_one_backoff_step)
{
    rl_bucket *b = define(g_table, "inflight", "1000/1s", NULL);
    struct rl_decision d[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(rl_try_acquire(b, 1, &d[i]), 0);
    uint64_t first = 0;
    for (int i = 0; i < 8; i++) {
        struct rl_response r = RL_RESPONSE_INIT;
        struct rl_feedback fb;
        r.status = 429;
        r.decided_ns = d[i].at_ns;
        cr_assert_eq(rl_report(b, &r, &fb), 0);
        cr_assert_eq(fb.backoff, 1, "429 %d escalated the backoff to %u", i + 1, fb.backoff);
        if (i == 0)
            first = fb.cooldown_ns;
        cr_assert(fb.cooldown_ns <= first, "429 %d drew a longer pause", i + 1);
    }
    struct rl_bucket_info info = info_of(b);
    cr_assert_eq(info.feedback.backoff, 1);
    cr_assert_eq(info.counters.reported_429, 8, "each 429 is still counted");
    cr_assert(info.feedback.cooldown_ns <= first);
}

/* Pauses of 0 (max_cooldown_ns 1 ns), so that requests are decided between the 429s. */
static unsigned backoff_after(rl_bucket *b, uint64_t decided_ns)
{
    struct rl_response r = RL_RESPONSE_INIT;
    struct rl_feedback fb;
    r.status = 429;
    r.max_cooldown_ns = 1;
    r.decided_ns = decided_ns;
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    return fb.backoff;
}

Test(feedback, a_429_decided_after_the_pause_began_is_a_new_event)
{
    rl_bucket *b = define(g_table, "events", "1000/1s", NULL);
    struct rl_decision early, before, after;
    cr_assert_eq(rl_try_acquire(b, 1, &early), 0);
    cr_assert_eq(rl_try_acquire(b, 1, &before), 0);
    cr_assert_eq(backoff_after(b, before.at_ns), 1);
    cr_assert_eq(rl_try_acquire(b, 1, &after), 0, "a pause of 0 is over");
    cr_assert_eq(backoff_after(b, after.at_ns), 2, "decided after the first 429: escalates");
    cr_assert_eq(backoff_after(b, early.at_ns), 2, "in flight since before both: no step");
    cr_assert_eq(backoff_after(b, 0), 3, "no decision instant: counted as a new event");
    struct rl_response ok = RL_RESPONSE_INIT;
    ok.status = 200;
    cr_assert_eq(rl_report(b, &ok, NULL), 0);
    cr_assert_eq(info_of(b).feedback.backoff, 0, "a success resets the count");
}

/* A whole-second reset may come up to 1 s before the instant it names: the server's
 * remaining budget holds 1 s less than it says, on every response that carries one. */
Test(feedback, a_whole_second_reset_tightens_for_what_is_known)
{
    rl_bucket *b = define(g_table, "rounded", "100/1h", NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    struct rl_feedback fb;
    r.status = 200;
    r.remaining = "0";
    r.reset = "5";
    cr_assert_eq(rl_report(b, &r, &fb), 0);
    cr_assert(fb.tightened);
    uint64_t left = info_of(b).feedback.server_reset_ns, tick = 100000;
    cr_assert(left > 3 * SEC && left <= 4 * SEC + tick, "tight for %llu ns, not 4 s",
              (unsigned long long)left);
    rl_bucket *c = define(g_table, "rounded_ietf", "100/1h", NULL);
    struct rl_response ietf = RL_RESPONSE_INIT;
    ietf.status = 200;
    ietf.ratelimit = "\"default\";r=2;t=3";
    cr_assert_eq(rl_report(c, &ietf, &fb), 0);
    cr_assert(fb.tightened);
    left = info_of(c).feedback.server_reset_ns;
    cr_assert(left > 1 * SEC && left <= 2 * SEC + tick, "RateLimit t=3: %llu ns",
              (unsigned long long)left);
    cr_assert_eq(drain(c), 2);
    rl_bucket *e = define(g_table, "rounded_epoch", "100/1h", NULL);
    char epoch[32];
    snprintf(epoch, sizeof(epoch), "%lld", (long long)time(NULL) + 10);
    r.reset = epoch;
    cr_assert_eq(rl_report(e, &r, &fb), 0);
    left = info_of(e).feedback.server_reset_ns;
    cr_assert(left > 7 * SEC && left <= 9 * SEC + tick, "epoch seconds: %llu ns",
              (unsigned long long)left);
    rl_bucket *g = define(g_table, "rounded_away", "100/1h", NULL);
    r.reset = "1";
    cr_assert_eq(rl_report(g, &r, &fb), 0);
    cr_assert_not(fb.tightened, "reset in 1 s: nothing known beyond now");
    cr_assert_eq(drain(g), 100);
}
