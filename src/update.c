/*
 * update.c - switch a live bucket to new rules without a lock and without forgetting usage.
 *
 * The bucket's policy_off names its current policy block. A switch from block P to B:
 *   S1  fill B (rules, sliding logs); its state words hold RL_UNINIT; B.carry_at = now.
 *   S2  CAS P.next_off 0 -> B (release: publishes B). One switch at a time per block.
 *   S3  freeze every state word of P (set RL_FROZEN by CAS). A decider that loaded P's
 *       words before fails its commit CAS; one that loads them now sees the bit.
 *   S4  for each rule of B: compute its initial state from P's frozen words as of carry_at
 *       and CAS it RL_UNINIT -> state. Deterministic: any helper computes the same value.
 *   S5  CAS policy_off P -> B (release).
 * Anyone who meets a frozen word (a decider, a reset, another update) runs S3-S5 itself,
 * so a switcher killed at any step leaves work others finish: nothing waits on it.
 *
 * Carry-over is conservative: each new rule starts as if the units counted by the old
 * rules had all been admitted at carry_at (later than they really were), so the new rules
 * never admit more than they allow; P's usage is final once frozen, so nothing is lost.
 */
#include <string.h>

#include "internal.h"

static uint64_t kind_usage(const struct rule_ctx *c, uint64_t at)
{
    struct rl_rule_state st = {0};
    if (c->rule->kind == RL_GCRA)
        gcra_usage(c, at, &st);
    else if (c->rule->kind == RL_FIXED)
        fixed_usage(c, at, &st);
    else
        st.used = c->rule->limit - sliding_remaining(c, at);
    return st.used;
}

/*
 * Units the old rules prove were admitted in the new rule's last `period`: the old rule
 * with the shortest period at least as long counts all of them; if every old period is
 * shorter, bound it by what the longest one allows over that span.
 */
static uint64_t carried_units(const rl_table *t, const struct shm_policy *old, uint64_t at,
                              const struct shm_rule *nr)
{
    const struct shm_rule *best = NULL, *longest = &old->rules[0];
    for (uint32_t i = 0; i < old->nrules; i++) {
        const struct shm_rule *r = &old->rules[i];
        if (r->period_ns >= nr->period_ns && (!best || r->period_ns < best->period_ns))
            best = r;
        if (r->period_ns > longest->period_ns)
            longest = r;
    }
    const struct shm_rule *src = best ? best : longest;
    struct rule_ctx c = {t, (struct shm_rule *)src, old->margin_ns, 0, false};
    c.word = rl_load_acquire(&src->word) & ~RL_FROZEN; /* frozen: final */
    uint64_t used = kind_usage(&c, at);
    if (!best) /* older windows of the longest rule held at most N each */
        used += src->limit * ((nr->period_ns + src->period_ns - 1) / src->period_ns - 1);
    uint64_t cap = nr->kind == RL_GCRA ? nr->burst : nr->limit;
    return used < cap ? used : cap;
}

/* S4 for one rule: its first state with `units` admitted at `at`. */
static uint64_t initial_word(const rl_table *t, struct shm_rule *r, uint64_t units, uint64_t at)
{
    struct rule_ctx c = {t, r, 0, 0, false};
    if (r->kind == RL_GCRA)
        return at + units * r->interval_ns;
    if (r->kind == RL_FIXED)
        return units ? fixed_next_word(&c, at, (uint32_t)units) : 0;
    sliding_seed(&c, units, at);
    /* Head: pos 0, last = ceil(at) in ticks, so new units are ordered after the seeded. */
    return units ? (at + RL_TICK_NS - 1) / RL_TICK_NS : 0;
}

static void freeze(struct shm_policy *p)
{
    for (uint32_t i = 0; i < p->nrules; i++) {
        rl_atomic64 *w = &p->rules[i].word;
        uint64_t v = rl_load_acquire(w);
        /* S3: acq_rel; after it no commit to this word can succeed. */
        while (!(v & RL_FROZEN) && !rl_cas(w, &v, v | RL_FROZEN))
            ;
    }
}

/* S3-S5, if P has a successor. Returns true if the bucket moved on from P. */
bool rl_switch_help(const rl_bucket *b, struct shm_policy *p)
{
    const rl_table *t = b->table;
    /* A6: acquire pairs with S2: B's rules and carry_at are visible. */
    uint64_t next = rl_load_acquire(&p->next_off);
    struct shm_policy *n = next ? rl_policy_at(t, next) : NULL;
    if (!n)
        return false;
    freeze(p);
    for (uint32_t i = 0; i < n->nrules; i++) {
        struct shm_rule *r = &n->rules[i];
        if (rl_load_acquire(&r->word) != RL_UNINIT)
            continue;
        uint64_t units = carried_units(t, p, n->carry_at, r);
        uint64_t init = initial_word(t, r, units, n->carry_at), expected = RL_UNINIT;
        rl_cas(&r->word, &expected, init); /* S4: whoever is first; the values are equal */
    }
    uint64_t cur = (uint64_t)((unsigned char *)p - t->arena);
    rl_cas(&b->rec->policy_off, &cur, next); /* S5: release publishes the filled words */
    return true;
}

int rl_bucket_update(rl_bucket *b, const struct rl_policy *pol)
{
    struct rl_parse_error perr;
    if (b->table->read_only)
        return rl_fail(RL_EPERM, "table %s is open read-only", b->table->path);
    if (!pol || rl_policy_check(pol, &perr) < 0)
        return rl_fail(RL_EPARSE, "bucket '%s': %s", b->name, pol ? perr.message : "no policy");
    for (;;) {
        struct shm_policy *p = rl_bucket_policy(b);
        struct rl_policy have;
        uint64_t off, expected = 0;
        if (!p)
            return rl_fail(RL_ECORRUPT, "bucket '%s' is damaged", b->name);
        if (rl_switch_help(b, p))
            continue;
        rl_policy_read(p, &have);
        if (rl_policy_same(&have, pol))
            return 0;
        int err = rl_policy_create((rl_table *)b->table, pol, RL_UNINIT, &off);
        if (err)
            return err;
        struct shm_policy *n = rl_policy_at(b->table, off);
        n->carry_at = rl_clock_rel(b->table);
        /* S2: release publishes B; losing means another switch runs: help it, retry. */
        rl_cas(&p->next_off, &expected, off);
        rl_switch_help(b, p);
        if (expected == 0)
            return 0;
    }
}
