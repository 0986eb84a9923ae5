/*
 * scale.c - does a table with many buckets cost more per decision? Tables of 1, 1k, 100k
 * and 1M GCRA buckets (capacity accordingly) are created (timed), then measured in
 * interleaved rounds (CPU time): acquire on a hot handle, and lookup by name of random buckets. The
 * index's probe counts are replayed from its hash (rl__name_hash, linear probing over
 * index_slots) on the table file's index, mapped read-only.
 *
 * Lookups grow slower with the table although their probe counts stay flat: is that cache
 * misses alone? Each row also times a pointer chase through random cache lines of a buffer
 * as large as what lookups touch (index, records, the handle pointers), i.e. the cost of one
 * miss at that size. The lookup's growth over the 1-bucket row divided by the miss's growth
 * is the number of misses that would explain it; a lookup reads LOOKUP_LINES lines whose
 * address depends on the name (its index slot, the record's state and name lines, the
 * handle pointer), so anything above that would be growth of another kind.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h" /* rl__name_hash */
#include "shm_format.h"

#define SCALE_MAX    4
#define LOOKUP_MAX   100000
#define SCALE_RUNS   5
#define NAME_FORMAT  "tenant/%07u"
#define LOOKUP_LINES 4
#define CHASE_STEPS  2000000

struct scale_row {
    uint32_t buckets;
    rl_table *table;
    rl_bucket *hot;
    double create_ns; /* per bucket */
    double acquire[SCALE_RUNS], lookup[SCALE_RUNS];
    double probes_mean;
    uint32_t probes_max;
    double load;
    size_t touched; /* bytes lookups touch: index, records, handle pointers */
    double miss_ns; /* one dependent load from a random line of `touched` bytes */
};

static void scale_create(struct scale_row *row)
{
    char tag[32], name[32];
    struct rl_policy p;
    rl_policy_parse(HUGE_GCRA, &p, NULL);
    snprintf(tag, sizeof(tag), "scale-%u", row->buckets);
    row->table = table_create(tag, row->buckets, 0);
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < row->buckets; i++) {
        rl_bucket *b;
        snprintf(name, sizeof(name), NAME_FORMAT, i);
        if (rl_bucket_define(row->table, name, &p, NULL, &b))
            die_rl(name);
        row->hot = i == 0 ? b : row->hot; /* the first bucket is the hot one */
    }
    row->create_ns = (double)(now_ns() - t0) / row->buckets;
}

/* Probes a lookup of bucket `no` named `name` takes: its distance from its home slot + 1,
 * replayed from the table file's index (shm_format.h: slot = tag:32 | no + 1). */
static uint32_t probes_of(const struct shm_header *h, const char *name, uint32_t no)
{
    const rl_atomic64 *index = (const rl_atomic64 *)((const char *)h + h->index_off);
    uint64_t hash = rl__name_hash(name);
    uint32_t mask = h->index_slots - 1;
    for (uint32_t i = 0; i <= mask; i++) {
        uint64_t slot = atomic_load_explicit(&index[(hash + i) & mask], memory_order_relaxed);
        if (slot == RL_INDEX_EMPTY)
            break;
        if ((slot & 0xffffffffULL) == no + 1ULL)
            return i + 1;
    }
    die(name, "not found in the index");
}

static void scale_probes(struct scale_row *row)
{
    char name[32];
    uint64_t sum = 0;
    size_t len;
    const struct shm_header *h = table_map(row->table, &len);
    row->probes_max = 0;
    for (uint32_t i = 0; i < row->buckets; i++) {
        snprintf(name, sizeof(name), NAME_FORMAT, i);
        uint32_t p = probes_of(h, name, i);
        sum += p;
        row->probes_max = p > row->probes_max ? p : row->probes_max;
    }
    row->probes_mean = (double)sum / row->buckets;
    row->load = (double)row->buckets / h->index_slots;
    row->touched = (size_t)h->index_slots * 8 + (size_t)row->buckets * sizeof(struct shm_bucket) +
                   (size_t)h->capacity * sizeof(void *);
    shared_free(h, len);
}

static volatile uint64_t chase_end; /* keeps the chase from being optimized away */

/* CPU ns per dependent load along a random cycle through the cache lines of `bytes`. */
static double chase_ns(size_t bytes, unsigned steps)
{
    size_t lines = bytes / 64 > 1 ? bytes / 64 : 2;
    uint64_t *buf = malloc(lines * 64), x = 0x2545f4914f6cdd1dULL;
    if (!buf)
        die("scale", "out of memory");
    for (size_t i = 0; i < lines; i++) /* Sattolo's shuffle: one cycle through every line */
        buf[i * 8] = i;
    for (size_t i = lines - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % i, t = buf[i * 8];
        buf[i * 8] = buf[j * 8];
        buf[j * 8] = t;
    }
    uint64_t at = 0, t0 = cpu_ns();
    for (unsigned i = 0; i < steps; i++)
        at = buf[at * 8]; /* each load's address is the previous load's value */
    double ns = (double)(cpu_ns() - t0) / steps;
    chase_end = at;
    free(buf);
    return ns;
}

static double time_acquire(rl_bucket *b, unsigned ops)
{
    uint64_t t0 = cpu_ns();
    for (unsigned i = 0; i < ops; i++)
        if (rl_try_acquire(b, 1, NULL))
            die_rl("scale: hot bucket");
    return (double)(cpu_ns() - t0) / ops;
}

typedef char bucket_name[24];

/* Random existing names (a fixed xorshift sequence), looked up in that order. */
static bucket_name *lookup_names(uint32_t buckets, unsigned n)
{
    bucket_name *names = malloc(n * sizeof(*names));
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    if (!names)
        die("scale", "out of memory");
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        snprintf(names[i], sizeof(names[i]), NAME_FORMAT, (uint32_t)(x % buckets));
    }
    return names;
}

static double time_lookup(rl_table *t, bucket_name *names, unsigned n)
{
    rl_bucket *b;
    uint64_t t0 = cpu_ns();
    for (unsigned i = 0; i < n; i++)
        if (rl_bucket_lookup(t, names[i], &b))
            die_rl(names[i]);
    return (double)(cpu_ns() - t0) / n;
}

/* Misses of row r's size that explain its lookups' growth over row 0 (0: too small to tell,
 * when a miss costs about the same at both sizes). Needs the lookups sorted: scale_print. */
static double misses_explaining(const struct scale_row *rows, unsigned r)
{
    double miss_growth = rows[r].miss_ns - rows[0].miss_ns;
    double lookup_growth = rows[r].lookup[SCALE_RUNS / 2] - rows[0].lookup[SCALE_RUNS / 2];
    return miss_growth >= 10 ? lookup_growth / miss_growth : 0;
}

static void scale_print(struct scale_row *rows, unsigned n)
{
    FILE *csv = csv_open("scale", "buckets,create_s,create_ns_per_bucket,acquire_ns,lookup_ns,"
                                  "probes_mean,probes_max,index_load,miss_ns,misses_explaining");
    printf("%8s %9s %10s %23s %23s %8s %6s %6s %8s %7s\n", "buckets", "create s", "ns/bucket",
           "acquire ns (min..max)", "lookup ns (min..max)", "probes", "max", "load", "miss ns",
           "misses");
    for (unsigned r = 0; r < n; r++) {
        struct scale_row *w = &rows[r];
        struct spread a = spread_of(w->acquire, SCALE_RUNS), l = spread_of(w->lookup, SCALE_RUNS);
        double create_s = w->create_ns * w->buckets / 1e9;
        double misses = misses_explaining(rows, r);
        char explained[16] = "-";
        if (misses > 0)
            snprintf(explained, sizeof(explained), "%.1f", misses);
        printf("%8u %9.3f %10.0f %7.1f (%5.1f..%5.1f) %7.1f (%5.1f..%6.1f) %8.3f %6u %6.3f %8.1f "
               "%7s\n",
               w->buckets, create_s, w->create_ns, a.median, a.min, a.max, l.median, l.min, l.max,
               w->probes_mean, w->probes_max, w->load, w->miss_ns, explained);
        csv_row(csv, "%u,%.4f,%.1f,%.2f,%.2f,%.4f,%u,%.4f,%.2f,%.3f", w->buckets, create_s,
                w->create_ns, a.median, l.median, w->probes_mean, w->probes_max, w->load,
                w->miss_ns, misses);
    }
    csv_close(csv);
}

/* Is the lookups' growth up to the largest table explained by cache misses alone? */
static void misses_summary(const struct scale_row *rows, unsigned n)
{
    const struct scale_row *big = &rows[n - 1];
    double misses = misses_explaining(rows, n - 1), miss_growth = big->miss_ns - rows[0].miss_ns;
    char text[128];
    if (misses > 0)
        snprintf(text, sizeof(text), "+%.0f ns at %u buckets = %.1f misses of +%.0f ns each",
                 big->lookup[SCALE_RUNS / 2] - rows[0].lookup[SCALE_RUNS / 2], big->buckets, misses,
                 miss_growth);
    else
        snprintf(text, sizeof(text),
                 "a table of %u buckets is too small to tell (a miss costs +%.0f ns)", big->buckets,
                 miss_growth);
    summary_add("scale: lookup by name, growth explained by cache misses",
                "<= 4 misses (lines a lookup reads)",
                misses > 0 ? verdict_of(misses <= LOOKUP_LINES) : NOT_APPLICABLE, "%s", text);
}

static void scale_summary(const struct scale_row *rows, unsigned n)
{
    double lo = 1e18, hi = 0, probes = 0;
    for (unsigned r = 0; r < n; r++) {
        double a = rows[r].acquire[SCALE_RUNS / 2]; /* sorted by scale_print: the median */
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
        probes = rows[r].probes_mean > probes ? rows[r].probes_mean : probes;
    }
    const struct scale_row *big = &rows[n - 1];
    summary_add("scale: try_acquire on a hot handle, 1 to 1M buckets", "flat within 1.5x",
                verdict_of(hi / lo <= 1.5), "%.2fx (%.1f..%.1f ns)", hi / lo, lo, hi);
    summary_add("scale: lookup by name, mean index probes", "flat: <= 2 at every size",
                verdict_of(probes <= 2), "at most %.2f (load <= 0.5)", probes);
    summary_add("scale: lookup by name, random names", "", NOT_APPLICABLE,
                "%.0f ns (1 bucket) to %.0f ns (%u buckets)", rows[0].lookup[SCALE_RUNS / 2],
                big->lookup[SCALE_RUNS / 2], big->buckets);
    misses_summary(rows, n);
    summary_add("scale: creating buckets", "", NOT_APPLICABLE, "%u in %.2f s (%.0f ns each)",
                big->buckets, big->create_ns * big->buckets / 1e9, big->create_ns);
}

void bench_scale(void)
{
    static const uint32_t full[] = {1, 1000, 100000, 1000000}, quick[] = {1, 1000};
    unsigned n = bench_quick ? 2 : SCALE_MAX, ops = bench_quick ? 2000 : 1000000;
    unsigned lookups = bench_quick ? 1000 : LOOKUP_MAX;
    struct scale_row rows[SCALE_MAX] = {{0}};
    section("scale: GCRA buckets in a table of that capacity (median of %d interleaved rounds)",
            SCALE_RUNS);
    for (unsigned r = 0; r < n; r++) {
        rows[r].buckets = (bench_quick ? quick : full)[r];
        scale_create(&rows[r]);
        scale_probes(&rows[r]);
        rows[r].miss_ns = chase_ns(rows[r].touched, bench_quick ? 20000 : CHASE_STEPS);
    }
    bucket_name *names[SCALE_MAX];
    for (unsigned r = 0; r < n; r++)
        names[r] = lookup_names(rows[r].buckets, lookups);
    for (unsigned run = 0; run < SCALE_RUNS; run++)
        for (unsigned r = 0; r < n; r++) {
            rows[r].acquire[run] = time_acquire(rows[r].hot, ops);
            rows[r].lookup[run] = time_lookup(rows[r].table, names[r], lookups);
        }
    scale_print(rows, n);
    scale_summary(rows, n);
    for (unsigned r = 0; r < n; r++) {
        free(names[r]);
        table_remove(rows[r].table);
    }
}
