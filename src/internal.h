/*
 * internal.h - what the library's files share and the public header does not show.
 */
#ifndef RL_INTERNAL_H
#define RL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ratelimit.h"
#include "shm_format.h"

/* Everything declared here is private to the library: hidden, so calls between its files
 * are direct, not through the PLT (the version script hides them from users as well). */
#pragma GCC visibility push(hidden)

/* An instant that never comes: a rule that can never admit the request. */
#define RL_NEVER UINT64_MAX

/* Process-local attachment to a table. */
struct rl_table {
    char *path;
    int fd;
    unsigned char *base;
    uint64_t size;
    bool read_only;
    struct shm_header *hdr;
    rl_atomic64 *index;
    struct shm_bucket *buckets;
    unsigned char *arena;
    /* The header's geometry, checked at attach and copied: a writer that damages the header
     * afterwards cannot lead this process outside its mapping or its handle array. */
    uint32_t capacity, index_slots;
    uint64_t arena_bytes;
    /* handles[no]: this process's handle for bucket `no`, made on first use (CAS). */
    void *_Atomic *handles;
};

/* A rule's parameters, copied out of the table and validated. */
struct rule_params {
    enum rl_rule_kind kind;
    uint64_t limit, period_ns, burst, interval_ns;
};

/*
 * A validated snapshot of a policy block: every field a reader needs, copied out of the
 * shared file once and checked, so that a damaged file or a hostile writer changing the
 * block afterwards cannot lead a reader out of bounds. Only the state words and the logs
 * are read live, through the pointers below, which stay within the block and the arena.
 */
struct policy_view {
    struct shm_policy *block;
    uint64_t off;
    uint32_t nrules, flags;
    uint64_t margin_ns;
    struct rule_params rules[RL_MAX_RULES];
    rl_atomic64 *log[RL_MAX_RULES]; /* sliding rules: their log of `limit` words */
    bool lone_gcra;                 /* one GCRA rule, enforced: acquire_gcra.c may decide */
};

/* A validated policy snapshot kept by a handle; older ones stay until the table closes. */
struct cached_view {
    struct policy_view v;
    struct cached_view *older;
};

/* Process-local handle for one bucket; immutable once made, but for its view cache. */
struct rl_bucket {
    rl_table *table;
    struct shm_bucket *rec;
    struct rl_bucket *parent;
    uint32_t no;
    bool is_template; /* its name is a pattern: "prefix/" "*" */
    char name[RL_NAME_MAX + 1];
    /* The snapshot of the block policy_off named when last looked at (struct
     * cached_view *): a decision revalidates only when the bucket switched blocks. */
    void *_Atomic view;
};

/* table.c: record a detail for rl_errdetail() and return err. */
int rl__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* clock.c */
static inline uint64_t rl__clock_mono(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC is system-wide: every process of the host reads the same clock. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Relative ns now (see shm_format.h "Clock"); inline: every decision reads it. */
static inline uint64_t rl__clock_rel(const rl_table *t)
{
    uint64_t now = rl__clock_mono();
    uint64_t epoch = t->hdr->epoch_ns;
    /* The epoch was read from this boot's clock (boot id checked at attach). */
    return now > epoch ? now - epoch : 1; /* never 0: tick 0 means "never used" */
}
int rl__boot_id(char out[40]);

/* table.c: bounds-checked arena access; NULL if [off, off+len) is outside the arena. */
void *rl__arena_at(const rl_table *t, uint64_t off, uint64_t len);
/* Take n from a shared allocation counter without ever passing limit; *at = the start. */
int rl__claim(rl_atomic64 *counter, uint64_t n, uint64_t limit, uint64_t *at);
int rl__arena_alloc(rl_table *t, uint64_t len, uint64_t *off);
/* The geometry of a new table (sizes, offsets, file_bytes) into *h; nothing else. */
void rl__table_layout(struct shm_header *h, uint32_t capacity, uint64_t arena_bytes);

/* applied.c: the header's applied_digest (shm_format.h). A define that creates, or an
 * update, calls rl__applied_forget before and after its change. rl_config_apply calls
 * rl__applied_begin before it reads the table, and rl__applied_publish last (digest 0:
 * only end). */
uint64_t rl__applied_load(const rl_table *t);
void rl__applied_forget(rl_table *t);
void rl__applied_begin(rl_table *t);
bool rl__applied_publish(rl_table *t, uint64_t digest);

/* index.c */
uint64_t rl__name_hash(const char *name);
int rl__index_find(const rl_table *t, const char *name, uint32_t *no);
/* Publish bucket `no` under `name`; if another bucket won the name, *winner is it. */
int rl__index_insert(rl_table *t, const char *name, uint32_t no, uint32_t *winner);
uint32_t rl__bucket_count(const rl_table *t);

/* bucket.c */
int rl__bucket_handle(rl_table *t, uint32_t no, rl_bucket **out);
void rl__bucket_free(rl_bucket *b); /* a handle and its view cache */
/* Units the bucket's own rules admit now, the least of them (not its parents'). */
int rl__bucket_remaining(const rl_bucket *b, uint64_t *least);
/* Snapshot the bucket's current policy block (or the block at `off`); -1 if damaged. */
int rl__bucket_view(const rl_bucket *b, struct policy_view *v);
/* The snapshot of the block at `off` from the handle's cache, made if needed: 0, or
 * RL_ECORRUPT or RL_ENOMEM. */
int rl__bucket_view_refresh(rl_bucket *b, uint64_t off, const struct policy_view **out);

/* The bucket's current snapshot from its handle's cache (made if needed): 0, or
 * RL_ECORRUPT or RL_ENOMEM. Inline: every decision asks, and the cache nearly always has it. */
static inline int rl__bucket_view_cached(rl_bucket *b, const struct policy_view **out)
{
    /* A3 as in rl__bucket_view; the cache is process-local and its entries immutable, so
     * acquire on the pointer sees the entry's contents (published by a CAS in the refresh). */
    uint64_t off = rl__load_acquire(&b->rec->policy_off);
    const struct cached_view *have = rl__ptr_load_acquire(&b->view);
    if (!have || have->v.off != off)
        return rl__bucket_view_refresh(b, off, out);
    *out = &have->v;
    return 0;
}
int rl__policy_view(const rl_table *t, uint64_t off, struct policy_view *v);
/* Allocate and fill a policy block whose state words hold `word` (not yet visible). */
int rl__policy_create(rl_table *t, const struct rl_policy *pol, uint64_t word, uint64_t *off);
void rl__policy_read(const struct policy_view *v, struct rl_policy *out);
/* Arena bytes of a policy block with its sliding logs, rounded up to RL_ALIGN. */
uint64_t rl__policy_bytes(const struct rl_policy *pol);
bool rl__policy_same(const struct rl_policy *a, const struct rl_policy *b);

/* update.c: finish a switch away from the viewed block, if one started. True if it did. */
bool rl__switch_help(const rl_bucket *b, const struct policy_view *v);

/*
 * One rule of a decision: where its state lives and what a decision needs to know.
 * The per-kind files (gcra.c, fixed.c, sliding.c) implement the functions below.
 */
struct rule_ctx {
    const rl_table *table;
    struct rule_params r; /* validated copy */
    rl_atomic64 *state;   /* the rule's state word in the table */
    rl_atomic64 *log;     /* sliding: its log, r.limit words */
    uint64_t margin_ns;
    uint64_t word; /* the state word as loaded for this decision */
    bool repair;   /* sliding: repeated stale views; repair inconsistent log entries */
};

/* Rule i of a view as a context (word not loaded). */
static inline void rl__rule_ctx(struct rule_ctx *c, const rl_table *t, const struct policy_view *v,
                                uint32_t i)
{
    *c = (struct rule_ctx){.table = t,
                           .r = v->rules[i],
                           .state = &v->block->rules[i].word,
                           .log = v->log[i],
                           .margin_ns = v->margin_ns};
}

enum rule_status {
    RULE_OK = 0,
    RULE_STALE = 1, /* the loaded state is outdated: reload and start over */
};

/*
 * earliest: the earliest relative instant >= now at which `cost` units are admissible
 * given ctx->word, RL_NEVER if never (cost above capacity). May return RULE_STALE.
 * next_word: the state word after admitting `cost` at instant d (d >= earliest).
 * finalize: work after every rule of the chain committed (sliding: write the log).
 * reset: give the full budget back.
 * usage: units counted now, for inspection.
 */
uint64_t gcra_earliest_for(const struct rule_params *r, uint64_t margin_ns, uint64_t tat,
                           uint64_t now, uint32_t cost);
int gcra_earliest(struct rule_ctx *c, uint64_t now, uint32_t cost, uint64_t *earliest);
/* The TAT after admitting `cost` units at instant d (d >= the earliest instant). */
uint64_t gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
uint64_t gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void gcra_reset(struct rule_ctx *c, uint64_t now);
void gcra_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out);

int fixed_earliest(struct rule_ctx *c, uint64_t now, uint32_t cost, uint64_t *earliest);
uint64_t fixed_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void fixed_reset(struct rule_ctx *c, uint64_t now);
void fixed_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out);

int sliding_earliest(struct rule_ctx *c, uint64_t now, uint32_t cost, uint64_t *earliest);
uint64_t sliding_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void sliding_finalize(struct rule_ctx *c, uint64_t old_word, uint64_t new_word);
void sliding_reset(struct rule_ctx *c, uint64_t now);
void sliding_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out);
uint64_t sliding_remaining(const struct rule_ctx *c, uint64_t now);
/* A new log's entries as if `units` were admitted at `at` (update.c S4). */
void sliding_seed(const struct rule_ctx *c, uint64_t units, uint64_t at);

/* acquire.c: count an admission of `cost` units to bucket x, in the admission counter
 * `admitted` (the record's, or a policy block's: see shm_rule.admitted). */
void rl__count_admission(rl_bucket *x, rl_atomic64 *admitted, uint32_t cost);

/* acquire_gcra.c: decide for a chain of GCRA-only buckets, or RL_DECLINED (decide() must). */
#define RL_DECLINED 1
int rl__acquire_gcra_chain(rl_bucket *b, uint32_t cost, uint64_t max_wait, struct rl_decision *out);

/* headers.c: parse hostile header values; false means malformed. */
bool rl__header_uint(const char *text, uint64_t *out);
bool rl__header_http_date(const char *text, int64_t *epoch);
bool rl__header_retry_after(const char *text, uint64_t *delay_ns);
bool rl__header_reset(const char *text, uint64_t *delay_ns);
bool rl__header_ratelimit(const char *text, uint64_t *remaining, uint64_t *reset_ns);
bool rl__header_policy(const char *text, uint64_t *quota, uint64_t *window_ns);
int64_t rl__wall_now_ns(void);

/* feedback.c: the server rule (a pseudo-rule whose word lives in the bucket record). */
#define RL_SERVER 3
int server_earliest(uint64_t word, uint64_t at, uint32_t cost, uint64_t *earliest);
uint64_t server_next_word(uint64_t word, uint64_t d, uint32_t cost);
uint64_t server_remaining(uint64_t word, uint64_t now);
void rl__feedback_read(const rl_bucket *b, uint64_t now, struct rl_feedback_state *out);

/* policy.c */
uint64_t rl__gcra_interval(uint64_t limit, uint64_t period_ns);

static inline uint64_t rl__sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline uint64_t rl__max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

#pragma GCC visibility pop

#endif /* RL_INTERNAL_H */
