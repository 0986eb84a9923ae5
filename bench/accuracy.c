/*
 * accuracy.c - 16 processes saturate a fresh bucket of each rule kind with try_acquire and
 * log every admission instant. Utilization: admissions / the most the rule allows in the
 * run. Over-admissions: replayed from the log against the rule's exact definition:
 *   sliding  unit i is over if units i-N..i lie within T (N+1 in one window)
 *   GCRA     exact conformance: a unit admitted before TAT - (B-1)*I is over
 *   fixed    per window aligned to multiples of T on the wall clock (the table's
 *            wall_offset_ns at creation maps CLOCK_MONOTONIC to it): units beyond N
 * Margins are 0, so the library's own windows are exactly the rules'.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "bench.h"
#include "shm_format.h"

#define ACC_PROCS 16
#define LOG_MAX   200000
#define ACC_N     200
#define ACC_T     100000000ULL /* 100 ms */

enum acc_kind { ACC_SLIDING, ACC_GCRA, ACC_FIXED };

struct adm_log {
    _Atomic unsigned count;
    uint64_t at[LOG_MAX];
};

struct acc_run {
    rl_bucket *bucket;
    struct adm_log *log;
};

static void hammer(unsigned i, const struct team *t, void *arg)
{
    const struct acc_run *run = arg;
    struct rl_decision d;
    while (now_ns() < t->stop_ns)
        if (rl_try_acquire(run->bucket, 1, &d) == 0) {
            unsigned k = atomic_fetch_add(&run->log->count, 1);
            if (k < LOG_MAX)
                run->log->at[k] = d.at_ns;
        }
}

static uint64_t sliding_over(const uint64_t *at, unsigned n)
{
    uint64_t over = 0;
    for (unsigned i = ACC_N; i < n; i++)
        over += at[i] - at[i - ACC_N] < ACC_T;
    return over;
}

static uint64_t gcra_over(const uint64_t *at, unsigned n)
{
    uint64_t tat = 0, over = 0, interval = ACC_T / ACC_N;
    for (unsigned i = 0; i < n; i++) {
        uint64_t base = tat > at[i] ? tat : at[i];
        over += base - at[i] > (ACC_N - 1) * interval;
        tat = base + interval;
    }
    return over;
}

static uint64_t window_of(uint64_t mono, int64_t wall_offset)
{
    return (uint64_t)((int64_t)mono + wall_offset) / ACC_T;
}

static uint64_t fixed_over(const uint64_t *at, unsigned n, int64_t wall_offset)
{
    uint64_t over = 0, count = 0;
    for (unsigned i = 0; i < n; i++) {
        bool same = i > 0 && window_of(at[i], wall_offset) == window_of(at[i - 1], wall_offset);
        count = same ? count + 1 : 1;
        over += count > ACC_N;
    }
    return over;
}

/* Admissions before stop: a process that checked the clock just before stop may still be
 * admitted just after it, outside the budget's span (the invariant is checked on all). */
static unsigned in_run(const uint64_t *sorted, unsigned n, uint64_t stop)
{
    while (n > 0 && sorted[n - 1] >= stop)
        n--;
    return n;
}

/* The most the rule admits in [start, stop) on a fresh bucket. */
static uint64_t budget_of(enum acc_kind k, const struct team *t, int64_t wall_offset)
{
    uint64_t run = t->stop_ns - t->start_ns;
    switch (k) {
    case ACC_SLIDING: /* a batch of N every T from the start */
        return ACC_N * ((run + ACC_T - 1) / ACC_T);
    case ACC_GCRA: /* the burst, then one unit per interval */
        return ACC_N + run / (ACC_T / ACC_N);
    default: /* N in every aligned window the run overlaps */
        return ACC_N *
               (window_of(t->stop_ns - 1, wall_offset) - window_of(t->start_ns, wall_offset) + 1);
    }
}

static uint64_t over_of(enum acc_kind k, const uint64_t *at, unsigned n, int64_t wall_offset)
{
    switch (k) {
    case ACC_SLIDING:
        return sliding_over(at, n);
    case ACC_GCRA:
        return gcra_over(at, n);
    default:
        return fixed_over(at, n, wall_offset);
    }
}

static void accuracy_run(FILE *csv, enum acc_kind k, const char *rules, uint64_t run_ns,
                         struct adm_log *log)
{
    rl_table *t = table_create("accuracy", 16, 0);
    struct acc_run run = {bucket_define(t, "acc", rules, NULL), log};
    size_t len;
    const struct shm_header *h = table_map(t, &len);
    int64_t wall_offset = h->wall_offset_ns;
    shared_free(h, len);
    struct team team;
    atomic_store(&log->count, 0);
    static const struct team_fns fns = {NULL, hammer};
    team_run(ACC_PROCS, run_ns, &fns, &run, &team);
    unsigned n = log->count;
    if (n > LOG_MAX)
        die("accuracy", "the admission log overflowed");
    qsort(log->at, n, sizeof(log->at[0]), cmp_u64);
    uint64_t budget = budget_of(k, &team, wall_offset), over = over_of(k, log->at, n, wall_offset);
    unsigned used = in_run(log->at, n, team.stop_ns);
    double util = 100.0 * used / (double)budget;
    printf("%-28s %9u %9llu %11.2f%% %6llu\n", rules, used, (unsigned long long)budget, util,
           (unsigned long long)over);
    csv_row(csv, "%s,%u,%llu,%.3f,%llu", rules, used, (unsigned long long)budget, util,
            (unsigned long long)over);
    char what[80];
    snprintf(what, sizeof(what), "saturation, %d processes: %s", ACC_PROCS, rules);
    summary_add(what, ">= 99% used, 0 over", verdict_of(util >= 99 && over == 0),
                "%.1f%% used, %llu over", util, (unsigned long long)over);
    table_remove(t);
}

void bench_accuracy(void)
{
    uint64_t run_ns = bench_quick ? 200000000ULL : 2000000000ULL;
    section("accuracy under saturation: %d processes, %.1f s per rule (over: checked from the "
            "admission log)",
            ACC_PROCS, run_ns / 1e9);
    printf("%-28s %9s %9s %12s %6s\n", "rule", "admitted", "budget", "utilization", "over");
    FILE *csv = csv_open("accuracy", "rule,admitted,budget,utilization_pct,over_admissions");
    struct adm_log *log = shared_alloc(sizeof(*log));
    accuracy_run(csv, ACC_SLIDING, "200/100ms margin 0", run_ns, log);
    accuracy_run(csv, ACC_GCRA, "200/100ms burst 200 margin 0", run_ns, log);
    accuracy_run(csv, ACC_FIXED, "200/100ms fixed margin 0", run_ns, log);
    shared_free(log, sizeof(*log));
    csv_close(csv);
}
