/*
 * memory.c - table bytes per bucket for each rule kind: a table with capacity for exactly
 * the buckets and an arena just large enough (its file size / buckets), split into the
 * per-bucket fixed part (index slots and the bucket record) and the arena part (the policy
 * block, rule state, and for sliding windows the log of N instants), from rl_table_info.
 */
#include "bench.h"

#define MEMORY_KINDS 5

struct memory_kind {
    const char *rules;
    uint64_t n;      /* N of a sliding window, 0 for the others */
    uint64_t target; /* bytes per bucket */
};

/* An arena for `count` buckets of `per` bytes each: a block's head line (its reuse state),
 * the policy, one rule and a sliding log (allocations are 64-byte aligned). */
static uint32_t arena_kib(uint32_t count, uint64_t n)
{
    uint64_t per = (64 + 64 + 64 + 8 * n + 63) / 64 * 64;
    return (uint32_t)((count * per + 1023) / 1024 + 4);
}

static void memory_row(FILE *csv, const struct memory_kind *k, uint32_t count)
{
    rl_table *t = table_create("memory", count, arena_kib(count, k->n));
    char name[32];
    for (uint32_t i = 0; i < count; i++) {
        snprintf(name, sizeof(name), "mem/%u", i);
        bucket_define(t, name, k->rules, NULL);
    }
    struct rl_table_info info;
    rl_table_info(t, &info);
    double file = (double)info.file_bytes / count;
    double fixed = (double)(info.file_bytes - info.arena_bytes) / count;
    double arena = (double)info.arena_used / count;
    enum verdict v = verdict_of(file <= (double)k->target);
    printf("%-16s %8u %14.1f %14.1f %14.1f %10llu %4s\n", k->rules, count, file, fixed, arena,
           (unsigned long long)k->target, verdict_text(v));
    csv_row(csv, "%s,%u,%.2f,%.2f,%.2f,%llu", k->rules, count, file, fixed, arena,
            (unsigned long long)k->target);
    char what[80];
    snprintf(what, sizeof(what), "bytes per bucket: %s", k->rules);
    char target[32];
    snprintf(target, sizeof(target), "<= %llu B", (unsigned long long)k->target);
    summary_add(what, target, v, "%.0f B (records + index %.0f, arena %.0f)", file, fixed, arena);
    table_remove(t);
}

void bench_memory(void)
{
    static const struct memory_kind kinds[MEMORY_KINDS] = {
        {"100/1s burst 10", 0, 128}, {"100/1s fixed", 0, 128},      {"10/1s", 10, 128 + 80},
        {"100/1s", 100, 128 + 800},  {"1000/1s", 1000, 128 + 8000},
    };
    uint32_t count = bench_quick ? 100 : 10000;
    section("memory: table bytes per bucket (target: 128 B; sliding: 128 B + 8 B per unit of N)");
    printf("%-16s %8s %14s %14s %14s %10s %4s\n", "rule", "buckets", "file B/bucket",
           "records+index", "arena", "target", "met");
    FILE *csv = csv_open("memory", "rule,buckets,file_bytes_per_bucket,"
                                   "records_index_bytes_per_bucket,arena_bytes_per_bucket,target");
    for (unsigned k = 0; k < MEMORY_KINDS; k++)
        memory_row(csv, &kinds[k], count);
    csv_close(csv);
}
