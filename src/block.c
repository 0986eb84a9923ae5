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

int rl__block_view(const rl_table *t, uint64_t off, struct policy_view *v)
{
    struct shm_policy *p = rl__arena_at(t, off, sizeof(*p));
    if (!p)
        return -1;
    *v = (struct policy_view){
        .block = p, .off = off, .nrules = p->nrules, .flags = p->flags, .margin_ns = p->margin_ns};
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
    uint64_t bytes = sizeof(struct shm_policy) + pol->nrules * sizeof(struct shm_rule);
    for (unsigned i = 0; i < pol->nrules; i++)
        if (pol->rules[i].kind == RL_SLIDING)
            bytes += pol->rules[i].limit * 8;
    return (bytes + RL_ALIGN - 1) & ~(uint64_t)(RL_ALIGN - 1);
}

int rl__block_create(rl_table *t, const struct rl_policy *pol, uint64_t word, uint64_t *out_off)
{
    uint64_t log_at = sizeof(struct shm_policy) + pol->nrules * sizeof(struct shm_rule), off;
    int err = rl__arena_alloc(t, rl__policy_bytes(pol), &off);
    if (err)
        return err;
    struct shm_policy *p = (struct shm_policy *)(t->arena + off);
    p->nrules = pol->nrules;
    p->flags = pol->flags;
    p->margin_ns = pol->margin_ns;
    for (unsigned i = 0; i < pol->nrules; i++) {
        const struct rl_rule *src = &pol->rules[i];
        struct shm_rule *r = &p->rules[i];
        r->kind = src->kind;
        r->limit = src->limit;
        r->period_ns = src->period_ns;
        r->burst = src->kind == RL_GCRA ? src->burst : 0;
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
    *out_off = off;
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
            (x->kind == RL_GCRA && x->burst != y->burst))
            return false;
    }
    return true;
}

int rl__bucket_view(const rl_bucket *b, struct policy_view *v)
{
    /* A3: acquire pairs with the release that published the block (R1 or S5). */
    return rl__block_view(b->table, rl__load_acquire(&b->rec->policy_off), v);
}

int rl__bucket_view_refresh(rl_bucket *b, uint64_t off, const struct policy_view **out)
{
    struct cached_view *have = rl__ptr_load_acquire(&b->view);
    while (!have || have->v.off != off) {
        struct cached_view *fresh = malloc(sizeof(*fresh));
        if (!fresh)
            return rl__fail(RL_ENOMEM, "out of memory");
        if (rl__block_view(b->table, off, &fresh->v) < 0) {
            free(fresh);
            return rl__fail(RL_ECORRUPT, "bucket '%s' is damaged", b->name);
        }
        fresh->older = have;
        void *expected = have;
        /* P1: release publishes the filled entry to this process's other threads. */
        if (rl__ptr_cas_acq_rel(&b->view, &expected, fresh)) {
            have = fresh;
            break;
        }
        free(fresh); /* another thread cached one first: use it if it is the same block */
        have = expected;
    }
    *out = &have->v;
    return 0;
}
