/*
 * ratelimit.h - share one API rate-limit budget among many processes on one host.
 *
 * A table is a file (default /dev/shm/ratelimit) that every process maps MAP_SHARED.
 * It holds named buckets; each bucket has one to RL_MAX_RULES rules and optionally a
 * parent bucket it also draws from. Every decision is committed with atomic
 * compare-and-swap on the shared words: there are no locks, so a process killed at any
 * instruction never blocks the others.
 *
 * Ownership: rl_table_open() returns a table the caller owns and frees with
 * rl_table_close() (which accepts NULL). Bucket handles returned by rl_bucket_define()
 * and rl_bucket_lookup() are owned by the table: cache them freely, they stay valid until
 * rl_table_close(). All functions are thread-safe unless stated otherwise.
 *
 * Errors: functions return 0 (or a documented non-negative value) on success and a
 * negative RL_E* code on failure; rl_strerror() describes a code.
 *
 * Time: every *_ns instant is nanoseconds of CLOCK_MONOTONIC (as clock_gettime returns
 * it); every *_ns duration is nanoseconds. The wall clock is never used for decisions.
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message): the error codes. */
#define RL_ERRORS(X)                                                                               \
    X(RL_ELIMITED, -1, "rate limited: the budget does not allow this request now")                 \
    X(RL_ETIMEDOUT, -2, "timed out: the request would not be admitted before the deadline")        \
    X(RL_EINVAL, -3, "invalid argument")                                                           \
    X(RL_ENOMEM, -4, "out of memory")                                                              \
    X(RL_ENOENT, -5, "no such bucket")                                                             \
    X(RL_EEXIST, -6, "bucket already exists with different rules or parent")                       \
    X(RL_EFULL, -7, "table is full: no room for another bucket or its state")                      \
    X(RL_ESYS, -8, "system call failed (see errno)")                                               \
    X(RL_EBADTABLE, -9, "not a ratelimit table, or the table file is damaged")                     \
    X(RL_EVERSION, -10, "table has a layout version this library does not speak")                  \
    X(RL_ESTALE, -11, "table was created before the last reboot")                                  \
    X(RL_EPERM, -12, "permission denied: table is read-only or not trusted")                       \
    X(RL_ENAME, -13, "invalid bucket name")                                                        \
    X(RL_EPARSE, -14, "invalid rule text")                                                         \
    X(RL_ECOST, -15, "cost exceeds what any rule of the bucket can ever admit")                    \
    X(RL_ECYCLE, -16, "parent chain is too deep or forms a cycle")                                 \
    X(RL_ECORRUPT, -17, "bucket state is damaged; the bucket refuses all requests")

enum rl_error {
    RL_OK = 0,
#define RL_ERROR_ENUM(name, value, msg) name = value,
    RL_ERRORS(RL_ERROR_ENUM)
#undef RL_ERROR_ENUM
};

/* A static, human-readable description of an error code (never NULL). */
const char *rl_strerror(int err);
/* The code's symbolic name, e.g. "RL_ELIMITED" (never NULL). */
const char *rl_err_name(int err);
/*
 * Details of the last error this thread got from rl_table_open, rl_bucket_define and
 * friends: what and where, e.g. "table /dev/shm/x is 100 bytes but its header says 8192
 * (truncated)". Owned by the library; valid until the thread's next call.
 */
const char *rl_errdetail(void);

/* Limits, enforced with RL_EINVAL / RL_ENAME / RL_EPARSE. */
#define RL_NAME_MAX          63            /* bytes, excluding the NUL */
#define RL_MAX_RULES         4             /* rules per bucket */
#define RL_MAX_DEPTH         4             /* buckets in a chain: a bucket and up to 3 ancestors */
#define RL_LIMIT_MAX         1000000000ULL /* N of one rule */
#define RL_SLIDING_LIMIT_MAX 262144U       /* N of a sliding-window rule (8 bytes per unit) */
#define RL_PERIOD_MIN_NS     1000000ULL    /* T >= 1 ms */
#define RL_PERIOD_MAX_NS     (366ULL * 86400 * 1000000000ULL) /* T <= 366 days */
#define RL_MARGIN_MAX_NS     60000000000ULL                   /* margin <= 60 s */
#define RL_MARGIN_DEFAULT_NS 20000000ULL                      /* 20 ms */

/* ------------------------------------------------------------------ tables */

typedef struct rl_table rl_table;

enum rl_open_flags {
    RL_OPEN_CREATE = 1 << 0,   /* create the table if it does not exist */
    RL_OPEN_READONLY = 1 << 1, /* map read-only: inspect, never change */
};

/*
 * Options for rl_table_open(). Start from RL_TABLE_OPTS_INIT; the struct starts with its
 * own size so it can grow without breaking callers.
 */
struct rl_table_opts {
    size_t size;        /* sizeof(struct rl_table_opts) */
    const char *path;   /* NULL: $RATELIMIT_TABLE, else RL_TABLE_DEFAULT_PATH */
    unsigned flags;     /* enum rl_open_flags */
    uint32_t capacity;  /* at creation: maximum number of buckets */
    uint32_t arena_kib; /* at creation: KiB for rules and sliding-window logs (0: default) */
    unsigned mode;      /* at creation: file mode, 0600 by default; never world-writable */
    long group;         /* at creation: group id to chown to, or -1 to keep the creator's */
};

#define RL_TABLE_DEFAULT_PATH "/dev/shm/ratelimit"
#define RL_TABLE_OPTS_INIT                                                                         \
    {                                                                                              \
        sizeof(struct rl_table_opts), NULL, RL_OPEN_CREATE, 1024, 0, 0600, -1                      \
    }

/*
 * Attach to a table, creating it if it is missing and RL_OPEN_CREATE is set. Creation is
 * race-free: the file is built under a temporary name and linked into place, so an
 * attacher never sees a half-initialized table. The file is opened with O_NOFOLLOW and must
 * be a regular file that is not world-writable and, unless RL_OPEN_READONLY, owned by the
 * caller or by root. Every
 * attach validates the header (magic, layout version, sizes, boot).
 * Errors: RL_EBADTABLE, RL_EVERSION, RL_ESTALE, RL_EPERM, RL_ESYS, RL_EINVAL, RL_ENOMEM.
 * Not async-signal-safe.
 */
int rl_table_open(const struct rl_table_opts *opts, rl_table **out);

/* Detach and free. Bucket handles of this table become invalid. Accepts NULL. */
void rl_table_close(rl_table *table);

/* The path the table was opened from (owned by the table). */
const char *rl_table_path(const rl_table *table);

struct rl_table_info {
    uint32_t layout_version;
    uint32_t capacity;    /* buckets */
    uint32_t buckets;     /* buckets defined */
    uint64_t arena_bytes; /* bytes for rules and sliding logs */
    uint64_t arena_used;  /* of which in use */
    uint64_t file_bytes;  /* size of the table file */
    uint64_t created_ns;  /* CLOCK_MONOTONIC instant of creation */
    bool read_only;       /* this attachment cannot change the table */
};
int rl_table_info(const rl_table *table, struct rl_table_info *out);

/* ------------------------------------------------------------------ rules */

enum rl_rule_kind {
    RL_SLIDING = 0, /* at most N in any rolling window of T (the default) */
    RL_GCRA = 1,    /* token bucket: sustained N per T, burst capacity B */
    RL_FIXED = 2,   /* at most N per window of T aligned to multiples of T since the epoch */
};

struct rl_rule {
    enum rl_rule_kind kind;
    uint64_t limit;     /* N */
    uint64_t period_ns; /* T */
    uint64_t burst;     /* B, GCRA only: requests admitted back to back; 0 means N */
};

enum rl_policy_flags {
    RL_POLICY_DRY_RUN = 1 << 0, /* decide and count as usual, but admit everything */
};

/* A bucket's rules: a request must pass all of them. */
struct rl_policy {
    struct rl_rule rules[RL_MAX_RULES];
    unsigned nrules;
    uint64_t margin_ns; /* each window is counted this much longer than the server does */
    unsigned flags;     /* enum rl_policy_flags */
};

/* Where rule parsing failed: 1-based column into the text, and what was expected. */
struct rl_parse_error {
    unsigned column;
    char message[160];
};

/*
 * Parse rule text such as "200/60s", "120/1m burst 20", "1000/1h fixed, 100/1m",
 * "30/1m margin 50ms". Grammar (README "Rule syntax"):
 *   policy   := rule { "," rule } [ "margin" DURATION ] [ "dry-run" ]
 *   rule     := COUNT "/" DURATION [ "burst" COUNT | "fixed" | "sliding" ]
 *   DURATION := [COUNT] ("ms" | "s" | "m" | "h" | "d"), e.g. 500ms, 60s, 1m, 1h; "/s" is "/1s"
 * On error returns RL_EPARSE and fills *err (if not NULL). Pure: no table needed.
 */
int rl_policy_parse(const char *text, struct rl_policy *out, struct rl_parse_error *err);

/*
 * Parse one DURATION ("500ms", "60s", "1m", "h") at text; *end is set past it.
 * Returns 0 or RL_EPARSE with *err (column relative to text).
 */
int rl_parse_duration(const char *text, const char **end, uint64_t *ns, struct rl_parse_error *err);

/* Write the canonical text of a policy (parseable by rl_policy_parse). Returns the length
 * it needed, like snprintf. */
int rl_policy_format(const struct rl_policy *policy, char *buf, size_t len);

/* Check a parsed or hand-built policy against the limits above. 0 or RL_EPARSE with *err. */
int rl_policy_check(const struct rl_policy *policy, struct rl_parse_error *err);

/* ------------------------------------------------------------------ buckets */

typedef struct rl_bucket rl_bucket;

/*
 * Names: 1..RL_NAME_MAX bytes of [A-Za-z0-9._:@/-], not starting or ending with '/',
 * no "//". Returns 0 or RL_ENAME.
 */
int rl_name_check(const char *name);

/*
 * Create bucket `name` with `policy`, drawing also from `parent` (NULL for none), or find
 * it if it already exists with the same policy and parent. Any attached process may define
 * buckets at any time; concurrent definitions of one name yield one bucket.
 * Errors: RL_ENAME, RL_EPARSE (policy), RL_ENOENT (parent), RL_ECYCLE, RL_EEXIST (exists
 * with other rules: use rl_bucket_update), RL_EFULL, RL_EPERM (read-only).
 * Lock-free.
 */
int rl_bucket_define(rl_table *table, const char *name, const struct rl_policy *policy,
                     const char *parent, rl_bucket **out);

/* Find a bucket by name. RL_ENOENT if absent. Lock-free; the handle may be cached. */
int rl_bucket_lookup(rl_table *table, const char *name, rl_bucket **out);

/* The bucket's name (owned by the table). */
const char *rl_bucket_name(const rl_bucket *bucket);

/* ------------------------------------------------------------------ decisions */

struct rl_decision {
    uint64_t at_ns;        /* the admission instant (admitted) or the decision instant */
    uint64_t wait_ns;      /* rejected: how long until this request would be admitted */
    uint64_t remaining;    /* units still available now in the tightest rule of the chain */
    bool dry_run_rejected; /* admitted only because a bucket of the chain is in dry-run */
};

/*
 * Take `cost` units from the bucket and every ancestor, all or nothing, if all their rules
 * allow it now. Returns 0 (admitted) or RL_ELIMITED (nothing consumed; out->wait_ns says
 * when it would be admitted, UINT64_MAX if never before a reset). RL_ECOST if the cost can
 * never be admitted. `out` may be NULL.
 * Lock-free; safe from any process attached to the table; never sleeps.
 */
int rl_try_acquire(rl_bucket *bucket, uint32_t cost, struct rl_decision *out);

/*
 * Like rl_try_acquire, but when the budget is short, reserve the earliest instant at which
 * the request will be admitted (first come, first served) and sleep until then, without
 * spinning. If that instant is more than timeout_ns away, reserve nothing and return
 * RL_ETIMEDOUT (out->wait_ns says how long it would have been). A process killed while
 * sleeping loses its reservation (under-admission), never causes over-admission.
 * Lock-free (sleeps only for its own turn); not async-signal-safe.
 */
int rl_acquire(rl_bucket *bucket, uint32_t cost, uint64_t timeout_ns, struct rl_decision *out);

/*
 * Restore the bucket's full budget (its own rules only, not its parent's). Needs a
 * writable table. Counters are kept; `resets` is incremented.
 */
int rl_bucket_reset(rl_bucket *bucket);

/* ------------------------------------------------------------------ inspection */

struct rl_rule_state {
    struct rl_rule rule;
    uint64_t used;         /* units counted in the current window (or GCRA debt, in units) */
    uint64_t remaining;    /* units admissible right now */
    uint64_t next_free_ns; /* when the next unit becomes available (0: available now) */
};

struct rl_counters {
    uint64_t admitted;         /* requests admitted */
    uint64_t admitted_units;   /* units admitted (sum of cost) */
    uint64_t rejected;         /* try_acquire refusals and timeouts */
    uint64_t waited;           /* blocking acquires that had to sleep */
    uint64_t waited_ns;        /* total time reserved ahead by blocking acquires */
    uint64_t dry_run_rejected; /* dry-run: requests that would have been refused */
    uint64_t resets;
};

struct rl_bucket_info {
    char name[RL_NAME_MAX + 1];
    char parent[RL_NAME_MAX + 1]; /* "" if none */
    struct rl_policy policy;
    struct rl_rule_state rules[RL_MAX_RULES];
    struct rl_counters counters;
    uint64_t now_ns; /* the instant the state was read at */
};

/* Read a bucket's state (a consistent view of each rule). Lock-free, read-only. */
int rl_bucket_info(const rl_bucket *bucket, struct rl_bucket_info *out);

/* Parent bucket, or NULL. */
rl_bucket *rl_bucket_parent(const rl_bucket *bucket);

/*
 * Call fn for every bucket in creation order; stop early and return fn's value if it
 * returns non-zero. Buckets created during the walk may or may not be visited.
 */
int rl_table_foreach(rl_table *table, int (*fn)(rl_bucket *bucket, void *arg), void *arg);

/* CLOCK_MONOTONIC now, in ns (the clock every decision uses). */
uint64_t rl_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* RATELIMIT_H */
