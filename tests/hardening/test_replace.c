/* A table deleted or replaced underneath running processes (documented in README). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "ratelimit.h"

static char path[96];

static rl_table *open_at(const char *p)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    o.path = p;
    cr_assert_eq(rl_table_open(&o, &t), 0, "%s", rl_errdetail());
    return t;
}

static rl_bucket *define(rl_table *t, const char *rules)
{
    struct rl_policy p;
    rl_bucket *b;
    cr_assert_eq(rl_policy_parse(rules, &p, NULL), 0);
    cr_assert_eq(rl_bucket_define(t, "api", &p, NULL, &b), 0, "%s", rl_errdetail());
    return b;
}

static void setup(void)
{
    snprintf(path, sizeof(path), "/dev/shm/rl-test-replace-%ld", (long)getpid());
    unlink(path);
}

static void teardown(void)
{
    unlink(path);
}

TestSuite(replace, .init = setup, .fini = teardown);

Test(replace, deleted_table_keeps_working_for_its_users_and_is_reported)
{
    rl_table *t = open_at(path), *again = open_at(path);
    rl_bucket *b = define(t, "2/1h"), *b2;
    cr_assert_eq(rl_table_check(t), 0);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rl_table_check(t), RL_ESTALE);
    cr_assert(strstr(rl_errdetail(), "deleted") != NULL, "%s", rl_errdetail());
    /* Processes that have it mapped still share one budget. */
    cr_assert_eq(rl_bucket_lookup(again, "api", &b2), 0);
    cr_assert_eq(rl_try_acquire(b, 1, NULL), 0);
    cr_assert_eq(rl_try_acquire(b2, 1, NULL), 0);
    cr_assert_eq(rl_try_acquire(b, 1, NULL), RL_ELIMITED);
    /* A newcomer gets a new, empty table: the split the check warns about. */
    rl_table *fresh = open_at(path);
    rl_bucket *b3;
    cr_assert_eq(rl_bucket_lookup(fresh, "api", &b3), RL_ENOENT);
    cr_assert_eq(rl_table_check(fresh), 0);
    rl_table_close(fresh);
    rl_table_close(again);
    rl_table_close(t);
}

Test(replace, replaced_table_is_reported)
{
    char other[128];
    snprintf(other, sizeof(other), "%s.other", path);
    rl_table *t = open_at(path), *u = open_at(other);
    define(t, "2/1h");
    cr_assert_eq(rename(other, path), 0);
    cr_assert_eq(rl_table_check(t), RL_ESTALE);
    cr_assert(strstr(rl_errdetail(), "replaced") != NULL, "%s", rl_errdetail());
    cr_assert_eq(rl_table_check(u), RL_ESTALE, "u's own path (.other) is gone");
    rl_table_close(u);
    rl_table_close(t);
}

Test(replace, costs_beyond_any_rule_are_refused_at_the_boundary)
{
    rl_table *t = open_at(path);
    const char *rules[] = {"5/1h", "5/1h burst 5", "5/1h fixed"};
    for (int k = 0; k < 3; k++) {
        struct rl_policy p;
        rl_bucket *b;
        char name[8];
        snprintf(name, sizeof(name), "k%d", k);
        cr_assert_eq(rl_policy_parse(rules[k], &p, NULL), 0);
        cr_assert_eq(rl_bucket_define(t, name, &p, NULL, &b), 0);
        cr_assert_eq(rl_try_acquire(b, 5, NULL), 0, "%s: cost N fits", rules[k]);
        cr_assert_eq(rl_try_acquire(b, 6, NULL), RL_ECOST, "%s: cost N+1 never fits", rules[k]);
        cr_assert_eq(rl_try_acquire(b, UINT32_MAX, NULL), RL_ECOST, "%s", rules[k]);
        cr_assert_eq(rl_acquire(b, UINT32_MAX, 1000, NULL), RL_ECOST, "%s", rules[k]);
        cr_assert_eq(rl_try_acquire(b, 0, NULL), RL_EINVAL);
    }
    rl_table_close(t);
}
