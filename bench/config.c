/*
 * config.c - what a config file costs: parse and check, the first apply (creating every
 * bucket), and applying it again unchanged (the table's digest says so: no table walk),
 * for 1k..1M buckets, and with --full-capacity also 4M and 16M (16777216, the largest
 * capacity a table has). Each size also shows the table's bytes on tmpfs and the bench's
 * peak RSS (which counts the table's pages it touched). A size the machine cannot afford,
 * judged from the size before it, is skipped with a line that says why. Then the part of
 * the preload shim's first connect that the config takes (load the file, open the table,
 * apply it unchanged) for 1,000 buckets and 1,000 routes, timed in process.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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

/* What one size cost: seconds, and bytes of the table on tmpfs and of the peak RSS. */
struct config_cost {
    double parse_s, first_s, again_s;
    uint64_t table_bytes, rss_bytes;
};

static uint64_t peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024;
}

static struct config_cost one_size(unsigned n, FILE *csv)
{
    char path[128];
    size_t len;
    struct config_cost cost;
    struct stat st;
    snprintf(path, sizeof(path), "/dev/shm/rl-bench-%ld-config", (long)getpid());
    unlink(path);
    remove_at_exit(path, true);
    char *text = config_text(n, 0, path, &len);
    uint64_t t0 = now_ns();
    rl_config *c = parse(text, len);
    cost.parse_s = (double)(now_ns() - t0) / 1e9;
    free(text); /* 0.5 GB at 16M buckets: not held through the apply */
    rl_table *t;
    t0 = now_ns();
    if (rl_config_open_table(c, RL_OPEN_CREATE, &t))
        die(path, rl_errdetail());
    cost.first_s = (double)(now_ns() - t0) / 1e9 + apply_s(c, t);
    cost.again_s = apply_s(c, t);
    cost.table_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
    cost.rss_bytes = peak_rss();
    printf("%10u %10.4f %10.4f %12.6f %9.2f %9.0f %9.0f\n", n, cost.parse_s, cost.first_s,
           cost.again_s, cost.first_s * 1e6 / n, cost.table_bytes / 1048576.0,
           cost.rss_bytes / 1048576.0);
    csv_row(csv, "%u,%.6f,%.6f,%.9f,%llu,%llu", n, cost.parse_s, cost.first_s, cost.again_s,
            (unsigned long long)cost.table_bytes, (unsigned long long)cost.rss_bytes);
    rl_table_close(t);
    rl_config_free(c);
    unlink(path);
    remove_at_exit(path, false);
    return cost;
}

static uint64_t mem_available(void)
{
    char line[128];
    unsigned long long kib = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kib * 1024;
}

/*
 * Can this machine run n buckets, after `prev` cost `was` at `prev_n`? Scaled by n/prev_n
 * and 20% more: the peak RSS must fit the memory available now, the table the free space
 * of /dev/shm, and the time 10 minutes. If not, say why and skip it.
 */
#define CONFIG_MAX_S 600.0
static bool affordable(unsigned n, unsigned prev_n, const struct config_cost *was)
{
    double k = 1.2 * n / prev_n;
    double secs = k * (was->parse_s + was->first_s + was->again_s);
    double rss = k * (double)was->rss_bytes, table = k * (double)was->table_bytes;
    struct statvfs fs;
    double shm = statvfs("/dev/shm", &fs) == 0 ? (double)fs.f_bavail * fs.f_frsize : 0;
    double mem = (double)mem_available();
    if (rss <= mem && table <= shm && secs <= CONFIG_MAX_S)
        return true;
    printf("%10u skipped: it would take about %.0f s (at most %.0f), %.1f GiB of memory (%.1f "
           "available) and %.1f GiB of /dev/shm (%.1f free)\n",
           n, secs, CONFIG_MAX_S, rss / 1073741824.0, mem / 1073741824.0, table / 1073741824.0,
           shm / 1073741824.0);
    return false;
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
    static const unsigned sizes[] = {1000, 10000, 100000, 1000000, 4194304, 16777216};
    size_t nsizes = bench_quick ? 1 : bench_full_capacity ? 6 : 4;
    section("config: parse + check, first apply, unchanged re-apply");
    FILE *csv = csv_open("config", "buckets,parse_s,first_apply_s,reapply_s,table_bytes,"
                                   "peak_rss_bytes");
    printf("%10s %10s %10s %12s %9s %9s %9s\n", "buckets", "parse s", "1st apply", "re-apply s",
           "us/bucket", "table MiB", "RSS MiB");
    struct config_cost cost = {0};
    for (size_t i = 0; i < nsizes; i++) {
        if (i > 0 && sizes[i] > 1000000 && !affordable(sizes[i], sizes[i - 1], &cost))
            break;
        cost = one_size(sizes[i], csv);
        if (sizes[i] > 1000000)
            summary_add(sizes[i] == 16777216 ? "config: 16M buckets (the largest capacity)"
                                             : "config: 4M buckets",
                        "", NOT_APPLICABLE,
                        "parse + check %.1f s, first apply %.1f s, re-apply %.3f s; table "
                        "%.1f GiB, peak RSS %.1f GiB",
                        cost.parse_s, cost.first_s, cost.again_s, cost.table_bytes / 1073741824.0,
                        cost.rss_bytes / 1073741824.0);
    }
    if (!bench_full_capacity && !bench_quick)
        printf("(--full-capacity adds 4M and 16M buckets: minutes, and about 11 GiB of memory)\n");
    csv_close(csv);
    first_connect();
}
