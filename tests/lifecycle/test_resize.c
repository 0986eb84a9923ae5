/*
 * test_resize.c - rl_table_resize: a larger table with every bucket's state, renamed over
 * the path; the old table refuses from then on, and processes that follow the new file
 * never together admit more than the rules allow.
 */
#include <signal.h>
#include <sys/wait.h>

#include "fixture.h"

TestSuite(resize, .init = fixture_setup, .fini = fixture_teardown, .timeout = 60);

/* Units taken from each bucket, and what is left of its tightest rule afterwards (b0 is also
 * the parent of a child that takes 2). */
static const unsigned taken[] = {1, 2, 3, 1}, left[] = {2, 3, 2, 2};
static const char *const rules[] = {"5/1h burst 5 margin 0", "5/1h margin 0", "5/1h fixed margin 0",
                                    "5/1h, 3/1h fixed margin 0"};

Test(resize, every_bucket_keeps_its_usage)
{
    rl_table *t = table_at(8, 0);
    rl_bucket *b[4];
    for (unsigned k = 0; k < 4; k++) {
        char name[8];
        snprintf(name, sizeof(name), "b%u", k);
        b[k] = define(t, name, rules[k], NULL);
        for (unsigned u = 0; u < taken[k]; u++)
            cr_assert_eq(rl_try_acquire(b[k], 1, NULL), 0);
    }
    rl_bucket *c = define(t, "b0/child", "4/1h margin 0", "b0");
    cr_assert_eq(rl_try_acquire(c, 2, NULL), 0);
    struct rl_policy tp = policy_of("2/1h margin 0");
    cr_assert_eq(rl_template_define(t, "ten/*", &tp, NULL), 0);
    rl_bucket *ten;
    cr_assert_eq(rl_bucket_get(t, "ten/a", &ten), 0);
    cr_assert_eq(rl_try_acquire(ten, 1, NULL), 0);
    unsigned copied = 0;
    cr_assert_eq(rl_table_resize(t, 64, 0, &copied), 0, "%s", rl_errdetail());
    cr_expect_eq(copied, 7);
    struct rl_decision d;
    cr_expect_eq(rl_try_acquire(b[1], 1, &d), RL_ELIMITED, "the old table refuses");
    cr_expect_gt(d.wait_ns, 0);
    cr_expect(strstr(rl_errdetail(), "resized"), "%s", rl_errdetail());
    cr_expect_eq(rl_bucket_reset(b[1]), RL_ESTALE);
    /* A 429 heard now must reach the new file: the old one refuses to record it. */
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "60";
    cr_expect_eq(rl_report(b[1], &r, NULL), RL_ESTALE, "%s", rl_errdetail());
    cr_expect_eq(b[1]->rec->cooldown_until, 0, "nothing written in the old file");
    cr_expect_eq(rl_table_check(t), RL_ESTALE, "the path names the new file");
    cr_expect_eq(rl_table_resize(t, 64, 0, NULL), RL_ESTALE,
                 "a resized table is never copied again");
    rl_table *n = table_open_opts(g_path, 0, 0, 0);
    struct rl_table_info ti;
    cr_assert_eq(rl_table_info(n, &ti), 0);
    cr_expect_eq(ti.capacity, 64);
    cr_expect_eq(ti.buckets, 7);
    for (unsigned k = 0; k < 4; k++) {
        char name[8];
        rl_bucket *x;
        snprintf(name, sizeof(name), "b%u", k);
        cr_assert_eq(rl_bucket_lookup(n, name, &x), 0);
        struct rl_bucket_info i = info_of(x);
        cr_expect_eq(i.counters.admitted, taken[k] + (k == 0), "%s's count", name);
        cr_expect_eq(drain(x), left[k], "%s: what was left", name);
    }
    rl_bucket *x;
    cr_assert_eq(rl_bucket_lookup(n, "b0/child", &x), 0);
    cr_expect_str_eq(rl_bucket_name(rl_bucket_parent(x)), "b0");
    cr_assert_eq(rl_bucket_get(n, "ten/a", &x), 0);
    cr_expect_eq(drain(x), 1, "the tenant's usage");
    cr_assert_eq(rl_bucket_get(n, "ten/b", &x), 0, "the template works");
    cr_expect_eq(drain(x), 2);
    rl_table_close(n);
    rl_table_close(t);
}

Test(resize, too_small_or_read_only_changes_nothing)
{
    rl_table *t = table_at(8, 0);
    rl_bucket *b = define(t, "a", "3/1h margin 0", NULL);
    define(t, "b", "3/1h", NULL);
    cr_expect_eq(rl_table_resize(t, 1, 0, NULL), RL_EINVAL);
    rl_table *ro = table_open_opts(g_path, RL_OPEN_READONLY, 0, 0);
    cr_expect_eq(rl_table_resize(ro, 64, 0, NULL), RL_EPERM);
    rl_table_close(ro);
    cr_expect_eq(rl_try_acquire(b, 1, NULL), 0, "still working");
    cr_expect_eq(rl_table_check(t), 0, "still the same file");
    rl_table_close(t);
}

#define WORKERS 4
#define LOG_CAP 200000
#define N       20
#define T_NS    100000000ULL

struct shared_log {
    atomic_uint n;
    atomic_uint stop;
    atomic_uint errors;
    uint64_t at[LOG_CAP];
};

/* Take units from "s" (sliding 20/100ms), logging every admission; look for a new file at
 * the path every 30 ms, as rl_table_reopen_if_replaced does every second. */
static void worker(const char *path, struct shared_log *log)
{
    rl_table *t = table_open_opts(path, 0, 0, 0);
    rl_bucket *b;
    if (rl_bucket_lookup(t, "s", &b) < 0)
        _exit(3);
    uint64_t checked = rl_now_ns();
    for (unsigned it = 0; it < 5000000 && !atomic_load(&log->stop); it++) {
        struct rl_decision d;
        if (rl_now_ns() - checked > 30000000ULL) {
            checked = rl_now_ns();
            if (rl_table_check(t) == RL_ESTALE) {
                rl_table_close(t);
                t = table_open_opts(path, 0, 0, 0);
                if (rl_bucket_lookup(t, "s", &b) < 0)
                    atomic_fetch_add(&log->errors, 1);
            }
        }
        int rc = rl_try_acquire(b, 1, &d);
        if (rc == 0) {
            unsigned i = atomic_fetch_add(&log->n, 1);
            if (i < LOG_CAP)
                log->at[i] = d.at_ns;
        } else if (rc != RL_ELIMITED) {
            atomic_fetch_add(&log->errors, 1);
        }
    }
    rl_table_close(t);
    _exit(0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Before: no way to grow a table but to recreate it, forgetting every bucket's usage. Now
 * workers that follow the new file never admit more than 20 in any 100 ms, across three
 * resizes in a row. */
Test(resize, no_over_admission_across_the_switch)
{
    rl_table *t = table_at(8, 0);
    define(t, "s", "20/100ms margin 0", NULL);
    struct shared_log *log = shared_alloc(sizeof(*log));
    pid_t pids[WORKERS];
    for (unsigned w = 0; w < WORKERS; w++)
        if ((pids[w] = fork()) == 0)
            worker(g_path, log);
    uint32_t capacity = 16;
    for (unsigned r = 0; r < 3; r++) {
        usleep(150000);
        cr_assert_eq(rl_table_resize(t, capacity, 0, NULL), 0, "%s", rl_errdetail());
        rl_table_close(t);
        t = table_open_opts(g_path, 0, 0, 0);
        capacity *= 2;
    }
    usleep(150000);
    atomic_store(&log->stop, 1);
    wait_children(pids, WORKERS);
    cr_expect_eq(atomic_load(&log->errors), 0);
    unsigned n = atomic_load(&log->n);
    cr_assert_lt(n, LOG_CAP);
    cr_expect_gt(n, 2 * N, "admissions on both sides of the switches");
    qsort(log->at, n, sizeof(log->at[0]), cmp_u64);
    unsigned over = 0;
    for (unsigned i = 0; i + N < n; i++)
        over += log->at[i + N] - log->at[i] < T_NS;
    cr_expect_eq(over, 0, "windows of 100 ms holding more than 20 of %u admissions", n);
    struct rl_table_info ti;
    cr_assert_eq(rl_table_info(t, &ti), 0);
    cr_expect_eq(ti.capacity, 64);
    rl_table_close(t);
}

/* A resize killed after its claim leaves the table refusing, never admitting; resizing
 * again takes the dead resizer's claim over and finishes the job. One claimed by a live
 * process is refused. */
Test(resize, a_killed_resize_is_finished_by_the_next)
{
    rl_table *t = table_at(8, 0);
    rl_bucket *b = define(t, "a", "5/1h margin 0", NULL);
    cr_assert_eq(rl_try_acquire(b, 2, NULL), 0);
    atomic_store(&t->hdr->moved, (uint64_t)getpid());
    cr_expect_eq(rl_table_resize(t, 16, 0, NULL), RL_EEXIST, "a live resizer's claim");
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    atomic_store(&t->hdr->moved, (uint64_t)dead); /* claimed, then killed */
    cr_expect_eq(rl_try_acquire(b, 1, NULL), RL_ELIMITED, "refused meanwhile");
    cr_assert_eq(rl_table_resize(t, 16, 0, NULL), 0, "%s", rl_errdetail());
    rl_table *n = table_open_opts(g_path, 0, 0, 0);
    rl_bucket *x;
    cr_assert_eq(rl_bucket_lookup(n, "a", &x), 0);
    cr_expect_eq(drain(x), 3, "the usage from before the killed resize");
    rl_table_close(n);
    rl_table_close(t);
}

static struct rl_table_space space_of(rl_table *t)
{
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    cr_assert_eq(rl_table_space(t, &sp), 0);
    return sp;
}

/* Each new name takes one index slot; deleted names leave tombstones, so churn of new
 * names uses up the empty slots; a resize to the same capacity rebuilds the index. */
Test(resize, rebuilds_an_index_that_churn_filled_with_tombstones)
{
    rl_table *t = table_at(8, 0);
    struct rl_table_space sp = space_of(t);
    cr_expect_eq(sp.index_empty, sp.index_slots, "a new table: every slot empty");
    define(t, "keep0", "5/1h", NULL);
    define(t, "keep1", "5/1h", NULL);
    cr_expect_eq(space_of(t).index_empty, sp.index_slots - 2, "one slot per new name");
    unsigned churned = 0;
    while (space_of(t).index_empty >= sp.index_slots / 4 && churned < 100000) {
        char name[16];
        snprintf(name, sizeof(name), "gone%u", churned++);
        cr_assert_eq(rl_bucket_delete(define(t, name, "5/1h", NULL)), 0);
    }
    cr_assert_lt(space_of(t).index_empty, sp.index_slots / 4, "churn used the empty slots");
    cr_assert_eq(rl_table_resize(t, 8, 0, NULL), 0, "%s", rl_errdetail());
    rl_table *n = table_open_opts(g_path, 0, 0, 0);
    struct rl_table_space after = space_of(n);
    cr_expect_eq(after.index_slots, sp.index_slots);
    cr_expect_eq(after.index_empty, sp.index_slots - 2, "only the two live names are left");
    rl_table_close(n);
    rl_table_close(t);
}
