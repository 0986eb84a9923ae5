/* A table deleted or replaced underneath running processes (documented in README). */
#include "fixture.h"

static rl_table *open_at(const char *p)
{
    return table_open_opts(p, RL_OPEN_CREATE, 1024, 0);
}

TestSuite(replace, .init = fixture_setup, .fini = fixture_teardown);

Test(replace, deleted_table_keeps_working_for_its_users_and_is_reported)
{
    rl_table *t = open_at(g_path), *again = open_at(g_path);
    rl_bucket *b = define(t, "api", "2/1h", NULL), *b2;
    cr_assert_eq(rl_table_check(t), 0);
    cr_assert_eq(unlink(g_path), 0);
    cr_assert_eq(rl_table_check(t), RL_ESTALE);
    cr_assert(strstr(rl_errdetail(), "deleted") != NULL, "%s", rl_errdetail());
    /* Processes that have it mapped still share one budget. */
    cr_assert_eq(rl_bucket_lookup(again, "api", &b2), 0);
    cr_assert_eq(rl_try_acquire(b, 1, NULL), 0);
    cr_assert_eq(rl_try_acquire(b2, 1, NULL), 0);
    cr_assert_eq(rl_try_acquire(b, 1, NULL), RL_ELIMITED);
    /* A newcomer gets a new, empty table: the split the check warns about. */
    rl_table *fresh = open_at(g_path);
    rl_bucket *b3;
    cr_assert_eq(rl_bucket_lookup(fresh, "api", &b3), RL_ENOENT);
    cr_assert_eq(rl_table_check(fresh), 0);
    rl_table_close(fresh);
    rl_table_close(again);
    rl_table_close(t);
}

Test(replace, replaced_table_is_reported)
{
    const char *other = path_with(".other");
    rl_table *t = open_at(g_path), *u = open_at(other);
    define(t, "api", "2/1h", NULL);
    cr_assert_eq(rename(other, g_path), 0);
    cr_assert_eq(rl_table_check(t), RL_ESTALE);
    cr_assert(strstr(rl_errdetail(), "replaced") != NULL, "%s", rl_errdetail());
    cr_assert_eq(rl_table_check(u), RL_ESTALE, "u's own path (.other) is gone");
    rl_table_close(u);
    rl_table_close(t);
}

/* Call rl_table_reopen_if_replaced until it reports something (at most 5 s: it checks at
 * most once a second). */
static int reopen_soon(rl_table *t, rl_table **fresh)
{
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = rl_table_reopen_if_replaced(t, fresh);
        if (rc == 0) {
            cr_assert_null(*fresh);
            usleep(50000);
        }
    }
    return rc;
}

Test(replace, reopen_if_replaced_follows_the_path)
{
    const char *other = path_with(".other");
    rl_table *t = open_at(g_path), *fresh = t;
    define(t, "api", "2/1h", NULL);
    cr_assert_eq(rl_table_reopen_if_replaced(t, &fresh), 0, "still the same file");
    cr_assert_null(fresh);
    /* Replaced: the file the path names now, with its buckets. */
    rl_table *u = open_at(other);
    define(u, "web", "5/1s", NULL);
    cr_assert_eq(rename(other, g_path), 0);
    cr_assert_eq(reopen_soon(t, &fresh), 1, "%s", rl_errdetail());
    rl_bucket *b;
    cr_assert_eq(rl_bucket_lookup(fresh, "web", &b), 0);
    cr_assert_eq(rl_table_check(fresh), 0);
    rl_table_close(t);
    rl_table_close(u);
    /* Deleted: made again, as `fresh` was opened with RL_OPEN_CREATE, empty. */
    cr_assert_eq(unlink(g_path), 0);
    rl_table *again = NULL;
    cr_assert_eq(reopen_soon(fresh, &again), 1, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_lookup(again, "web", &b), RL_ENOENT);
    cr_assert_eq(rl_table_check(again), 0);
    rl_table_close(fresh);
    /* Opened read-only and deleted: nothing to open. */
    rl_table *ro = table_open_opts(g_path, RL_OPEN_READONLY, 0, 0), *none = NULL;
    cr_assert_eq(unlink(g_path), 0);
    cr_assert_eq(reopen_soon(ro, &none), RL_ENOENT, "%s", rl_errdetail());
    cr_assert_null(none);
    rl_table_close(ro);
    rl_table_close(again);
}
