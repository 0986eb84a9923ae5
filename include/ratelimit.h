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
 * friends: what and where, e.g. "table /dev/shm/x is 5000 bytes but its header says 8192
 * (truncated)". Meaningful right after a call returned an error other than RL_ELIMITED,
 * RL_ETIMEDOUT or RL_EPARSE (whose details are the decision or the parse error); successful
 * calls leave it as it was. Owned by the library, per thread.
 */
const char *rl_errdetail(void);

/* Limits, enforced with RL_EINVAL / RL_ENAME / RL_EPARSE. */
#define RL_NAME_MAX            63 /* bytes, excluding the NUL */
#define RL_MAX_RULES           4  /* rules per bucket */
#define RL_MAX_DEPTH           4  /* buckets in a chain: a bucket and up to 3 ancestors */
#define RL_LIMIT_MAX           1000000000ULL /* N of one rule */
#define RL_SLIDING_LIMIT_MAX   131072U       /* N of a sliding-window rule (8 bytes per unit) */
#define RL_PERIOD_MIN_NS       1000000ULL    /* T >= 1 ms */
#define RL_FIXED_PERIOD_MIN_NS 100000000ULL  /* T >= 100 ms for a fixed window */
#define RL_PERIOD_MAX_NS       (366ULL * 86400 * 1000000000ULL) /* T <= 366 days */
#define RL_MARGIN_MAX_NS       60000000000ULL                   /* margin <= 60 s */
#define RL_MARGIN_DEFAULT_NS   20000000ULL                      /* 20 ms */

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

/*
 * Is the table still the file its path names? A table deleted or replaced underneath
 * running processes keeps working for the processes that have it mapped, but processes
 * that open the path afterwards get another file, hence another budget: the host could
 * then exceed it. Returns 0, or RL_ESTALE (the path names another file, or none) with
 * rl_errdetail() saying which. Cheap (one stat); call it now and then, not per request.
 */
int rl_table_check(const rl_table *table);

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
    /* The config the buckets and templates are known to match: bit 63 set and the low 63
     * bits its digest (rl_config_apply sets it), else 0 or another value: unknown. */
    uint64_t applied_digest;
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
    uint64_t burst;     /* B, GCRA only: requests admitted back to back (>= 1) */
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
 *   DURATION := [COUNT] ("ns" | "us" | "ms" | "s" | "m" | "h" | "d"), e.g. 500ms, 60s, 1m, 1h;
 *               "/s" is "/1s"
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

/* Find a bucket by name, or a template by its pattern ("tenant/" "*"). RL_ENOENT if
 * absent. Lock-free; the handle may be cached. */
int rl_bucket_lookup(rl_table *table, const char *name, rl_bucket **out);

/*
 * Define a template: `pattern` is a valid name followed by "/" and "*" (e.g. "tenant/" "*").
 * Buckets named "tenant/<anything>" are then made on first use by rl_bucket_get with the
 * template's policy and parent, by whichever process asks first, so one definition serves
 * thousands of tenants. Same errors as rl_bucket_define.
 */
int rl_template_define(rl_table *table, const char *pattern, const struct rl_policy *policy,
                       const char *parent);

/*
 * Find bucket `name`, or make it from the template with the longest matching prefix.
 * RL_ENOENT if neither exists. Lock-free.
 */
int rl_bucket_get(rl_table *table, const char *name, rl_bucket **out);

/* True if the handle is a template (rl_table_foreach visits templates too). */
bool rl_bucket_is_template(const rl_bucket *bucket);

/*
 * Switch a live bucket to new rules (its parent stays). The usage already counted carries
 * over: each new rule starts as if the units the old rules counted had all been admitted
 * just now, so the switch never admits more than the new rules allow, and deciders that
 * saw the old rules fail their commit and retry under the new ones. Same policy: no-op.
 * RL_EPERM if read-only, RL_EPARSE, RL_EFULL (arena). Lock-free for deciders.
 */
int rl_bucket_update(rl_bucket *bucket, const struct rl_policy *policy);

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

/* ------------------------------------------------------------------ server feedback */

/*
 * A vendor's response, as raw header values (NULL when absent); the strings need only
 * live during the call. Values are validated: garbage, negative, overflowing or absurd
 * values are ignored (and reported in rl_feedback.ignored), never trusted.
 */
struct rl_response {
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
};

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
};

/*
 * Tell the pool what the vendor answered for a request drawn from `bucket`.
 * - 429 (or 503 with Retry-After): every process pauses the bucket until the retry instant
 *   (Retry-After, else X-RateLimit-Reset/RateLimit t= when remaining is 0), capped by
 *   max_cooldown_ns; without any, an exponential backoff with full jitter: a random pause in
 *   [0, min(1 h, 1 s * 2^n)), n counting the pool's consecutive 429s.
 * - a success (2xx/3xx) resets that count.
 * - a remaining budget below the local view tightens the bucket until the reported reset;
 *   it never loosens the bucket's own rules.
 * Lock-free; not async-signal-safe.
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
    uint64_t waited;           /* blocking acquires that had to sleep */
    uint64_t waited_ns;        /* total time reserved ahead by blocking acquires */
    uint64_t dry_run_rejected; /* dry-run: requests that would have been refused */
    uint64_t resets;
    uint64_t reported_429; /* 429 responses reported */
};

struct rl_feedback_state {
    uint64_t cooldown_ns;      /* pause left from now (0: none) */
    uint64_t last_429_ns;      /* CLOCK_MONOTONIC instant of the latest 429 (0: never) */
    unsigned backoff;          /* consecutive 429s without Retry-After */
    uint64_t server_remaining; /* tightened: units the server said remain */
    uint64_t server_reset_ns;  /* tightened: time until the server's reset (0: not tight) */
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

/* ------------------------------------------------------------------ config files */

/*
 * A parsed config file (grammar in README "Config files"): the table to use, its buckets,
 * templates and the preload shim's routes. Immutable once parsed; free with
 * rl_config_free (accepts NULL).
 */
typedef struct rl_config rl_config;

/* The file to read: `path` if not NULL, else $RATELIMIT_CONFIG, else /etc/ratelimit.conf. */
const char *rl_config_default_path(const char *path);

/*
 * Parse a config file (rl_config_load) or text (rl_config_parse, `name` is used in
 * messages). Every problem is reported, in one pass, as "file:line:col: message" lines in
 * *errors (malloc'd, caller frees; NULL when there are none). Returns 0, RL_EPARSE (then
 * *out is NULL), RL_ESYS (unreadable file), or RL_ENOMEM.
 */
int rl_config_load(const char *path, rl_config **out, char **errors);
int rl_config_parse(const char *text, size_t len, const char *name, rl_config **out, char **errors);
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

enum rl_route_on_timeout {
    RL_ROUTE_FAIL = 0, /* connect() fails with ETIMEDOUT (the default) */
    RL_ROUTE_PASS = 1, /* connect() goes ahead unlimited, counted in `rejected` */
};

struct rl_route {
    const char *dest;    /* as written: "api.example.com", "192.0.2.7", "10.0.0.0/8", "::1" */
    unsigned prefix_len; /* CIDR length; 32 or 128 for a single address; 0 for a host name */
    unsigned port;       /* 1..65535 */
    const char *bucket;
    uint64_t max_wait_ns; /* longest a connect waits for its turn (default 30 s) */
    enum rl_route_on_timeout on_timeout;
    unsigned line;
};
size_t rl_config_routes(const rl_config *config, const struct rl_route **out);

struct rl_config_shim {
    bool fail_closed;          /* config or table unusable: connect() fails (else passes) */
    uint64_t resolve_every_ns; /* re-resolve route host names at least this often */
};
const struct rl_config_shim *rl_config_shim(const rl_config *config);

/* Open the table the config names (creating it with its mode, group and capacity). A table
 * to create whose file system cannot hold what applying the config writes
 * (rl_config_footprint's used_bytes) is refused with RL_EFULL, and not created. */
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
 */
int rl_config_apply(const rl_config *config, rl_table *table,
                    void (*note)(void *arg, const char *line), void *arg);

/*
 * What a config costs in a table (README "Config files"). A new table for it gets
 * file_bytes, sparse: a file on tmpfs only uses the pages written. Applying the config to it
 * writes used_bytes: the header, the index, a record per bucket and template, and their
 * policy blocks (block_bytes of arena; a sliding rule of N costs 8N bytes). Each tenant made
 * later from a template costs its record and a block: tenant_bytes for the costliest
 * template (tenant_template), and there is room for `tenants` of them. Pure: no table.
 * Errors: RL_EINVAL (NULL argument).
 * Lock-free: n/a; allocates; never sleeps; reads only.
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

/* CLOCK_MONOTONIC now, in ns (the clock every decision uses). */
uint64_t rl_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* RATELIMIT_H */
