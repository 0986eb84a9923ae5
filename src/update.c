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
 * Anyone who meets a frozen word (a decider, a reset, another update) runs S3-S5 itself.
 * So a switcher killed at any step leaves work that others finish. Nothing waits on it.
 *
 * A delete of the bucket takes P.next_off first too (D1: 0 -> RL_NEXT_DELETED), then moves
 * policy_off to 0. So one of the two wins P: a switch whose S2 came first is finished by the
 * deleter, which then deletes B; a switch that loses S2 to D1 frees B (nobody saw it) and
 * returns RL_ENOENT. No block is left linked from a deleted block alone.
 *
 * Carry-over is conservative. Each new rule starts as if the units counted by the old
 * rules had all been admitted at carry_at, later than they really were. So the new rules
 * never admit more than they allow. P's usage is final once frozen, so nothing is lost.
 */
#include <string.h>

#include "rule.h"

/* Units rule i of a frozen block counts at `at`, uncapped (a carried-over debt may exceed
 * N). Units carried beyond what the rule's state holds count while the stamps they rode in
 * with do. */
static uint64_t frozen_usage(const struct policy_view *v, uint32_t i, const struct rule_ctx *c,
                             uint64_t at)
{
    uint64_t excess = 0;
    if (rl__sat_add(v->block->carry_at, c->r.period_ns + v->margin_ns) > at)
        excess = rl__load_relaxed(&v->block->carry_excess[i]);
    return rl__sat_add(rl__rule_used(c, at), excess);
}

/*
 * Units the old rules prove were admitted in the new rule's last `period`: the old rule
 * with the shortest period at least as long counts all of them; if every old period is
 * shorter, bound it by what the longest one allows over that span.
 */
static uint64_t carried_units(const rl_table *t, const struct policy_view *old, uint64_t at,
                              const struct rule_params *nr)
{
    uint32_t best = UINT32_MAX, longest = 0;
    for (uint32_t i = 0; i < old->nrules; i++) {
        uint64_t period = old->rules[i].period_ns;
        if (period >= nr->period_ns && (best == UINT32_MAX || period < old->rules[best].period_ns))
            best = i;
        if (period > old->rules[longest].period_ns)
            longest = i;
    }
    uint32_t i = best != UINT32_MAX ? best : longest;
    struct rule_ctx c;
    rl__rule_ctx_load(&c, t, old, i); /* frozen: final */
    uint64_t used = frozen_usage(old, i, &c, at);
    if (best == UINT32_MAX) /* older windows of the longest rule held at most N each */
        used += c.r.limit * ((nr->period_ns + c.r.period_ns - 1) / c.r.period_ns - 1);
    return used < (1ULL << 31) ? used : (1ULL << 31); /* a debt beyond any limit */
}

/* S4 for rule i of block n: its first state with `units` admitted at `at`. Units beyond
 * what the state holds are kept in carry_excess (relaxed: published by S5's release). */
static uint64_t initial_word(const rl_table *t, const struct policy_view *n, uint32_t i,
                             uint64_t units, uint64_t at)
{
    struct rule_ctx c;
    uint64_t excess;
    rl__rule_ctx(&c, t, n, i);
    uint64_t word = rl__rule_carry(&c, units, at, &excess);
    rl__store_relaxed(&n->block->carry_excess[i], excess);
    return word;
}

static void freeze(const struct policy_view *v)
{
    for (uint32_t i = 0; i < v->nrules; i++) {
        rl_atomic64 *w = &v->block->rules[i].word;
        uint64_t x = rl__load_acquire(w);
        /* S3: acq_rel; after it no commit to this word can succeed. */
        while (!(x & RL_FROZEN) && !rl__cas_acq_rel(w, &x, x | RL_FROZEN))
            ;
    }
}

/* S3-S5, if the viewed block P has a successor. Returns true if the bucket moved on. */
bool rl__switch_help(const rl_bucket *b, const struct policy_view *p)
{
    rl_table *t = b->table;
    struct policy_view n;
    /* A6: acquire pairs with S2: B's rules and carry_at are visible. */
    uint64_t next = rl__load_acquire(&p->block->next_off), cur = p->off;
    /* A damaged next_off may name the block itself (or lead round in a longer circle:
     * the loops that follow switches count them, RL_SWITCH_STEPS). A delete's claim names
     * no block. */
    if (next == 0 || next == RL_NEXT_DELETED || next == cur || rl__block_view(t, next, &n) < 0)
        return false;
    freeze(p);
    uint64_t carry_at = n.block->carry_at;
    for (uint32_t i = 0; i < n.nrules; i++) {
        rl_atomic64 *w = &n.block->rules[i].word;
        if (rl__load_acquire(w) != RL_UNINIT)
            continue;
        uint64_t units = carried_units(t, p, carry_at, &n.rules[i]);
        uint64_t init = initial_word(t, &n, i, units, carry_at), expected = RL_UNINIT;
        rl__cas_acq_rel(w, &expected, init); /* S4: whoever is first; the values are equal */
    }
    /* S5: release publishes the filled words; seq_cst orders the unlink before X6. The
     * one whose S5 moved policy_off retires P (reclaim.c). */
    if (rl__cas_seq_cst(&b->rec->policy_off, &cur, next))
        rl__block_retire(b->table, p->off, b->rec);
    return true;
}

bool rl__switch_close(const rl_table *t, const struct policy_view *p)
{
    struct policy_view n;
    uint64_t next = 0;
    /* D1: acq_rel CAS, as S2; on failure, acquire pairs with S2: B's rules (as A6). */
    if (rl__cas_acq_rel(&p->block->next_off, &next, RL_NEXT_DELETED) || next == RL_NEXT_DELETED)
        return true;
    /* A successor that does not validate is never followed: the delete goes ahead. */
    return next == p->off || rl__block_view(t, next, &n) < 0;
}

/*
 * A frozen word in block P with no successor to finish: a damaged word (RL_FROZEN set by a
 * writer other than S3), or a switch whose new block is damaged. No decision can commit to
 * it, and no switch will move past it. Switch to a fresh copy of P's rules, by S2-S5 as
 * any update: its words hold 0 (as a new bucket's), so S4 leaves them as they are and no
 * usage is carried. Losing S2 means another switch started: it is helped instead.
 */
int rl__switch_fresh(const rl_bucket *b, const struct policy_view *p)
{
    struct policy_view n;
    struct rl_policy pol;
    uint64_t off;
    rl__block_read(p, &pol);
    int err = rl__block_create(b->table, &pol, p->expire_ms, 0, b->no + 1, &off);
    if (err)
        return err;
    /* A6 as in rl__switch_help. A successor that does not validate is never followed:
     * it may be replaced (and is never reused: it may be damaged). A delete's claim stays. */
    uint64_t next = rl__load_acquire(&p->block->next_off);
    bool linked = false;
    if (next != RL_NEXT_DELETED &&
        (next == 0 || next == p->off || rl__block_view(b->table, next, &n) < 0))
        linked = rl__cas_acq_rel(&p->block->next_off, &next, off); /* S2 */
    if (!linked)                                                   /* nobody saw it */
        rl__block_free_now(b->table, off);
    if (next == RL_NEXT_DELETED)
        return rl__fail(RL_ENOENT, "bucket '%s' is being deleted", b->name);
    rl__switch_help(b, p);
    return 0;
}

/* The viewed block counts nothing now nor `idle` ago, its carried debt is spent, and it
 * has no global rule: a fresh block would decide exactly as it will from now on (a rule
 * with nothing counted at `now` admits as a new one does). */
bool rl__block_idle(const rl_table *t, const struct policy_view *v, uint64_t now, uint64_t idle)
{
    uint64_t then = now > idle ? now - idle : 0;
    for (uint32_t i = 0; i < v->nrules; i++) {
        struct rule_ctx c;
        if (v->rules[i].kind == RL_GLOBAL)
            return false;
        rl__rule_ctx_load(&c, t, v, i);
        uint64_t excess = rl__load_relaxed(&v->block->carry_excess[i]); /* final once published */
        if (rl__rule_used(&c, now) || rl__rule_used(&c, then) ||
            (excess && rl__sat_add(v->block->carry_at, c.r.period_ns + v->margin_ns) > then))
            return false;
    }
    return true;
}

/*
 * Expiry, inside the caller's section: a switch of P to a copy of its rules (S1, S2), and
 * once P is frozen (S3) and still idle, the reference goes to 0 instead of S5 (the bucket
 * is deleted). Anyone who meets the frozen words first finishes the switch to the copy
 * instead, and the bucket lives on with P's usage: so a decision that committed before
 * the freeze is never forgotten, and one that did not finds the bucket deleted (RL_ENOENT)
 * and a new one with a full budget, which is what the idle one would give. A process
 * killed at any step leaves a switch others finish. True if the bucket was deleted.
 */
bool rl__switch_expire(const rl_bucket *b, const struct policy_view *p, uint64_t idle)
{
    rl_table *t = b->table;
    struct rl_policy pol;
    uint64_t off, expected = 0, cur = p->off;
    if (!rl__block_idle(t, p, rl__clock_rel(t), idle))
        return false;
    rl__block_read(p, &pol);
    if (rl__block_create(t, &pol, p->expire_ms, RL_UNINIT, b->no + 1, &off) < 0)
        return false;
    ((struct shm_policy *)(t->arena + rl__ref_off(off)))->carry_at = rl__clock_rel(t);
    if (!rl__cas_acq_rel(&p->block->next_off, &expected, off)) { /* S2 lost: a switch runs */
        rl__block_free_now(t, off);
        return false;
    }
    freeze(p); /* S3 */
    /* Seq_cst, as S5 (X6). Deciders may hold the copy (linked by S2): it is retired too. */
    if (rl__block_idle(t, p, rl__clock_rel(t), idle) &&
        rl__cas_seq_cst(&b->rec->policy_off, &cur, 0)) {
        rl__block_retire(t, p->off, b->rec);
        rl__block_retire(t, off, b->rec);
        return true;
    }
    rl__switch_help(b, p);
    return false;
}

/* The switch, inside the caller's section; expire_ms NULL keeps the block's expiry. */
static int update_in_section(rl_bucket *b, const struct rl_policy *pol, const uint32_t *expire_ms)
{
    for (unsigned steps = 0; steps < RL_SWITCH_STEPS; steps++) {
        struct policy_view p;
        struct rl_policy have;
        uint64_t off, expected = 0;
        int err = rl__bucket_view(b, &p);
        if (err)
            return err;
        if (rl__switch_help(b, &p))
            continue;
        uint32_t expire = expire_ms ? *expire_ms : p.expire_ms;
        rl__block_read(&p, &have);
        if (rl__policy_same(&have, pol) && expire == p.expire_ms)
            return 0;
        rl__applied_forget(b->table); /* before and after the switch: applied.c */
        err = rl__block_create(b->table, pol, expire, RL_UNINIT, b->no + 1, &off);
        if (err)
            return err;
        ((struct shm_policy *)(b->table->arena + rl__ref_off(off)))->carry_at =
            rl__clock_rel(b->table);
        /* S2: release publishes B. Losing means another switch runs (help it, retry), or a
         * delete claimed P (D1): the bucket is gone, B was never seen. */
        if (!rl__cas_acq_rel(&p.block->next_off, &expected, off))
            rl__block_free_now(b->table, off); /* nobody saw it */
        rl__switch_help(b, &p);
        rl__applied_forget(b->table);
        if (expected == RL_NEXT_DELETED)
            return rl__fail(RL_ENOENT, "bucket '%s' is being deleted", b->name);
        if (expected == 0)
            return 0;
    }
    return rl__fail(RL_ECORRUPT, "bucket '%s': its chain of rule switches is damaged", b->name);
}

static int update(rl_bucket *b, const struct rl_policy *pol, const uint32_t *expire_ms)
{
    struct rl_parse_error perr;
    struct rl_section s;
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    if (!pol || rl_policy_check(pol, &perr) < 0)
        return rl__fail(RL_EPARSE, "bucket '%s': %s", b->name, pol ? perr.message : "no policy");
    rl__reclaim(b->table); /* outside the section: ours would hold the epoch back */
    rl__section_enter(b->table, &s);
    int err = rl__table_moved(b->table);
    if (!err)
        err = update_in_section(b, pol, expire_ms);
    rl__section_exit(&s);
    return err;
}

int rl_bucket_update(rl_bucket *b, const struct rl_policy *pol)
{
    return update(b, pol, NULL);
}

int rl_bucket_update_expire(rl_bucket *b, const struct rl_policy *pol, uint64_t expire_ns)
{
    uint32_t ms;
    if (rl__expire_ms(expire_ns, &ms) < 0)
        return rl__fail(RL_EINVAL, "bucket '%s': expiry %llu ns is beyond %llu days", b->name,
                        (unsigned long long)expire_ns,
                        (unsigned long long)(RL_EXPIRE_MAX_NS / 86400000000000ULL));
    return update(b, pol, &ms);
}
