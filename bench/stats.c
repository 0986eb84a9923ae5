/*
 * stats.c - medians, percentiles, spreads and the latency histogram.
 */
#include <stdlib.h>

#include "bench.h"

int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t rank_of(size_t n, double p)
{
    double x = p / 100.0 * (double)n;
    size_t r = (size_t)x;
    r += (double)r < x; /* ceil */
    return r == 0 ? 0 : r - 1;
}

uint64_t percentile_u64(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[rank_of(n, p)];
}

double median_double(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

struct spread spread_of(double *v, size_t n)
{
    double med = median_double(v, n);
    return (struct spread){v[0], med, v[n - 1]};
}

static unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned p = 63 - (unsigned)__builtin_clzll(v); /* >= 5: 2^p <= v */
    unsigned i = (p - 4) * HIST_SUB + (unsigned)((v >> (p - 5)) & (HIST_SUB - 1));
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

/* The middle of bucket i. */
static uint64_t hist_value(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned p = i / HIST_SUB + 4, sub = i % HIST_SUB;
    uint64_t width = 1ULL << (p - 5);
    return (HIST_SUB + sub) * width + width / 2;
}

void hist_add(struct hist *h, uint64_t ns)
{
    h->count[hist_index(ns)]++;
    h->n++;
}

void hist_merge(struct hist *into, const struct hist *h)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->count[i] += h->count[i];
    into->n += h->n;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    uint64_t want = rank_of(h->n, p) + 1, seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        if ((seen += h->count[i]) >= want)
            return hist_value(i);
    return 0;
}
