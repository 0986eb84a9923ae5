/*
 * test_auto_expire.c - templates with an expiry (rl_template_define_expire): their tenants
 * carry it, go once idle through the creation of other tenants alone, a used tenant never
 * does, and SIGKILLs during the automatic reclaim never let a tenant's name admit more than
 * its rules allow.
 */
#include <signal.h>
#include <sys/wait.h>

#include "fixture.h"

TestSuite(auto_expire, .init = fixture_setup, .fini = fixture_teardown, .timeout = 90);

#define EXPIRE_NS (20 * NS_PER_MS)
#define HANG_NS   (60 * NS_PER_SEC) /* a loop waiting for expiries gives up after this */

static uint64_t expiry_of(const rl_bucket *b)
{
    uint64_t ns = UINT64_MAX;
    cr_assert_eq(rl_bucket_expiry(b, &ns), 0, "%s", rl_errdetail());
    return ns;
}

static bool deleted(const rl_bucket *b)
{
    uint64_t ns;
    return rl_bucket_expiry(b, &ns) == RL_ENOENT;
}

static uint64_t expired_auto(const rl_table *t)
{
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    cr_assert_eq(rl_table_space(t, &sp), 0);
    return sp.expired_auto;
}

Test(auto_expire, tenants_carry_the_expiry_and_switches_keep_it)
{
    rl_table *t = table_at(64, 0);
    struct rl_policy p = policy_of("5/20ms margin 0"), q = policy_of("7/1s");
    rl_bucket *tpl, *ten, *plain = define(t, "plain", "5/s", NULL);
    cr_expect_eq(rl_template_define_expire(t, "ten/*", &p, NULL, RL_EXPIRE_MAX_NS + 1), RL_EINVAL);
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, 1500000), 0);
    cr_assert_eq(rl_bucket_lookup(t, "ten/*", &tpl), 0);
    cr_expect_eq(expiry_of(tpl), 2 * NS_PER_MS, "kept in whole ms, rounded up");
    cr_expect_eq(rl_template_define_expire(t, "ten/*", &p, NULL, 2 * NS_PER_MS), 0, "the same");
    cr_expect_eq(rl_template_define(t, "ten/*", &p, NULL), RL_EEXIST, "another expiry");
    cr_assert_eq(rl_bucket_get(t, "ten/a", &ten), 0);
    cr_expect_eq(expiry_of(ten), 2 * NS_PER_MS, "the tenant carries its template's expiry");
    cr_expect_eq(expiry_of(plain), 0);
    cr_assert_eq(rl_bucket_update(ten, &q), 0);
    cr_expect_eq(expiry_of(ten), 2 * NS_PER_MS, "rl_bucket_update keeps it");
    cr_assert_eq(rl_bucket_update_expire(tpl, &p, EXPIRE_NS), 0);
    cr_expect_eq(expiry_of(tpl), EXPIRE_NS);
    cr_assert_eq(rl_bucket_update_expire(tpl, &p, 0), 0);
    cr_expect_eq(expiry_of(tpl), 0, "0: never");
    bool due = true;
    cr_expect_eq(rl_bucket_expire_due(tpl, false, &due), 0);
    cr_expect(!due, "a template is never due");
    cr_expect_eq(rl_bucket_expire_due(plain, false, &due), 0);
    cr_expect(!due, "nor a bucket without an expiry");
    rl_table_close(t);
}

Test(auto_expire, due_after_the_longest_window_plus_the_expiry)
{
    rl_table *t = table_at(64, 0);
    struct rl_policy p = policy_of("5/20ms, 50/200ms margin 0");
    rl_bucket *ten;
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, EXPIRE_NS), 0);
    cr_assert_eq(rl_bucket_get(t, "ten/a", &ten), 0);
    cr_assert_eq(rl_try_acquire(ten, 1, NULL), 0);
    uint64_t used = rl_now_ns();
    bool due = true;
    cr_expect_eq(rl_bucket_expire_due(ten, true, &due), 0);
    cr_expect(!due || rl_now_ns() - used >= 220 * NS_PER_MS, "used just now");
    do {
        usleep(5000);
        cr_assert_eq(rl_bucket_expire_due(ten, true, &due), 0);
    } while (!due && rl_now_ns() - used < HANG_NS);
    cr_expect_geq(rl_now_ns() - used, 220 * NS_PER_MS, "not before 200 ms + 20 ms idle");
    cr_expect(!deleted(ten), "a dry run deletes nothing");
    cr_assert_eq(rl_bucket_expire_due(ten, false, &due), 0);
    cr_expect(due && deleted(ten));
    cr_expect_eq(expired_auto(t), 1);
    rl_table_close(t);
}

/* A tenant made and not used yet is not due before its expiry has passed since it was made:
 * a process that asks rl_bucket_get for it and decides a moment later finds it there. (An
 * unused block counts nothing, so without its making instant it was due at once.) */
Test(auto_expire, a_tenant_just_made_is_not_due)
{
    rl_table *t = table_at(64, 0);
    struct rl_policy p = policy_of("5/1ms margin 0");
    rl_bucket *ten;
    bool due = true;
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, 3600 * NS_PER_MS * 1000), 0);
    cr_assert_eq(rl_bucket_get(t, "ten/fresh", &ten), 0);
    usleep(5000); /* its 1 ms window long past: only its making keeps it */
    cr_assert_eq(rl_bucket_expire_due(ten, false, &due), 0);
    cr_expect(!due && !deleted(ten), "a tenant made just now, not yet used, stays");
    cr_expect_eq(rl_try_acquire(ten, 1, NULL), 0);
    rl_table_close(t);
}

#define QUIET 4

/* Quiet tenants go through the creation of other tenants alone; a tenant used within its
 * window plus the expiry stays; every tenant made again has its full budget. */
Test(auto_expire, idle_tenants_go_through_other_creations_alone)
{
    rl_table *t = table_at(1U << 14, 0);
    struct rl_policy p = policy_of("5/20ms margin 0"), lasting = policy_of("5/1h margin 0");
    rl_bucket *quiet[QUIET], *busy, *again;
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, EXPIRE_NS), 0);
    cr_assert_eq(rl_template_define_expire(t, "long/*", &lasting, NULL, EXPIRE_NS), 0);
    for (unsigned i = 0; i < QUIET; i++) {
        char name[32];
        snprintf(name, sizeof(name), "ten/quiet%u", i);
        cr_assert_eq(rl_bucket_get(t, name, &quiet[i]), 0);
        cr_assert_eq(rl_try_acquire(quiet[i], 1, NULL), 0);
    }
    cr_assert_eq(rl_bucket_get(t, "long/busy", &busy), 0);
    uint64_t start = rl_now_ns();
    unsigned made = 0, gone = 0;
    while (gone < QUIET && rl_now_ns() - start < HANG_NS && made < 10000) {
        char name[32];
        rl_bucket *b;
        int rc = rl_try_acquire(busy, 1, NULL); /* used within its hour: never due */
        cr_assert(rc == 0 || rc == RL_ELIMITED, "busy: %s", rl_err_name(rc));
        snprintf(name, sizeof(name), "ten/new%u", made++);
        cr_assert_eq(rl_bucket_get(t, name, &b), 0, "%s", rl_errdetail());
        usleep(1000);
        gone = 0;
        for (unsigned i = 0; i < QUIET; i++)
            gone += deleted(quiet[i]);
    }
    cr_assert_eq(gone, QUIET, "quiet tenants expired: %u of %u after %u creations", gone, QUIET,
                 made);
    cr_expect_geq(rl_now_ns() - start, EXPIRE_NS, "none before its idle time");
    cr_expect(!deleted(busy), "a used tenant stays");
    cr_expect_geq(expired_auto(t), QUIET);
    cr_expect_eq(rl_try_acquire(quiet[0], 1, NULL), RL_ENOENT, "the handle is stale");
    cr_assert_eq(rl_bucket_get(t, "ten/quiet0", &again), 0);
    cr_expect_eq(drain(again), 5, "made again, with the full budget");
    rl_table_close(t);
}

#define TENANTS  3
#define WORKERS  4
#define EXPIRERS 2
#define LOG_CAP  400000
#define N        5
#define T_NS     (20 * NS_PER_MS)

struct adm_log {
    atomic_uint n;
    atomic_uint errors;
    uint64_t deadline;
    struct {
        uint64_t at;
        unsigned tenant;
    } e[LOG_CAP];
};

/* Get random tenants, take units in bursts with pauses (so that tenants go idle and
 * expire), log every admission; a stale handle is got again. Each round also makes a
 * tenant used once, as tenants come and go: each creation sweeps. */
static void worker(const char *path, struct adm_log *log)
{
    rl_table *t = table_open_opts(path, 0, 0, 0);
    rl_bucket *h[TENANTS] = {0}, *once;
    for (unsigned round = 0; rl_now_ns() < log->deadline; round++) {
        unsigned k = (unsigned)(random() % TENANTS);
        char name[32];
        snprintf(name, sizeof(name), "ten/once.%d.%u", (int)getpid(), round);
        if (rl_bucket_get(t, name, &once) < 0 || rl_try_acquire(once, 1, NULL) < 0)
            atomic_fetch_add(&log->errors, 1);
        snprintf(name, sizeof(name), "ten/%u", k);
        for (unsigned burst = 0; burst < 20; burst++) {
            struct rl_decision d;
            if (!h[k] && rl_bucket_get(t, name, &h[k]) < 0) {
                atomic_fetch_add(&log->errors, 1);
                break;
            }
            int rc = rl_try_acquire(h[k], 1, &d);
            if (rc == 0) {
                unsigned i = atomic_fetch_add(&log->n, 1);
                if (i < LOG_CAP)
                    log->e[i].at = d.at_ns, log->e[i].tenant = k;
            } else if (rc == RL_ENOENT) {
                h[k] = NULL;
            } else if (rc != RL_ELIMITED) {
                atomic_fetch_add(&log->errors, 1);
            }
        }
        usleep((useconds_t)(random() % 20000));
    }
    rl_table_close(t);
    _exit(0);
}

/* `ratelimitctl expire`'s path, on the named tenants: rl_bucket_expire_due. */
static void expirer(const char *path, struct adm_log *log)
{
    rl_table *t = table_open_opts(path, 0, 0, 0);
    while (rl_now_ns() < log->deadline) {
        char name[16];
        rl_bucket *b;
        snprintf(name, sizeof(name), "ten/%u", (unsigned)(random() % TENANTS));
        if (rl_bucket_lookup(t, name, &b) == 0) {
            int rc = rl_bucket_expire_due(b, false, NULL);
            if (rc && rc != RL_ENOENT)
                atomic_fetch_add(&log->errors, 1);
        }
        usleep((useconds_t)(random() % 2000));
    }
    rl_table_close(t);
    _exit(0);
}

static void start(unsigned w, struct adm_log *log)
{
    if (w < WORKERS)
        worker(g_path, log);
    expirer(g_path, log);
}

static int by_instant(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Three tenants of "5/20ms margin 0 expire 20ms": whatever automatic expiries (by the sweeps
 * of creations, and by expirers calling rl_bucket_expire_due on them) and kills do, no 20 ms
 * window of a tenant's name holds more than 5 admissions. Records are not reused: the
 * capacity covers every tenant made. */
Test(auto_expire, automatic_expiry_under_kills_never_over_admits, .timeout = 120)
{
    rl_table *t = table_at(1U << 15, 0);
    struct rl_policy p = policy_of("5/20ms margin 0");
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, EXPIRE_NS), 0);
    struct adm_log *log = shared_alloc(sizeof(*log));
    log->deadline = rl_now_ns() + 5 * NS_PER_SEC;
    pid_t pids[WORKERS + EXPIRERS];
    for (unsigned w = 0; w < WORKERS + EXPIRERS; w++)
        if ((pids[w] = fork()) == 0)
            start(w, log);
    unsigned kills = 0;
    while (rl_now_ns() < log->deadline && kills < 2000) {
        usleep(10000 + (useconds_t)(random() % 40000));
        unsigned w = (unsigned)(random() % (WORKERS + EXPIRERS));
        kill(pids[w], SIGKILL);
        waitpid(pids[w], NULL, 0);
        kills++;
        if ((pids[w] = fork()) == 0)
            start(w, log);
    }
    wait_children(pids, WORKERS + EXPIRERS);
    unsigned n = atomic_load(&log->n);
    cr_assert_lt(n, LOG_CAP);
    cr_expect_eq(atomic_load(&log->errors), 0);
    cr_expect_gt(expired_auto(t), 10, "tenants expired automatically: %llu",
                 (unsigned long long)expired_auto(t));
    unsigned over = 0;
    static uint64_t at[LOG_CAP];
    for (unsigned k = 0; k < TENANTS; k++) {
        unsigned m = 0;
        for (unsigned i = 0; i < n; i++)
            if (log->e[i].tenant == k)
                at[m++] = log->e[i].at;
        qsort(at, m, sizeof(at[0]), by_instant);
        for (unsigned i = 0; i + N < m; i++)
            over += at[i + N] - at[i] < T_NS;
    }
    cr_expect_eq(over, 0, "windows holding more than 5 of %u admissions", n);
    rl_table_close(t);
}

/* A fixed window's word may count a later window a waiter reserved: that window's units are
 * counted, and the current window's leftover is forfeited. Such a tenant is not idle. */
Test(auto_expire, a_reservation_ahead_keeps_a_fixed_window_tenant)
{
    rl_table *t = table_at(64, 0);
    struct rl_policy p = policy_of("2/1s fixed margin 0");
    rl_bucket *ten;
    struct rl_decision d;
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, 1 * NS_PER_MS), 0);
    cr_assert_eq(rl_bucket_get(t, "ten/a", &ten), 0);
    cr_assert_eq(drain(ten), 2);
    cr_assert_eq(rl_reserve(ten, 2, 2 * NS_PER_SEC, &d), 0, "%s", rl_errdetail());
    cr_assert_gt(d.at_ns, rl_now_ns(), "reserved in the next window");
    bool expired = true;
    cr_assert_eq(rl_bucket_expire(ten, 0, &expired), 0);
    cr_expect(!expired, "the reserved window is counted");
    bool due = true;
    cr_assert_eq(rl_bucket_expire_due(ten, false, &due), 0);
    cr_expect(!due && !deleted(ten));
    rl_table_close(t);
}

/* A tenant named as a parent stays while it has children; the bucket made before every
 * parent, and a plain one, are looked at without a walk of the table (parents_below). */
Test(auto_expire, a_tenant_with_children_stays)
{
    rl_table *t = table_at(64, 0);
    struct rl_policy p = policy_of("5/20ms margin 0");
    rl_bucket *ten, *q;
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, 1 * NS_PER_MS), 0);
    cr_assert_eq(rl_bucket_get(t, "ten/p", &ten), 0);
    rl_bucket *child = define(t, "kid", "5/s", "ten/p");
    cr_assert_eq(rl_bucket_get(t, "ten/q", &q), 0, "its sweep may examine ten/p: it stays");
    usleep(30000);
    bool due = true;
    cr_assert_eq(rl_bucket_expire_due(ten, true, &due), 0);
    cr_expect(!due, "a dry run says so too");
    cr_assert_eq(rl_bucket_expire_due(ten, false, &due), 0);
    cr_expect(!due && !deleted(ten), "a parent stays");
    cr_assert_eq(rl_bucket_delete(child), 0);
    cr_assert_eq(rl_bucket_expire_due(q, false, &due), 0);
    cr_expect(due && deleted(q), "a tenant above every parent goes");
    cr_assert_eq(rl_bucket_expire_due(ten, false, &due), 0);
    cr_expect(due && deleted(ten), "once its child is gone, so does the parent");
    rl_table_close(t);
}

Test(auto_expire, a_resize_keeps_the_expiry)
{
    rl_table *t = table_at(16, 0), *n;
    struct rl_policy p = policy_of("5/20ms margin 0");
    rl_bucket *ten, *tpl;
    unsigned copied = 0;
    cr_assert_eq(rl_template_define_expire(t, "ten/*", &p, NULL, NS_PER_H), 0);
    cr_assert_eq(rl_bucket_get(t, "ten/a", &ten), 0);
    cr_assert_eq(rl_table_resize(t, 64, 0, &copied), 0, "%s", rl_errdetail());
    cr_expect_eq(copied, 2);
    rl_table_close(t);
    n = table_open_opts(g_path, 0, 0, 0);
    cr_assert_eq(rl_bucket_lookup(n, "ten/*", &tpl), 0);
    cr_assert_eq(rl_bucket_lookup(n, "ten/a", &ten), 0);
    cr_expect_eq(expiry_of(tpl), NS_PER_H);
    cr_expect_eq(expiry_of(ten), NS_PER_H);
    rl_table_close(n);
}
