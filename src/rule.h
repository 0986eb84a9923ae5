/*
 * rule.h - one rule of a decision: its kind, its context, and one dispatch per operation.
 *
 * Each kind lives in its own file (rule_gcra.c, rule_fixed.c, rule_sliding.c,
 * rule_lease.c, rule_server.c). A new kind touches that file, the switches below and the grammar
 * (policy.c). The per-kind functions stay out of line, in their own files: tests link
 * with -Wl,--wrap to stall a decision inside them, and --wrap only sees calls between
 * object files.
 */
#ifndef RL_RULE_H
#define RL_RULE_H

#include "internal.h"

#pragma GCC visibility push(hidden)

/* The kinds a decision knows: the public ones, and the server rule (rule_server.c). */
enum rule_kind {
    RULE_GCRA = RL_GCRA,
    RULE_FIXED = RL_FIXED,
    RULE_SLIDING = RL_SLIDING,
    RULE_LEASE = RL_GLOBAL,      /* this host's lease of a budget held in Redis */
    RULE_SERVER = RL_GLOBAL + 1, /* the vendor's reported budget, kept in the bucket record */
};

/* One rule of a decision: where its state lives and what a decision needs to know. */
struct rule_ctx {
    const rl_table *table;
    enum rule_kind kind;
    struct rule_params r; /* validated copy; unused by the server rule */
    rl_atomic64 *state;   /* the rule's state word in the table */
    rl_atomic64 *log;     /* sliding: its log, r.limit words */
    uint64_t margin_ns;
    uint64_t word; /* the state word as loaded for this decision */
    bool repair;   /* sliding: repeated stale views, so repair inconsistent log entries */
};

/* What earliest() found. */
enum rule_result {
    RULE_OK,
    RULE_STALE, /* the loaded state is outdated: reload and start over */
};

/* Rule i of a view as a context (word not loaded). */
static inline void rl__rule_ctx(struct rule_ctx *c, const rl_table *t, const struct policy_view *v,
                                uint32_t i)
{
    *c = (struct rule_ctx){.table = t,
                           .kind = (enum rule_kind)v->rules[i].kind,
                           .r = v->rules[i],
                           .state = &v->block->rules[i].word,
                           .log = v->log[i],
                           .margin_ns = v->margin_ns};
}

/* Rule i of a view with its word loaded, for inspection, reset and carry-over. */
static inline void rl__rule_ctx_load(struct rule_ctx *c, const rl_table *t,
                                     const struct policy_view *v, uint32_t i)
{
    rl__rule_ctx(c, t, v, i);
    /* Acquire: pairs with C2 of the last decision (A5). The frozen bit of a block being
     * replaced does not change what its usage was. */
    c->word = rl__load_acquire(c->state) & ~RL_FROZEN;
}

/* The server rule of bucket b (word not loaded); `v` is the bucket's view. */
static inline void rl__rule_ctx_server(struct rule_ctx *c, const rl_bucket *b,
                                       const struct policy_view *v)
{
    *c = (struct rule_ctx){.table = b->table,
                           .kind = RULE_SERVER,
                           .state = &b->rec->server,
                           .margin_ns = v->margin_ns};
}

/* rule_gcra.c */
uint64_t rl__gcra_interval(uint64_t limit, uint64_t period_ns);
/* The GCRA a decision runs for rule r under margin m: ns per unit and margin (I', m'). */
struct gcra_run {
    uint64_t interval_ns, margin_ns;
};
struct gcra_run rl__gcra_run(const struct rule_params *r, uint64_t margin_ns);
uint64_t rl__gcra_earliest_for(const struct rule_params *r, uint64_t margin_ns, uint64_t tat,
                               uint64_t now, uint32_t cost);
enum rule_result rl__gcra_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                   uint64_t *earliest);
/* The TAT after admitting `cost` units at instant d (d >= the earliest instant), I' ns each. */
uint64_t rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
/* The TAT after admitting `cost` at d stays in its range (rule_gcra.c: TAT_MAX). */
bool rl__gcra_fits_for(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
bool rl__gcra_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost);
uint64_t rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void rl__gcra_reset(const struct rule_ctx *c, uint64_t now);
uint64_t rl__gcra_used(const struct rule_ctx *c, uint64_t now);
void rl__gcra_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out);
uint64_t rl__gcra_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess);

/* rule_fixed.c */
enum rule_result rl__fixed_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                    uint64_t *earliest);
bool rl__fixed_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost);
uint64_t rl__fixed_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void rl__fixed_reset(const struct rule_ctx *c, uint64_t now);
uint64_t rl__fixed_used(const struct rule_ctx *c, uint64_t now);
void rl__fixed_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out);
uint64_t rl__fixed_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess);

/* rule_sliding.c */
enum rule_result rl__sliding_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                      uint64_t *earliest);
bool rl__sliding_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost);
uint64_t rl__sliding_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void rl__sliding_finalize(const struct rule_ctx *c, uint64_t old_word, uint64_t new_word);
void rl__sliding_reset(const struct rule_ctx *c, uint64_t now);
uint64_t rl__sliding_remaining(const struct rule_ctx *c, uint64_t now);
uint64_t rl__sliding_used(const struct rule_ctx *c, uint64_t now);
void rl__sliding_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out);
uint64_t rl__sliding_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess);

/* rule_lease.c */
#define RL_LEASE_PARTS 20 /* a lease lasts T / RL_LEASE_PARTS (tools/agent/grant.c) */
uint64_t rl__lease_ns(const struct rule_params *r);
uint64_t rl__lease_word(uint64_t left, uint64_t until_ns);
uint64_t rl__lease_until(uint64_t word);
uint64_t rl__lease_left(uint64_t word);
enum rule_result rl__lease_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                    uint64_t *earliest);
bool rl__lease_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost);
uint64_t rl__lease_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void rl__lease_reset(const struct rule_ctx *c);
void rl__lease_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out);
uint64_t rl__lease_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess);
/*
 * A bucket's global rule, for its agent: the lease word of the block that was current when
 * it was found. The block may be retired and reused by another bucket once that section
 * ended, at the same address: so the word is read and written only through the functions
 * below, each inside a section that checks the reference is still current; and two leases
 * are the same only if their references (generation included) are.
 */
struct lease_ref {
    rl_atomic64 *word;    /* only inside a section, while `block` is current */
    struct rule_params r; /* N, T, and the largest lease in r.burst */
    uint64_t margin_ns;
    rl_table *table;
    struct shm_bucket *rec;
    uint64_t block; /* the block's reference (shm_bucket.policy_off, its generation too) */
};
/* The lease word, while the block is still its bucket's current one: 0, RL_ENOENT (the
 * bucket switched or was deleted: find the lease again) or RL_ESTALE (resized away). */
int rl__lease_load(const struct lease_ref *ref, uint64_t *word);
/* The agent's refill: CAS the lease word from *expected to next, never on a frozen word,
 * and only while the word's block is its bucket's current one (else *expected gets
 * RL_FROZEN: the bucket switched; the block may be reused). */
bool rl__lease_swap(const struct lease_ref *ref, uint64_t *expected, uint64_t next);
/* The same lease: the same bucket and the same block reference. */
bool rl__lease_same(const struct lease_ref *a, const struct lease_ref *b);
/* RL_ENOENT: the bucket has no global rule (or was deleted); RL_ECORRUPT: its block is
 * damaged. */
int rl__lease_find(const rl_bucket *b, struct lease_ref *out);
/* A blocking acquire refused by a chain with a global rule sleeps this long and tries
 * again, until its deadline: only the agent brings units. 0: no global rule. */
#define RL_LEASE_PAUSE_MAX_NS 50000000ULL
uint64_t rl__lease_pause(const rl_bucket *b);

/* rule_server.c */
uint64_t rl__server_word(uint64_t remaining, uint64_t until_ns);
uint64_t rl__server_until(uint64_t word);
uint64_t rl__server_left(uint64_t word);
enum rule_result rl__server_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                     uint64_t *earliest);
uint64_t rl__server_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void rl__server_reset(const struct rule_ctx *c);
uint64_t rl__server_remaining(const struct rule_ctx *c, uint64_t now);

/*
 * The operations, one switch each.
 *
 * earliest: the earliest relative instant >= now at which `cost` units are admissible
 * given c->word. RL_NEVER if never (cost above capacity). May find the state stale.
 */
static inline enum rule_result rl__rule_earliest(const struct rule_ctx *c, uint64_t now,
                                                 uint32_t cost, uint64_t *earliest)
{
    switch (c->kind) {
    case RULE_GCRA:
        return rl__gcra_earliest(c, now, cost, earliest);
    case RULE_FIXED:
        return rl__fixed_earliest(c, now, cost, earliest);
    case RULE_LEASE:
        return rl__lease_earliest(c, now, cost, earliest);
    case RULE_SERVER:
        return rl__server_earliest(c, now, cost, earliest);
    default: /* RULE_SLIDING */
        return rl__sliding_earliest(c, now, cost, earliest);
    }
}

/* next_word: the state word after admitting `cost` at instant d (d >= earliest). */
static inline uint64_t rl__rule_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    switch (c->kind) {
    case RULE_GCRA:
        return rl__gcra_next_word(c, d, cost);
    case RULE_FIXED:
        return rl__fixed_next_word(c, d, cost);
    case RULE_LEASE:
        return rl__lease_next_word(c, d, cost);
    case RULE_SERVER:
        return rl__server_next_word(c, d, cost);
    default: /* RULE_SLIDING */
        return rl__sliding_next_word(c, d, cost);
    }
}

/*
 * fits: admitting `cost` at d (decided at `now`) leaves the state word in its valid range.
 * A turn too far ahead to be written down is refused, never wrapped into another state
 * (or into RL_FROZEN). The server rule's word only counts down: it always fits.
 */
static inline bool rl__rule_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost)
{
    switch (c->kind) {
    case RULE_GCRA:
        return rl__gcra_fits(c, now, d, cost);
    case RULE_FIXED:
        return rl__fixed_fits(c, now, d, cost);
    case RULE_LEASE:
        return rl__lease_fits(c, now, d, cost);
    case RULE_SERVER:
        return true;
    default: /* RULE_SLIDING */
        return rl__sliding_fits(c, now, d, cost);
    }
}

/* finalize: work after every rule of the chain committed. Only a sliding log has any. */
static inline void rl__rule_finalize(const struct rule_ctx *c, uint64_t old_word, uint64_t new_word)
{
    if (c->kind == RULE_SLIDING)
        rl__sliding_finalize(c, old_word, new_word);
}

/* reset: give the full budget back (a frozen word stays as it is). */
static inline void rl__rule_reset(const struct rule_ctx *c, uint64_t now)
{
    switch (c->kind) {
    case RULE_GCRA:
        rl__gcra_reset(c, now);
        break;
    case RULE_FIXED:
        rl__fixed_reset(c, now);
        break;
    case RULE_LEASE:
        rl__lease_reset(c);
        break;
    case RULE_SERVER:
        rl__server_reset(c);
        break;
    default: /* RULE_SLIDING */
        rl__sliding_reset(c, now);
        break;
    }
}

/* remaining: units the rule admits at `now` given c->word. Read-only. */
static inline uint64_t rl__rule_remaining(const struct rule_ctx *c, uint64_t now)
{
    struct rl_rule_state st = {0};
    switch (c->kind) {
    case RULE_GCRA:
        rl__gcra_usage(c, now, &st);
        return st.remaining;
    case RULE_FIXED:
        rl__fixed_usage(c, now, &st);
        return st.remaining;
    case RULE_LEASE:
        rl__lease_usage(c, now, &st);
        return st.remaining;
    case RULE_SERVER:
        return rl__server_remaining(c, now);
    default: /* RULE_SLIDING */
        return rl__sliding_remaining(c, now);
    }
}

/*
 * The operations below apply to a block's rules only, never to the server rule.
 *
 * params_ok: a rule's parameters, copied out of the table, are ones rl_policy_check
 * accepts (block.c then checks a sliding rule's log against the arena).
 */
static inline bool rl__rule_params_ok(const struct rule_params *p)
{
    if (p->limit == 0 || p->limit > RL_LIMIT_MAX || p->period_ns < RL_PERIOD_MIN_NS ||
        p->period_ns > RL_PERIOD_MAX_NS)
        return false;
    switch (p->kind) {
    case RL_GCRA:
        return p->interval_ns == rl__gcra_interval(p->limit, p->period_ns) && p->burst >= 1 &&
               p->burst <= (1ULL << 62) / p->interval_ns;
    case RL_FIXED:
        return p->period_ns >= RL_FIXED_PERIOD_MIN_NS;
    case RL_SLIDING:
        return p->limit <= RL_SLIDING_LIMIT_MAX;
    case RL_GLOBAL:
        return p->period_ns >= RL_GLOBAL_MIN_NS && p->burst >= 1 && p->burst <= p->limit &&
               p->burst <= RL_LEASE_MAX;
    }
    return false; /* an unknown kind: a damaged table */
}

/*
 * usage: used, remaining and next free instant, for inspection. Read-only: it never
 * helps or repairs a sliding log.
 */
static inline void rl__rule_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out)
{
    switch (c->kind) {
    case RULE_GCRA:
        rl__gcra_usage(c, now, out);
        break;
    case RULE_FIXED:
        rl__fixed_usage(c, now, out);
        break;
    case RULE_LEASE:
        rl__lease_usage(c, now, out);
        break;
    default: /* RULE_SLIDING */
        rl__sliding_usage(c, now, out);
        break;
    }
}

/* used: units the state counts at `at`, uncapped (a carried-over debt may exceed N). */
static inline uint64_t rl__rule_used(const struct rule_ctx *c, uint64_t at)
{
    switch (c->kind) {
    case RULE_GCRA:
        return rl__gcra_used(c, at);
    case RULE_FIXED:
        return rl__fixed_used(c, at);
    case RULE_LEASE:
        return 0; /* counted in Redis; a switch carries nothing from a lease */
    default:      /* RULE_SLIDING */
        return rl__sliding_used(c, at);
    }
}

/*
 * carry: the first state word of a new rule, as if `units` were admitted at `at` (update.c
 * S4). Deterministic: every helper computes the same word. *excess: the units beyond what
 * the state can hold (a sliding log holds N stamps); update.c keeps them in carry_excess.
 */
static inline uint64_t rl__rule_carry(const struct rule_ctx *c, uint64_t units, uint64_t at,
                                      uint64_t *excess)
{
    switch (c->kind) {
    case RULE_GCRA:
        return rl__gcra_carry(c, units, at, excess);
    case RULE_FIXED:
        return rl__fixed_carry(c, units, at, excess);
    case RULE_LEASE:
        return rl__lease_carry(c, units, at, excess);
    default: /* RULE_SLIDING */
        return rl__sliding_carry(c, units, at, excess);
    }
}

#pragma GCC visibility pop

#endif /* RL_RULE_H */
