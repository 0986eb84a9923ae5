/*
 * global.c - bench_global: the cost of one decision of a global rule (its lease word,
 * rule_lease.c) against local rules, in one process, CPU time, interleaved rounds, medians.
 * The lease is refilled between rounds, as the agent would, outside the timed loop.
 * Usage: bench_global [--quick]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rule.h"

#define ROWS 4
#define OPS  200000

static const struct {
    const char *label, *rules;
} rows[ROWS] = {
    {"sliding try_acquire (local)", "131072/1ms margin 0"},
    {"GCRA try_acquire (local, fast path)", "1000000000/1ms burst 1000000000 margin 0"},
    {"global try_acquire (a lease)", "1000000000/1h global lease 524287 margin 0"},
    {"global + parent sliding (local)", "1000000000/1h global lease 524287 margin 0"},
};

static uint64_t cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static rl_bucket *define(rl_table *t, const char *name, const char *rules, const char *parent)
{
    struct rl_policy p;
    rl_bucket *b;
    if (rl_policy_parse(rules, &p, NULL) || rl_bucket_define(t, name, &p, parent, &b)) {
        fprintf(stderr, "bench_global: %s: %s\n", name, rl_errdetail());
        exit(1);
    }
    return b;
}

static void refill(rl_table *t, rl_bucket *b)
{
    struct lease_ref ref;
    if (rl__lease_find(b, &ref) != 0)
        return;
    uint64_t old = rl__load_acquire(ref.word); /* A5 */
    while (!rl__lease_swap(&ref, &old,
                           rl__lease_word(RL_LEASE_MAX, rl__clock_rel(t) + 3600000000000ULL)))
        ;
}

int main(int argc, char **argv)
{
    unsigned runs = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 3 : 31;
    char path[64];
    snprintf(path, sizeof(path), "/dev/shm/rl-bench-global-%d", (int)getpid());
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = path;
    rl_table *t;
    if (rl_table_open(&o, &t)) {
        fprintf(stderr, "bench_global: %s\n", rl_errdetail());
        return 1;
    }
    rl_bucket *b[ROWS];
    define(t, "parent", "131072/1ms margin 0", NULL);
    for (unsigned r = 0; r < ROWS; r++) {
        char name[16];
        snprintf(name, sizeof(name), "row%u", r);
        b[r] = define(t, name, rows[r].rules, r == 3 ? "parent" : NULL);
    }
    double ns[ROWS][64];
    for (unsigned run = 0; run < runs; run++)
        for (unsigned r = 0; r < ROWS; r++) {
            refill(t, b[r]);
            volatile int sink = 0;
            uint64_t t0 = cpu_now();
            for (unsigned i = 0; i < OPS; i++)
                sink += rl_try_acquire(b[r], 1, NULL);
            ns[r][run] = (double)(cpu_now() - t0) / OPS;
            if (sink != 0)
                fprintf(stderr, "bench_global: %s refused\n", rows[r].label);
        }
    printf("%-40s %9s %8s\n", "CPU ns per decision", "median", "x sliding");
    double base = 0;
    for (unsigned r = 0; r < ROWS; r++) {
        qsort(ns[r], runs, sizeof(double), cmp);
        double med = ns[r][runs / 2];
        base = r == 0 ? med : base;
        printf("%-40s %9.1f %8.2f\n", rows[r].label, med, med / base);
    }
    rl_table_close(t);
    unlink(path);
    return 0;
}
