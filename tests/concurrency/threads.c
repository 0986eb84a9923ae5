/*
 * threads.c - one process, many threads sharing one table attachment: decisions on every
 * rule kind and a parent chain, blocking acquires, template buckets made on first use by
 * racing threads, live rule switches, and a record whose policy_off a thread flips between
 * more blocks than a handle caches (the view slots, block.c), all at once. Every admission is
 * logged; the invariants are then checked exactly. Plain C (no Criterion), so that tools/check can
 * run it under ThreadSanitizer too. Bounded: 1 s of work, then the checks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define THREADS   8
#define RUN_NS    1000000000ULL
#define LOG_MAX   20000
#define PERIOD_NS 200000000ULL

enum { SLIDING, GCRA, FIXED, CHILD_A, CHILD_B, NBUCKETS };

static const struct {
    const char *name, *rules, *parent;
} defs[NBUCKETS] = {
    {"sliding", "50/200ms margin 0", NULL},      {"gcra", "50/200ms burst 10 margin 0", NULL},
    {"fixed", "50/200ms fixed margin 0", NULL},  {"parent/a", "30/200ms margin 0", "parent"},
    {"parent/b", "30/200ms margin 0", "parent"},
};

struct log {
    _Atomic unsigned n;
    uint64_t at[LOG_MAX];
};

#define FLOP_BLOCKS (RL_VIEW_SLOTS + 2)

static rl_table *table;
static rl_bucket *buckets[NBUCKETS];
static rl_bucket *flop;                /* its policy_off flips between the blocks below */
static uint64_t flop_off[FLOP_BLOCKS]; /* blocks of buckets nobody else decides on */
static struct log logs[NBUCKETS];
static uint64_t stop_ns;
static atomic_uint errors;

static void fail(const char *what, int rc)
{
    fprintf(stderr, "threads: %s: %s (%s)\n", what, rl_err_name(rc), rl_errdetail());
    atomic_fetch_add(&errors, 1);
}

static rl_bucket *define(const char *name, const char *rules, const char *parent)
{
    struct rl_policy p;
    rl_bucket *b = NULL;
    int rc = rl_policy_parse(rules, &p, NULL);
    if (rc == 0)
        rc = rl_bucket_define(table, name, &p, parent, &b);
    if (rc)
        fail(name, rc);
    return b;
}

static void record(unsigned k, uint64_t at)
{
    unsigned i = atomic_fetch_add(&logs[k].n, 1);
    if (i < LOG_MAX)
        logs[k].at[i] = at;
}

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg, it = 0;
    char tenant[32];
    while (rl_now_ns() < stop_ns) {
        unsigned k = (id + it++) % NBUCKETS;
        struct rl_decision d;
        int rc =
            it % 8 ? rl_try_acquire(buckets[k], 1, &d) : rl_acquire(buckets[k], 1, 2000000ULL, &d);
        if (rc == 0)
            record(k, d.at_ns);
        else if (rc != RL_ELIMITED && rc != RL_ETIMEDOUT)
            fail("acquire", rc);
        if ((rc = rl_try_acquire(flop, 1, NULL)) != 0 && rc != RL_ELIMITED)
            fail("acquire from a flipped bucket", rc);
        rl_bucket *t; /* racing first uses of template buckets */
        snprintf(tenant, sizeof(tenant), "tenant/%u", it % 64);
        if ((rc = rl_bucket_get(table, tenant, &t)) != 0)
            fail("rl_bucket_get", rc);
        else if ((rc = rl_try_acquire(t, 1, NULL)) != 0 && rc != RL_ELIMITED)
            fail("acquire from a template bucket", rc);
    }
    return NULL;
}

/* Flip flop's record between blocks, as a damaged or hostile writer could. */
static void *flipper(void *arg)
{
    (void)arg;
    for (unsigned i = 0; rl_now_ns() < stop_ns; i++) {
        atomic_store(&flop->rec->policy_off, flop_off[i % FLOP_BLOCKS]);
        if (i % 64 == 0)
            usleep(100);
    }
    return NULL;
}

/* Live rule switches on a bucket the workers do not check, while they run. */
static void *switcher(void *arg)
{
    rl_bucket *b = arg;
    for (unsigned i = 0; rl_now_ns() < stop_ns; i++) {
        struct rl_policy p;
        rl_policy_parse(i % 2 ? "20/50ms" : "10/50ms burst 5", &p, NULL);
        int rc = rl_bucket_update(b, &p);
        if (rc)
            fail("rl_bucket_update", rc);
        rl_try_acquire(b, 1, NULL);
        usleep(5000);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static unsigned sorted(unsigned k, uint64_t *out)
{
    unsigned n = atomic_load(&logs[k].n);
    n = n < LOG_MAX ? n : LOG_MAX;
    memcpy(out, logs[k].at, n * sizeof(*out));
    qsort(out, n, sizeof(*out), cmp_u64);
    return n;
}

static unsigned most_in_window(const uint64_t *at, unsigned n)
{
    unsigned best = 0;
    for (unsigned i = 0, j = 0; i < n; i++) {
        while (at[i] - at[j] >= PERIOD_NS)
            j++;
        best = i - j + 1 > best ? i - j + 1 : best;
    }
    return best;
}

static unsigned gcra_bad(const uint64_t *at, unsigned n)
{
    uint64_t interval = PERIOD_NS / 50, tat = 0;
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t base = tat > at[i] ? tat : at[i];
        bad += base - at[i] > 9 * interval; /* burst 10: tau = 9 I */
        tat = base + interval;
    }
    return bad;
}

static unsigned fixed_most(const uint64_t *at, unsigned n)
{
    int64_t wall = table->hdr->wall_offset_ns; /* windows align to wall-clock multiples of T */
    unsigned best = 0, run = 0;
    for (unsigned i = 0; i < n; i++) {
        bool same = i && (uint64_t)((int64_t)at[i] + wall) / PERIOD_NS ==
                             (uint64_t)((int64_t)at[i - 1] + wall) / PERIOD_NS;
        run = same ? run + 1 : 1;
        best = run > best ? run : best;
    }
    return best;
}

static int check(void)
{
    static uint64_t a[LOG_MAX], b[2 * LOG_MAX];
    unsigned n, bad = 0;
    n = sorted(SLIDING, a);
    bad += most_in_window(a, n) > 50;
    printf("sliding: %u admitted, most in a window %u of 50\n", n, most_in_window(a, n));
    n = sorted(GCRA, a);
    bad += gcra_bad(a, n) != 0;
    printf("gcra: %u admitted, %u not conforming\n", n, gcra_bad(a, n));
    n = sorted(FIXED, a);
    bad += fixed_most(a, n) > 50;
    printf("fixed: %u admitted, most in an aligned window %u of 50\n", n, fixed_most(a, n));
    unsigned na = sorted(CHILD_A, b), nb = sorted(CHILD_B, b + na);
    bad += most_in_window(b, na) > 30;
    qsort(b, na + nb, sizeof(*b), cmp_u64);
    bad += most_in_window(b, na + nb) > 40;
    printf("parent: %u admitted through two children, most in a window %u of 40\n", na + nb,
           most_in_window(b, na + nb));
    return bad;
}

int main(void)
{
    char path[64];
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct rl_policy tp;
    pthread_t th[THREADS + 2];
    snprintf(path, sizeof(path), "/dev/shm/rl-threads-%ld", (long)getpid());
    unlink(path);
    o.path = path;
    int rc = rl_table_open(&o, &table);
    if (rc) {
        fail(path, rc);
        return 1;
    }
    define("parent", "40/200ms margin 0", NULL);
    for (unsigned k = 0; k < NBUCKETS; k++)
        buckets[k] = define(defs[k].name, defs[k].rules, defs[k].parent);
    rl_bucket *flip = define("flip", "10/50ms", NULL);
    for (unsigned k = 0; k < FLOP_BLOCKS; k++) {
        static const char *rules[] = {"100/1s", "100/1s fixed", "100/1s burst 10"};
        char name[16];
        snprintf(name, sizeof(name), "flop%u", k);
        flop = define(name, rules[k % 3], NULL);
        flop_off[k] = atomic_load(&flop->rec->policy_off);
    }
    rl_policy_parse("5/1s", &tp, NULL);
    if ((rc = rl_template_define(table, "tenant/*", &tp, NULL)) != 0)
        fail("template", rc);
    if (atomic_load(&errors)) {
        unlink(path);
        return 1;
    }
    stop_ns = rl_now_ns() + RUN_NS;
    for (unsigned i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
    pthread_create(&th[THREADS], NULL, switcher, flip);
    pthread_create(&th[THREADS + 1], NULL, flipper, NULL);
    for (unsigned i = 0; i <= THREADS + 1; i++)
        pthread_join(th[i], NULL);
    int bad = check();
    rl_table_close(table);
    unlink(path);
    printf("%s: %d invariant violations, %u errors\n", bad || errors ? "FAIL" : "PASS", bad,
           atomic_load(&errors));
    return bad || atomic_load(&errors) ? 1 : 0;
}
