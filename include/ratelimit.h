/*
 * ratelimit.h - share one API rate-limit budget among many processes on one host.
 *
 * A table is a file (default RL_TABLE_DEFAULT_PATH) that every process maps MAP_SHARED.
 * It holds named buckets; each bucket has one to RL_MAX_RULES rules and optionally a
 * parent bucket it also draws from. Every decision is committed with atomic
 * compare-and-swap on the shared words: there are no locks, so a process killed at any
 * instruction never blocks the others.
 *
 * Ownership: rl_table_open() returns a table the caller owns and frees with
 * rl_table_close() (which accepts NULL). Bucket handles returned by rl_bucket_define()
 * and rl_bucket_lookup() are owned by the table: cache them freely, they stay valid until
 * rl_table_close(). Table, bucket and config arguments must not be NULL unless a function
 * says so.
 *
 * Errors: functions return 0 (or a documented non-negative value) on success and a
 * negative RL_E* code on failure; rl_strerror() describes a code. Each function's
 * "Errors:" line lists every code it can return.
 *
 * Contracts: each function's comment ends with one line saying
 *   - lock-free or not: lock-free functions take no lock, in the table or in the process,
 *     so a thread or process stopped anywhere never blocks the others;
 *   - whether it may allocate (malloc): a bucket handle is made, and its validated copy of
 *     the rules cached, the first time a process uses the bucket and after each rule switch;
 *   - whether it may sleep or block in a system call;
 *   - what it writes in the shared table;
 *   - async-signal safety (most functions are not: they may allocate, and record
 *     rl_errdetail() with vsnprintf);
 *   - which threads may call it. "Any thread" means concurrently with any other function
 *     on the same table and buckets, from any thread of any process attached to the table,
 *     except rl_table_close().
 *
 * Struct sizes: a struct the caller fills in and passes in, that may grow, starts with its
 * own size (struct rl_table_opts, struct rl_response): start from its *_INIT macro. The
 * library rejects a size smaller than the first version's with RL_EINVAL and ignores fields
 * beyond the ones it knows. Structs the library fills in (rl_decision, rl_feedback,
 * rl_table_info, rl_bucket_info and the structs it holds, rl_parse_error) and value structs
 * (rl_rule, rl_policy) never change their layout: new output comes through new fields
 * of a new struct and a new function. Structs the library returns pointers to
 * (rl_config_table, rl_config_shim) may grow at the end; arrays it returns
 * (rl_config_bucket, rl_route) do not.
 *
 * Time: every *_ns instant is nanoseconds of CLOCK_MONOTONIC (as clock_gettime returns
 * it); every *_ns duration is nanoseconds. Decisions never read the wall clock; it only sets
 * where fixed windows begin (measured at creation, checked again at most once a second).
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit-version.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The version of the library the program runs with, e.g. "0.1.0" (never NULL; static).
 * RATELIMIT_VERSION_STRING and RATELIMIT_VERSION_MAJOR/MINOR/PATCH (ratelimit-version.h)
 * are the version of the headers it was compiled with.
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
const char *rl_version(void);

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

/*
 * A static, human-readable description of an error code (never NULL; "unknown error" for
 * a code not in RL_ERRORS).
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
const char *rl_strerror(int err);
/*
 * The code's symbolic name, e.g. "RL_ELIMITED" (never NULL; "RL_EUNKNOWN" for a code not in
 * RL_ERRORS).
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
const char *rl_err_name(int err);
/*
 * Details of the last error this thread got from rl_table_open, rl_bucket_define and
 * friends: what and where, e.g. "table /dev/shm/x is 5000 bytes but its header says 8192
 * (truncated)". Meaningful right after a call returned an error other than RL_ELIMITED,
 * RL_ETIMEDOUT or RL_EPARSE (whose details are the decision or the parse error); successful
 * calls leave it as it was. Owned by the library,
 * per thread (never NULL).
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; not async-signal-safe (a
 * handler may interrupt the thread while it writes the text); any thread, for its own
 * errors.
 */
const char *rl_errdetail(void);

/* Limits, enforced with RL_EINVAL / RL_ENAME / RL_EPARSE. */
#define RL_NAME_MAX            63 /* bytes, excluding the NUL */
#define RL_MAX_RULES           4  /* rules per bucket */
#define RL_MAX_DEPTH           4  /* buckets in a chain: a bucket and up to 3 ancestors */
#define RL_LIMIT_MAX           1000000000ULL /* N of one rule */
#define RL_SLIDING_LIMIT_MAX   131072U       /* N of a sliding-window rule (8 bytes per unit) */
#define RL_LEASE_MAX           524287U       /* units of one lease of a global rule (19 bits) */
#define RL_GLOBAL_MIN_NS       1000000000ULL /* T >= 1 s for a global rule */
#define RL_PERIOD_MIN_NS       1000000ULL    /* T >= 1 ms */
#define RL_FIXED_PERIOD_MIN_NS 100000000ULL  /* T >= 100 ms for a fixed window */
#define RL_PERIOD_MAX_NS       (366ULL * 86400 * 1000000000ULL) /* T <= 366 days */
#define RL_MARGIN_MAX_NS       60000000000ULL                   /* margin <= 60 s */
#define RL_MARGIN_DEFAULT_NS   20000000ULL                      /* 20 ms */
#define RL_EXPIRE_MAX_NS       (49ULL * 86400 * 1000000000ULL)  /* a template's expire <= 49 d */

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
    uint32_t arena_kib; /* at creation: KiB for rules and sliding-window logs (0: default,
                           4 KiB per bucket + 16 MiB; a file on tmpfs only uses what is
                           written) */
    unsigned mode;      /* at creation: file mode, 0600 by default; never world-writable */
    long group;         /* at creation: group id to chown to, or -1 to keep the creator's */
};

/* RL_TABLE_DEFAULT_PATH: in ratelimit-version.h, set by the build (/dev/shm/ratelimit). */
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
 * attach validates the header (magic, layout version, sizes, boot). `opts` may be NULL
 * (RL_TABLE_OPTS_INIT).
 * Errors: RL_EINVAL (out is NULL, opts->size too small, a creation option out of range, a
 * path too long), RL_ENOENT (no table and RL_OPEN_CREATE not set, or RL_OPEN_READONLY),
 * RL_EPERM (a symbolic link, a world-writable mode or file, a file owned by another user,
 * no access), RL_EBADTABLE, RL_EVERSION, RL_ESTALE, RL_ESYS, RL_ENOMEM.
 * A writable table also holds, from this process's first decision on it, a reader slot
 * in the table and a second descriptor of the file whose byte lock says the process is
 * alive (README "Space a switch leaves is reused"); a fork child claims its own.
 * Not lock-free (opens, maps and at creation writes and links a file); allocates; blocks
 * in system calls; writes the whole table when it creates it, nothing when it attaches;
 * not async-signal-safe; any thread.
 */
int rl_table_open(const struct rl_table_opts *opts, rl_table **out);

/*
 * Detach and free. Every bucket handle of this table becomes invalid, in every thread of
 * the process: no other thread may be using the table or any of its handles, nor use them
 * afterwards. Other processes are not affected. Accepts NULL.
 * Errors: none.
 * Frees handles, gives this process's reader slot back (kept, with its lock, if a thread
 * is still inside a decision), closes the table's descriptors and unmaps it; never sleeps;
 * writes only the reader slot in the table; not async-signal-safe; one thread, once no
 * other thread uses the table.
 */
void rl_table_close(rl_table *table);

/*
 * Is the table still the file its path names? A table deleted or replaced underneath
 * running processes keeps working for the processes that have it mapped, but processes
 * that open the path afterwards get another file, hence another budget: the host could
 * then exceed it. Returns 0, or RL_ESTALE (the path names another file, or none) with
 * rl_errdetail() saying which. Cheap (one stat); call it now and then, not per request.
 * Errors: RL_ESTALE, RL_ESYS (fstat of the open table failed).
 * Lock-free; never allocates; two stat system calls; writes nothing; not
 * async-signal-safe; any thread.
 */
int rl_table_check(const rl_table *table);

/*
 * For long-lived users of a table (a daemon, a binding, a monitor): notice that the path
 * now names another file, and open that one. At most once a second per table (a
 * process-local timestamp; calls in between return 0 at once, without a system call), it
 * runs rl_table_check(). If the table is still the file its path names, it returns 0 and
 * sets *fresh to NULL. If the table was deleted, replaced, truncated or lost (RL_ESTALE),
 * it opens the path again with the options `table` was opened with (so a table opened with
 * RL_OPEN_CREATE is created again if the path names nothing), sets *fresh and returns 1.
 * The caller then uses *fresh from now on, looks its buckets up again in it (a created
 * table has none: define them, e.g. with rl_config_apply), and closes `table` once no
 * thread uses it or its handles any more. `table` stays valid until then.
 * The pattern: call it now and then (before a request is fine: it is cheap when not due),
 * and swap the table in when it returns 1.
 * Errors: RL_EINVAL (a NULL argument), RL_ESYS (fstat of the open table failed), and those
 * of rl_table_open (e.g. RL_ENOENT: deleted, and `table` was not opened to create).
 * Lock-free when not due (a clock read and a CAS); else blocks in system calls and may
 * allocate and create a file (rl_table_open); writes nothing in `table`; not
 * async-signal-safe; any thread (one per second does the check).
 */
int rl_table_reopen_if_replaced(rl_table *table, rl_table **fresh);

/*
 * Grow (or compact) a table: build a new file with `capacity` records and arena_kib KiB of
 * arena (0: the default for that capacity), copy every bucket and template with its state
 * (rules, usage, feedback, counters; deleted buckets and records lost by creators killed
 * midway are left out), then rename it over the
 * table's path. While it copies, and for good once it is done, this table refuses every
 * request (RL_ELIMITED, with a detail) and every change (RL_ESTALE): nothing is admitted
 * that the copy misses, so there is no over-admission across the switch. Processes follow
 * the new file with rl_table_reopen_if_replaced (the preload shim does within a second).
 * *copied (if not NULL): the buckets and templates copied. A failure before the rename
 * leaves this table as it was, working. A resize killed midway leaves it refusing: resize
 * again.
 * Errors: RL_EINVAL (table NULL, capacity 0 or below the buckets held), RL_EPERM (read-only
 * table), RL_ESTALE (the path names another file: this table was resized or replaced
 * already), RL_EEXIST (another process is resizing it), RL_ETIMEDOUT (a process stayed
 * inside a decision for 5 s, e.g. stopped), RL_EFULL (the new file or its arena is too
 * small), RL_ESYS, and the errors of rl_table_open.
 * Not lock-free: waits (sleeps) for the decisions in progress to end; allocates; writes a
 * new table file and this table's `moved` word; not async-signal-safe; any thread.
 */
int rl_table_resize(rl_table *table, uint32_t capacity, uint32_t arena_kib, unsigned *copied);

/*
 * The path the table was opened from (owned by the table).
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
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
    /* The config the buckets and templates are known to match: bit 63 set and the low 63
     * bits its digest (rl_config_apply sets it), else 0 or another value: unknown. */
    uint64_t applied_digest;
    /* Preload shim: processes whose shim attached to this table (each on its first
     * connect to a TCP/IP address), and the CLOCK_MONOTONIC instant and pid of the latest
     * (0, 0 if none). */
    uint64_t shim_attaches;
    uint64_t shim_last_attach_ns;
    int64_t shim_last_pid;
};
/*
 * The table's geometry and use (the counts are recent, not exact). Returns 0.
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing in the table; async-signal-safe;
 * any thread.
 */
int rl_table_info(const rl_table *table, struct rl_table_info *out);

/*
 * Space given back (README "Templates and live changes"). Start from RL_TABLE_SPACE_INIT:
 * the struct starts with its own size so it can grow without breaking callers.
 */
struct rl_table_space {
    size_t size;                /* sizeof(struct rl_table_space) */
    uint32_t records_used;      /* bucket records holding a bucket (or lost by a creator
                                   killed midway): capacity - records_used are free */
    uint32_t deleted;           /* buckets deleted (their records are reused) */
    uint64_t expired;           /* of those, expired idle (rl_bucket_expire) */
    uint64_t arena_free;        /* arena bytes on the free lists: the next blocks of their sizes */
    uint64_t arena_reclaimable; /* bytes of blocks switches and deletions left, freed once
                                   no process can still be reading them */
    uint64_t blocks_reused;     /* blocks handed out again */
    uint64_t expired_auto;      /* of `expired`, by templates' expiry (rl_template_define_expire)
                                   on tenant creation or rl_bucket_expire_due */
    uint32_t records_spare;     /* of the free records, those deleted buckets gave back: the
                                   next creations reuse them (once no process can still be
                                   reading them: they count as free already) */
    uint64_t index_slots;       /* the name index's slots (2 to 4 per record) */
    uint64_t index_empty;       /* of those, never used: a lookup of a name that is not there
                                   (each new tenant's first use) walks to an empty slot, and
                                   deleted names leave tombstones, not empty slots; a resize
                                   rebuilds the index (README "Limits of record reuse") */
};
#define RL_TABLE_SPACE_INIT                                                                        \
    {                                                                                              \
        sizeof(struct rl_table_space), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0                                \
    }

/*
 * The table's space given back and reusable (the counts are recent, not exact; the byte
 * counts lie within rl_table_info's arena_used). index_empty reads every index slot:
 * O(capacity).
 * Errors: RL_EINVAL (out NULL or out->size smaller than the first version of the struct).
 * Lock-free; never allocates; never sleeps; writes nothing in the table; async-signal-safe;
 * any thread.
 */
int rl_table_space(const rl_table *table, struct rl_table_space *out);

/* ------------------------------------------------------------------ table file faults */

/*
 * Contain the SIGBUS of a table file truncated under this process. Without it, a process
 * that touches a page past the new end of the file dies. ratelimitctl and the preload shim
 * call it; a program that links the library calls it once, early (after installing any
 * SIGBUS handler of its own, which then keeps working).
 *
 * It installs a process-wide SIGBUS handler (SA_SIGINFO; SA_ONSTACK, SA_RESTART and the
 * signal mask are taken over from the handler it replaces). For a fault inside the mapping
 * of a table this process has open, it maps anonymous memory over that whole mapping, so
 * the access completes on zeros, and marks the table lost: from then on every decision and
 * rl_bucket_define on it returns RL_ESTALE, a decision in progress does not admit, and
 * rl_table_check() reports it; close it and open the path again. Any other SIGBUS (another
 * address, or sent by kill() or raise()) goes to the handler it replaced, or, if that was
 * SIG_DFL, kills the process as before (SIG_IGN ignores a sent one; a fault still kills).
 * A later sigaction() of SIGBUS by the program replaces it. Up to 64 open tables are
 * guarded; more stay unguarded.
 *
 * The handler is async-signal-safe: it reads a fixed registry with atomic loads, and calls
 * only mmap(), sigaction() and raise(). Calling this again does nothing. Returns 0 or
 * RL_ESYS. Thread-safe; not async-signal-safe.
 */
int rl_guard_install(void);

/* ------------------------------------------------------------------ rules */

enum rl_rule_kind {
    RL_SLIDING = 0, /* at most N in any rolling window of T (the default) */
    RL_GCRA = 1,    /* token bucket: sustained N per T, burst capacity B */
    RL_FIXED = 2,   /* at most N per window of T aligned to multiples of T since the epoch */
    RL_GLOBAL = 3,  /* at most N in any rolling window of T over all hosts sharing a Redis
                     * budget: decided from this host's lease (README "Several hosts") */
};

struct rl_rule {
    enum rl_rule_kind kind;
    uint64_t limit;     /* N */
    uint64_t period_ns; /* T */
    uint64_t burst;     /* B, GCRA only: requests admitted back to back (>= 1);
                         * RL_GLOBAL: the largest lease, in units (1..min(N, RL_LEASE_MAX)) */
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
 *   rule     := COUNT "/" DURATION [ "burst" COUNT | "fixed" | "sliding" | global ]
 *   global   := "global" [ "lease" COUNT ]   (the largest lease; default N/10, at least 1)
 *   DURATION := [COUNT] ("ns" | "us" | "ms" | "s" | "m" | "h" | "d"), e.g. 500ms, 60s, 1m, 1h;
 *               "/s" is "/1s"
 * On error returns RL_EPARSE and fills *err (if not NULL). Pure: no table needed.
 * Errors: RL_EINVAL (text or out is NULL), RL_EPARSE.
 * Lock-free; never allocates; never sleeps; writes only *out and *err; not
 * async-signal-safe (formats messages with snprintf); any thread.
 */
int rl_policy_parse(const char *text, struct rl_policy *out, struct rl_parse_error *err);

/*
 * Parse one DURATION ("500ms", "60s", "1m", "h") at text; *end is set past it.
 * Returns 0 or RL_EPARSE with *err (column relative to text; err may be NULL).
 * Errors: RL_EPARSE.
 * Lock-free; never allocates; never sleeps; writes only *end, *ns and *err; not
 * async-signal-safe; any thread.
 */
int rl_parse_duration(const char *text, const char **end, uint64_t *ns, struct rl_parse_error *err);

/*
 * Write the canonical text of a policy (parseable by rl_policy_parse) into buf, truncated
 * to len - 1 bytes and NUL-terminated if len > 0. Returns the length it needed, like
 * snprintf.
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes only buf; not async-signal-safe; any
 * thread.
 */
int rl_policy_format(const struct rl_policy *policy, char *buf, size_t len);

/*
 * Check a parsed or hand-built policy against the limits above. 0 or RL_EPARSE with *err
 * (err may be NULL).
 * Errors: RL_EPARSE.
 * Lock-free; never allocates; never sleeps; writes only *err; not async-signal-safe; any
 * thread.
 */
int rl_policy_check(const struct rl_policy *policy, struct rl_parse_error *err);

/* ------------------------------------------------------------------ buckets */

typedef struct rl_bucket rl_bucket;

/*
 * Names: 1..RL_NAME_MAX bytes of [A-Za-z0-9._:@/-], not starting or ending with '/',
 * no "//". Returns 0 or RL_ENAME (also for NULL).
 * Errors: RL_ENAME.
 * Lock-free; never allocates; never sleeps; writes nothing; not async-signal-safe; any
 * thread.
 */
int rl_name_check(const char *name);

/*
 * Create bucket `name` with `policy`, drawing also from `parent` (NULL for none), or find
 * it if it already exists with the same policy and parent. Any attached process may define
 * buckets at any time; concurrent definitions of one name yield one bucket.
 * On a read-only table an existing identical bucket is found; nothing is ever created.
 * Errors: RL_ENAME, RL_EPARSE (policy NULL or invalid), RL_ENOENT (no such parent, or it
 * cannot be looked up, or it was deleted meanwhile: then the new bucket is deleted too),
 * RL_ECYCLE (the chain would be longer than RL_MAX_DEPTH), RL_EEXIST (exists with other
 * rules or parent: use rl_bucket_update), RL_EFULL (no free record or arena space: a
 * deleted bucket's record is free again once no process can still be reading it; or
 * creations of the name aborted each other 64 times in a row), RL_EPERM (read-only
 * and the bucket does not exist), RL_ECORRUPT (the existing bucket or the table's counters
 * are damaged), RL_ENOMEM.
 * Lock-free; allocates the bucket's handle; never sleeps (yields while creations of one
 * name abort each other, and for up to 20 ms while every free record is a deleted bucket's
 * still in its grace period); writes a bucket record (a deleted bucket's, or a new one), a
 * policy block in the arena, index slots and the defined count (a record whose name
 * another process won is given back); not async-signal-safe; any thread.
 */
int rl_bucket_define(rl_table *table, const char *name, const struct rl_policy *policy,
                     const char *parent, rl_bucket **out);

/*
 * Find a bucket by name, or a template by its pattern ("tenant/" "*"); the handle may be
 * cached.
 * Errors: RL_ENAME, RL_ENOENT (absent), RL_ECORRUPT (its record or parent chain is
 * damaged), RL_ENOMEM.
 * Lock-free; allocates the handle on this process's first lookup of the bucket (and of
 * its ancestors); never sleeps; writes nothing in the table; not async-signal-safe; any
 * thread.
 */
int rl_bucket_lookup(rl_table *table, const char *name, rl_bucket **out);

/*
 * Define a template: `pattern` is a valid name followed by "/" and "*" (e.g. "tenant/" "*").
 * Buckets named "tenant/<anything>" are then made on first use by rl_bucket_get with the
 * template's policy and parent, by whichever process asks first, so one definition serves
 * thousands of tenants.
 * Errors: as rl_bucket_define (RL_ENAME for a pattern that is not a name and "/" "*").
 * Lock-free; allocates the template's handle; never sleeps; writes as rl_bucket_define;
 * not async-signal-safe; any thread.
 */
int rl_template_define(rl_table *table, const char *pattern, const struct rl_policy *policy,
                       const char *parent);

/*
 * rl_template_define with an idle expiry (config: `template tenant/<*> 200/60s expire 1h`):
 * each bucket made from the template carries it, and once it has been unused for its longest
 * window plus expire_ns it is deleted (as rl_bucket_expire does, which never over-admits: the
 * bucket made again has the full budget its rules would give the idle one). Nothing needs to
 * run for it: making a tenant (rl_bucket_get) examines two other records of the table and
 * expires those due, and `ratelimitctl expire` expires all that are due. expire_ns 0: never
 * (rl_template_define); it is kept in whole milliseconds (rounded up). A template that exists
 * with the same rules and parent but another expiry is RL_EEXIST, as for other rules.
 * Errors: as rl_template_define; RL_EINVAL (expire_ns above RL_EXPIRE_MAX_NS).
 * Contract as rl_template_define.
 */
int rl_template_define_expire(rl_table *table, const char *pattern, const struct rl_policy *policy,
                              const char *parent, uint64_t expire_ns);

/*
 * Find bucket `name`, or make it from the template with the longest matching prefix (with
 * the template's expiry, rl_template_define_expire). Before it makes one, it examines two
 * records of the table and expires those due (rl_bucket_expire_due); when the table is
 * full, up to 256 more, and then it tries once again.
 * Errors: RL_ENAME, RL_ENOENT (neither exists), RL_EFULL, RL_EPERM (read-only and the
 * bucket must be made), RL_EEXIST (made meanwhile by another process with other rules),
 * RL_ECORRUPT, RL_ENOMEM; a template whose block the table holds damaged can also give
 * RL_EPARSE or RL_ECYCLE.
 * Lock-free; allocates handles; never sleeps; writes as rl_bucket_define when it makes the
 * bucket (and as rl_bucket_expire for the tenants it expires), nothing otherwise; not
 * async-signal-safe; any thread.
 */
int rl_bucket_get(rl_table *table, const char *name, rl_bucket **out);

/*
 * True if the handle is a template (rl_table_foreach visits templates too).
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
bool rl_bucket_is_template(const rl_bucket *bucket);

/*
 * Switch a live bucket to new rules (its parent stays). The usage already counted carries
 * over: each new rule starts as if the units the old rules counted had all been admitted
 * just now, so the switch never admits more than the new rules allow, and deciders that
 * saw the old rules fail their commit and retry under the new ones. Same policy: no-op.
 * Errors: RL_EPERM (read-only), RL_EPARSE (policy NULL or invalid), RL_EFULL (arena),
 * RL_ENOENT (the bucket was deleted, or a delete of it came first: nothing switched, and
 * the new block went back), RL_ECORRUPT (the bucket's block or the arena counter is
 * damaged).
 * Lock-free, for deciders and for other updates (anyone finishes a switch it meets);
 * never allocates; never sleeps; writes a new policy block in the arena, the old block's
 * successor offset and frozen bits, and the bucket's policy offset; not async-signal-safe;
 * any thread.
 */
int rl_bucket_update(rl_bucket *bucket, const struct rl_policy *policy);

/*
 * rl_bucket_update that also sets the bucket's idle expiry (0: never; see
 * rl_template_define_expire). rl_bucket_update keeps the expiry the bucket has. A template's
 * new expiry holds for the tenants made from it afterwards; rl_config_apply switches the
 * existing ones too, as it does for the template's rules.
 * Errors: as rl_bucket_update; RL_EINVAL (expire_ns above RL_EXPIRE_MAX_NS).
 * Contract as rl_bucket_update.
 */
int rl_bucket_update_expire(rl_bucket *bucket, const struct rl_policy *policy, uint64_t expire_ns);

/*
 * The bucket's idle expiry in ns (whole milliseconds), 0 if it never expires by itself.
 * Errors: RL_EINVAL (a NULL argument), RL_ENOENT (deleted), RL_ECORRUPT.
 * Lock-free; never allocates; never sleeps; writes nothing in the table; not
 * async-signal-safe; any thread.
 */
int rl_bucket_expiry(const rl_bucket *bucket, uint64_t *expire_ns);

/*
 * Apply the bucket's own expiry now: if it has one (rl_bucket_expiry) and is due, i.e. idle
 * (as rl_bucket_expire tells it) for its longest window plus its expiry, delete it, as
 * rl_bucket_expire does. With dry_run, only tell: *due (if not NULL) says whether it is (or
 * was) due. A template, or a bucket without an expiry, is never due.
 * Errors: RL_EINVAL (bucket NULL), and those of rl_bucket_expire (not RL_EPERM with dry_run).
 * Lock-free; never allocates memory; never sleeps; writes as rl_bucket_expire (nothing with
 * dry_run); not async-signal-safe; any thread.
 */
int rl_bucket_expire_due(rl_bucket *bucket, bool dry_run, bool *due);

/*
 * The bucket's name (owned by the table).
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
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
 * when it would be admitted, UINT64_MAX if never before a reset). `out` may be NULL; it
 * is filled on success and on RL_ELIMITED only.
 * Errors: RL_ELIMITED, RL_ECOST (the cost can never be admitted), RL_EINVAL (bucket NULL,
 * cost 0, or a template), RL_EPERM (read-only table), RL_ECORRUPT (the chain's state is
 * damaged: the bucket refuses), RL_ENOMEM (caching the rules, see below).
 * Lock-free; may allocate on a handle's first decision and after a rule switch (the
 * handle's copy of the rules); never sleeps (a process's first decision on a table claims
 * its reader slot: it opens a descriptor and takes a byte lock, system calls that do not
 * wait); writes the rule words of the bucket and its ancestors, their sliding logs and
 * counters, and helps finish a rule switch it meets; not async-signal-safe; any thread.
 */
int rl_try_acquire(rl_bucket *bucket, uint32_t cost, struct rl_decision *out);

/*
 * Like rl_try_acquire, but when the budget is short, reserve the earliest instant at which
 * the request will be admitted (first come, first served) and sleep until then, without
 * spinning. If that instant is more than timeout_ns away, reserve nothing and return
 * RL_ETIMEDOUT (out->wait_ns says how long it would have been). RL_ETIMEDOUT too for a turn
 * so far ahead that a rule's state cannot record it (GCRA: about 220 years of debt; sliding
 * window: 55 years since the table's epoch; fixed window: 2^31 windows ahead) or that the
 * fixed windows' free parts do not meet within 4096 window starts; rl_try_acquire returns
 * RL_ELIMITED for such a turn. A process killed while
 * sleeping loses its reservation (under-admission), never causes over-admission.
 * A turn voided by a 429 reported meanwhile is taken again after the cool-down.
 * A wake-up more than half the chain's least margin in effect after the turn leaves the
 * turn unused (its units stay counted) and takes a fresh one, at most twice, if one fits
 * in the time left; else the late turn stands. out then describes the turn returned;
 * each fresh turn that waits counts in `waited`. Never if a rule of the chain has margin 0.
 * Errors: RL_ETIMEDOUT, RL_ECOST, RL_EINVAL (bucket NULL, cost 0, or a template), RL_EPERM
 * (read-only table), RL_ECORRUPT, RL_ENOMEM.
 * Lock-free (sleeps only for its own turn); may allocate as rl_try_acquire; sleeps
 * (clock_nanosleep, restarted after signals) until its turn; writes as rl_try_acquire; not
 * async-signal-safe; any thread.
 */
int rl_acquire(rl_bucket *bucket, uint32_t cost, uint64_t timeout_ns, struct rl_decision *out);

/*
 * Call right before the request an admission let through leaves (its bytes go to the
 * socket), when code ran between the decision and the send: a connection pool, a TLS
 * handshake, a process preempted on a loaded host. `d` is the admission's decision (from
 * rl_try_acquire, rl_acquire, or rl_reserve once its instant came). If more than half the
 * chain's least margin in effect has passed since d->at_ns, the server may count the
 * request in a window the rules already filled: reserve one fresh turn within timeout_ns
 * (as rl_reserve does), sleep until it, and leave the stale turn unused (its units stay
 * counted: under-admission, as for a turn a killed process never used).
 * Returns 1: a fresh turn was taken, *d describes it; send now. Returns 0: the admission
 * stands; send now. It stands when it is not late, when a rule of the chain has margin 0,
 * when no turn is free within timeout_ns (a global rule's empty lease, a cool-down past
 * the timeout: no pause is waited out), when a 429 reported during the sleep voids the
 * fresh turn, or when the rules cannot be read now. Never a refusal: the request was
 * admitted. A caller that sleeps on an open connection should check it is still open.
 * Errors: RL_EINVAL (bucket or d NULL, d a refusal (wait_ns not 0), cost 0, or a
 * template), RL_EPERM (read-only table).
 * Lock-free; may allocate as rl_try_acquire; sleeps only for the fresh turn (and takes no
 * further one if it wakes late); writes nothing when the admission is not late, else as
 * rl_reserve (a fresh turn that waits counts in `waited`), and takes the stale admission
 * (or a voided fresh one) out of the chain's `admitted` counters; not async-signal-safe;
 * any thread.
 */
int rl_acquire_recheck(rl_bucket *bucket, uint32_t cost, uint64_t timeout_ns,
                       struct rl_decision *d);

/*
 * rl_acquire without the sleep, for callers that wait their own way (an event loop, a
 * timer): reserve the earliest instant at which the request will be admitted, first come,
 * first served with every rl_acquire and rl_reserve of every process, and return at once.
 * Returns 0 with out->at_ns the reserved instant (CLOCK_MONOTONIC; now or later): the
 * request may be sent from then on, not before. If that instant is more than timeout_ns
 * away, nothing is reserved and it returns RL_ETIMEDOUT (out->wait_ns says how long it
 * would have been). rl_acquire is rl_reserve, a sleep until out->at_ns, and
 * rl_reserve_check. `out` may be NULL (then the instant is lost: pass it).
 * A reserved turn cannot be given back. Later turns were computed after it, and
 * withdrawing its units would let one of them, or an admission in the gap, exceed a rule
 * (the sliding log and a GCRA's theoretical arrival time hold no record of which turn
 * is whose). A turn the caller does not use stays counted: the pool admits less, never
 * more, as for a process killed while it sleeps.
 * Errors: RL_ETIMEDOUT, RL_ECOST, RL_EINVAL (bucket NULL, cost 0, or a template), RL_EPERM
 * (read-only table), RL_ECORRUPT, RL_ENOMEM.
 * Lock-free; may allocate as rl_try_acquire; never sleeps; writes as rl_try_acquire; not
 * async-signal-safe; any thread.
 */
int rl_reserve(rl_bucket *bucket, uint32_t cost, uint64_t timeout_ns, struct rl_decision *out);

/*
 * Call once at or after the instant rl_reserve returned (at_ns), before sending the
 * request: did a 429 reported since void the turn? The vendor told the pool to stop
 * before the turn came (a cool-down that began at or before at_ns still covered it).
 * Returns 0: the turn stands, send. Returns RL_ELIMITED: do not send. The turn is no
 * longer counted as admitted (its units stay counted); wait until *resume_ns (CLOCK_MONOTONIC:
 * as far behind the cool-down's end as at_ns was behind its start, so voided waiters come
 * back in their order) and rl_reserve again. *resume_ns is 0 when the turn stands.
 * Errors: RL_ELIMITED, RL_EINVAL (bucket or resume_ns NULL, cost 0).
 * Lock-free; never allocates; never sleeps; writes the chain's admission counters when it
 * voids the turn, nothing otherwise; not async-signal-safe; any thread.
 */
int rl_reserve_check(rl_bucket *bucket, uint32_t cost, uint64_t at_ns, uint64_t *resume_ns);

/*
 * Restore the bucket's full budget (its own rules only, not its parent's), and forget its
 * cool-down, backoff count and server view. Needs a writable table. Counters are kept;
 * `resets` is incremented. A bucket whose rule words were left frozen with no switch to
 * finish (a damaged word) is moved to a fresh copy of its rules, which takes arena space.
 * Errors: RL_EPERM (read-only table), RL_ENOENT (the bucket was deleted, or a fresh copy was
 * needed and a delete of it is in progress), RL_ECORRUPT (the bucket's block is damaged),
 * RL_EFULL (a fresh copy was needed and the arena is full).
 * Lock-free; never allocates memory; never sleeps; writes the bucket's rule words and sliding
 * logs (and those of a block it switches to meanwhile), its feedback words and `resets`;
 * not async-signal-safe; any thread.
 */
int rl_bucket_reset(rl_bucket *bucket);

/*
 * Delete a bucket (or a template): its name is free at once and may be defined again, as a
 * new bucket with a full budget. Handles to the deleted bucket stay valid memory, but
 * every call on them (decisions, info, reset, update, and decisions of its children) fails
 * with RL_ENOENT: a decision is never made against the deleted bucket's state, or against
 * its policy block, which is reused once no process can still be reading it. Look the name
 * up again to follow a new bucket of that name. Buckets made from a deleted template stay.
 * Its record and index slot serve later buckets once no process can still be reading them;
 * a handle kept across that still answers RL_ENOENT, never for the new bucket (records
 * carry a generation). A child defined under the bucket while it is deleted is deleted too.
 * Errors: RL_EINVAL (bucket NULL, or it is the parent of a live bucket: delete that first),
 * RL_EPERM (read-only table), RL_ENOENT (already deleted), RL_ECORRUPT (its chain of rule
 * switches is damaged).
 * A switch racing the delete either comes first (the delete finishes it, then deletes the
 * new block) or returns RL_ENOENT: the delete first claims the block's successor link.
 * Lock-free; never allocates; never sleeps; writes the block's successor link (the claim),
 * the bucket's policy reference (to 0), its index slot (a tombstone), the block and record
 * limbo lists, the applied digest and the `defined` count; not async-signal-safe; any
 * thread.
 */
int rl_bucket_delete(rl_bucket *bucket);

/*
 * Delete the bucket if it is idle: every rule counts nothing now nor idle_ns ago (so its
 * whole budget is free, and has been), no debt carried by a switch is left, no cool-down or
 * server view is in force, it has no global rule and no children. *expired (if not NULL)
 * says whether it was deleted. Expiry never over-admits: the bucket is first switched to a
 * copy of its rules and frozen, so a decision that committed before is seen (the bucket
 * stays, with its usage) and one that did not finds it deleted (RL_ENOENT) and, through
 * rl_bucket_get, a new bucket whose full budget is what the idle one would give. Use it on
 * the buckets made from templates (tenants) that come and go; their blocks, records and
 * index slots are reused. A process killed midway leaves a switch that others
 * finish (the bucket stays).
 * Errors: RL_EINVAL (bucket NULL or a template), RL_EPERM (read-only table), RL_ENOENT
 * (deleted already), RL_ESTALE (resized away), RL_ECORRUPT. (No arena for the copy: not
 * expired, no error.)
 * Lock-free; never allocates memory; never sleeps; writes as rl_bucket_update and
 * rl_bucket_delete; not async-signal-safe; any thread.
 */
int rl_bucket_expire(rl_bucket *bucket, uint64_t idle_ns, bool *expired);

/* ------------------------------------------------------------------ server feedback */

/*
 * A vendor's response, as raw header values (NULL when absent); the strings need only
 * live during the call. Values are validated: garbage, negative, overflowing or absurd
 * values are ignored (and reported in rl_feedback.ignored), never trusted.
 * Start from RL_RESPONSE_INIT: the struct starts with its own size so it can grow without
 * breaking callers (see "Struct sizes" above).
 */
struct rl_response {
    size_t size;                  /* sizeof(struct rl_response) */
    int status;                   /* HTTP status, e.g. 200 or 429 */
    const char *retry_after;      /* Retry-After: delta-seconds or an HTTP-date */
    const char *limit;            /* X-RateLimit-Limit */
    const char *remaining;        /* X-RateLimit-Remaining */
    const char *reset;            /* X-RateLimit-Reset: epoch seconds if > 10^9, else delta
                                     seconds (epoch milliseconds if > 10^12) */
    const char *ratelimit;        /* IETF RateLimit: "name";r=REMAINING;t=SECONDS (or the
                                     older limit=, remaining=, reset= form) */
    const char *ratelimit_policy; /* IETF RateLimit-Policy: "name";q=QUOTA;w=WINDOW */
    uint64_t max_cooldown_ns;     /* longest pause to accept: 0 means 1 hour */
    uint64_t decided_ns;          /* rl_decision.at_ns of the request: CLOCK_MONOTONIC ns of
                                     its admission (0: unknown, or admitted by dry-run only).
                                     It measures the delay to the server and tells a 429 the
                                     rules admitted, which widens the margin (rl_call sets it) */
};

#define RL_RESPONSE_INIT                                                                           \
    {                                                                                              \
        sizeof(struct rl_response), 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0                    \
    }

enum rl_feedback_ignored {
    RL_IGNORED_RETRY_AFTER = 1 << 0,
    RL_IGNORED_REMAINING = 1 << 1,
    RL_IGNORED_RESET = 1 << 2,
    RL_IGNORED_RATELIMIT = 1 << 3,
    RL_IGNORED_LIMIT = 1 << 4,
};

struct rl_feedback {
    uint64_t cooldown_ns; /* the pool pauses this long from now (0: no pause) */
    unsigned backoff;     /* consecutive 429s without a Retry-After, shared by the pool */
    bool tightened;       /* the server's remaining budget now limits the bucket */
    unsigned ignored;     /* enum rl_feedback_ignored: values rejected as malformed */
    bool widened;         /* a 429 the rules admitted widened the bucket's margin */
};

/*
 * Tell the pool what the vendor answered for a request drawn from `bucket`.
 * - 429 (or 503 with Retry-After): every process pauses the bucket until the retry instant
 *   (Retry-After, else X-RateLimit-Reset/RateLimit t= when remaining is 0), capped by
 *   max_cooldown_ns; without any, an exponential backoff with full jitter: a random pause in
 *   [0, min(1 h, 1 s * 2^n)), n counting the pool's consecutive 429s. A 429 for a request
 *   decided (decided_ns) before the latest 429 was reported was in flight when it came:
 *   the same event, it takes no backoff step and draws no new pause.
 * - a success (2xx/3xx) resets that count.
 * - a remaining budget below the local view tightens the bucket until the reported reset
 *   less its rounding (a reset in whole seconds, epoch or delta, may come up to 1 s
 *   earlier; 1 ms for epoch milliseconds); on a 429 with Retry-After, until the Retry-After
 *   instant if that comes first: a rolling window's reset says when the whole budget is
 *   back. It never loosens the bucket's own rules.
 * - with decided_ns: the delay from the decision to now feeds the bucket's delay estimate,
 *   and a 429 for a request decided after the previous 429 widens the bucket's margin
 *   (README "Server feedback": the control law); successes narrow it back slowly.
 * `out` may be NULL.
 * Errors: RL_EINVAL (bucket or response NULL, response->size smaller than the first
 * version's, status not in 100..599, or a template), RL_EPERM (read-only table),
 * RL_ESTALE (the table was resized into a new file: report there, after
 * rl_table_reopen_if_replaced).
 * Lock-free in the table (the backoff's random pause takes libbsd's process-local
 * arc4random lock); never allocates but for arc4random's state, once per process; never
 * sleeps; writes the bucket's cool-down, backoff, last-429, server and margin words and its
 * reported_429 count (and may complete a sliding-log entry a stalled decider left);
 * not async-signal-safe; any thread.
 */
int rl_report(rl_bucket *bucket, const struct rl_response *response, struct rl_feedback *out);

/*
 * The retry loop every vendor page writes by hand, done once: acquire `cost` (waiting at
 * most timeout_ns for a turn), call fn(arg, &response) to send the request and fill in the
 * response, report it, and on a 429 wait as the pool was told (Retry-After, with up to 1 s
 * of jitter) and try again, at most max_attempts times in all.
 * fn returns 0, or a negative value to stop at once (returned as is).
 * Returns 0 when fn got a non-429 answer (in *response), RL_ELIMITED when every attempt got
 * a 429, RL_ETIMEDOUT when no turn came in time, or another RL_E* error.
 * *response starts from RL_RESPONSE_INIT; before each attempt its fields but `size` are
 * cleared, then fn fills them in; rl_call sets decided_ns after fn returns.
 * Errors: RL_ELIMITED, RL_ETIMEDOUT, RL_EINVAL (bucket, fn or response NULL, response->size
 * too small, max_attempts 0, cost 0, a template, or a status fn set outside 100..599),
 * RL_ECOST, RL_EPERM, RL_ECORRUPT, RL_ENOMEM, or fn's negative value.
 * Lock-free as rl_acquire and rl_report, and fn's own behaviour besides; may allocate as
 * rl_try_acquire; sleeps for its turns and up to 1 s of jitter after each 429; writes as
 * rl_acquire and rl_report; not async-signal-safe; any thread.
 */
int rl_call(rl_bucket *bucket, uint32_t cost, uint64_t timeout_ns, unsigned max_attempts,
            int (*fn)(void *arg, struct rl_response *response), void *arg,
            struct rl_response *response);

/* ------------------------------------------------------------------ inspection */

struct rl_rule_state {
    struct rl_rule rule;
    uint64_t used;         /* units counted in the current window (or GCRA debt, in units) */
    uint64_t remaining;    /* units admissible right now */
    uint64_t next_free_ns; /* ns from now_ns until the next unit is available (0: now) */
};

struct rl_counters {
    uint64_t admitted;         /* requests admitted */
    uint64_t admitted_units;   /* units admitted (sum of cost) */
    uint64_t rejected;         /* try_acquire refusals and timeouts */
    uint64_t waited;           /* turns waited for (a late wake-up retakes one) */
    uint64_t waited_ns;        /* total time reserved ahead by blocking acquires */
    uint64_t dry_run_rejected; /* dry-run: requests that would have been refused */
    uint64_t resets;
    uint64_t reported_429; /* 429 responses reported */
};

struct rl_feedback_state {
    uint64_t cooldown_ns;      /* pause left from now (0: none) */
    uint64_t last_429_ns;      /* CLOCK_MONOTONIC instant of the latest 429 (0: never); not
                                  moved by a 429 in flight since then (see rl_report) */
    unsigned backoff;          /* consecutive 429s without Retry-After */
    uint64_t server_remaining; /* tightened: units the server said remain */
    uint64_t server_reset_ns;  /* tightened: time until the server's reset (0: not tight) */
};

/* The margin in effect (README "Server feedback"). All ns. */
struct rl_margin_state {
    uint64_t effective_ns;    /* what decisions use now: max(policy.margin_ns, learned_ns) */
    uint64_t learned_ns;      /* widened by 429s the rules admitted (0: none, configured) */
    uint64_t ceiling_ns;      /* the widest it goes: max(configured, shortest period / 10) */
    uint64_t delay_p99_ns;    /* estimated p99 of decision-to-response delays (0: none) */
    uint64_t recommended_ns;  /* a margin to configure: delay_p99 + 25%, up to 5 ms (0: none) */
    uint64_t narrow_every_ns; /* a narrowing step per this long without a 429 */
    unsigned narrowing_steps; /* steps taken since the latest 429 */
};

struct rl_bucket_info {
    char name[RL_NAME_MAX + 1];
    char parent[RL_NAME_MAX + 1]; /* "" if none */
    struct rl_policy policy;
    struct rl_rule_state rules[RL_MAX_RULES];
    struct rl_counters counters;
    struct rl_feedback_state feedback;
    bool is_template;
    uint64_t now_ns; /* the instant the state was read at */
    struct rl_margin_state margin;
};

/*
 * Read a bucket's state (a consistent view of each rule). On RL_ECORRUPT, out holds the
 * name, parent and counters. On a table opened RL_OPEN_READONLY (which cannot hold the
 * bucket's block while it reads, see README "Space a switch leaves is reused"), a read
 * whose block was switched away meanwhile is taken again, up to 16 times.
 * Errors: RL_ECORRUPT (the bucket's block is damaged), RL_ENOENT (the bucket was deleted),
 * RL_ESTALE (read-only: the bucket's rules were switched under each of the 16 reads; out
 * holds the name, parent and counters; read again).
 * Lock-free; never allocates; never sleeps; writes nothing in the table, except that on a
 * writable table it may complete a sliding-log entry a stalled decider left unwritten;
 * not async-signal-safe; any thread.
 */
int rl_bucket_info(const rl_bucket *bucket, struct rl_bucket_info *out);

/*
 * Parent bucket, or NULL.
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
rl_bucket *rl_bucket_parent(const rl_bucket *bucket);

/*
 * Call fn for every bucket in creation order; stop early and return fn's value if it
 * returns non-zero, else 0. Buckets created during the walk may or may not be visited;
 * damaged records are skipped. fn must not close the table.
 * Errors: none of its own; fn's value.
 * Lock-free; allocates the handles of buckets it visits first; never sleeps (but fn
 * may); writes nothing in the table; not async-signal-safe; any thread.
 */
int rl_table_foreach(rl_table *table, int (*fn)(rl_bucket *bucket, void *arg), void *arg);

/* ------------------------------------------------------------------ config files */

/*
 * A parsed config file (grammar in README "Config files"): the table to use, its buckets,
 * templates and the preload shim's routes. Immutable once parsed, so any thread may read
 * it; free with rl_config_free (accepts NULL) once no thread uses it.
 * The rl_config_table, rl_config_buckets, rl_config_routes and rl_config_shim accessors
 * return pointers into the config (valid until rl_config_free).
 * Their contract: errors: none; lock-free; never allocate; never sleep; write nothing;
 * async-signal-safe; any thread.
 */
typedef struct rl_config rl_config;

/*
 * The file to read: `path` if not NULL, else $RATELIMIT_CONFIG (ignored in set-id
 * programs), else /etc/ratelimit.conf.
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; not async-signal-safe
 * (getenv); any thread.
 */
const char *rl_config_default_path(const char *path);

/*
 * Parse a config file (rl_config_load) or text (rl_config_parse, `name` is used in
 * messages). Every problem is reported, in one pass, as "file:line:col: message" lines in
 * *errors (malloc'd, caller frees; NULL when there are none). Returns 0, RL_EPARSE (then
 * *out is NULL), RL_ESYS (unreadable file), or RL_ENOMEM.
 * Errors: RL_EINVAL (a NULL argument), RL_EPARSE (also a file larger than the limit),
 * RL_ESYS (rl_config_load: cannot open or read the file), RL_ENOMEM.
 * Not lock-free (malloc); allocates; rl_config_load blocks reading the file; writes no
 * table; not async-signal-safe; any thread.
 */
int rl_config_load(const char *path, rl_config **out, char **errors);
int rl_config_parse(const char *text, size_t len, const char *name, rl_config **out, char **errors);
/*
 * Free a config and everything its accessors returned. Accepts NULL.
 * Errors: none.
 * Frees memory; never sleeps; writes no table; not async-signal-safe; one thread, once no
 * other uses the config.
 */
void rl_config_free(rl_config *config);

struct rl_config_table {
    const char *path; /* NULL: $RATELIMIT_TABLE or the default */
    unsigned mode;    /* 0600 unless `mode` says otherwise */
    long group;       /* -1 unless `group` says otherwise */
    uint32_t capacity;
};
const struct rl_config_table *rl_config_table(const rl_config *config);

struct rl_config_bucket {
    const char *name;   /* a bucket name, or a template pattern: prefix, "/", "*" */
    const char *parent; /* NULL if none */
    struct rl_policy policy;
    bool is_template;
    unsigned line; /* where it was defined */
};
/* The buckets and templates, in file order (parents always before their children). */
size_t rl_config_buckets(const rl_config *config, const struct rl_config_bucket **out);
/* The idle expiry of bucket i of rl_config_buckets (a template's `expire DURATION`), in ns;
 * 0 if none, or if i is out of range. */
uint64_t rl_config_bucket_expire(const rl_config *config, size_t i);

enum rl_route_on_timeout {
    RL_ROUTE_FAIL = 0, /* connect() fails with ETIMEDOUT (the default) */
    RL_ROUTE_PASS = 1, /* connect() goes ahead unlimited, counted in `rejected` */
};

enum rl_route_count {
    RL_COUNT_CONNECTIONS = 0, /* one unit per TCP connect (the default) */
    RL_COUNT_REQUESTS = 1,    /* one unit per HTTP/1.1 request on the route's connections; the
                                 shim reports each response with rl_report */
};

struct rl_route {
    const char *dest;    /* as written: "api.example.com", "192.0.2.7", "10.0.0.0/8", "::1" */
    unsigned prefix_len; /* CIDR length; 32 or 128 for a single address; 0 for a host name */
    unsigned port;       /* 1..65535 */
    const char *bucket;
    uint64_t max_wait_ns; /* longest a connect waits for its turn (default 30 s) */
    enum rl_route_on_timeout on_timeout;
    unsigned line;
    unsigned count; /* enum rl_route_count: option `count connections|requests` */
};
size_t rl_config_routes(const rl_config *config, const struct rl_route **out);

struct rl_config_shim {
    bool fail_closed;          /* config or table unusable: connect() fails (else passes) */
    uint64_t resolve_every_ns; /* re-resolve route host names at least this often */
};
const struct rl_config_shim *rl_config_shim(const rl_config *config);

/*
 * Open the table the config names (creating it with its mode, group and capacity, and an
 * arena sized for its buckets and templates). `flags`: enum rl_open_flags. A table to
 * create whose file system cannot hold what applying the config writes
 * (rl_config_footprint's used_bytes) is refused with RL_EFULL, and not created.
 * Errors: as rl_table_open.
 * Contract as rl_table_open.
 */
int rl_config_open_table(const rl_config *config, unsigned flags, rl_table **out);

/*
 * Apply a config to a live table: create new buckets and templates, switch changed ones
 * to their new rules (rl_bucket_update), leave identical ones alone. Buckets in the table
 * but not in the config are kept and reported. Everything is checked before anything is
 * changed (parents, capacity, arena space, parent changes of existing buckets, which are
 * refused), so an error changes nothing. Each action is passed to note(arg, line) if note
 * is not NULL, e.g. "created foundry 200/60s", "updated ti: 120/1m burst 20 -> 600/1m burst
 * 100", "kept old/bucket: not in the config". Applying the same file twice is a no-op.
 * The table remembers the digest of the config last applied (rl_table_info's
 * applied_digest); while no define, template define or update has changed it since, applying
 * that config again returns at once with the single note "unchanged: all of it (...)".
 * Refused with RL_EFULL, before anything is written: too few free records, too little
 * arena, or too little room on the table's file system for the pages the apply would write.
 * Returns 0 or an RL_E* code with rl_errdetail() saying what.
 * Errors: RL_EINVAL (config or table NULL), RL_EPERM (read-only table), RL_EFULL (no room
 * for the new buckets or their blocks), RL_EEXIST (a parent change), RL_ECORRUPT (a bucket
 * of the table is damaged), RL_ENOMEM; and, when another process changes the table between
 * the checks and the changes, any error of rl_bucket_define, rl_template_define and
 * rl_bucket_update (then what was done before it stays done).
 * Lock-free in the table (malloc aside); allocates; never sleeps; writes as
 * rl_bucket_define and rl_bucket_update; not async-signal-safe; any thread (note is called
 * on the caller's thread).
 */
int rl_config_apply(const rl_config *config, rl_table *table,
                    void (*note)(void *arg, const char *line), void *arg);

/* rl_config_apply_flags: delete the buckets and templates the config does not mention
 * (children first), instead of keeping them; buckets made from a template the config keeps
 * are mentioned by it. Each is noted "deleted NAME: not in the config". */
#define RL_APPLY_PRUNE 1U

/*
 * rl_config_apply with flags: 0 (the same as rl_config_apply) or RL_APPLY_PRUNE. With
 * RL_APPLY_PRUNE the deletions come after every other change, so a refused config still
 * changes nothing, and the applied digest does not cut the apply short.
 * Errors: those of rl_config_apply; RL_EINVAL (an unknown flag); and any error of
 * rl_bucket_delete (then the buckets deleted before it stay deleted).
 * Lock-free in the table (malloc aside); allocates; never sleeps; writes as
 * rl_config_apply and rl_bucket_delete; not async-signal-safe; any thread.
 */
int rl_config_apply_flags(const rl_config *config, rl_table *table, unsigned flags,
                          void (*note)(void *arg, const char *line), void *arg);

/*
 * What a config costs in a table (README "Config files"). A new table for it gets
 * file_bytes, sparse: a file on tmpfs only uses the pages written. Applying the config to it
 * writes used_bytes: the header, the index, a record per bucket and template, and their
 * policy blocks (block_bytes of arena; a sliding rule of N costs 8N bytes). Each tenant made
 * later from a template costs its record and a block: tenant_bytes for the costliest
 * template (tenant_template), and there is room for `tenants` of them. Pure: no table.
 * Errors: RL_EINVAL (NULL argument).
 * Not lock-free (no table involved); never allocates; never sleeps; writes nothing;
 * async-signal-safe; any thread.
 */
struct rl_config_footprint {
    uint64_t file_bytes;         /* size of a new table's file */
    uint64_t arena_bytes;        /* of which arena (blocks, tenants' blocks, rule switches) */
    uint64_t used_bytes;         /* bytes written by applying the config to a new table */
    uint64_t block_bytes;        /* arena bytes of the config's policy blocks */
    uint64_t tenant_bytes;       /* bytes per tenant of tenant_template; 0 if no template */
    const char *tenant_template; /* the costliest template (owned by the config), or NULL */
    uint32_t tenants;            /* tenants a new table has room for */
};
int rl_config_footprint(const rl_config *config, struct rl_config_footprint *out);

/*
 * CLOCK_MONOTONIC now, in ns (the clock every decision uses).
 * Errors: none.
 * Lock-free; never allocates; never sleeps; writes nothing; async-signal-safe; any thread.
 */
uint64_t rl_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* RATELIMIT_H */
