/*
 * cost.c - the cost of one decision in one process, against the floor measured in the same
 * run: one clock_gettime(CLOCK_MONOTONIC) plus one CAS on a MAP_SHARED page, which any
 * shared-memory limiter must pay. Costs are CPU time (time spent preempted on a busy
 * machine does not count) and the rows are timed in interleaved rounds, so the noise left
 * hits every row alike; the ratio is of medians. Buckets have huge limits, so every
 * decision admits (and counts: the counters are part of the cost).
 */
#include <stdatomic.h>
#include <time.h>

#include "bench.h"

#define COST_ROWS 6
/* Many short rounds: a row sees the same spells of machine noise as the floor. */
#define COST_RUNS    45
#define HUGE_SLIDING "131072/1ms margin 0" /* the largest N, the shortest T: always admits */
#define HUGE_FIXED   "1000000000/1s fixed margin 0"

static struct rl_decision decision;

/* What each row measures: the floor (no name), then a bucket of the library. */
static const struct cost_spec {
    const char *label, *name, *rules, *parent;
    double target;           /* x floor; 0: none */
    struct rl_decision *out; /* passed to rl_try_acquire */
} specs[COST_ROWS] = {
    {"floor: clock_gettime + CAS", NULL, NULL, NULL, 0, NULL},
    {"GCRA try_acquire", "cost/gcra", HUGE_GCRA, NULL, 1.5, NULL},
    {"sliding try_acquire", "cost/sliding", HUGE_SLIDING, NULL, 3, NULL},
    {"fixed try_acquire", "cost/fixed", HUGE_FIXED, NULL, 3, NULL},
    {"chain (GCRA + parent GCRA)", "cost/chain", HUGE_GCRA, "cost/parent", 3, NULL},
    {"GCRA, rl_decision filled in", "cost/gcra-out", HUGE_GCRA, NULL, 0, &decision},
};

struct cost_row {
    const struct cost_spec *spec;
    rl_bucket *bucket; /* NULL: the floor */
    double ns[COST_RUNS];
};

static _Atomic uint64_t *floor_word;

__attribute__((noinline)) static uint64_t floor_op(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    uint64_t seen = atomic_load_explicit(floor_word, memory_order_acquire);
    atomic_compare_exchange_strong_explicit(floor_word, &seen, seen > now ? seen + 1 : now + 1,
                                            memory_order_acq_rel, memory_order_acquire);
    return seen;
}

static double time_ops(const struct cost_row *row, unsigned ops)
{
    volatile uint64_t sink = 0;
    uint64_t t0 = cpu_ns();
    for (unsigned i = 0; i < ops; i++)
        sink += row->bucket ? (uint64_t)rl_try_acquire(row->bucket, 1, row->spec->out) : floor_op();
    (void)sink;
    return (double)(cpu_ns() - t0) / ops;
}

static void cost_buckets(rl_table *t, struct cost_row *rows)
{
    bucket_define(t, "cost/parent", HUGE_GCRA, NULL);
    for (unsigned r = 0; r < COST_ROWS; r++) {
        const struct cost_spec *c = rows[r].spec = &specs[r];
        rows[r].bucket = c->name ? bucket_define(t, c->name, c->rules, c->parent) : NULL;
    }
}

static void cost_print(struct cost_row *rows, unsigned runs, unsigned ops)
{
    FILE *csv = csv_open("cost", "row,median_ns,min_ns,max_ns,x_floor,target_x_floor");
    printf("%-34s %9s %9s %9s %8s %7s %4s\n", "CPU ns per decision", "median", "min", "max",
           "x floor", "target", "met");
    double floor_med = 0;
    for (unsigned r = 0; r < COST_ROWS; r++) {
        struct spread s = spread_of(rows[r].ns, runs);
        floor_med = r == 0 ? s.median : floor_med;
        double x = s.median / floor_med;
        enum verdict v =
            rows[r].spec->target ? verdict_of(x <= rows[r].spec->target) : NOT_APPLICABLE;
        char target[16] = "";
        if (rows[r].spec->target)
            snprintf(target, sizeof(target), "%.1f", rows[r].spec->target);
        printf("%-34s %9.1f %9.1f %9.1f %8.2f %7s %4s\n", rows[r].spec->label, s.median, s.min,
               s.max, x, target, verdict_text(v));
        csv_row(csv, "%s,%.2f,%.2f,%.2f,%.3f,%s", rows[r].spec->label, s.median, s.min, s.max, x,
                target);
        if (rows[r].spec->target) {
            char what[96], tgt[24];
            snprintf(what, sizeof(what), "decision cost: %s", rows[r].spec->label);
            snprintf(tgt, sizeof(tgt), "<= %.1fx floor", rows[r].spec->target);
            summary_add(what, tgt, v, "%.1f ns = %.2fx floor (%.1f ns)", s.median, x, floor_med);
        }
    }
    csv_close(csv);
    printf("(%u interleaved rounds of %u decisions each; every decision admits)\n", runs, ops);
}

void bench_cost(void)
{
    struct cost_row rows[COST_ROWS];
    unsigned runs = bench_quick ? 3 : COST_RUNS, ops = bench_quick ? 2000 : 200000;
    section("decision cost, one process: try_acquire against the floor");
    floor_word = shared_alloc(4096);
    rl_table *t = table_create("cost", 64, 0);
    cost_buckets(t, rows);
    for (unsigned run = 0; run < runs; run++)
        for (unsigned r = 0; r < COST_ROWS; r++)
            rows[r].ns[run] = time_ops(&rows[r], ops);
    cost_print(rows, runs, ops);
    table_remove(t);
    shared_free(floor_word, 4096);
}
