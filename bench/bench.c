/*
 * bench - measurements that cannot be tests: decision cost against the floor measured in
 * the same run, blocking waiters (CPU, order, lateness), and budget utilization under
 * saturation with the invariant checked from the admission log. Ratios, not absolutes:
 * the machine is shared and noisy. `bench --quick` is the smoke run tools/check does.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"

#define RUNS    5
#define LOG_MAX 200000

static unsigned quick;
static char table_path[64];
static rl_table *table;

static void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, rl_errdetail());
    exit(1);
}

static rl_bucket *bucket(const char *name, const char *rules, const char *parent)
{
    struct rl_policy p;
    rl_bucket *b;
    if (rl_policy_parse(rules, &p, NULL) || rl_bucket_define(table, name, &p, parent, &b))
        die(name);
    return b;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t median(uint64_t *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

/* ---------------------------------------------------------------- decision cost */

static _Atomic uint64_t *floor_word;

static uint64_t floor_op(void)
{
    uint64_t now = rl_now_ns(), seen = atomic_load_explicit(floor_word, memory_order_acquire);
    atomic_compare_exchange_strong_explicit(floor_word, &seen, seen > now ? seen + 1 : now + 1,
                                            memory_order_acq_rel, memory_order_acquire);
    return seen;
}

static double time_ops(rl_bucket *b, unsigned ops)
{
    volatile uint64_t sink = 0;
    uint64_t t0 = rl_now_ns();
    for (unsigned i = 0; i < ops; i++)
        sink += b ? (uint64_t)rl_try_acquire(b, 1, NULL) : floor_op();
    (void)sink;
    return (double)(rl_now_ns() - t0) / ops;
}

static void bench_cost(void)
{
    floor_word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct {
        const char *label;
        rl_bucket *b;
        double target;
    } rows[] = {
        {"floor: clock_gettime + CAS", NULL, 0},
        {"GCRA try_acquire", bucket("cost/gcra", "1000000000/1s burst 1000000000", NULL), 1.5},
        {"sliding try_acquire", bucket("cost/sliding", "262144/1ms margin 0", NULL), 3},
        {"fixed try_acquire", bucket("cost/fixed", "1000000000/1s fixed", NULL), 3},
        {"chain (GCRA + parent GCRA)", NULL, 3},
    };
    bucket("cost/parent", "1000000000/1s burst 1000000000", NULL);
    rows[4].b = bucket("cost/child", "1000000000/1s burst 1000000000", "cost/parent");
    unsigned ops = quick ? 2000 : 2000000;
    printf("\n== decision cost, one process (median of %d runs of %u ops)\n", RUNS, ops);
    printf("%-30s %10s %10s %10s %8s %8s\n", "", "median ns", "min", "max", "x floor", "target");
    double floor_ns = 0;
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        uint64_t v[RUNS];
        for (int i = 0; i < RUNS; i++)
            v[i] = (uint64_t)(time_ops(rows[r].b, ops) * 1000);
        double med = median(v, RUNS) / 1000.0;
        floor_ns = r == 0 ? med : floor_ns;
        printf("%-30s %10.1f %10.1f %10.1f %8.2f %8s\n", rows[r].label, med, v[0] / 1000.0,
               v[RUNS - 1] / 1000.0, med / floor_ns,
               r ? (rows[r].target == 1.5 ? "1.5" : "3") : "");
    }
}

/* ---------------------------------------------------------------- blocking waiters */

struct waiter_log {
    _Atomic unsigned seq;
    uint64_t reserved[64], woke[64], cpu_ns[64];
    unsigned order[64];
};

static void waiter(rl_bucket *b, struct waiter_log *log, unsigned i)
{
    struct rl_decision d;
    if (rl_acquire(b, 1, 10000000000ULL, &d) != 0)
        _exit(1);
    log->woke[i] = rl_now_ns();
    log->reserved[i] = d.at_ns;
    log->order[i] = atomic_fetch_add(&log->seq, 1);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    log->cpu_ns[i] = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
                     (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
    _exit(0);
}

static void bench_waiters(void)
{
    unsigned n = quick ? 8 : 64;
    rl_bucket *b = bucket("wait/sliding", "16/200ms margin 0", NULL);
    while (rl_try_acquire(b, 1, NULL) == 0)
        ; /* exhaust it: every waiter must reserve a future turn */
    struct waiter_log *log =
        mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (unsigned i = 0; i < n; i++)
        if (fork() == 0)
            waiter(b, log, i);
    while (wait(NULL) > 0)
        ;
    uint64_t late[64], cpu = 0;
    unsigned inversions = 0;
    for (unsigned i = 0; i < n; i++) {
        late[i] = log->woke[i] > log->reserved[i] ? log->woke[i] - log->reserved[i] : 0;
        cpu += log->cpu_ns[i];
        for (unsigned j = 0; j < n; j++) /* admitted in reservation order? */
            inversions +=
                log->reserved[i] + 1000000 < log->reserved[j] && log->order[i] > log->order[j];
    }
    qsort(late, n, sizeof(late[0]), cmp_u64);
    printf("\n== %u blocking waiters on an exhausted 16/200ms bucket\n", n);
    printf("lateness (wake - reserved instant): p50 %.3f ms, p99 %.3f ms (target ~1 ms)\n",
           late[n / 2] / 1e6, late[n * 99 / 100] / 1e6);
    printf("CPU per waiter, whole process life: %.3f ms; order inversions beyond 1 ms: %u\n",
           cpu / 1e6 / n, inversions);
}

/* ---------------------------------------------------------------- utilization */

struct adm_log {
    _Atomic unsigned count;
    uint64_t at[LOG_MAX];
};

static unsigned max_in_window(const uint64_t *at, unsigned n, uint64_t period)
{
    unsigned best = 0;
    for (unsigned i = 0, j = 0; i < n; i++) {
        while (at[i] - at[j] >= period)
            j++;
        best = i - j + 1 > best ? i - j + 1 : best;
    }
    return best;
}

/* Replay through an exact GCRA (cost 1): the number of non-conforming admissions. */
static unsigned gcra_violations(const uint64_t *at, unsigned n, uint64_t interval, uint64_t burst)
{
    uint64_t tat = 0;
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t base = tat > at[i] ? tat : at[i];
        bad += base - at[i] > (burst - 1) * interval;
        tat = base + interval;
    }
    return bad;
}

static void hammer(rl_bucket *b, struct adm_log *log, uint64_t stop)
{
    struct rl_decision d;
    while (rl_now_ns() < stop)
        if (rl_try_acquire(b, 1, &d) == 0) {
            unsigned i = atomic_fetch_add(&log->count, 1);
            if (i < LOG_MAX)
                log->at[i] = d.at_ns;
        }
    _exit(0);
}

static void bench_utilization(void)
{
    const struct {
        const char *name, *rules;
        unsigned limit;
    } kinds[] = {{"util/sliding", "50/100ms margin 0", 50},
                 {"util/gcra", "50/100ms burst 50 margin 0", 50},
                 {"util/fixed", "50/100ms fixed margin 0", 50}};
    uint64_t period = 100000000ULL, run = quick ? 200000000ULL : 2000000000ULL;
    printf("\n== utilization under saturation: 16 processes, %.1f s each (over: violations "
           "found in the admission log; fixed windows are checked exactly in tests/prop)\n",
           run / 1e9);
    printf("%-26s %10s %10s %12s %10s\n", "rule", "admitted", "budget", "utilization", "over");
    struct adm_log *log =
        mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        rl_bucket *b = bucket(kinds[k].name, kinds[k].rules, NULL);
        atomic_store(&log->count, 0);
        uint64_t start = rl_now_ns(), stop = start + run;
        for (int i = 0; i < 16; i++)
            if (fork() == 0)
                hammer(b, log, stop);
        while (wait(NULL) > 0)
            ;
        unsigned n = log->count < LOG_MAX ? log->count : LOG_MAX;
        qsort(log->at, n, sizeof(log->at[0]), cmp_u64);
        /* Budget of [start, stop): N per T for the windows (the run is whole periods),
         * plus one more N: GCRA starts with a full burst, and the run
         * overlaps one more aligned fixed window than it spans. */
        double budget = (double)kinds[k].limit * (double)(run / period + (k > 0));
        char over[16] = "n/a";
        if (k == 0)
            snprintf(over, sizeof(over), "%u", max_in_window(log->at, n, period) > 50);
        else if (k == 1)
            snprintf(over, sizeof(over), "%u", gcra_violations(log->at, n, period / 50, 50));
        printf("%-26s %10u %10.0f %11.1f%% %10s\n", kinds[k].rules, n, budget, 100.0 * n / budget,
               over);
    }
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    snprintf(table_path, sizeof(table_path), "/dev/shm/rl-bench-%ld", (long)getpid());
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = table_path;
    if (rl_table_open(&o, &table))
        die(table_path);
    printf("ratelimit bench%s on %ld CPUs\n", quick ? " (quick smoke run)" : "",
           sysconf(_SC_NPROCESSORS_ONLN));
    bench_cost();
    bench_waiters();
    bench_utilization();
    rl_table_close(table);
    unlink(table_path);
    return 0;
}
