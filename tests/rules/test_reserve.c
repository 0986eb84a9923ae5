/*
 * test_reserve.c - rl_reserve: the reservation of rl_acquire without its sleep. It returns
 * the reserved instant at once, reserves nothing past the timeout, keeps first come, first
 * served order across processes, and rl_reserve_check voids a turn a 429 overtook.
 */
#include "fixture.h"

TestSuite(reserve, .init = fixture_open, .fini = fixture_close, .timeout = 50);

static struct rl_decision reserve_ok(rl_bucket *b, uint32_t cost, uint64_t timeout)
{
    struct rl_decision d = {0};
    int rc = rl_reserve(b, cost, timeout, &d);
    cr_assert_eq(rc, 0, "rl_reserve: %s (%s)", rl_err_name(rc), rl_errdetail());
    return d;
}

Test(reserve, returns_the_turn_without_sleeping)
{
    rl_bucket *b = define(g_table, "r", "2/1s margin 10ms", NULL);
    struct rl_decision first = reserve_ok(b, 1, 0);
    reserve_ok(b, 1, 0);
    struct rl_decision third = reserve_ok(b, 1, 5 * NS_PER_SEC);
    uint64_t returned = rl_now_ns();
    cr_assert_geq(third.at_ns, first.at_ns + NS_PER_SEC + 10 * NS_PER_MS,
                  "the third turn comes when the first leaves the window (and its margin)");
    cr_assert_lt(returned, third.at_ns, "rl_reserve returned before the turn: it did not sleep");
    struct rl_bucket_info in = info_of(b);
    cr_assert_eq(in.counters.admitted, 3);
    cr_assert_eq(in.counters.waited, 1);
}

Test(reserve, past_the_timeout_reserves_nothing)
{
    rl_bucket *b = define(g_table, "r", "1/1h", NULL);
    reserve_ok(b, 1, 0);
    struct rl_decision d = {0};
    cr_assert_eq(rl_reserve(b, 1, NS_PER_SEC, &d), RL_ETIMEDOUT);
    cr_assert_gt(d.wait_ns, NS_PER_SEC, "wait_ns says how long it would have been");
    cr_assert_eq(rl_reserve(b, 1, 0, NULL), RL_ETIMEDOUT, "nothing reserved: still one turn");
    struct rl_bucket_info in = info_of(b);
    cr_assert_eq(in.counters.admitted, 1);
    cr_assert_eq(in.counters.rejected, 2);
}

Test(reserve, successive_turns_are_spaced_by_the_rule)
{
    rl_bucket *b = define(g_table, "r", "1/100ms margin 0ns", NULL);
    uint64_t prev = reserve_ok(b, 1, 0).at_ns;
    for (int i = 0; i < 10; i++) {
        uint64_t at = reserve_ok(b, 1, 10 * NS_PER_SEC).at_ns;
        cr_assert_geq(at, prev + 100 * NS_PER_MS, "turn %d", i);
        prev = at;
    }
}

Test(reserve, gcra_and_costs)
{
    rl_bucket *b = define(g_table, "g", "10/1s burst 2", NULL);
    struct rl_decision a = reserve_ok(b, 2, 0);
    struct rl_decision c = reserve_ok(b, 2, 5 * NS_PER_SEC);
    cr_assert_geq(c.at_ns, a.at_ns + 2 * (NS_PER_SEC / 10), "two units of 100 ms each");
    cr_assert_eq(rl_reserve(b, 3, 5 * NS_PER_SEC, NULL), RL_ECOST);
}

Test(reserve, a_429_voids_a_turn_not_yet_come)
{
    rl_bucket *b = define(g_table, "r", "1/200ms", NULL);
    struct rl_decision now = reserve_ok(b, 1, 0);
    struct rl_decision later = reserve_ok(b, 1, 5 * NS_PER_SEC);
    uint64_t resume = 1;
    cr_assert_eq(rl_reserve_check(b, 1, now.at_ns, &resume), 0, "no 429: the turn stands");
    cr_assert_eq(resume, 0);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "2";
    cr_assert_eq(rl_report(b, &r, NULL), 0);
    cr_assert_eq(rl_reserve_check(b, 1, later.at_ns, &resume), RL_ELIMITED);
    struct rl_bucket_info in = info_of(b);
    cr_assert_geq(resume, in.now_ns + in.feedback.cooldown_ns, "resume after the cool-down ends");
    cr_assert_eq(in.counters.admitted, 1, "the voided turn is no longer counted");
    cr_assert_eq(rl_reserve_check(b, 1, now.at_ns, &resume), 0,
                 "a turn that came before the 429 stands");
}

Test(reserve, bad_requests)
{
    rl_bucket *b = define(g_table, "r", "1/1s", NULL);
    uint64_t resume;
    cr_assert_eq(rl_reserve(NULL, 1, 0, NULL), RL_EINVAL);
    cr_assert_eq(rl_reserve(b, 0, 0, NULL), RL_EINVAL);
    cr_assert_eq(rl_reserve(b, 2, 0, NULL), RL_ECOST);
    cr_assert_eq(rl_reserve_check(NULL, 1, 0, &resume), RL_EINVAL);
    cr_assert_eq(rl_reserve_check(b, 0, 0, &resume), RL_EINVAL);
    cr_assert_eq(rl_reserve_check(b, 1, 0, NULL), RL_EINVAL);
    cr_assert_eq(rl_template_define(g_table, "t/*", &(struct rl_policy){0}, NULL), RL_EPARSE);
    struct rl_policy p = policy_of("1/1s");
    cr_assert_eq(rl_template_define(g_table, "t/*", &p, NULL), 0);
    rl_bucket *t;
    cr_assert_eq(rl_bucket_lookup(g_table, "t/*", &t), 0);
    cr_assert_eq(rl_reserve(t, 1, 0, NULL), RL_EINVAL, "a template: %s", rl_errdetail());
    rl_table *ro = table_open_opts(g_path, RL_OPEN_READONLY, 0, 0);
    rl_bucket *rb;
    cr_assert_eq(rl_bucket_lookup(ro, "r", &rb), 0);
    cr_assert_eq(rl_reserve(rb, 1, 0, NULL), RL_EPERM);
    rl_table_close(ro);
}

/* One reservation as a child process saw it: the call's span and the turn it got. */
struct turn {
    uint64_t start, at, end;
};

#define PROCS 4
#define TURNS 25

/* Property: processes reserving at once. A reservation that returned before another began
 * has the earlier (or same) turn, and no window of the rule (with its margin) holds more
 * than N turns. */
Test(reserve, first_come_first_served_across_processes)
{
    rl_bucket *b = define(g_table, "r", "5/50ms margin 5ms", NULL);
    struct turn *turns = mmap(NULL, sizeof(struct turn) * PROCS * TURNS, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(turns, MAP_FAILED);
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            for (int i = 0; i < TURNS; i++) {
                struct turn *t = &turns[p * TURNS + i];
                struct rl_decision d;
                t->start = rl_now_ns();
                if (rl_reserve(b, 1, 60 * NS_PER_SEC, &d) != 0)
                    _exit(1);
                t->at = d.at_ns;
                t->end = rl_now_ns();
            }
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        cr_assert_gt(wait(&status), 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a child failed to reserve");
    }
    unsigned n = PROCS * TURNS;
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++)
            if (turns[i].end < turns[j].start)
                cr_assert_leq(turns[i].at, turns[j].at, "turn %u returned before %u began", i, j);
    for (unsigned i = 0; i < n; i++) {
        unsigned in_window = 0;
        for (unsigned j = 0; j < n; j++)
            in_window += turns[j].at >= turns[i].at && turns[j].at < turns[i].at + 55 * NS_PER_MS;
        cr_assert_leq(in_window, 5, "the window from turn %u holds %u turns", i, in_window);
    }
    munmap(turns, sizeof(struct turn) * PROCS * TURNS);
}
