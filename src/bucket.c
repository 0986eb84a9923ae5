/*
 * bucket.c - define, find, reset and inspect buckets; process-local handles.
 */
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "guard.h"
#include "margin.h"
#include "rule.h"

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

static int handle_make(rl_table *t, uint32_t no, rl_bucket *parent, rl_bucket **out)
{
    struct shm_bucket *rec = &t->buckets[no];
    rl_bucket *h = calloc(1, sizeof(*h));
    void *none = NULL;
    if (!h)
        return rl__fail(RL_ENOMEM, "out of memory");
    *h = (rl_bucket){t, rec, parent, no, false, "", NULL, NULL};
    memcpy(h->name, rec->name, RL_NAME_MAX);
    size_t len = strlen(h->name); /* only a template's name ends in '*' */
    h->is_template = len >= 2 && strcmp(h->name + len - 2, "/*") == 0;
    /* P2: process-local publication of an immutable handle, release/acquire between
     * threads. */
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

static int check_existing(rl_table *t, uint32_t no, const struct rl_policy *pol, uint32_t expire_ms,
                          const rl_bucket *parent, rl_bucket **out)
{
    int err = rl__bucket_handle(t, no, out);
    if (err)
        return err;
    struct policy_view v;
    struct rl_policy have;
    struct rl_section s;
    rl__section_enter(t, &s);
    err = rl__bucket_view(*out, &v);
    if (err == 0)
        rl__block_read(&v, &have);
    rl__section_exit(&s);
    if (err < 0)
        return err;
    if (!rl__policy_same(&have, pol) || v.expire_ms != expire_ms || (*out)->parent != parent)
        return rl__fail(RL_EEXIST, "bucket '%s' already exists with other rules, expiry or parent",
                        (*out)->name);
    return 0;
}

/* E2: before a child of `parent` is published, parents_below covers the parent. */
static void note_parent(rl_table *t, const rl_bucket *parent)
{
    rl_atomic64 *below = &t->hdr->parents_below;
    uint64_t want = (uint64_t)parent->no + 1, cur = rl__load_acquire(below);
    while (cur < want && !rl__cas_acq_rel(below, &cur, want))
        ;
}

static int parent_depth(const rl_bucket *parent)
{
    int depth = 0;
    for (const rl_bucket *b = parent; b; b = b->parent)
        depth++;
    return depth;
}

static int record_create(rl_table *t, const char *name, const struct rl_policy *pol,
                         uint32_t expire_ms, const rl_bucket *parent, uint32_t *no)
{
    uint64_t n;
    /* Reserve the record's and the block's pages before claiming them (guard.h). */
    int err = rl__table_reserve(t, 1, rl__policy_bytes(pol));
    if (err)
        return err;
    if (rl__claim(&t->hdr->next_bucket, 1, t->capacity, &n) < 0)
        return rl__fail(RL_EFULL, "table %s is full: all %u buckets are in use", t->path,
                        t->capacity);
    struct shm_bucket *rec = &t->buckets[n];
    err = rl__fd_reserve(t->fd, t->path, (uint64_t)((unsigned char *)rec - t->base), sizeof(*rec));
    if (err)
        return err;
    uint64_t ref;
    err = rl__block_create(t, pol, expire_ms, 0, (uint32_t)n + 1, &ref);
    if (err)
        return err;
    strlcpy(rec->name, name, sizeof(rec->name));
    rec->parent = parent ? parent->no + 1 : 0;
    rl__store_relaxed(&rec->policy_off, ref); /* published by R1 */
    /* R1: release publishes the name, parent, policy block and its initial state. */
    rl__store32_release(&rec->state, RL_BUCKET_BUILT);
    *no = (uint32_t)n;
    return 0;
}

/* Define a bucket or a template (its name is a pattern); the name is already checked. A
 * tenant (made from its template) matches any config the table matched: it leaves the
 * applied digest alone; any other creation forgets it (applied.c). */
int rl__bucket_create(rl_table *t, const char *name, const struct rl_policy *pol,
                      uint32_t expire_ms, const char *parent_name, bool tenant, rl_bucket **out)
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
        return check_existing(t, no, pol, expire_ms, parent, out);
    if (t->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", t->path);
    int err = rl__guard_check(t);
    if (!err && !tenant)
        rl__applied_forget(t);
    rl__reclaim(t); /* blocks switches left may serve this one; outside the section */
    /* The creation runs in a section: a resize (rl__table_moved) waits for it, or it sees
     * the resize and makes nothing. */
    struct rl_section s;
    rl__section_enter(t, &s);
    if (!err)
        err = rl__table_moved(t);
    if (!err && parent)
        note_parent(t, parent);
    if (!err)
        err = record_create(t, name, pol, expire_ms, parent, &no);
    if (!err)
        err = rl__index_insert(t, name, no, &winner);
    rl__section_exit(&s);
    if (err < 0)
        return err;
    if (!tenant)
        rl__applied_forget(t);
    if (winner == no)
        rl__fetch_add_relaxed(&t->hdr->defined, 1); /* relaxed: a statistic */
    return winner == no ? rl__bucket_handle(t, no, out)
                        : check_existing(t, winner, pol, expire_ms, parent, out);
}

int rl_bucket_define(rl_table *t, const char *name, const struct rl_policy *pol, const char *parent,
                     rl_bucket **out)
{
    if (rl_name_check(name) < 0)
        return RL_ENAME;
    return rl__bucket_create(t, name, pol, 0, parent, false, out);
}

int rl_template_define_expire(rl_table *t, const char *pattern, const struct rl_policy *pol,
                              const char *parent, uint64_t expire_ns)
{
    uint32_t ms;
    if (pattern_check(pattern) < 0)
        return RL_ENAME;
    if (rl__expire_ms(expire_ns, &ms) < 0)
        return rl__fail(RL_EINVAL, "template '%s': expiry %llu ns is beyond %llu days", pattern,
                        (unsigned long long)expire_ns,
                        (unsigned long long)(RL_EXPIRE_MAX_NS / 86400000000000ULL));
    return rl__bucket_create(t, pattern, pol, ms, parent, false, NULL);
}

int rl_template_define(rl_table *t, const char *pattern, const struct rl_policy *pol,
                       const char *parent)
{
    return rl_template_define_expire(t, pattern, pol, parent, 0);
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

/* A frozen word of the viewed block. Reset calls it once no switch is left to help, so
 * the word can never be finished (update.c: rl__switch_fresh). */
static bool block_wedged(const struct policy_view *v)
{
    for (uint32_t i = 0; i < v->nrules; i++)
        if (rl__load_acquire(&v->block->rules[i].word) & RL_FROZEN) /* A5 */
            return true;
    return false;
}

/* Reset the current block; if it was being replaced meanwhile, finish the switch and reset
 * the new block too (the carried usage may predate our reset). A wedged block is replaced
 * by a fresh one, and reset again. A damaged chain of switches may lead round in a circle:
 * RL_SWITCH_STEPS bounds the walk. */
static int reset_rules(rl_bucket *b, struct policy_view *v)
{
    for (unsigned steps = 0; steps < RL_SWITCH_STEPS;) {
        do {
            int err = rl__bucket_view(b, v);
            if (err)
                return err;
            uint64_t now = rl__clock_rel(b->table);
            for (uint32_t i = 0; i < v->nrules; i++) {
                struct rule_ctx c;
                rl__rule_ctx_load(&c, b->table, v, i);
                rl__rule_reset(&c, now);
            }
        } while (rl__switch_help(b, v) && ++steps < RL_SWITCH_STEPS);
        if (!block_wedged(v))
            return 0;
        int err = rl__switch_fresh(b, v);
        if (err)
            return err;
        steps++;
    }
    return rl__fail(RL_ECORRUPT, "bucket '%s': its chain of rule switches is damaged", b->name);
}

/* The reset, inside the caller's section. */
static int reset_in_section(rl_bucket *b)
{
    struct policy_view v;
    int err = reset_rules(b, &v);
    if (err)
        return err;
    /* The pause and the server's view are forgotten too. Relaxed: a decider racing the
     * reset may still see them once, as if it had decided a moment earlier. */
    struct rule_ctx server;
    rl__rule_ctx_server(&server, b, &v);
    rl__rule_reset(&server, 0);
    rl__store_relaxed(&b->rec->cooldown_until, 0);
    rl__store_relaxed(&b->rec->backoff, 0);
    rl__fetch_add_relaxed(&b->rec->counters.resets, 1); /* relaxed: a statistic */
    return 0;
}

int rl_bucket_reset(rl_bucket *b)
{
    struct rl_section s;
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    rl__reclaim(b->table); /* a wedged block is replaced: from a free block, if one is left */
    rl__section_enter(b->table, &s);
    int err = rl__table_moved(b->table);
    if (!err)
        err = reset_in_section(b);
    rl__section_exit(&s);
    return err;
}

/* A live bucket names b as its parent (a child deleted meanwhile is fine either way). */
static const char *child_of(const rl_bucket *b)
{
    const rl_table *t = b->table;
    uint32_t count = rl__bucket_count(t);
    /* E2: acquire pairs with note_parent. A bucket above every parent is no parent; a
     * child made meanwhile may be missed either way. */
    if (b->no >= rl__load_acquire(&t->hdr->parents_below))
        return NULL;
    for (uint32_t no = 0; no < count; no++) {
        const struct shm_bucket *rec = &t->buckets[no];
        /* A4 as in rl_table_foreach; X2 for the reference. */
        if (rl__load32_acquire(&rec->state) == RL_BUCKET_BUILT && rec->parent == b->no + 1 &&
            rl__load_seq_cst(&rec->policy_off) != 0 && memchr(rec->name, '\0', sizeof(rec->name)))
            return rec->name;
    }
    return NULL;
}

bool rl__bucket_is_parent(const rl_bucket *b)
{
    return child_of(b) != NULL;
}

/* The deletion, inside the caller's section: a switch in progress is finished first, so
 * that its new block is not left behind, and the block's next_off is claimed so that no
 * switch starts from it (D1, update.c); then the reference goes to 0 (the linearization
 * point), and the block is retired like one a switch left. */
static int delete_in_section(rl_bucket *b)
{
    for (unsigned steps = 0; steps < RL_SWITCH_STEPS; steps++) {
        struct policy_view v;
        uint64_t ref = rl__load_seq_cst(&b->rec->policy_off); /* X2 */
        if (ref == 0)
            return rl__fail(RL_ENOENT, "bucket '%s' was already deleted", b->name);
        bool sound = rl__block_view(b->table, ref, &v) == 0;
        if (sound && (rl__switch_help(b, &v) || !rl__switch_close(b->table, &v)))
            continue;
        /* Seq_cst, as S5: the unlink comes before the retirement's epoch read (X6). */
        if (rl__cas_seq_cst(&b->rec->policy_off, &ref, 0)) {
            if (sound) /* a damaged block is never reused */
                rl__block_retire(b->table, ref, b->rec);
            return 0;
        }
    }
    return rl__fail(RL_ECORRUPT, "bucket '%s': its chain of rule switches is damaged", b->name);
}

int rl_bucket_delete(rl_bucket *b)
{
    struct rl_section s;
    if (!b)
        return rl__fail(RL_EINVAL, "rl_bucket_delete needs a bucket");
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    const char *child = child_of(b);
    if (child)
        return rl__fail(RL_EINVAL, "bucket '%s' is the parent of '%.*s': delete it first", b->name,
                        RL_NAME_MAX, child);
    rl__applied_forget(b->table); /* before and after the change: applied.c */
    rl__section_enter(b->table, &s);
    int err = rl__table_moved(b->table);
    if (!err)
        err = delete_in_section(b);
    rl__section_exit(&s);
    rl__applied_forget(b->table);
    if (err == 0) { /* relaxed: statistics */
        rl__fetch_add_relaxed(&b->table->hdr->defined, (uint64_t)-1);
        rl__fetch_add_relaxed(&b->table->hdr->deleted, 1);
    }
    return err;
}

/* The expiry, inside the caller's section. */
static int expire_in_section(rl_bucket *b, uint64_t idle_ns, bool *expired)
{
    for (unsigned steps = 0; steps < RL_SWITCH_STEPS; steps++) {
        struct policy_view v;
        int err = rl__bucket_view(b, &v);
        if (err)
            return err;
        if (rl__switch_help(b, &v))
            continue;
        /* Relaxed: a cool-down or a server view raised meanwhile keeps the bucket (the
         * next expiry looks again); one that ended long ago is gone anyway. */
        uint64_t now = rl__clock_rel(b->table), server = rl__load_relaxed(&b->rec->server);
        if (rl__load_relaxed(&b->rec->cooldown_until) > now ||
            (server && rl__server_until(server) > now))
            return 0;
        *expired = rl__switch_expire(b, &v, idle_ns);
        return 0;
    }
    return rl__fail(RL_ECORRUPT, "bucket '%s': its chain of rule switches is damaged", b->name);
}

int rl_bucket_expire(rl_bucket *b, uint64_t idle_ns, bool *expired)
{
    struct rl_section s;
    bool dummy;
    if (!expired)
        expired = &dummy;
    *expired = false;
    if (!b || b->is_template)
        return rl__fail(RL_EINVAL, "rl_bucket_expire needs a bucket (not a template)");
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    if (child_of(b))
        return 0;          /* a parent is in use while it has children */
    rl__reclaim(b->table); /* outside the section, as for an update */
    rl__section_enter(b->table, &s);
    int err = rl__table_moved(b->table);
    if (!err)
        err = expire_in_section(b, idle_ns, expired);
    rl__section_exit(&s);
    if (*expired) { /* relaxed: statistics */
        rl__fetch_add_relaxed(&b->table->hdr->defined, (uint64_t)-1);
        rl__fetch_add_relaxed(&b->table->hdr->deleted, 1);
        rl__fetch_add_relaxed(&b->table->hdr->expired, 1);
    }
    return err;
}

/* The info, inside the caller's section (a read-only table: none), from view v. */
static int info_in_section(const rl_bucket *b, struct rl_bucket_info *out, struct policy_view *v)
{
    memset(out, 0, sizeof(*out));
    strlcpy(out->name, b->name, sizeof(out->name));
    if (b->parent)
        strlcpy(out->parent, b->parent->name, sizeof(out->parent));
    int err = rl__bucket_view(b, v);
    if (err)
        return err;
    rl__counters_read(b, &out->counters);
    rl__block_read(v, &out->policy);
    uint64_t now = rl__clock_rel(b->table);
    out->now_ns = rl__clock_abs(b->table, now);
    out->is_template = rl_bucket_is_template(b);
    rl__feedback_read(b, now, &out->feedback);
    rl__margin_read(b, v, &out->margin);
    for (uint32_t i = 0; i < v->nrules; i++) {
        struct rule_ctx c;
        rl__rule_ctx_load(&c, b->table, v, i);
        c.margin_ns = out->margin.effective_ns; /* as decisions count now */
        out->rules[i].rule = out->policy.rules[i];
        rl__rule_usage(&c, now, &out->rules[i]);
    }
    return 0;
}

/* Reads of a read-only attachment before it says the bucket is changing. */
#define INFO_TRIES 16

/* A read-only table has no section: the bucket's block may be reused while it is read. So
 * the read is taken again until the bucket still names the block it read. */
static int info_checked(const rl_bucket *b, struct rl_bucket_info *out)
{
    for (unsigned k = 0; k < INFO_TRIES; k++) {
        struct policy_view v;
        int err = info_in_section(b, out, &v);
        if (rl__bucket_view_settled(b, &v))
            return err;
    }
    /* What came from a block goes; the name, parent, counters and feedback stay. */
    memset(&out->policy, 0, sizeof(out->policy));
    memset(&out->rules, 0, sizeof(out->rules));
    memset(&out->margin, 0, sizeof(out->margin));
    return rl__fail(RL_ESTALE,
                    "bucket '%s' is changing: its rules were switched under each of %u reads",
                    b->name, INFO_TRIES);
}

int rl_bucket_info(const rl_bucket *b, struct rl_bucket_info *out)
{
    if (b->table->read_only)
        return info_checked(b, out);
    struct rl_section s;
    struct policy_view v;
    rl__section_enter(b->table, &s);
    int err = info_in_section(b, out, &v);
    rl__section_exit(&s);
    return err;
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
