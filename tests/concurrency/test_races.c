/*
 * test_races.c - races made deterministic: the test is linked with -Wl,--wrap for the two
 * functions a decision calls between its loads and its CAS (rl__gcra_tat_after on the GCRA fast
 * path, rl__gcra_next_word on the general path), and runs another "process's" action right
 * there, once. Each race is run on a lone-GCRA bucket (fast path) and on the same rule next
 * to a rule that never binds (general path): both must decide alike.
 */
#include "fixture.h"
#include "rule.h"

uint64_t __real_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
uint64_t __real_rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
uint64_t __wrap_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
uint64_t __wrap_rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);

static void (*race)(void); /* run once, before the next commit */
static rl_bucket *target;

static void run_race(void)
{
    void (*r)(void) = race;
    race = NULL; /* the race's own decisions commit normally */
    if (r)
        r();
}

uint64_t __wrap_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns)
{
    run_race();
    return __real_rl__gcra_tat_after(tat, d, cost, interval_ns);
}

uint64_t __wrap_rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    run_race();
    return __real_rl__gcra_next_word(c, d, cost);
}

TestSuite(races, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30);

static const char *const paths[][2] = {
    {"fast", "10/1h burst 10 margin 0"},
    {"general", "10/1h burst 10, 1000000/1h burst 1000000 margin 0"},
};

/* A rival admission (so our CAS fails and we retry), then a 429 that pauses the bucket. */
static void rival_then_429(void)
{
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "60";
    cr_assert_eq(rl_try_acquire(target, 1, NULL), 0, "the rival is admitted");
    cr_assert_eq(rl_report(target, &r, NULL), 0);
}

Test(races, a_429_reported_before_a_lost_cas_race_is_honoured_on_the_retry)
{
    rl_table *t = table_create(8);
    for (unsigned k = 0; k < 2; k++) {
        target = define(t, paths[k][0], paths[k][1], NULL);
        race = rival_then_429;
        struct rl_decision d;
        int rc = rl_try_acquire(target, 1, &d);
        cr_expect_null(race, "%s: the race ran", paths[k][0]);
        cr_expect_eq(rc, RL_ELIMITED, "%s path: admitted during a 60 s cool-down (%s)", paths[k][0],
                     rl_err_name(rc));
        cr_expect_eq(info_of(target).counters.admitted, 1, "%s: only the rival", paths[k][0]);
    }
    rl_table_close(t);
}

/* A rival takes 2 units, then the bucket switches to a burst of 2: its usage is carried. */
static void rival_then_switch(void)
{
    struct rl_policy tight = policy_of("2/1h burst 2 margin 0");
    cr_assert_eq(rl_try_acquire(target, 2, NULL), 0, "the rival is admitted");
    cr_assert_eq(rl_bucket_update(target, &tight), 0);
}

Test(races, a_rule_switch_before_the_cas_decides_under_the_new_rules)
{
    rl_table *t = table_create(8);
    for (unsigned k = 0; k < 2; k++) {
        target = define(t, paths[k][0], paths[k][1], NULL);
        race = rival_then_switch;
        int rc = rl_try_acquire(target, 1, NULL);
        cr_expect_null(race, "%s: the race ran", paths[k][0]);
        cr_expect_eq(rc, RL_ELIMITED, "%s path: the carried 2 units fill the new burst of 2 (%s)",
                     paths[k][0], rl_err_name(rc));
        cr_expect_eq(info_of(target).counters.admitted, 1, "%s: only the rival", paths[k][0]);
    }
    rl_table_close(t);
}
