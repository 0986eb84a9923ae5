/*
 * config.c - what a config file costs: parse and check, the first apply (creating every
 * bucket), and applying it again unchanged (the table's digest says so: no table walk),
 * for 1k..1M buckets; and the part of the preload shim's first connect that the config
 * takes (load the file, open the table, apply it unchanged) for 1,000 buckets and 1,000
 * routes, timed in process.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static char *config_text(unsigned n, unsigned routes, const char *table, size_t *len)
{
    size_t cap = 128 + (size_t)n * 48 + (size_t)routes * 48, at = 0;
    char *s = malloc(cap);
    if (!s)
        die("config", "out of memory");
    at += (size_t)snprintf(s + at, cap - at, "table %s\ncapacity %u\n", table, n);
    for (unsigned i = 0; i < n; i++)
        at += (size_t)snprintf(s + at, cap - at, "bucket b%07u 100/1m burst 10\n", i);
    for (unsigned i = 0; i < routes; i++)
        at += (size_t)snprintf(s + at, cap - at, "route 10.%u.%u.1:443 b%07u\n", i >> 8, i & 255,
                               i % n);
    *len = at;
    return s;
}

static rl_config *parse(const char *text, size_t len)
{
    rl_config *c;
    char *errors = NULL;
    if (rl_config_parse(text, len, "bench.conf", &c, &errors))
        die("config", errors ? errors : rl_errdetail());
    return c;
}

static double apply_s(const rl_config *c, rl_table *t)
{
    uint64_t t0 = now_ns();
    if (rl_config_apply(c, t, NULL, NULL))
        die("apply", rl_errdetail());
    return (double)(now_ns() - t0) / 1e9;
}

static void one_size(unsigned n, FILE *csv)
{
    char path[128];
    size_t len;
    snprintf(path, sizeof(path), "/dev/shm/rl-bench-%ld-config", (long)getpid());
    unlink(path);
    remove_at_exit(path, true);
    char *text = config_text(n, 0, path, &len);
    uint64_t t0 = now_ns();
    rl_config *c = parse(text, len);
    double parse_s = (double)(now_ns() - t0) / 1e9;
    rl_table *t;
    t0 = now_ns();
    if (rl_config_open_table(c, RL_OPEN_CREATE, &t))
        die(path, rl_errdetail());
    double first = (double)(now_ns() - t0) / 1e9 + apply_s(c, t);
    double again = apply_s(c, t);
    printf("%10u %12.4f %12.4f %14.6f\n", n, parse_s, first, again);
    csv_row(csv, "%u,%.6f,%.6f,%.9f", n, parse_s, first, again);
    rl_table_close(t);
    rl_config_free(c);
    free(text);
    unlink(path);
    remove_at_exit(path, false);
}

/* The shim's first connect, its config part: rl_config_load, rl_config_open_table and an
 * unchanged rl_config_apply, best of 5 (the table was applied once before). */
static void first_connect(void)
{
    char path[128], conf[128];
    size_t len;
    snprintf(path, sizeof(path), "/dev/shm/rl-bench-%ld-config-shim", (long)getpid());
    snprintf(conf, sizeof(conf), "/tmp/rl-bench-%ld-config.conf", (long)getpid());
    remove_at_exit(path, true);
    remove_at_exit(conf, true);
    char *text = config_text(1000, 1000, path, &len);
    FILE *f = fopen(conf, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0)
        die(conf, strerror(errno));
    double best = 1e9;
    for (int i = 0; i < 6; i++) {
        rl_config *c;
        rl_table *t;
        char *errors = NULL;
        uint64_t t0 = now_ns();
        if (rl_config_load(conf, &c, &errors) || rl_config_open_table(c, RL_OPEN_CREATE, &t) ||
            rl_config_apply(c, t, NULL, NULL))
            die(conf, errors ? errors : rl_errdetail());
        double s = (double)(now_ns() - t0) / 1e9;
        best = i > 0 && s < best ? s : best; /* the first run creates the table */
        rl_table_close(t);
        rl_config_free(c);
    }
    printf("shim first connect, config part (1,000 buckets, 1,000 routes): %.3f ms\n", best * 1e3);
    summary_add("config: shim first connect, 1k buckets + 1k routes", "< 1 ms",
                verdict_of(best < 1e-3), "%.3f ms", best * 1e3);
    free(text);
}

void bench_config(void)
{
    static const unsigned sizes[] = {1000, 10000, 100000, 1000000};
    size_t nsizes = bench_quick ? 1 : sizeof(sizes) / sizeof(sizes[0]);
    section("config: parse + check, first apply, unchanged re-apply");
    FILE *csv = csv_open("config", "buckets,parse_s,first_apply_s,reapply_s");
    printf("%10s %12s %12s %14s\n", "buckets", "parse s", "1st apply s", "re-apply s");
    for (size_t i = 0; i < nsizes; i++)
        one_size(sizes[i], csv);
    csv_close(csv);
    first_connect();
}
