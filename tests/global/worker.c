/*
 * worker.c - one worker process of a simulated host: it asks bucket NAME of table PATH for
 * one unit RATE times a second, on an absolute schedule, for MS milliseconds, and writes
 * the instant of every admission (rl_decision.at_ns, CLOCK_MONOTONIC ns) to LOG, one a line.
 * Usage: global_worker PATH NAME RATE MS LOG
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ratelimit.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: global_worker PATH NAME RATE MS LOG\n");
        return 3;
    }
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = argv[1];
    o.flags = 0;
    rl_table *t;
    rl_bucket *b;
    if (rl_table_open(&o, &t) || rl_bucket_lookup(t, argv[2], &b)) {
        fprintf(stderr, "global_worker: %s %s: %s\n", argv[1], argv[2], rl_errdetail());
        return 4;
    }
    double rate = atof(argv[3]);
    uint64_t step = (uint64_t)(1e9 / rate), ms = strtoull(argv[4], NULL, 10);
    uint64_t n = ms * 1000000 / step, *at = calloc(n + 1, sizeof(*at)), admitted = 0;
    FILE *log = fopen(argv[5], "w");
    if (!at || !log)
        return 4;
    uint64_t start = rl_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t due = start + i * step;
        struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
            ;
        struct rl_decision d;
        int rc = rl_try_acquire(b, 1, &d);
        if (rc == 0)
            at[admitted++] = d.at_ns;
        else if (rc != RL_ELIMITED) {
            fprintf(stderr, "global_worker: %s\n", rl_strerror(rc));
            return 4;
        }
    }
    for (uint64_t i = 0; i < admitted; i++)
        fprintf(log, "%llu\n", (unsigned long long)at[i]);
    fclose(log);
    free(at);
    rl_table_close(t);
    return 0;
}
