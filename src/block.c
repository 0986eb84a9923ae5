/*
 * block.c - the policy block in the arena: create it, snapshot it (a "view"), read it back,
 * compare policies. A handle caches the views of its bucket's blocks.
 */
#include <stdlib.h>
#include <string.h>

#include "rule.h"

/* Copy rule r out of the table into v (entry i) and check the copy. */
static bool rule_view(const rl_table *t, const struct shm_rule *r, struct policy_view *v,
                      uint32_t i)
{
    struct rule_params *p = &v->rules[i];
    uint64_t log_off = r->log_off;
    *p = (struct rule_params){r->kind, r->limit, r->period_ns, r->burst, r->interval_ns};
    v->log[i] = NULL;
    if (!rl__rule_params_ok(p))
        return false;
    if (p->kind == RL_SLIDING)
        v->log[i] = rl__arena_at(t, log_off, p->limit * 8);
    return p->kind != RL_SLIDING || v->log[i] != NULL;
}

int rl__block_view(const rl_table *t, uint64_t ref, struct policy_view *v)
{
    uint64_t off = rl__ref_off(ref);
    const struct shm_block_head *h = rl__arena_at(t, off - sizeof(*h), sizeof(*h));
    struct shm_policy *p = rl__arena_at(t, off, sizeof(*p));
    /* Relaxed: the generation was written before the block was published (R1, S2), and
     * the reference was loaded after that. A mismatch: a damaged reference. */
    if (off < sizeof(*h) || !h || !p || rl__load_relaxed(&h->gen) != rl__ref_gen(ref))
        return -1;
    *v = (struct policy_view){.block = p,
                              .off = ref,
                              .nrules = p->nrules,
                              .flags = p->flags,
                              .expire_ms = p->expire_ms,
                              .margin_ns = p->margin_ns};
    if (v->nrules == 0 || v->nrules > RL_MAX_RULES || v->margin_ns > RL_MARGIN_MAX_NS ||
        !rl__arena_at(t, off, sizeof(*p) + v->nrules * sizeof(struct shm_rule)))
        return -1;
    for (uint32_t i = 0; i < v->nrules; i++)
        if (!rule_view(t, &p->rules[i], v, i))
            return -1;
    v->lone_gcra = v->nrules == 1 && v->rules[0].kind == RL_GCRA && !(v->flags & RL_POLICY_DRY_RUN);
    return 0;
}

uint64_t rl__policy_bytes(const struct rl_policy *pol)
{
    uint64_t bytes = sizeof(struct shm_block_head) + sizeof(struct shm_policy) +
                     pol->nrules * sizeof(struct shm_rule);
    for (unsigned i = 0; i < pol->nrules; i++)
        if (pol->rules[i].kind == RL_SLIDING)
            bytes += pol->rules[i].limit * 8;
    return (bytes + RL_ALIGN - 1) & ~(uint64_t)(RL_ALIGN - 1);
}

int rl__block_create(rl_table *t, const struct rl_policy *pol, uint32_t expire_ms, uint64_t word,
                     uint32_t owner, uint64_t *ref)
{
    uint64_t log_at = sizeof(struct shm_policy) + pol->nrules * sizeof(struct shm_rule);
    int err = rl__block_alloc(t, rl__policy_bytes(pol), owner, ref);
    if (err)
        return err;
    uint64_t off = rl__ref_off(*ref);
    struct shm_policy *p = (struct shm_policy *)(t->arena + off);
    p->nrules = (uint16_t)pol->nrules; /* rl_policy_check: at most RL_MAX_RULES */
    p->flags = (uint16_t)pol->flags;   /* and no flag beyond RL_POLICY_DRY_RUN */
    p->expire_ms = expire_ms;
    p->margin_ns = pol->margin_ns;
    p->carry_at = rl__clock_rel(t); /* its making; a switch sets its own (update.c S1) */
    /* Relaxed, as below. A reused block starts clean: no successor, nothing carried. */
    rl__store_relaxed(&p->next_off, 0);
    for (unsigned i = 0; i < RL_MAX_RULES; i++)
        rl__store_relaxed(&p->carry_excess[i], 0);
    for (unsigned i = 0; i < pol->nrules; i++) {
        const struct rl_rule *src = &pol->rules[i];
        struct shm_rule *r = &p->rules[i];
        r->kind = src->kind;
        r->limit = src->limit;
        r->period_ns = src->period_ns;
        r->burst = src->kind == RL_GCRA || src->kind == RL_GLOBAL ? src->burst : 0;
        r->interval_ns = rl__gcra_interval(src->limit, src->period_ns);
        /* Relaxed: the whole block is published by the release store of policy_off/state
         * (R1), or of the predecessor's next_off (S2). */
        rl__store_relaxed(&r->word, word);
        rl__store_relaxed(&r->admitted, 0);
        if (src->kind == RL_SLIDING) {
            r->log_off = off + log_at;
            rl_atomic64 *log = (rl_atomic64 *)(t->arena + r->log_off);
            /* Every entry starts as "unit k-N of the lap before, never used" (lap 3). */
            for (uint64_t k = 0; k < src->limit; k++)
                rl__store_relaxed(&log[k], 3ULL << 62);
            log_at += src->limit * 8;
        }
    }
    return 0;
}

void rl__block_read(const struct policy_view *v, struct rl_policy *out)
{
    memset(out, 0, sizeof(*out));
    out->nrules = v->nrules;
    out->flags = v->flags;
    out->margin_ns = v->margin_ns;
    for (uint32_t i = 0; i < v->nrules; i++) {
        const struct rule_params *r = &v->rules[i];
        out->rules[i] = (struct rl_rule){r->kind, r->limit, r->period_ns, r->burst};
    }
}

bool rl__policy_same(const struct rl_policy *a, const struct rl_policy *b)
{
    if (a->nrules != b->nrules || a->flags != b->flags || a->margin_ns != b->margin_ns)
        return false;
    for (unsigned i = 0; i < a->nrules; i++) {
        const struct rl_rule *x = &a->rules[i], *y = &b->rules[i];
        if (x->kind != y->kind || x->limit != y->limit || x->period_ns != y->period_ns ||
            ((x->kind == RL_GCRA || x->kind == RL_GLOBAL) && x->burst != y->burst))
            return false;
    }
    return true;
}

/* After the caller's load of policy_off: the record is still the handle's. A9: acquire;
 * a reference published by R3 brings its record's raised generation (record.c). */
static bool gen_ok(const rl_bucket *b)
{
    return (uint32_t)(rl__load_acquire(&b->rec->life) >> 32) == b->gen;
}

bool rl__bucket_live(const rl_bucket *b)
{
    /* X2, then A9. */
    return rl__load_seq_cst(&b->rec->policy_off) != 0 && gen_ok(b);
}

/* The error for a reference that does not validate: 0 means the bucket was deleted. */
static int view_failed(const rl_bucket *b, uint64_t ref)
{
    if (ref == 0)
        return rl__fail(RL_ENOENT, "bucket '%s' was deleted: look it up again", b->name);
    return rl__fail(RL_ECORRUPT, "bucket '%s' is damaged", b->name);
}

int rl__bucket_view(const rl_bucket *b, struct policy_view *v)
{
    /* A3: pairs with the release that published the block (R1 or S5). X2: seq_cst, inside
     * the caller's section. */
    uint64_t ref = rl__load_seq_cst(&b->rec->policy_off);
    if (!gen_ok(b)) {
        v->off = ref; /* for rl__bucket_view_settled */
        return view_failed(b, 0);
    }
    if (rl__block_view(b->table, ref, v) == 0)
        return 0;
    v->off = ref; /* for rl__bucket_view_settled */
    return view_failed(b, ref);
}

bool rl__bucket_view_settled(const rl_bucket *b, const struct policy_view *v)
{
    /* X11: the copy's loads come before this one. A block is reused only after its
     * bucket's reference moved off it (S5, or a delete), and a reference never comes back
     * (its generation): the same reference now means the block was not reused meanwhile. */
    rl__fence_acquire();
    return rl__load_acquire(&b->rec->policy_off) == v->off; /* acquire, as A3 (no X2 here) */
}

/* A view slot's state (struct view_slot.state). */
enum { SLOT_EMPTY, SLOT_FILLING, SLOT_READY };

/* Two views of one offset agree in every field a reader uses. */
static bool views_same(const struct policy_view *a, const struct policy_view *b)
{
    if (a->off != b->off || a->block != b->block || a->nrules != b->nrules ||
        a->flags != b->flags || a->expire_ms != b->expire_ms || a->margin_ns != b->margin_ns ||
        a->lone_gcra != b->lone_gcra)
        return false;
    for (uint32_t i = 0; i < a->nrules; i++) {
        const struct rule_params *x = &a->rules[i], *y = &b->rules[i];
        if (x->kind != y->kind || x->limit != y->limit || x->period_ns != y->period_ns ||
            x->burst != y->burst || x->interval_ns != y->interval_ns || a->log[i] != b->log[i])
            return false;
    }
    return true;
}

/* The handle's slots, allocated on first use. */
static struct view_slot *slots_of(rl_bucket *b)
{
    void *have = rl__ptr_load_acquire(&b->slots);
    if (have)
        return have;
    struct view_slot *fresh = calloc(RL_VIEW_SLOTS, sizeof(*fresh));
    if (!fresh)
        return NULL;
    /* P3: release publishes the zeroed (empty) slots to this process's other threads. */
    if (rl__ptr_cas_acq_rel(&b->slots, &have, fresh))
        return fresh;
    free(fresh); /* another thread's array won */
    return have;
}

/* The slot for `v`: one that holds the same view, else an empty one filled with it; NULL if
 * every slot holds another view. */
static struct view_slot *slot_for(struct view_slot *slots, const struct policy_view *v)
{
    for (unsigned i = 0; i < RL_VIEW_SLOTS; i++) {
        struct view_slot *s = &slots[i];
        /* V1: acquire pairs with V2: a ready slot's view is visible. */
        uint64_t st = rl__load_acquire(&s->state);
        if (st == SLOT_EMPTY && rl__cas_acq_rel(&s->state, &st, SLOT_FILLING)) {
            s->v = *v;
            /* V2: release publishes the filled view; it never changes again. */
            rl__store_release(&s->state, SLOT_READY);
            return s;
        }
        if (st == SLOT_READY && views_same(&s->v, v))
            return s;
    }
    return NULL;
}

int rl__bucket_view_refresh(rl_bucket *b, uint64_t off, struct policy_view *spare,
                            const struct policy_view **out)
{
    /* Validate afresh, even for a block a slot holds: a damaged file may rewrite a block in
     * place. A slot is used only if its view is still exactly what the block says. */
    if (!gen_ok(b))
        return view_failed(b, 0);
    if (rl__block_view(b->table, off, spare) < 0)
        return view_failed(b, off);
    struct view_slot *slots = slots_of(b);
    if (!slots)
        return rl__fail(RL_ENOMEM, "out of memory");
    struct view_slot *s = slot_for(slots, spare);
    *out = s ? &s->v : spare;
    /* P1: release orders the slot's fill before the pointer; ready slots are immutable. */
    if (s)
        rl__ptr_store_release(&b->view, s);
    return 0;
}
