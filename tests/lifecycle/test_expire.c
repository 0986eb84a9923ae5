/*
 * test_expire.c - rl_bucket_expire: an idle bucket is deleted, a busy one never, and an
 * expiry racing decisions (with SIGKILLs during it) never lets a tenant's name admit more
 * than its rules allow.
 */
#include <signal.h>
#include <sys/wait.h>

#include "fixture.h"

TestSuite(expire, .init = fixture_setup, .fini = fixture_teardown, .timeout = 60);

static bool expire1(rl_bucket *b, uint64_t idle)
{
    bool expired = true;
    cr_assert_eq(rl_bucket_expire(b, idle, &expired), 0, "%s", rl_errdetail());
    return expired;
}

Test(expire, only_an_idle_bucket_goes)
{
    rl_table *t = table_at(16, 64);
    struct rl_policy p = policy_of("3/1h margin 0");
    cr_assert_eq(rl_template_define(t, "ten/*", &p, NULL), 0);
    rl_bucket *tpl, *quiet, *busy, *again;
    cr_assert_eq(rl_bucket_lookup(t, "ten/*", &tpl), 0);
    cr_expect_eq(rl_bucket_expire(tpl, 0, NULL), RL_EINVAL, "a template is not expired");
    cr_assert_eq(rl_bucket_get(t, "ten/quiet", &quiet), 0);
    cr_assert_eq(rl_bucket_get(t, "ten/busy", &busy), 0);
    cr_assert_eq(rl_try_acquire(busy, 1, NULL), 0);
    cr_expect(!expire1(busy, 0), "one unit counted: it stays");
    cr_expect_eq(drain(busy), 2, "with its usage");
    cr_expect(expire1(quiet, 0));
    cr_expect_eq(rl_try_acquire(quiet, 1, NULL), RL_ENOENT, "the handle is stale");
    cr_assert_eq(rl_bucket_get(t, "ten/quiet", &again), 0);
    cr_expect_eq(drain(again), 3, "made again, with the full budget the idle one had");
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    cr_assert_eq(rl_table_space(t, &sp), 0);
    cr_expect_eq(sp.expired, 1);
    cr_expect_eq(sp.deleted, 1);
    sp.size = 4;
    cr_expect_eq(rl_table_space(t, &sp), RL_EINVAL, "a struct too small for this version");
    rl_table_close(t);
}

Test(expire, a_cool_down_a_parent_or_a_debt_keeps_it)
{
    rl_table *t = table_at(16, 64);
    rl_bucket *p = define(t, "p", "3/1h margin 0", NULL), *c = define(t, "p/c", "3/1h", "p");
    cr_expect(!expire1(p, 0), "a parent stays while it has children");
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "60";
    cr_assert_eq(rl_report(c, &r, NULL), 0);
    cr_expect(!expire1(c, 0), "a cool-down in force");
    rl_bucket *d = define(t, "d", "3/1h margin 0", NULL);
    cr_assert_eq(drain(d), 3);
    struct rl_policy wide = policy_of("10/1h margin 0");
    cr_assert_eq(rl_bucket_update(d, &wide), 0);
    cr_expect(!expire1(d, 0), "the usage a switch carried");
    rl_table_close(t);
}

#define TENANTS  6
#define WORKERS  4
#define EXPIRERS 2
#define LOG_CAP  400000
#define N        5
#define T_NS     50000000ULL

struct adm_log {
    atomic_uint n;
    atomic_uint errors;
    atomic_uint expired;
    uint64_t deadline;
    struct {
        uint64_t at;
        unsigned tenant;
    } e[LOG_CAP];
};

/* Take units from random tenants, in bursts with pauses (so they go idle), logging every
 * admission; a stale handle (RL_ENOENT) is looked up again. */
static void worker(const char *path, struct adm_log *log)
{
    rl_table *t = table_open_opts(path, 0, 0, 0);
    rl_bucket *h[TENANTS] = {0};
    while (rl_now_ns() < log->deadline) {
        unsigned k = (unsigned)(random() % TENANTS);
        char name[16];
        snprintf(name, sizeof(name), "ten/%u", k);
        for (unsigned burst = 0; burst < 40; burst++) {
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
        usleep((useconds_t)(random() % 60000));
    }
    rl_table_close(t);
    _exit(0);
}

static void expirer(const char *path, struct adm_log *log)
{
    rl_table *t = table_open_opts(path, 0, 0, 0);
    while (rl_now_ns() < log->deadline) {
        char name[16];
        rl_bucket *b;
        bool expired = false;
        snprintf(name, sizeof(name), "ten/%u", (unsigned)(random() % TENANTS));
        if (rl_bucket_lookup(t, name, &b) == 0) {
            int rc = rl_bucket_expire(b, 0, &expired);
            if (rc && rc != RL_ENOENT)
                atomic_fetch_add(&log->errors, 1);
            if (expired)
                atomic_fetch_add(&log->expired, 1);
        }
    }
    rl_table_close(t);
    _exit(0);
}

static int by_instant(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Six tenants of "5/50ms margin 0": whatever expiries and kills do, no 50 ms window of a
 * tenant's name holds more than 5 admissions. */
Test(expire, expiry_under_kills_never_over_admits, .timeout = 120)
{
    rl_table *t = table_at(1U << 14, 0);
    struct rl_policy p = policy_of("5/50ms margin 0");
    cr_assert_eq(rl_template_define(t, "ten/*", &p, NULL), 0);
    struct adm_log *log = shared_alloc(sizeof(*log));
    log->deadline = rl_now_ns() + 5000000000ULL;
    pid_t pids[WORKERS + EXPIRERS];
    for (unsigned w = 0; w < WORKERS + EXPIRERS; w++)
        if ((pids[w] = fork()) == 0)
            w < WORKERS ? worker(g_path, log) : expirer(g_path, log);
    unsigned kills = 0;
    while (rl_now_ns() < log->deadline && kills < 2000) {
        usleep(5000 + (useconds_t)(random() % 20000));
        unsigned w = (unsigned)(random() % (WORKERS + EXPIRERS));
        kill(pids[w], SIGKILL);
        waitpid(pids[w], NULL, 0);
        kills++;
        if ((pids[w] = fork()) == 0)
            w < WORKERS ? worker(g_path, log) : expirer(g_path, log);
    }
    for (unsigned w = 0; w < WORKERS + EXPIRERS; w++)
        waitpid(pids[w], NULL, 0);
    unsigned n = atomic_load(&log->n);
    cr_assert_lt(n, LOG_CAP);
    cr_expect_eq(atomic_load(&log->errors), 0);
    cr_expect_gt(atomic_load(&log->expired), 10, "tenants expired: %u", atomic_load(&log->expired));
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
