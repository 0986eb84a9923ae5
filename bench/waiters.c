/*
 * waiters.c - 64 processes block in rl_acquire on an exhausted bucket. Each reserves its
 * turn and sleeps until it: the CPU each spends inside rl_acquire, whether they are admitted
 * in the order of their reserved turns, and how late each wakes (admission instant minus
 * reserved instant). Two shapes: a sliding window (turns in bursts of N) and a GCRA bucket
 * of burst 1 (turns evenly spaced).
 */
#include <stdatomic.h>
#include <time.h>

#include "bench.h"

#define WAITERS_MAX 64

struct waiter_log {
    uint64_t reserved[WAITERS_MAX], woke[WAITERS_MAX], cpu[WAITERS_MAX];
    unsigned order[WAITERS_MAX];
    _Atomic unsigned seq;
};

struct waiter_run {
    rl_bucket *bucket, *exhausted;
    struct waiter_log *log;
};

/* Before the start: a refused try on a bucket exhausted for a year faults in the pages a
 * decision touches in this fresh process, so the CPU measured next is the waiting's, not
 * the fork's. */
static void warm_up(unsigned i, const struct team *t, void *arg)
{
    const struct waiter_run *w = arg;
    if (rl_try_acquire(w->exhausted, 1, NULL) != RL_ELIMITED)
        die("waiter", "the warm-up bucket admitted");
}

static void waiter(unsigned i, const struct team *t, void *arg)
{
    const struct waiter_run *w = arg;
    struct rl_decision d;
    uint64_t cpu0 = cpu_ns();
    if (rl_acquire(w->bucket, 1, 10000000000ULL, &d) != 0)
        die_rl("waiter");
    w->log->woke[i] = now_ns();
    w->log->cpu[i] = cpu_ns() - cpu0;
    w->log->reserved[i] = d.at_ns;
    w->log->order[i] = atomic_fetch_add(&w->log->seq, 1);
}

/* Pairs admitted against the order of their reserved turns, when the turns are more than
 * `slack` ns apart. */
static unsigned inversions(const struct waiter_log *log, unsigned n, uint64_t slack)
{
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++)
            bad += log->reserved[i] + slack < log->reserved[j] && log->order[i] > log->order[j];
    return bad;
}

static void waiters_report(FILE *csv, const char *rules, const struct waiter_log *log, unsigned n,
                           double sleep_us)
{
    uint64_t late[WAITERS_MAX], cpu[WAITERS_MAX], cpu_sum = 0;
    for (unsigned i = 0; i < n; i++) {
        late[i] = log->woke[i] > log->reserved[i] ? log->woke[i] - log->reserved[i] : 0;
        cpu[i] = log->cpu[i];
        cpu_sum += cpu[i];
    }
    double p50 = percentile_u64(late, n, 50) / 1e6, p99 = percentile_u64(late, n, 99) / 1e6;
    double cpu_max = percentile_u64(cpu, n, 100) / 1e3, cpu_mean = cpu_sum / 1e3 / n;
    unsigned inv = inversions(log, n, 0), inv_1ms = inversions(log, n, 1000000);
    printf("%-22s %8.3f %8.3f %10.1f %10.1f %11u %11u\n", rules, p50, p99, cpu_mean, cpu_max, inv,
           inv_1ms);
    csv_row(csv, "%s,%u,%.4f,%.4f,%.2f,%.2f,%u,%u", rules, n, p50, p99, cpu_mean, cpu_max, inv,
            inv_1ms);
    char what[80];
    snprintf(what, sizeof(what), "%u blocking waiters on %s", n, rules);
    summary_add(what, "0 order inversions > 1 ms", verdict_of(inv_1ms == 0),
                "lateness p50 %.2f ms, p99 %.2f ms; CPU %.0f us each (a plain sleep: %.0f); "
                "inversions %u",
                p50, p99, cpu_mean, sleep_us, inv_1ms);
}

static void waiters_run(FILE *csv, const char *name, const char *rules, unsigned n, double sleep_us)
{
    rl_table *t = table_create("waiters", 16, 0);
    struct waiter_run w = {bucket_define(t, name, rules, NULL),
                           bucket_define(t, "wait/year", "1/366d", NULL),
                           shared_alloc(sizeof(struct waiter_log))};
    rl_try_acquire(w.exhausted, 1, NULL);
    while (rl_try_acquire(w.bucket, 1, NULL) == 0)
        ; /* exhaust it: every waiter must reserve a future turn */
    struct team team;
    static const struct team_fns fns = {warm_up, waiter};
    team_run(n, 0, &fns, &w, &team);
    waiters_report(csv, rules, w.log, n, sleep_us);
    shared_free(w.log, sizeof(struct waiter_log));
    table_remove(t);
}

/* For scale: the CPU one 1 ms clock_nanosleep costs this machine (median of 9). */
static double sleep_cpu_us(void)
{
    double v[9];
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 9; i++) {
        uint64_t cpu0 = cpu_ns();
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ms, NULL);
        v[i] = (cpu_ns() - cpu0) / 1e3;
    }
    return median_double(v, 9);
}

void bench_waiters(void)
{
    unsigned n = bench_quick ? 8 : WAITERS_MAX;
    section("%u blocking waiters on an exhausted bucket (lateness: admission - reserved turn; "
            "CPU: inside rl_acquire)",
            n);
    printf("%-22s %8s %8s %10s %10s %11s %11s\n", "rule", "p50 ms", "p99 ms", "CPU us", "max",
           "inversions", "> 1 ms");
    FILE *csv = csv_open("waiters", "rule,waiters,lateness_p50_ms,lateness_p99_ms,cpu_mean_us,"
                                    "cpu_max_us,inversions,inversions_beyond_1ms");
    double sleep_us = sleep_cpu_us();
    waiters_run(csv, "wait/sliding", "16/200ms margin 0", n, sleep_us);
    waiters_run(csv, "wait/gcra", "200/1s burst 1 margin 0", n, sleep_us);
    csv_close(csv);
    printf("for scale: one plain 1 ms clock_nanosleep costs %.1f us of CPU on this machine\n",
           sleep_us);
}
