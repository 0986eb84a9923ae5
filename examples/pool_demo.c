/*
 * pool_demo - a preforked pool of workers sharing one scaled vendor budget.
 *
 * Foundry allows 200 requests per rolling 60 s for a whole organization. This demo scales
 * time by `--scale` (default 100: 200 per 600 ms) and forks `--workers` processes (16) that
 * each call rl_acquire() in a loop for `--seconds` (3), logging every admission. The parent
 * then prints the admissions per window, the most found in ANY rolling window (the limit
 * the vendor enforces), and the share of the budget used.
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/stdlib.h>

#include "ratelimit.h"

#define LIMIT     200
#define PERIOD_NS 60000000000ULL
#define LOG_MAX   100000

struct shared_log {
    atomic_uint count;
    uint64_t at[LOG_MAX];
};

struct demo {
    unsigned workers, seconds;
    uint64_t period_ns;
    const char *table;
};

static void die(const char *what, int err)
{
    fprintf(stderr, "pool_demo: %s: %s\n", what,
            *rl_errdetail() ? rl_errdetail() : rl_strerror(err));
    exit(1);
}

static void worker(const struct demo *d, struct shared_log *log, uint64_t stop_ns)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    rl_bucket *b;
    o.path = d->table;
    int err = rl_table_open(&o, &t);
    if (err || (err = rl_bucket_lookup(t, "foundry", &b)))
        die("worker", err);
    while (rl_now_ns() < stop_ns) {
        struct rl_decision dec;
        uint64_t left = stop_ns - rl_now_ns();
        if (rl_acquire(b, 1, left, &dec) != 0)
            break; /* the next turn is after the end of the demo */
        unsigned i = atomic_fetch_add(&log->count, 1);
        if (i < LOG_MAX)
            log->at[i] = dec.at_ns;
    }
    rl_table_close(t);
    _exit(0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The most admissions found in any half-open window [t, t+T). */
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

static void report(const struct demo *d, struct shared_log *log, uint64_t start)
{
    unsigned n = log->count < LOG_MAX ? log->count : LOG_MAX;
    qsort(log->at, n, sizeof(log->at[0]), cmp_u64);
    printf("\n%-10s %-22s %s\n", "window", "admitted", "");
    uint64_t run_ns = (uint64_t)d->seconds * 1000000000ULL;
    unsigned windows = (unsigned)((run_ns + d->period_ns - 1) / d->period_ns);
    for (unsigned w = 0, i = 0; w < windows; w++) {
        unsigned count = 0;
        while (i < n && log->at[i] < start + (w + 1) * d->period_ns)
            count++, i++;
        printf("%-10u %-5u ", w + 1, count);
        for (unsigned k = 0; k < count / 10; k++)
            putchar('#');
        putchar('\n');
    }
    unsigned most = max_in_window(log->at, n, d->period_ns);
    double budget = (double)LIMIT * windows;
    printf("\n%u workers, %u admissions in %u s (%u windows of %.0f ms; the last one partial)\n",
           d->workers, n, d->seconds, windows, (double)d->period_ns / 1e6);
    printf("most in ANY rolling window: %u (limit %u) -> %s\n", most, LIMIT,
           most <= LIMIT ? "never over the limit" : "OVER THE LIMIT");
    printf("budget used: %.1f%% of the %.0f a rolling window allows in %u s\n", 100.0 * n / budget,
           budget, d->seconds);
}

static void parse_args(int argc, char **argv, struct demo *d)
{
    static const struct option opts[] = {{"workers", required_argument, 0, 'w'},
                                         {"seconds", required_argument, 0, 's'},
                                         {"scale", required_argument, 0, 'x'},
                                         {"table", required_argument, 0, 't'},
                                         {0, 0, 0, 0}};
    const char *err = NULL;
    long long scale = 100;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1 && !err;) {
        if (c == 'w')
            d->workers = (unsigned)strtonum(optarg, 1, 256, &err);
        else if (c == 's')
            d->seconds = (unsigned)strtonum(optarg, 1, 60, &err);
        else if (c == 'x')
            scale = strtonum(optarg, 1, 10000, &err);
        else if (c == 't')
            d->table = optarg;
        else
            err = "unknown option";
    }
    if (err) {
        fprintf(stderr,
                "usage: pool_demo [--workers 1..256] [--seconds 1..60] "
                "[--scale 1..10000] [--table PATH]: %s\n",
                err);
        exit(2);
    }
    d->period_ns = PERIOD_NS / (uint64_t)scale;
}

int main(int argc, char **argv)
{
    struct demo d = {16, 3, 0, NULL};
    char path[64], rules[64];
    parse_args(argc, argv, &d);
    if (!d.table) {
        snprintf(path, sizeof(path), "/dev/shm/ratelimit-demo-%ld", (long)getpid());
        d.table = path;
    }
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct rl_policy pol;
    rl_table *t;
    o.path = d.table;
    snprintf(rules, sizeof(rules), "%u/%llums margin 0", LIMIT,
             (unsigned long long)(d.period_ns / 1000000));
    int err = rl_table_open(&o, &t);
    if (err || (err = rl_policy_parse(rules, &pol, NULL)) ||
        (err = rl_bucket_define(t, "foundry", &pol, NULL, NULL)))
        die(d.table, err);
    printf("Foundry: %u requests per rolling 60 s, time scaled to %s; %u workers for %u s\n", LIMIT,
           rules, d.workers, d.seconds);
    struct shared_log *log =
        mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (log == MAP_FAILED)
        die("mmap", RL_ENOMEM);
    uint64_t start = rl_now_ns(), stop = start + d.seconds * 1000000000ULL;
    for (unsigned i = 0; i < d.workers; i++)
        if (fork() == 0)
            worker(&d, log, stop);
    while (wait(NULL) > 0)
        ;
    report(&d, log, start);
    rl_table_close(t);
    if (d.table == path)
        unlink(path);
    return 0;
}
