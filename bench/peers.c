/*
 * peers.c - the same GCRA decision (always admitted, counters kept) made by the library and
 * by its peers, one process, in interleaved rounds: a robust process-shared mutex, flock()
 * on a file, and Redis with a Lua script per decision over a Unix socket.
 */
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

#define PEER_ROWS 4
#define MAX_RUNS  9

struct peer_row {
    const char *label;
    int (*decide)(void *arg);
    void *arg;
    unsigned ops;
    double ns[MAX_RUNS];
};

static int lib_decide(void *arg)
{
    return rl_try_acquire(arg, 1, NULL);
}

static int mutex_decide(void *arg)
{
    return mutex_peer_decide(arg);
}

static int flock_decide(void *arg)
{
    return flock_peer_decide(arg);
}

static int redis_decide(void *arg)
{
    return redis_peer_decide(arg);
}

static double time_row(const struct peer_row *row)
{
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < row->ops; i++)
        if (row->decide(row->arg) != 0)
            die(row->label, "a decision was refused by a bucket that always admits");
    return (double)(now_ns() - t0) / row->ops;
}

static void peers_print(struct peer_row *rows, unsigned n, unsigned runs)
{
    FILE *csv = csv_open("peers", "peer,median_ns,min_ns,max_ns,x_libratelimit");
    printf("%-36s %11s %11s %11s %14s\n", "", "median ns", "min", "max", "x libratelimit");
    double lib = 0;
    for (unsigned r = 0; r < n; r++) {
        struct spread s = spread_of(rows[r].ns, runs);
        lib = r == 0 ? s.median : lib;
        printf("%-36s %11.1f %11.1f %11.1f %14.1f\n", rows[r].label, s.median, s.min, s.max,
               s.median / lib);
        csv_row(csv, "%s,%.2f,%.2f,%.2f,%.2f", rows[r].label, s.median, s.min, s.max,
                s.median / lib);
        if (rows[r].decide == redis_decide)
            summary_add("latency per decision: Redis EVALSHA / libratelimit", ">= 1000x",
                        verdict_of(s.median / lib >= 1000), "%.0fx (%.1f us vs %.1f ns)",
                        s.median / lib, s.median / 1000, lib);
        else if (r > 0)
            summary_add(rows[r].label, "", NOT_APPLICABLE, "%.1fx libratelimit (%.1f ns)",
                        s.median / lib, s.median);
    }
    csv_close(csv);
}

void bench_peers(void)
{
    unsigned runs = bench_quick ? 3 : 5, ops = bench_quick ? 2000 : 1000000;
    section("the same GCRA decision by peers, one process (median of %u interleaved rounds)", runs);
    rl_table *t = table_create("peers", 16, 0);
    struct mutex_peer *m = mutex_peer_create(1, 1, 1000000000);
    char path[64];
    snprintf(path, sizeof(path), "/dev/shm/rl-bench-%ld-flock", (long)getpid());
    remove_at_exit(path, true);
    struct flock_peer *f = flock_peer_open(path, 1, 1000000000);
    const char *why = NULL;
    struct redis_peer *redis = redis_peer_start(1, 1000000, &why);
    rl_bucket *b = bucket_define(t, "peers", HUGE_GCRA, NULL);
    struct peer_row rows[PEER_ROWS] = {
        {"libratelimit try_acquire (GCRA)", lib_decide, b, ops, {0}},
        {"peer: robust process-shared mutex", mutex_decide, m, ops, {0}},
        {"peer: flock() on a file", flock_decide, f, ops / 5, {0}},
        {"peer: Redis EVALSHA, Unix socket", redis_decide, redis, ops / 50, {0}},
    };
    unsigned n = redis ? PEER_ROWS : PEER_ROWS - 1;
    for (unsigned run = 0; run < runs; run++)
        for (unsigned r = 0; r < n; r++)
            rows[r].ns[run] = time_row(&rows[r]);
    peers_print(rows, n, runs);
    if (!redis) {
        printf("peer: Redis: skipped: %s\n", why);
        summary_add("latency per decision: Redis EVALSHA / libratelimit", ">= 1000x",
                    NOT_APPLICABLE, "skipped: %s", why);
    }
    redis_peer_stop(redis);
    flock_peer_close(f);
    unlink(path);
    remove_at_exit(path, false);
    mutex_peer_destroy(m, 1);
    table_remove(t);
}
