/*
 * bench.h - what the benchmark's files share: options, the shared-memory helpers, the
 * process teams every multi-process measurement uses, statistics, and the report (CSV files
 * and the final summary table). Each section of the run is one file (cost.c, peers.c, ...).
 */
#ifndef RL_BENCH_H
#define RL_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ratelimit.h"

/* ---------------------------------------------------------------- options (main.c) */

extern bool bench_quick;      /* --quick: tiny sizes, proves that everything runs */
extern const char *bench_csv; /* --csv DIR: where CSV files go (NULL: none) */
/* --full-capacity: the config section goes on to 4M and 16M buckets (config.c) */
extern bool bench_full_capacity;

/* A GCRA bucket that always admits (1 ns per unit, a burst of one second): decisions are
 * measured, never the limit. */
#define HUGE_GCRA "1000000000/1s burst 1000000000"

/* ---------------------------------------------------------------- common.c */

_Noreturn void die(const char *what, const char *detail);
/* Print an error with rl_errdetail() and exit. */
_Noreturn void die_rl(const char *what);
uint64_t now_ns(void);        /* CLOCK_MONOTONIC */
uint64_t cpu_ns(void);        /* CLOCK_PROCESS_CPUTIME_ID */
void *shared_alloc(size_t n); /* zeroed MAP_SHARED anonymous memory */
void shared_free(const void *p, size_t n);

/* Call fn at exit and on SIGINT, SIGTERM and SIGHUP (then die of the signal): it must be
 * async-signal-safe, idempotent, and act only in the process it belongs to. */
typedef void cleanup_fn(void);
void on_exit_or_signal(cleanup_fn *fn);
/* Remove `path` when the bench exits (on an error or a signal too; only in the process that
 * asked), or (remove false) no longer: the caller removed it. */
void remove_at_exit(const char *path, bool remove);

/* A table of its own under /dev/shm, removed again by table_remove (or at exit). */
rl_table *table_create(const char *tag, uint32_t capacity, uint32_t arena_kib);
void table_remove(rl_table *t);
rl_bucket *bucket_define(rl_table *t, const char *name, const char *rules, const char *parent);
/* The table's file mapped read-only, to read its format (src/shm_format.h) directly;
 * shared_free() it. */
const void *table_map(rl_table *t, size_t *len);

/*
 * A team: n forked processes that start together. Each runs prepare(i, team, arg) (if not
 * NULL: warming up, before the start), then run(i, team, arg) once all are forked, then
 * exits; team_run returns when all have exited (and exits the bench if one failed).
 * start_ns/stop_ns: the instant the team was released and start + run_ns.
 */
struct team {
    uint64_t start_ns, stop_ns;
};
typedef void team_fn(unsigned i, const struct team *team, void *arg);
struct team_fns {
    team_fn *prepare, *run;
};
void team_run(unsigned n, uint64_t run_ns, const struct team_fns *fns, void *arg, struct team *out);

/* ---------------------------------------------------------------- stats.c */

int cmp_u64(const void *a, const void *b);
int cmp_double(const void *a, const void *b);
/* Sort v and return its p-th percentile (0..100, nearest rank). */
uint64_t percentile_u64(uint64_t *v, size_t n, double p);
double median_double(double *v, size_t n); /* sorts v */

/* Min, median and max of n values (sorted in place). */
struct spread {
    double min, median, max;
};
struct spread spread_of(double *v, size_t n);

/*
 * A log-linear latency histogram: exact below 32 ns, then 32 buckets per power of two
 * (3% wide), so p50/p99 of millions of samples cost 8 KiB per process, merged by adding.
 */
#define HIST_SUB     32
#define HIST_BUCKETS (60 * HIST_SUB)
struct hist {
    uint64_t n;
    uint32_t count[HIST_BUCKETS];
};
void hist_add(struct hist *h, uint64_t ns);
void hist_merge(struct hist *into, const struct hist *h);
uint64_t hist_percentile(const struct hist *h, double p);

/* ---------------------------------------------------------------- report.c */

/* A CSV file DIR/name.csv with its header line; NULL (and csv_row does nothing) without
 * --csv. */
FILE *csv_open(const char *name, const char *header);
void csv_row(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void csv_close(FILE *f);

enum verdict { NOT_APPLICABLE = -1, MISSED = 0, MET = 1 };
/* One line of the final table: what was measured, the result, the target, met or not. */
void summary_add(const char *what, const char *target, enum verdict v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void section(const char *title, ...) __attribute__((format(printf, 1, 2)));
void summary_print(void);
/* "yes", "**no**" or "" for a verdict. */
const char *verdict_text(enum verdict v);
enum verdict verdict_of(bool met);

/* ---------------------------------------------------------------- peers (peer_lock.c) */

/*
 * The library's GCRA decision made under a lock; *_decide return 0 (admitted) or
 * RL_ELIMITED. mutex: a robust PTHREAD_PROCESS_SHARED mutex and the state in shared
 * memory, `count` of them (one per bucket).
 */
struct mutex_peer;
struct mutex_peer *mutex_peer_create(unsigned count, uint64_t interval_ns, uint64_t burst);
struct mutex_peer *mutex_peer_at(struct mutex_peer *peers, unsigned i);
void mutex_peer_destroy(struct mutex_peer *peers, unsigned count);
int mutex_peer_decide(struct mutex_peer *p);

/* flock() on a file whose pages hold the state; open once per process (flock locks
 * belong to the open file description). */
struct flock_peer;
struct flock_peer *flock_peer_open(const char *path, uint64_t interval_ns, uint64_t burst);
int flock_peer_decide(struct flock_peer *p);
void flock_peer_close(struct flock_peer *p);

/* ---------------------------------------------------------------- peer_redis.c */

/* Start redis-server on a Unix socket in a temporary directory and load the GCRA script.
 * NULL (with *why set) when hiredis was not built in or the server does not start. */
struct redis_peer;
struct redis_peer *redis_peer_start(uint64_t interval_us, uint64_t burst, const char **why);
int redis_peer_decide(struct redis_peer *r);
void redis_peer_stop(struct redis_peer *r);

/* ---------------------------------------------------------------- sections */

void bench_cost(void);
void bench_peers(void);
void bench_contention(void);
void bench_scale(void);
void bench_memory(void);
void bench_waiters(void);
void bench_accuracy(void);
void bench_shim(void);
void bench_config(void);
/* shim.c: the child re-executed with or without the shim: `--connect-child PORT OPS`. */
int shim_connect_child(const char *port, const char *ops);
/* shim.c: the built shim's path; false if it is not there. */
bool shim_locate(char *out, size_t len);
void bench_shim_requests(void);
/* shim_requests.c: its child, `--requests-child null|request PORT OPS`. */
int shim_requests_child(const char *mode, const char *port, const char *ops);

#endif /* RL_BENCH_H */
