/*
 * bucket.c - define, find, reset and inspect buckets; process-local handles.
 */
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "internal.h"

int rl_name_check(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > RL_NAME_MAX)
        return rl__fail(RL_ENAME, "bucket name must be 1 to %d bytes", RL_NAME_MAX);
    if (name[0] == '/' || name[len - 1] == '/' || strstr(name, "//"))
        return rl__fail(RL_ENAME, "bucket name '%s' must not start or end with '/' or contain '//'",
                        name);
    for (const char *p = name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@/-", *p) ||
            *p == '\0')
            return rl__fail(RL_ENAME,
                            "bucket name '%.*s' has '%c' at %d: allowed are letters, "
                            "digits and . _ : @ / -",
                            RL_NAME_MAX, name, *p, (int)(p - name) + 1);
    return 0;
}

/* Copy rule r out of the table into v (entry i) and check the copy. */
static bool rule_view(const rl_table *t, const struct shm_rule *r, struct policy_view *v,
                      uint32_t i)
{
    struct rule_params *p = &v->rules[i];
    uint64_t log_off = r->log_off;
    *p = (struct rule_params){r->kind, r->limit, r->period_ns, r->burst, r->interval_ns};
    v->log[i] = NULL;
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
        return p->limit <= RL_SLIDING_LIMIT_MAX &&
               (v->log[i] = rl__arena_at(t, log_off, p->limit * 8)) != NULL;
    }
    return false;
}

int rl__bucket_view(const rl_bucket *b, struct policy_view *v)
{
    /* A3: acquire pairs with the release that published the block (R1 or S5). */
    return rl__policy_view(b->table, rl__load_acquire(&b->rec->policy_off), v);
}

int rl__bucket_view_refresh(rl_bucket *b, uint64_t off, const struct policy_view **out)
{
    struct cached_view *have = rl__ptr_load_acquire(&b->view);
    while (!have || have->v.off != off) {
        struct cached_view *fresh = malloc(sizeof(*fresh));
        if (!fresh)
            return rl__fail(RL_ENOMEM, "out of memory");
        if (rl__policy_view(b->table, off, &fresh->v) < 0) {
            free(fresh);
            return rl__fail(RL_ECORRUPT, "bucket '%s' is damaged", b->name);
        }
        fresh->older = have;
        void *expected = have;
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

void rl__bucket_free(rl_bucket *b)
{
    if (!b)
        return;
    for (struct cached_view *v = rl__ptr_load_acquire(&b->view), *older; v; v = older) {
        older = v->older;
        free(v);
    }
    free(b);
}

int rl__policy_view(const rl_table *t, uint64_t off, struct policy_view *v)
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

int rl__policy_create(rl_table *t, const struct rl_policy *pol, uint64_t word, uint64_t *out_off)
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

void rl__policy_read(const struct policy_view *v, struct rl_policy *out)
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

static int handle_make(rl_table *t, uint32_t no, rl_bucket *parent, rl_bucket **out)
{
    struct shm_bucket *rec = &t->buckets[no];
    rl_bucket *h = calloc(1, sizeof(*h));
    void *none = NULL;
    if (!h)
        return rl__fail(RL_ENOMEM, "out of memory");
    *h = (rl_bucket){t, rec, parent, no, false, "", NULL};
    memcpy(h->name, rec->name, RL_NAME_MAX);
    size_t len = strlen(h->name); /* only a template's name ends in '*' */
    h->is_template = len >= 2 && strcmp(h->name + len - 2, "/*") == 0;
    /* Process-local publication of an immutable handle: release/acquire between threads. */
    if (!rl__ptr_cas_acq_rel(&t->handles[no], &none, h)) {
        free(h);
        h = none;
    }
    *out = h;
    return 0;
}

int rl__bucket_handle(rl_table *t, uint32_t no, rl_bucket **out)
{
    if (no >= t->capacity)
        return rl__fail(RL_ECORRUPT, "table %s: bucket number %u out of range", t->path, no);
    rl_bucket *h = rl__ptr_load_acquire(&t->handles[no]);
    if (h) {
        *out = h;
        return 0;
    }
    struct shm_bucket *rec = &t->buckets[no];
    /* A4: acquire pairs with R1: the record's fields are final. */
    if (rl__load32_acquire(&rec->state) != RL_BUCKET_BUILT ||
        memchr(rec->name, '\0', sizeof(rec->name)) == NULL)
        return rl__fail(RL_ECORRUPT, "table %s: bucket record %u is damaged", t->path, no);
    rl_bucket *parent = NULL;
    /* Parents are always created first, so they have lower numbers: a damaged file cannot
     * make a cycle, and the walk is bounded by RL_MAX_DEPTH. */
    uint32_t below = no, depth = 1;
    for (uint32_t p = rec->parent; p; p = t->buckets[below].parent) {
        if (p - 1 >= below || ++depth > RL_MAX_DEPTH)
            return rl__fail(RL_ECORRUPT, "table %s: bucket %.*s has a damaged parent chain",
                            t->path, RL_NAME_MAX, rec->name);
        below = p - 1;
    }
    if (rec->parent && rl__bucket_handle(t, rec->parent - 1, &parent) < 0)
        return RL_ECORRUPT;
    return handle_make(t, no, parent, out);
}

/* A template pattern: a valid name followed by "/" and "*". */
static int pattern_check(const char *pattern)
{
    char prefix[RL_NAME_MAX + 1];
    size_t len = pattern ? strlen(pattern) : 0;
    if (len < 3 || len > RL_NAME_MAX || strcmp(pattern + len - 2, "/*") != 0)
        return rl__fail(RL_ENAME, "template '%s' must be a name followed by '/*'",
                        pattern ? pattern : "");
    memcpy(prefix, pattern, len - 2);
    prefix[len - 2] = '\0';
    return rl_name_check(prefix);
}

int rl_bucket_lookup(rl_table *t, const char *name, rl_bucket **out)
{
    uint32_t no;
    size_t len = name ? strlen(name) : 0;
    bool pattern = len >= 2 && strcmp(name + len - 2, "/*") == 0;
    if ((pattern ? pattern_check(name) : rl_name_check(name)) < 0)
        return RL_ENAME;
    if (rl__index_find(t, name, &no) < 0)
        return rl__fail(RL_ENOENT, "no bucket named '%s' in %s", name, t->path);
    return rl__bucket_handle(t, no, out);
}

static int check_existing(rl_table *t, uint32_t no, const struct rl_policy *pol,
                          const rl_bucket *parent, rl_bucket **out)
{
    int err = rl__bucket_handle(t, no, out);
    if (err)
        return err;
    struct policy_view v;
    struct rl_policy have;
    if (rl__bucket_view(*out, &v) < 0)
        return rl__fail(RL_ECORRUPT, "bucket '%s' is damaged", (*out)->name);
    rl__policy_read(&v, &have);
    if (!rl__policy_same(&have, pol) || (*out)->parent != parent)
        return rl__fail(RL_EEXIST, "bucket '%s' already exists with other rules or parent",
                        (*out)->name);
    return 0;
}

static int parent_depth(const rl_bucket *parent)
{
    int depth = 0;
    for (const rl_bucket *b = parent; b; b = b->parent)
        depth++;
    return depth;
}

static int record_create(rl_table *t, const char *name, const struct rl_policy *pol,
                         const rl_bucket *parent, uint32_t *no)
{
    uint64_t n;
    if (rl__claim(&t->hdr->next_bucket, 1, t->capacity, &n) < 0)
        return rl__fail(RL_EFULL, "table %s is full: all %u buckets are in use", t->path,
                        t->capacity);
    uint64_t off;
    int err = rl__policy_create(t, pol, 0, &off);
    if (err)
        return err;
    struct shm_bucket *rec = &t->buckets[n];
    strlcpy(rec->name, name, sizeof(rec->name));
    rec->parent = parent ? parent->no + 1 : 0;
    rec->first_policy_off = off;
    rl__store_relaxed(&rec->policy_off, off); /* published by R1 */
    /* R1: release publishes the name, parent, policy block and its initial state. */
    rl__store32_release(&rec->state, RL_BUCKET_BUILT);
    *no = (uint32_t)n;
    return 0;
}

/* Define a bucket or a template (its name is a pattern); the name is already checked. A
 * tenant (made from its template) matches any config the table matched: it leaves the
 * applied digest alone; any other creation forgets it (applied.c). */
static int define(rl_table *t, const char *name, const struct rl_policy *pol,
                  const char *parent_name, bool tenant, rl_bucket **out)
{
    struct rl_parse_error perr;
    rl_bucket *parent = NULL, *dummy;
    uint32_t no, winner;
    if (!out)
        out = &dummy;
    if (!pol || rl_policy_check(pol, &perr) < 0)
        return rl__fail(RL_EPARSE, "bucket '%s': %s", name, pol ? perr.message : "no policy");
    if (parent_name && rl_bucket_lookup(t, parent_name, &parent) < 0)
        return rl__fail(RL_ENOENT, "bucket '%s': parent '%s' does not exist", name, parent_name);
    if (parent_depth(parent) + 1 > RL_MAX_DEPTH)
        return rl__fail(RL_ECYCLE, "bucket '%s': chains hold at most %d buckets", name,
                        RL_MAX_DEPTH);
    if (rl__index_find(t, name, &no) == 0)
        return check_existing(t, no, pol, parent, out);
    if (t->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", t->path);
    if (!tenant)
        rl__applied_forget(t);
    int err = record_create(t, name, pol, parent, &no);
    if (err)
        return err;
    if ((err = rl__index_insert(t, name, no, &winner)) < 0)
        return err;
    if (!tenant)
        rl__applied_forget(t);
    if (winner == no)
        rl__fetch_add_relaxed(&t->hdr->defined, 1); /* relaxed: a statistic */
    return winner == no ? rl__bucket_handle(t, no, out)
                        : check_existing(t, winner, pol, parent, out);
}

int rl_bucket_define(rl_table *t, const char *name, const struct rl_policy *pol, const char *parent,
                     rl_bucket **out)
{
    if (rl_name_check(name) < 0)
        return RL_ENAME;
    return define(t, name, pol, parent, false, out);
}

int rl_template_define(rl_table *t, const char *pattern, const struct rl_policy *pol,
                       const char *parent)
{
    if (pattern_check(pattern) < 0)
        return RL_ENAME;
    return define(t, pattern, pol, parent, false, NULL);
}

/* The template for `name` with the longest prefix, if any. */
static int template_for(rl_table *t, const char *name, rl_bucket **out)
{
    char pattern[RL_NAME_MAX + 3];
    strlcpy(pattern, name, sizeof(pattern));
    for (char *slash = strrchr(pattern, '/'); slash; slash = strrchr(pattern, '/')) {
        uint32_t no;
        strlcpy(slash, "/*", 3);
        if (rl__index_find(t, pattern, &no) == 0 && rl__bucket_handle(t, no, out) == 0 &&
            rl_bucket_is_template(*out))
            return 0;
        *slash = '\0';
    }
    return RL_ENOENT;
}

int rl_bucket_get(rl_table *t, const char *name, rl_bucket **out)
{
    rl_bucket *tpl;
    struct rl_policy pol;
    int err = rl_bucket_lookup(t, name, out);
    if (err != RL_ENOENT)
        return err;
    if (template_for(t, name, &tpl) < 0)
        return rl__fail(RL_ENOENT, "no bucket named '%s' and no template for it in %s", name,
                        t->path);
    struct policy_view v;
    if (rl__bucket_view(tpl, &v) < 0)
        return rl__fail(RL_ECORRUPT, "template '%s' is damaged", tpl->name);
    rl__policy_read(&v, &pol);
    return define(t, name, &pol, tpl->parent ? tpl->parent->name : NULL, true, out);
}

bool rl_bucket_is_template(const rl_bucket *b)
{
    return b->is_template;
}

const char *rl_bucket_name(const rl_bucket *b)
{
    return b->name;
}

rl_bucket *rl_bucket_parent(const rl_bucket *b)
{
    return b->parent;
}

static void rule_ctx_init(struct rule_ctx *c, const rl_bucket *b, const struct policy_view *v,
                          uint32_t i)
{
    rl__rule_ctx(c, b->table, v, i);
    /* Acquire: pairs with the CAS of the last decision (see acquire.c). The frozen bit of
     * a block being replaced does not change what its usage was. */
    c->word = rl__load_acquire(c->state) & ~RL_FROZEN;
}

int rl_bucket_reset(rl_bucket *b)
{
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    struct policy_view v;
    /* Reset the current block; if it was being replaced meanwhile, finish the switch and
     * reset the new block too (the carried usage may predate our reset). Switches always
     * move to higher offsets, so this ends. */
    do {
        if (rl__bucket_view(b, &v) < 0)
            return rl__fail(RL_ECORRUPT, "bucket '%s' is damaged", b->name);
        uint64_t now = rl__clock_rel(b->table);
        for (uint32_t i = 0; i < v.nrules; i++) {
            struct rule_ctx c;
            rule_ctx_init(&c, b, &v, i);
            if (c.r.kind == RL_GCRA)
                gcra_reset(&c, now);
            else if (c.r.kind == RL_FIXED)
                fixed_reset(&c, now);
            else
                sliding_reset(&c, now);
        }
    } while (rl__switch_help(b, &v));
    /* Relaxed: the pause and the server's view are forgotten too; a decider racing the
     * reset may still see them once, as if it had decided a moment earlier. */
    rl__store_relaxed(&b->rec->cooldown_until, 0);
    rl__store_relaxed(&b->rec->server, 0);
    rl__store_relaxed(&b->rec->backoff, 0);
    rl__fetch_add_relaxed(&b->rec->counters.resets, 1); /* relaxed: a statistic */
    return 0;
}

/* Admissions the GCRA fast path counted in the bucket's policy blocks (shm_rule.admitted):
 * every block from the first to the current one, along next_off (a switch always moves to
 * a higher offset, past the block it replaces). A damaged chain ends the walk early, and so
 * does RL_BLOCK_WALK_MAX: a statistic, never out of bounds, never a long walk. */
static uint64_t block_admissions(const rl_bucket *b)
{
    const rl_table *t = b->table;
    uint64_t off = b->rec->first_policy_off, sum = 0;
    /* Acquire, as A3: the blocks up to the current one are published. */
    uint64_t current = rl__load_acquire(&b->rec->policy_off);
    const uint64_t least = sizeof(struct shm_policy) + sizeof(struct shm_rule);
    for (unsigned steps = 0; steps < RL_BLOCK_WALK_MAX && off % RL_ALIGN == 0; steps++) {
        const struct shm_policy *p = rl__arena_at(t, off, least);
        if (!p)
            break;
        sum += rl__load_relaxed(&p->rules[0].admitted); /* relaxed: a statistic */
        /* Acquire: pairs with S2's release, which published the next block. */
        uint64_t next = rl__load_acquire(&p->next_off);
        if (off == current || next < off + least)
            break;
        off = next;
    }
    return sum;
}

static void counters_read(const rl_bucket *b, struct rl_counters *out)
{
    const struct shm_counters *s = &b->rec->counters;
    /* Relaxed: statistics, each value on its own. */
    out->admitted = rl__load_relaxed(&s->admitted) + block_admissions(b);
    out->admitted_units = out->admitted + rl__load_relaxed(&s->extra_units);
    out->rejected = rl__load_relaxed(&s->rejected);
    out->waited = rl__load_relaxed(&s->waited);
    out->waited_ns = rl__load_relaxed(&s->waited_ns);
    out->dry_run_rejected = rl__load_relaxed(&s->dry_run_rejected);
    out->resets = rl__load_relaxed(&s->resets);
    out->reported_429 = rl__load_relaxed(&s->reported_429);
}

static void rule_usage(const rl_bucket *b, const struct policy_view *v, uint32_t i, uint64_t now,
                       struct rl_rule_state *out)
{
    struct rule_ctx c;
    rule_ctx_init(&c, b, v, i);
    if (c.r.kind == RL_GCRA)
        gcra_usage(&c, now, out);
    else if (c.r.kind == RL_FIXED)
        fixed_usage(&c, now, out);
    else
        sliding_usage(&c, now, out);
}

int rl_bucket_info(const rl_bucket *b, struct rl_bucket_info *out)
{
    memset(out, 0, sizeof(*out));
    strlcpy(out->name, b->name, sizeof(out->name));
    if (b->parent)
        strlcpy(out->parent, b->parent->name, sizeof(out->parent));
    counters_read(b, &out->counters);
    struct policy_view v;
    if (rl__bucket_view(b, &v) < 0)
        return rl__fail(RL_ECORRUPT, "bucket '%s' is damaged", b->name);
    rl__policy_read(&v, &out->policy);
    uint64_t now = rl__clock_rel(b->table);
    out->now_ns = now + b->table->hdr->epoch_ns;
    out->is_template = rl_bucket_is_template(b);
    rl__feedback_read(b, now, &out->feedback);
    for (uint32_t i = 0; i < v.nrules; i++) {
        out->rules[i].rule = out->policy.rules[i];
        rule_usage(b, &v, i, now, &out->rules[i]);
    }
    return 0;
}

int rl__bucket_remaining(const rl_bucket *b, uint64_t *least)
{
    struct policy_view v;
    if (rl__bucket_view(b, &v) < 0)
        return rl__fail(RL_ECORRUPT, "bucket '%s' is damaged", b->name);
    uint64_t now = rl__clock_rel(b->table);
    *least = UINT64_MAX;
    for (uint32_t i = 0; i < v.nrules; i++) {
        struct rl_rule_state st = {0};
        rule_usage(b, &v, i, now, &st);
        *least = st.remaining < *least ? st.remaining : *least;
    }
    return 0;
}

int rl_table_foreach(rl_table *t, int (*fn)(rl_bucket *, void *), void *arg)
{
    uint32_t count = rl__bucket_count(t);
    for (uint32_t no = 0; no < count; no++) {
        const struct shm_bucket *rec = &t->buckets[no];
        uint32_t found;
        rl_bucket *b;
        /* Acquire (A4): a BUILT record's name is final. Records that lost a creation race
         * are BUILT but not indexed under their name: skip them. */
        if (rl__load32_acquire(&rec->state) != RL_BUCKET_BUILT ||
            memchr(rec->name, '\0', sizeof(rec->name)) == NULL ||
            rl__index_find(t, rec->name, &found) < 0 || found != no ||
            rl__bucket_handle(t, no, &b) < 0)
            continue;
        int rc = fn(b, arg);
        if (rc)
            return rc;
    }
    return 0;
}
