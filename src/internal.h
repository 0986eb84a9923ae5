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

/* This process's view of a table's fixed-window alignment: int64_t offsets, bit 0 the
 * generation parity (see shm_format.h). clock.c refreshes them from the header while
 * decisions hold the table const, so they live behind rl_table's pointer. */
struct rl_wall {
    rl_atomic64 offset, prev; /* the alignment in force and the one before */
    rl_atomic64 checked;      /* relative ns of this process's last drift check, 0: never */
};

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
    /* The header's clock bases, checked at attach and copied for the same reason: a
     * scribbled header word must not stop this process's clock or stretch its sleeps.
     * epoch_ns: CLOCK_MONOTONIC ns of relative instant 0. wall: the fixed windows'
     * alignment, which clock.c refreshes from the header. */
    uint64_t epoch_ns;
    struct rl_wall *wall;
    /* handles[no]: this process's handle for bucket `no`, made on first use (CAS). */
    void *_Atomic *handles;
    /* Replaced handles whose view slots wait for their grace period (bucket.c). */
    void *_Atomic dead;
    /* How it was opened (path: this table's), for rl_table_reopen_if_replaced. */
    struct rl_table_opts opts;
    rl_atomic64 replaced_checked; /* CLOCK_MONOTONIC ns of the last check for a new file */
    rl_atomic32 lost;             /* guard.c: the mapping was replaced after a SIGBUS */
    /* reclaim.c: this process's reader slot, in a page a fork child sees zeroed (NULL: the
     * process uses the shared slot 0), and the descriptor whose lock tells the slot's owner
     * alive: this process's own, or one a fork child inherited (-1: none). */
    struct rl_reader_local *local;
    int lock_fd;
    struct shm_reader *readers;
    int guard_slot; /* guard.c: its registry slot, -1 if none */
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
    uint64_t off; /* the block's reference (shm_bucket.policy_off), its generation included */
    uint32_t nrules, flags;
    uint32_t expire_ms; /* shm_policy.expire_ms */
    uint64_t margin_ns;
    struct rule_params rules[RL_MAX_RULES];
    rl_atomic64 *log[RL_MAX_RULES]; /* sliding rules: their log of `limit` words */
    bool lone_gcra;                 /* one GCRA rule, enforced: acquire_gcra.c may decide */
};

/*
 * A handle's cache of views: RL_VIEW_SLOTS slots, allocated with the handle's first view.
 * A slot is filled once and then immutable until the table closes: another thread may be
 * reading it, and nothing tells when it stops. When every slot holds another block, a
 * decision validates its view into a copy on its own stack instead (no allocation).
 * So flipping a bucket between blocks costs a handle at most one allocation.
 */
#define RL_VIEW_SLOTS 4

struct view_slot {
    rl_atomic64 state; /* block.c: empty, being filled, ready */
    struct policy_view v;
};

/* Process-local handle for one bucket; immutable once made, but for its view cache. */
struct rl_bucket {
    rl_table *table;
    struct shm_bucket *rec;
    struct rl_bucket *parent;
    uint32_t no;
    uint32_t gen; /* the record's generation it was made for (shm_bucket.life) */
    /* The handle this one replaced in rl_table.handles (its record was reused): freed with
     * it when the table closes, as callers may still hold it. Its view slots are freed
     * sooner (bucket.c): dead_slots, once the epoch is 2 past dead_epoch; dead_next links
     * the handles whose slots wait (rl_table.dead). */
    struct rl_bucket *older;
    void *dead_slots;
    uint64_t dead_epoch;
    struct rl_bucket *dead_next;
    bool is_template; /* its name is a pattern: "prefix/" "*" */
    char name[RL_NAME_MAX + 1];
    /* The slot holding the view of the block policy_off named when last looked at (struct
     * view_slot *): a decision revalidates only when the bucket switched blocks. */
    void *_Atomic view;
    void *_Atomic slots; /* struct view_slot[RL_VIEW_SLOTS], or NULL before the first view */
};

/* errors.c: record a detail for rl_errdetail() and return err. */
int rl__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline uint64_t rl__sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

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
    uint64_t epoch = t->epoch_ns;
    /* The epoch was read from this boot's clock (boot id checked at attach), copied then. */
    return now > epoch ? now - epoch : 1; /* never 0: tick 0 means "never used" */
}
int rl__boot_id(char out[40]);

/* A relative instant as an absolute CLOCK_MONOTONIC one (saturating). */
static inline uint64_t rl__clock_abs(const rl_table *t, uint64_t rel)
{
    return rl__sat_add(rel, t->epoch_ns);
}

/* clock.c: the header's alignment and the one before, if both are within bounds. */
bool rl__wall_offset_read(const struct shm_header *h, int64_t *cur, int64_t *prev);
/* clock.c: at most once a second (now: relative ns), compare the clocks with the
 * alignment and re-align the table if they drifted apart (rule_fixed.c calls it). */
void rl__wall_check(const rl_table *t, uint64_t now);
/* clock.c: take the header's alignment if another process changed it. */
void rl__wall_sync(const rl_table *t);
/* Bounds-checked arena access; NULL if [off, off+len) is outside the arena. */
static inline void *rl__arena_at(const rl_table *t, uint64_t off, uint64_t len)
{
    uint64_t size = t->arena_bytes;
    if (off > size || len > size - off || off % 8)
        return NULL;
    return t->arena + off;
}

/* Policy references (shm_bucket.policy_off): gen:34 | line:30. */
static inline uint64_t rl__ref_off(uint64_t ref)
{
    return (ref & ((1ULL << RL_REF_LINE_BITS) - 1)) * RL_ALIGN;
}

static inline uint64_t rl__ref_gen(uint64_t ref)
{
    return ref >> RL_REF_LINE_BITS;
}

/* reclaim.c. A section: every read of a policy block found by reference runs inside one
 * (enter, read, exit), and a block is reused only once every section that could hold it
 * ended. Sections nest and never block. A read-only table has none (it never writes). */
struct rl_section {
    rl_atomic64 *count; /* the active[] counter entered on, NULL: none */
};
void rl__section_enter(rl_table *t, struct rl_section *s);
void rl__section_exit(struct rl_section *s);
/* Inside a section: RL_ESTALE (with a detail) if the table was resized away, else 0. */
int rl__table_moved(const rl_table *t);
/* Wait until every section that began before now has ended (the epoch advanced twice):
 * 0, or RL_ETIMEDOUT after timeout_ns. Sleeps. */
int rl__epoch_quiesce(rl_table *t, uint64_t timeout_ns);
/* Prepare a writable table for this process's reader slot (rl_table_open); claimed on the
 * first section. */
void rl__reader_init(rl_table *t);
/* Give this process's reader slot and its lock back (rl_table_close). */
void rl__reader_release(rl_table *t);
/* Take n from a shared allocation counter without ever passing limit; *at = the start. */
int rl__claim(rl_atomic64 *counter, uint64_t n, uint64_t limit, uint64_t *at);
/* A block of `len` bytes (its head line included) for bucket number owner - 1, from a free
 * list or the arena's end: *ref names its shm_policy (generation included). */
int rl__block_alloc(rl_table *t, uint64_t len, uint32_t owner, uint64_t *ref);
/* A block unlinked by a won S5: reused after its grace period. */
void rl__block_retire(rl_table *t, uint64_t ref, struct shm_bucket *rec);
/* A block never linked anywhere: reused at once. */
void rl__block_free_now(rl_table *t, uint64_t ref);
/* Advance the epoch and move blocks whose grace period is over to the free lists; a
 * mutator calls it outside any section, so that its own section does not hold it back. */
void rl__reclaim(rl_table *t);
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
/* shm_table.c: count an attachment of the preload shim (shim.c) in the header. */
void rl__table_note_shim(rl_table *t);

/* shm_index.c; every call inside a section. A name's bucket number and generation. */
uint64_t rl__name_hash(const char *name);
int rl__index_find(const rl_table *t, const char *name, uint32_t *no, uint32_t *gen);
/* Creations of one name that abort each other before one gives up (RL_EFULL). */
#define RL_CREATE_TRIES 64
/* Publish built record `no` under `name`: 0, and *winner is the bucket that has the name
 * (if not `no`, the caller gives `no` back), *gen its generation; 1 if another creator
 * aborted ours (try again, out of the section: bucket.c); or RL_EFULL. */
int rl__index_insert(rl_table *t, const char *name, uint32_t no, uint32_t *winner, uint32_t *gen);
/* Record `no`, deleted, leaves the index: true if this call retired it. */
bool rl__index_unlink(rl_table *t, const char *name, uint32_t no);
uint32_t rl__bucket_count(const rl_table *t);
/* Index slots never used: a walk stops at the first one (shm_index.c). */
uint32_t rl__index_empty(const rl_table *t);

/* record.c: records given back and reused. */
/* A record for a new bucket: a spare one, or the next never used; RL_EFULL. */
int rl__record_take(rl_table *t, uint32_t *no);
/* The generation a record taken gets. */
uint32_t rl__record_next_gen(const struct shm_bucket *rec);
/* Record `no`, out of the index, waits for its grace period (inside a section). */
void rl__record_retire(rl_table *t, uint32_t no);
/* Move records whose grace period is over to the free list (after rl__reclaim, which
 * advances the epoch while a record limbo is not empty). */
void rl__record_collect(rl_table *t);
/* Records retired or spare (a statistic). */
uint32_t rl__record_spare(const rl_table *t);

/* block.c: the policy block. Snapshot the block at `off`: 0, or -1 if damaged. */
int rl__block_view(const rl_table *t, uint64_t off, struct policy_view *v);
/* Allocate and fill a policy block for bucket number owner - 1 whose state words hold
 * `word` (not yet visible), with the tenants' expiry expire_ms; *ref is its reference. */
int rl__block_create(rl_table *t, const struct rl_policy *pol, uint32_t expire_ms, uint64_t word,
                     uint32_t owner, uint64_t *ref);
void rl__block_read(const struct policy_view *v, struct rl_policy *out);
/* Arena bytes of a policy's block with its head line and sliding logs, rounded up to
 * RL_ALIGN. */
uint64_t rl__policy_bytes(const struct rl_policy *pol);
bool rl__policy_same(const struct rl_policy *a, const struct rl_policy *b);
/* Snapshot the bucket's current policy block: 0, RL_ENOENT (the bucket was deleted: its
 * reference is 0) or RL_ECORRUPT, with a detail. */
int rl__bucket_view(const rl_bucket *b, struct policy_view *v);
/* After reading from view v (or from its failure: v->off is the reference it read) without
 * a section: true if the bucket still names that block, so nothing read came from a block
 * reused meanwhile. */
bool rl__bucket_view_settled(const rl_bucket *b, const struct policy_view *v);
/* The view of the block at `off`: from the handle's cache, or validated into `spare` (the
 * caller's) when the cache is full. 0, or RL_ENOENT (deleted), RL_ECORRUPT or RL_ENOMEM. */
int rl__bucket_view_refresh(rl_bucket *b, uint64_t off, struct policy_view *spare,
                            const struct policy_view **out);

/* The bucket's current view (see rl__bucket_view_refresh). Inline: every decision asks,
 * and the cache nearly always has it. */
static inline int rl__bucket_view_cached(rl_bucket *b, struct policy_view *spare,
                                         const struct policy_view **out)
{
    /* A3 as in rl__bucket_view. The cache is process-local and a ready slot is immutable.
     * So acquire on the pointer sees the slot's contents (P1 in the refresh). A slot's
     * reference carries the block's generation: a reused block never matches it. */
    uint64_t off = rl__load_seq_cst(&b->rec->policy_off);
    /* P4: seq_cst (a plain load on x86): a handle whose record was reused has its slots
     * detached by a seq_cst exchange before their grace period (bucket.c). */
    const struct view_slot *have = rl__ptr_load_seq_cst(&b->view);
    if (!have || have->v.off != off)
        return rl__bucket_view_refresh(b, off, spare, out);
    *out = &have->v;
    return 0;
}

/* Switches a loop follows before it takes the chain for damaged: blocks are reused, so a
 * damaged next_off may lead round in a circle. */
#define RL_SWITCH_STEPS 4096

/* update.c: finish a switch away from the viewed block, if one started. True if it did. */
bool rl__switch_help(const rl_bucket *b, const struct policy_view *v);
/* update.c, for a delete (D1): claim the viewed block's next_off, so that no switch starts
 * from it. False if a switch linked a successor first: help it, and delete that block. */
bool rl__switch_close(const rl_table *t, const struct policy_view *v);
/* update.c: the viewed block counts nothing now nor `idle` ago, carries no debt and has no
 * global rule: a fresh block would decide as it will. */
bool rl__block_idle(const rl_table *t, const struct policy_view *v, uint64_t now, uint64_t idle);
/* update.c: delete the bucket if the viewed block (current, no successor) is idle for
 * `idle` ns, by a switch that deciders finish if they come first. True if deleted. */
bool rl__switch_expire(const rl_bucket *b, const struct policy_view *v, uint64_t idle);
/* update.c: replace the viewed block, which has no successor, by a fresh copy of its rules
 * (full budget): 0, or the arena's error. */
int rl__switch_fresh(const rl_bucket *b, const struct policy_view *v);

/* counters.c: count an admission of `cost` units to bucket x, in the admission counter
 * `admitted` (the record's, or a policy block's: see shm_rule.admitted). */
void rl__count_admission(rl_bucket *x, rl_atomic64 *admitted, uint32_t cost);
/* The bucket's counters, with the fast path's admissions counted in its blocks. */
void rl__counters_read(const rl_bucket *b, struct rl_counters *out);

/* feedback.c: what the vendor's answers left in the bucket record, for rl_bucket_info. */
void rl__feedback_read(const rl_bucket *b, uint64_t now, struct rl_feedback_state *out);

/* bucket.c: the handle for record `no` of generation gen (inside a section): RL_ENOENT if
 * the record holds another generation now. */
int rl__bucket_handle(rl_table *t, uint32_t no, uint32_t gen, rl_bucket **out);
/* Inside a section: the handle's record still holds its bucket, not deleted. */
bool rl__bucket_live(const rl_bucket *b);
/* The handle for `name` (checked already), found and made in one section: RL_ENOENT. */
int rl__bucket_find(rl_table *t, const char *name, rl_bucket **out);
/* A live bucket names b as its parent (O(1) for a bucket above every parent). */
bool rl__bucket_is_parent(const rl_bucket *b);
/* Define bucket or template `name` (checked already) with the tenants' expiry expire_ms; a
 * tenant (made from a template) leaves the applied digest alone. */
int rl__bucket_create(rl_table *t, const char *name, const struct rl_policy *pol,
                      uint32_t expire_ms, const char *parent_name, bool tenant, rl_bucket **out);

/* acquire_gcra.c: decide for a chain of GCRA-only buckets, or decline (then
 * acquire.c's general path decides). */
enum gcra_chain_result {
    GCRA_ADMITTED, /* admitted now */
    GCRA_REFUSED,  /* refused: RL_ELIMITED (max_wait 0) */
    GCRA_DECLINED, /* not a case for the fast path: nothing was committed */
    GCRA_MOVED,    /* not asked: the table was resized away (acquire.c refuses) */
};
enum gcra_chain_result rl__acquire_gcra_chain(rl_bucket *b, uint32_t cost, uint64_t max_wait,
                                              struct rl_decision *out);

/* policy.c: a duration as rule text writes it ("50ms", "1h"), snprintf's result. */
int rl__duration_format(char *buf, size_t len, uint64_t ns);

/* headers.c: parse hostile header values; false means malformed. */
bool rl__header_uint(const char *text, uint64_t *out);
bool rl__header_http_date(const char *text, int64_t *epoch);
bool rl__header_retry_after(const char *text, uint64_t *delay_ns);
/* A reset: *delay_ns until the instant it names; *known_ns, how long the state it describes
 * is known to last (a reset in whole seconds, or milliseconds, may come one unit earlier). */
bool rl__header_reset(const char *text, uint64_t *delay_ns, uint64_t *known_ns);
bool rl__header_ratelimit(const char *text, uint64_t *remaining, uint64_t *reset_ns,
                          uint64_t *known_ns);
bool rl__header_policy(const char *text, uint64_t *quota, uint64_t *window_ns);
int64_t rl__wall_now_ns(void);

/* The size of the first struct rl_response (up to max_cooldown_ns): a smaller one is
 * RL_EINVAL. */
#define RL_RESPONSE_SIZE_V1 (offsetof(struct rl_response, max_cooldown_ns) + sizeof(uint64_t))

/* An expiry in ns as the whole ms a block keeps (rounded up): 0, or -1 beyond
 * RL_EXPIRE_MAX_NS. */
static inline int rl__expire_ms(uint64_t ns, uint32_t *ms)
{
    if (ns > RL_EXPIRE_MAX_NS)
        return -1;
    *ms = (uint32_t)((ns + 999999) / 1000000);
    return 0;
}

static inline uint64_t rl__max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline uint64_t rl__min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

#pragma GCC visibility pop

#endif /* RL_INTERNAL_H */
