/*
 * contention.c - n processes deciding as fast as they can, on one bucket and on a bucket
 * each, with the library and with the robust-mutex peer, alternately: aggregate decisions
 * per second, latency per decision (every 64th call is timed, so the clock costs little),
 * and each process's share of the decisions (a starved process would show a small one).
 * The buckets always admit: this measures decisions, not the limit. A team of plain
 * spinning processes gives the share the OS scheduler alone hands out at each count.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SAMPLE_EVERY 64
#define MAX_PROCS    256
#define REPS         3
/* Every process needs many scheduler slices for its share to mean anything: runs last at
 * least this long per process (on 2 CPUs, 256 processes get ~1 slice each per 0.4 s). */
#define RUN_PER_PROC_NS 10000000ULL

enum impl { IMPL_LIB, IMPL_MUTEX, IMPL_SPIN };

struct member {
    _Alignas(64) uint64_t ops;
    uint64_t cpu_ns;
    struct hist lat;
};

/* What the members decide on: process i uses index i (a bucket each) or 0 (one bucket). */
struct contention_ctx {
    rl_bucket *buckets[MAX_PROCS];
    struct mutex_peer *mutexes;
    struct member *members;
};

struct contention_run {
    enum impl impl;
    bool distinct;
    struct contention_ctx *ctx;
};

struct contention_result {
    double per_s, min_share, min_cpu_rate;
    uint64_t p50, p99;
};

static int decide(const struct contention_run *run, unsigned i)
{
    unsigned k = run->distinct ? i : 0;
    switch (run->impl) {
    case IMPL_LIB:
        return rl_try_acquire(run->ctx->buckets[k], 1, NULL);
    case IMPL_MUTEX:
        return mutex_peer_decide(mutex_peer_at(run->ctx->mutexes, k));
    default:
        return 0;
    }
}

/* Before the start: fault in this process's copies of the pages a decision writes. */
static void warm_up(unsigned i, const struct team *t, void *arg)
{
    for (unsigned n = 0; n < SAMPLE_EVERY; n++)
        decide(arg, i);
}

static void contend(unsigned i, const struct team *t, void *arg)
{
    const struct contention_run *run = arg;
    struct member *m = &run->ctx->members[i];
    uint64_t cpu0 = cpu_ns(), n = 0, refused = 0;
    for (;; n++) {
        if (n % SAMPLE_EVERY)
            refused += decide(run, i) != 0;
        else {
            uint64_t t0 = now_ns();
            if (t0 >= t->stop_ns)
                break;
            refused += decide(run, i) != 0;
            hist_add(&m->lat, now_ns() - t0);
        }
    }
    m->ops = n;
    m->cpu_ns = cpu_ns() - cpu0;
    if (refused)
        die("contention", "a bucket that always admits refused a decision");
}

static struct contention_result summarize(const struct member *members, unsigned procs,
                                          const struct team *t)
{
    struct hist *all = calloc(1, sizeof(*all));
    uint64_t total = 0, least = UINT64_MAX;
    double cpu_rate[MAX_PROCS], rate_sum = 0;
    unsigned ran = 0; /* members the scheduler gave CPU time to */
    if (!all)
        die("contention", "out of memory");
    for (unsigned i = 0; i < procs; i++) {
        const struct member *m = &members[i];
        hist_merge(all, &m->lat);
        total += m->ops;
        least = m->ops < least ? m->ops : least;
        if (m->cpu_ns)
            rate_sum += cpu_rate[ran++] = (double)m->ops / (double)m->cpu_ns;
    }
    qsort(cpu_rate, ran, sizeof(double), cmp_double);
    struct contention_result r = {
        .per_s = (double)total * 1e9 / (double)(t->stop_ns - t->start_ns),
        .min_share = (double)least * procs / (double)total,
        .min_cpu_rate = ran ? cpu_rate[0] * ran / rate_sum : 0,
        .p50 = hist_percentile(all, 50),
        .p99 = hist_percentile(all, 99),
    };
    free(all);
    return r;
}

static struct contention_result contention_once(struct contention_run *run, unsigned procs,
                                                uint64_t run_ns)
{
    static const struct team_fns fns = {warm_up, contend};
    struct team t;
    memset(run->ctx->members, 0, MAX_PROCS * sizeof(struct member));
    team_run(procs, run_ns, &fns, run, &t);
    return summarize(run->ctx->members, procs, &t);
}

/* Each field's median over the repetitions. */
static struct contention_result median_of(const struct contention_result *r, unsigned n)
{
    double per_s[REPS], share[REPS], cpu[REPS];
    uint64_t p50[REPS], p99[REPS];
    for (unsigned i = 0; i < n; i++) {
        per_s[i] = r[i].per_s, share[i] = r[i].min_share, cpu[i] = r[i].min_cpu_rate;
        p50[i] = r[i].p50, p99[i] = r[i].p99;
    }
    return (struct contention_result){median_double(per_s, n), median_double(share, n),
                                      median_double(cpu, n), percentile_u64(p50, n, 50),
                                      percentile_u64(p99, n, 50)};
}

/* The library and the mutex, alternately, `reps` times each. */
static void contention_pair(struct contention_ctx *ctx, bool distinct, unsigned procs,
                            uint64_t run_ns, unsigned reps, struct contention_result out[2])
{
    struct contention_run lib = {IMPL_LIB, distinct, ctx}, mutex = {IMPL_MUTEX, distinct, ctx};
    struct contention_result r[2][REPS];
    for (unsigned i = 0; i < reps; i++) {
        r[0][i] = contention_once(&lib, procs, run_ns);
        r[1][i] = contention_once(&mutex, procs, run_ns);
    }
    out[0] = median_of(r[0], reps);
    out[1] = median_of(r[1], reps);
}

struct contention_verdicts {
    double x_mutex_at_2; /* one bucket */
    unsigned p99_lower, p99_compared;
    double worst_share, sched_share; /* the library's smallest, and the spinners' then */
    unsigned worst_procs;
};

static void contention_print(FILE *csv, unsigned procs, bool distinct,
                             const struct contention_result *r, double sched)
{
    const char *buckets = distinct ? "distinct" : "one";
    printf("%5u %-9s", procs, buckets);
    for (int k = 0; k < 2; k++) {
        printf(" %12.0f %7llu %8llu %6.2f %5.2f", r[k].per_s, (unsigned long long)r[k].p50,
               (unsigned long long)r[k].p99, r[k].min_share, r[k].min_cpu_rate);
        csv_row(csv, "%s,%s,%u,%.0f,%llu,%llu,%.4f,%.4f,%.4f", k ? "mutex" : "libratelimit",
                buckets, procs, r[k].per_s, (unsigned long long)r[k].p50,
                (unsigned long long)r[k].p99, r[k].min_share, r[k].min_cpu_rate, sched);
    }
    printf(" %7.2f %6.2f\n", r[0].per_s / r[1].per_s, sched);
    fflush(stdout);
}

static void contention_judge(struct contention_verdicts *v, unsigned procs, bool distinct,
                             const struct contention_result *r, double sched)
{
    if (procs == 2 && !distinct)
        v->x_mutex_at_2 = r[0].per_s / r[1].per_s;
    v->p99_compared++;
    v->p99_lower += r[0].p99 < r[1].p99;
    if (r[0].min_share < v->worst_share) {
        v->worst_share = r[0].min_share;
        v->sched_share = sched;
        v->worst_procs = procs;
    }
}

static void contention_summary(const struct contention_verdicts *v)
{
    summary_add("contention: aggregate decisions/s vs mutex, 2 processes, one bucket", ">= 2x",
                verdict_of(v->x_mutex_at_2 >= 2), "%.2fx", v->x_mutex_at_2);
    summary_add("contention: p99 latency lower than the mutex's", "at every count",
                verdict_of(v->p99_lower == v->p99_compared), "in %u of %u runs", v->p99_lower,
                v->p99_compared);
    summary_add("contention: smallest process share / fair share", ">= 0.8",
                verdict_of(v->worst_share >= 0.8),
                "%.2f at %u processes (plain spinners then: %.2f)", v->worst_share, v->worst_procs,
                v->sched_share);
}

static struct contention_ctx *contention_setup(rl_table *t)
{
    struct contention_ctx *ctx = calloc(1, sizeof(*ctx));
    char name[32];
    if (!ctx)
        die("contention", "out of memory");
    for (unsigned i = 0; i < MAX_PROCS; i++) {
        snprintf(name, sizeof(name), "cont/%u", i);
        ctx->buckets[i] = bucket_define(t, name, HUGE_GCRA, NULL);
    }
    ctx->mutexes = mutex_peer_create(MAX_PROCS, 1, 1000000000);
    ctx->members = shared_alloc(MAX_PROCS * sizeof(struct member));
    return ctx;
}

static void contention_teardown(struct contention_ctx *ctx)
{
    mutex_peer_destroy(ctx->mutexes, MAX_PROCS);
    shared_free(ctx->members, MAX_PROCS * sizeof(struct member));
    free(ctx);
}

static uint64_t run_length(unsigned procs)
{
    if (bench_quick)
        return 50000000ULL;
    uint64_t per_proc = procs * RUN_PER_PROC_NS;
    return per_proc > 500000000ULL ? per_proc : 500000000ULL;
}

static void contention_header(unsigned reps)
{
    section("contention: n processes for max(0.5 s, n x 10 ms), median of %u runs each", reps);
    printf("share: the smallest process's decisions / the fair share; cpu: its decisions per "
           "CPU-second / the mean;\nsched: the share plain spinning processes get from the OS "
           "scheduler at that count\n");
    printf("%15s %41s %41s\n", "", "-------------- libratelimit --------------",
           "--------------- mutex peer ---------------");
    printf("%5s %-9s", "procs", "buckets");
    for (int k = 0; k < 2; k++)
        printf(" %12s %7s %8s %6s %5s", "decisions/s", "p50 ns", "p99 ns", "share", "cpu");
    printf(" %7s %6s\n", "x mutex", "sched");
}

void bench_contention(void)
{
    static const unsigned full[] = {1, 2, 4, 16, 64, 256}, quick[] = {1, 2, 16};
    const unsigned *counts = bench_quick ? quick : full;
    unsigned ncounts = bench_quick ? 3 : 6, reps = bench_quick ? 1 : REPS;
    struct contention_verdicts v = {0, 0, 0, 1e9, 0, 0};
    rl_table *t = table_create("contention", MAX_PROCS, 0);
    struct contention_ctx *ctx = contention_setup(t);
    struct contention_run spin = {IMPL_SPIN, true, ctx};
    FILE *csv = csv_open("contention", "impl,buckets,procs,decisions_per_s,p50_ns,p99_ns,"
                                       "min_share,min_cpu_rate,sched_min_share");
    contention_header(reps);
    for (unsigned c = 0; c < ncounts; c++) {
        uint64_t run_ns = run_length(counts[c]);
        double sched = contention_once(&spin, counts[c], run_ns).min_share;
        for (int d = 0; d < 2; d++) {
            struct contention_result r[2];
            contention_pair(ctx, d, counts[c], run_ns, reps, r);
            contention_print(csv, counts[c], d, r, sched);
            contention_judge(&v, counts[c], d, r, sched);
        }
    }
    csv_close(csv);
    contention_summary(&v);
    contention_teardown(ctx);
    table_remove(t);
}
