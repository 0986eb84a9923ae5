/*
 * test_delete.c - rl_bucket_delete: the name is free at once, stale handles get RL_ENOENT
 * and never decide, the deleted bucket's block is reused, and a delete killed at any point
 * leaves a table where every name resolves to one working bucket or to none.
 */
#include <signal.h>
#include <sys/wait.h>

#include "fixture.h"

TestSuite(delete, .init = fixture_setup, .fini = fixture_teardown, .timeout = 60);

static struct rl_table_info table_info(rl_table *t)
{
    struct rl_table_info i;
    cr_assert_eq(rl_table_info(t, &i), 0);
    return i;
}

Test(delete, the_name_is_free_and_a_stale_handle_gets_enoent)
{
    rl_table *t = table_at(16, 64);
    rl_bucket *old = define(t, "x", "2/1h margin 0", NULL), *b;
    cr_assert_eq(drain(old), 2);
    cr_assert_eq(table_info(t).buckets, 1);
    cr_assert_eq(rl_bucket_delete(old), 0, "%s", rl_errdetail());
    cr_expect_eq(table_info(t).buckets, 0);
    cr_expect_eq(foreach_count(t), 0);
    cr_expect_eq(rl_bucket_lookup(t, "x", &b), RL_ENOENT);
    struct rl_bucket_info info;
    struct rl_policy p = policy_of("5/1h margin 0");
    cr_expect_eq(rl_try_acquire(old, 1, NULL), RL_ENOENT);
    cr_expect(strstr(rl_errdetail(), "was deleted"), "%s", rl_errdetail());
    cr_expect_eq(rl_acquire(old, 1, 1000000, NULL), RL_ENOENT);
    cr_expect_eq(rl_bucket_info(old, &info), RL_ENOENT);
    cr_expect_eq(rl_bucket_reset(old), RL_ENOENT);
    cr_expect_eq(rl_bucket_update(old, &p), RL_ENOENT);
    cr_expect_eq(rl_bucket_delete(old), RL_ENOENT, "deleted twice");
    b = define(t, "x", "5/1h margin 0", NULL);
    cr_expect_neq(b, old, "a new bucket");
    cr_expect_eq(drain(b), 5, "with a full budget and its own rules");
    cr_expect_eq(rl_try_acquire(old, 1, NULL), RL_ENOENT, "the old handle still refuses");
    rl_bucket *again;
    cr_assert_eq(rl_bucket_lookup(t, "x", &again), 0);
    cr_expect_eq(again, b);
    cr_expect_eq(foreach_count(t), 1);
    rl_table_close(t);
}

Test(delete, a_parent_goes_after_its_children)
{
    rl_table *t = table_at(16, 64);
    rl_bucket *p = define(t, "p", "10/1h", NULL), *c = define(t, "p/c", "5/1h", "p");
    cr_expect_eq(rl_bucket_delete(p), RL_EINVAL);
    cr_expect(strstr(rl_errdetail(), "parent of 'p/c'"), "%s", rl_errdetail());
    cr_expect_eq(rl_try_acquire(c, 1, NULL), 0, "nothing changed");
    cr_assert_eq(rl_bucket_delete(c), 0);
    cr_assert_eq(rl_bucket_delete(p), 0);
    cr_expect_eq(foreach_count(t), 0);
    rl_table_close(t);
}

Test(delete, a_template_and_its_tenants)
{
    rl_table *t = table_at(16, 64);
    struct rl_policy p = policy_of("3/1h");
    cr_assert_eq(rl_template_define(t, "ten/*", &p, NULL), 0);
    rl_bucket *tpl, *a, *b;
    cr_assert_eq(rl_bucket_get(t, "ten/a", &a), 0);
    cr_assert_eq(rl_bucket_lookup(t, "ten/*", &tpl), 0);
    cr_assert_eq(rl_bucket_delete(tpl), 0);
    cr_expect_eq(rl_try_acquire(a, 1, NULL), 0, "a tenant stays");
    cr_expect_eq(rl_bucket_get(t, "ten/b", &b), RL_ENOENT, "no template makes new ones");
    rl_table_close(t);
}

/* The deleted bucket's block is retired and serves the next block of its size. */
Test(delete, the_block_is_reused)
{
    rl_table *t = table_at(16, 64);
    define(t, "keep", "9/1h", NULL);
    for (unsigned k = 0; k < 8; k++) {
        rl_bucket *b = define(t, "x", "2/1h margin 0", NULL);
        uint64_t used = table_info(t).arena_used;
        cr_assert_eq(rl_bucket_delete(b), 0);
        if (k > 1)
            cr_expect_eq(table_info(t).arena_used, used, "round %u: no new block", k);
    }
    rl_table_close(t);
}

/* The deleted bucket's block serves another bucket; the stale handle, whose view of that
 * block is cached, still gets RL_ENOENT and never touches the other bucket's words. */
Test(delete, a_stale_handle_never_decides_on_its_reused_block)
{
    rl_table *t = table_at(16, 64);
    rl_bucket *x = define(t, "x", "2/1h margin 0", NULL);
    cr_assert_eq(rl_try_acquire(x, 1, NULL), 0); /* the view is cached now */
    uint64_t ref = atomic_load(&x->rec->policy_off);
    cr_assert_eq(rl_bucket_delete(x), 0);
    rl_bucket *y = define(t, "y", "2/1h margin 0", NULL);
    cr_assert_eq(rl__ref_off(atomic_load(&y->rec->policy_off)), rl__ref_off(ref),
                 "y was given x's block");
    for (unsigned k = 0; k < 5; k++)
        cr_expect_eq(rl_try_acquire(x, 1, NULL), RL_ENOENT);
    cr_expect_eq(drain(y), 2, "y's budget is whole");
    rl_table_close(t);
}

/* A read-only attachment cannot delete. */
Test(delete, read_only_is_refused)
{
    rl_table *t = table_at(16, 64);
    define(t, "x", "2/1h", NULL);
    rl_table *ro = table_open_opts(g_path, RL_OPEN_READONLY, 0, 0);
    rl_bucket *b;
    cr_assert_eq(rl_bucket_lookup(ro, "x", &b), 0);
    cr_expect_eq(rl_bucket_delete(b), RL_EPERM);
    cr_expect_eq(rl_bucket_delete(NULL), RL_EINVAL);
    rl_table_close(ro);
    rl_table_close(t);
}

#define KILL_WORKERS 6
#define KILL_NAMES   8
#define KILL_ROUNDS  300

/* Workers define, use and delete a few names while the parent SIGKILLs them. A worker
 * sees only the outcomes a concurrent delete explains (RL_ENOENT, RL_ELIMITED); never a
 * damaged bucket. */
static void delete_worker(const char *path, atomic_uint *errors)
{
    rl_table *t = table_open_opts(path, 0, 0, 0);
    struct rl_policy p = policy_of("1000/1s margin 0");
    for (unsigned it = 0; it < 200000; it++) {
        char name[16];
        rl_bucket *b;
        snprintf(name, sizeof(name), "d/%u", (unsigned)(random() % KILL_NAMES));
        int rc = rl_bucket_define(t, name, &p, NULL, &b);
        if (rc == RL_ENOENT || rc == RL_EFULL)
            continue;
        if (rc == 0)
            rc = rl_try_acquire(b, 1, NULL);
        if (rc == 0 && random() % 4 == 0)
            rc = rl_bucket_delete(b);
        if (rc != 0 && rc != RL_ENOENT && rc != RL_ELIMITED)
            atomic_fetch_add(errors, 1);
    }
    rl_table_close(t);
    _exit(0);
}

Test(delete, a_killed_delete_leaves_every_name_sound, .timeout = 120)
{
    rl_table *t = table_at(1U << 16, 0);
    atomic_uint *errors = shared_alloc(sizeof(*errors));
    pid_t pids[KILL_WORKERS];
    for (unsigned w = 0; w < KILL_WORKERS; w++)
        if ((pids[w] = fork()) == 0)
            delete_worker(g_path, errors);
    for (unsigned round = 0; round < KILL_ROUNDS; round++) {
        usleep(1000 + (useconds_t)(random() % 5000));
        unsigned w = (unsigned)(random() % KILL_WORKERS);
        kill(pids[w], SIGKILL);
        waitpid(pids[w], NULL, 0);
        if ((pids[w] = fork()) == 0)
            delete_worker(g_path, errors);
    }
    for (unsigned w = 0; w < KILL_WORKERS; w++) {
        kill(pids[w], SIGKILL);
        waitpid(pids[w], NULL, 0);
    }
    cr_expect_eq(atomic_load(errors), 0, "workers saw damaged buckets");
    cr_expect_leq(foreach_count(t), KILL_NAMES, "at most one bucket per name");
    struct rl_policy p = policy_of("1000/1s margin 0");
    for (unsigned k = 0; k < KILL_NAMES; k++) {
        char name[16];
        rl_bucket *b;
        snprintf(name, sizeof(name), "d/%u", k);
        cr_assert_eq(rl_bucket_define(t, name, &p, NULL, &b), 0, "%s: %s", name, rl_errdetail());
        cr_expect_eq(rl_try_acquire(b, 1, NULL), 0, "%s works", name);
        cr_expect_eq(rl_bucket_delete(b), 0, "%s: %s", name, rl_errdetail());
    }
    cr_expect_eq(foreach_count(t), 0);
    rl_table_close(t);
}
