/*
 * bucket.c - define, find, reset and inspect buckets; process-local handles.
 */
#include <sched.h>
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

/* Push handle h on the process's list of handles whose slots wait. */
static void dead_push(rl_table *t, rl_bucket *h)
{
    void *cur = rl__ptr_load_relaxed(&t->dead);
    do /* P5: release publishes the node's fields; process-local, no ABA (push only) */
        h->dead_next = cur;
    while (!rl__ptr_cas_acq_rel(&t->dead, &cur, h));
}

/* Free the view slots whose grace period is over: the list is taken whole (P5), the
 * handles still waiting go back. */
static void dead_collect(rl_table *t)
{
    uint64_t e = rl__load_seq_cst(&t->hdr->epoch);
    rl_bucket *h = rl__ptr_xchg_seq_cst(&t->dead, NULL);
    while (h) {
        rl_bucket *next = h->dead_next;
        if (e >= h->dead_epoch + 2) {
            free(h->dead_slots);
            h->dead_slots = NULL;
        } else
            dead_push(t, h);
        h = next;
    }
}

/* A handle replaced because its record was reused: no call on it reaches its view slots
 * again (each fails its generation check first), but a decision that loaded its view
 * pointer before may still read them. So they are detached (P4: seq_cst, then the epoch)
 * and freed two epoch advances later, as a block is (reclaim.c). A read-only table has no
 * sections: its slots stay until it closes. */
static void handle_retire(rl_table *t, rl_bucket *old)
{
    if (!old || t->read_only)
        return;
    rl__ptr_xchg_seq_cst(&old->view, NULL); /* P4 */
    old->dead_slots = rl__ptr_xchg_seq_cst(&old->slots, NULL);
    old->dead_epoch = rl__load_seq_cst(&t->hdr->epoch); /* P4: after the detach */
    if (old->dead_slots)
        dead_push(t, old);
    dead_collect(t);
}

/* Install a handle for record `no`, generation gen, in the process's array: the one there
 * if it has that generation, else ours, which keeps the one it replaces (callers may still
 * hold it) until the table closes. */
static int handle_make(rl_table *t, uint32_t no, uint32_t gen, rl_bucket *parent, rl_bucket **out)
{
    struct shm_bucket *rec = &t->buckets[no];
    rl_bucket *h = calloc(1, sizeof(*h));
    if (!h)
        return rl__fail(RL_ENOMEM, "out of memory");
    *h = (rl_bucket){.table = t, .rec = rec, .parent = parent, .no = no, .gen = gen};
    memcpy(h->name, rec->name, RL_NAME_MAX);
    size_t len = strlen(h->name); /* only a template's name ends in '*' */
    h->is_template = len >= 2 && strcmp(h->name + len - 2, "/*") == 0;
    void *have = rl__ptr_load_acquire(&t->handles[no]);
    for (;;) {
        if (have && ((rl_bucket *)have)->gen == gen) {
            free(h);
            *out = have;
            return 0;
        }
        h->older = have;
        /* P2: process-local publication of an immutable handle, release/acquire between
         * threads. */
        if (rl__ptr_cas_acq_rel(&t->handles[no], &have, h)) {
            handle_retire(t, have);
            *out = h;
            return 0;
        }
    }
}

int rl__bucket_handle(rl_table *t, uint32_t no, uint32_t gen, rl_bucket **out)
{
    if (no >= t->capacity)
        return rl__fail(RL_ECORRUPT, "table %s: bucket number %u out of range", t->path, no);
    rl_bucket *h = rl__ptr_load_acquire(&t->handles[no]);
    if (h && h->gen == gen) {
        *out = h;
        return 0;
    }
    struct shm_bucket *rec = &t->buckets[no];
    /* A4: acquire pairs with R1: the record's fields are final. A9: its generation. */
    uint64_t life = rl__load_acquire(&rec->life);
    uint32_t state = rl__load32_acquire(&rec->state);
    bool given_back = state == RL_BUCKET_SPARE || (state & RL_BUCKET_LIMBO);
    if (given_back || (state == RL_BUCKET_BUILT && (uint32_t)(life >> 32) != gen))
        return rl__fail(RL_ENOENT, "table %s: bucket record %u was deleted", t->path, no);
    if (state != RL_BUCKET_BUILT || memchr(rec->name, '\0', sizeof(rec->name)) == NULL ||
        rec->parent > t->capacity)
        return rl__fail(RL_ECORRUPT, "table %s: bucket record %u is damaged", t->path, no);
    rl_bucket *parent = NULL;
    /* Numbers are reused, so a parent may have a higher number: a damaged file may make a
     * cycle, which the depth bound catches (each level checks its own chain). */
    uint32_t below = no, depth = 1;
    for (uint32_t p = rec->parent; p; p = t->buckets[below].parent) {
        if (p - 1 >= t->capacity || ++depth > RL_MAX_DEPTH)
            return rl__fail(RL_ECORRUPT, "table %s: bucket %.*s has a damaged parent chain",
                            t->path, RL_NAME_MAX, rec->name);
        below = p - 1;
    }
    /* The parent's generation at creation (life's low half while built): a parent deleted
     * and its record reused answers RL_ENOENT, never for the child. */
    int err = rec->parent ? rl__bucket_handle(t, rec->parent - 1, (uint32_t)life, &parent) : 0;
    if (err)
        return err;
    return handle_make(t, no, gen, parent, out);
}

/* Find `name` and make its handle, in one section: the record is not reused meanwhile. */
int rl__bucket_find(rl_table *t, const char *name, rl_bucket **out)
{
    uint32_t no, gen;
    struct rl_section s;
    rl__section_enter(t, &s);
    int err = rl__index_find(t, name, &no, &gen);
    if (err == 0)
        err = rl__bucket_handle(t, no, gen, out);
    rl__section_exit(&s);
    return err;
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
    size_t len = name ? strlen(name) : 0;
    bool pattern = len >= 2 && strcmp(name + len - 2, "/*") == 0;
    if ((pattern ? pattern_check(name) : rl_name_check(name)) < 0)
        return RL_ENAME;
    int err = rl__bucket_find(t, name, out);
    if (err == RL_ENOENT)
        return rl__fail(RL_ENOENT, "no bucket named '%s' in %s", name, t->path);
    return err;
}

static int check_existing(rl_table *t, const struct rl_policy *pol, uint32_t expire_ms,
                          const rl_bucket *parent, rl_bucket **out)
{
    struct policy_view v;
    struct rl_policy have;
    struct rl_section s;
    rl__section_enter(t, &s);
    int err = rl__bucket_view(*out, &v);
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

/* E2: before a child of `parent` is published (B1), parents_below covers the parent.
 * Seq_cst: a deleter's B4, then its E2 load in child_find, sees the raise whenever the
 * child's B2 missed the deletion, so its sweep is not cut short. */
static void note_parent(rl_table *t, const rl_bucket *parent)
{
    rl_atomic64 *below = &t->hdr->parents_below;
    uint64_t want = (uint64_t)parent->no + 1, cur = rl__load_seq_cst(below);
    while (cur < want && !rl__cas_seq_cst(below, &cur, want))
        ;
}

static int parent_depth(const rl_bucket *parent)
{
    int depth = 0;
    for (const rl_bucket *b = parent; b; b = b->parent)
        depth++;
    return depth;
}

/* Zero what a bucket's record counts: a reused record starts as a new one. */
static void record_clear(struct shm_bucket *rec)
{
    /* Relaxed: the record is ours alone until R3 and R1 publish it. */
    rl__store_relaxed(&rec->cooldown_until, 0);
    rl__store_relaxed(&rec->server, 0);
    rl__store_relaxed(&rec->margin, 0);
    rl__store_relaxed(&rec->backoff, 0);
    rl__store_relaxed(&rec->last_429, 0);
    rl_atomic64 *c = &rec->counters.admitted;
    for (size_t i = 0; i < sizeof(rec->counters) / sizeof(*c); i++)
        rl__store_relaxed(&c[i], 0);
}

static int record_create(rl_table *t, const char *name, const struct rl_policy *pol,
                         uint32_t expire_ms, const rl_bucket *parent, uint32_t *no)
{
    uint32_t n;
    /* Reserve the record's and the block's pages before claiming them (guard.h). */
    int err = rl__table_reserve(t, 1, rl__policy_bytes(pol));
    if (err)
        return err;
    if (rl__record_take(t, &n) < 0)
        return rl__fail(RL_EFULL, "table %s is full: all %u buckets are in use", t->path,
                        t->capacity);
    struct shm_bucket *rec = &t->buckets[n];
    err = rl__fd_reserve(t->fd, t->path, (uint64_t)((unsigned char *)rec - t->base), sizeof(*rec));
    uint64_t ref;
    if (!err)
        err = rl__block_create(t, pol, expire_ms, 0, n + 1, &ref);
    if (err) {
        rl__record_retire(t, n); /* never published: given back */
        return err;
    }
    uint64_t gen = rl__record_next_gen(rec);
    /* Relaxed: published by R3. The low half: the parent's generation (record.c). */
    rl__store_relaxed(&rec->life, gen << 32 | (parent ? parent->gen : 0));
    record_clear(rec);
    strlcpy(rec->name, name, sizeof(rec->name));
    rec->parent = parent ? parent->no + 1 : 0;
    /* R3: publishes the generation, name and parent with the reference: a stale handle that
     * loads it sees the raised generation (record.c). Seq_cst: B1, a child's publication
     * before it reads its parent (parent_lost). */
    rl__store_seq_cst(&rec->policy_off, ref);
    /* R1: release publishes the name, parent, policy block and its initial state. */
    rl__store32_release(&rec->state, RL_BUCKET_BUILT);
    *no = n;
    return 0;
}

/* A record that lost its name to another (inside the section): its block and the record
 * go back. Nobody else holds its reference: it never was live. */
static void record_give_back(rl_table *t, uint32_t no)
{
    struct shm_bucket *rec = &t->buckets[no];
    uint64_t ref = rl__load_relaxed(&rec->policy_off); /* relaxed: ours alone */
    rl__store_seq_cst(&rec->policy_off, 0);            /* X2: the readers' reference */
    rl__block_free_now(t, ref);
    rl__record_retire(t, no);
}

/*
 * Children and parents: a child is never left under a deleted parent (B1-B4). A creator
 * of a child publishes it (R3 seq_cst, then its live slot, I1), then reads the parent's
 * reference (B2, seq_cst): if the parent was deleted, it deletes the child again. A
 * deleter sets the parent's reference to 0 (seq_cst), then looks for children (B3: their
 * references and live slots, seq_cst) and deletes the ones it finds. Of the two, whichever
 * comes second in the seq_cst order sees the other's write: a child is deleted by one of
 * them, or both (one wins, the other finds it gone).
 */
static bool parent_lost(const rl_bucket *parent)
{
    return parent && !rl__bucket_live(parent); /* B2 */
}

static int delete_in_section(rl_bucket *b);
static int delete_now(rl_bucket *b);

/* A stand-in handle for record no of generation gen, to delete it (never kept). */
static void record_as_handle(rl_table *t, uint32_t no, uint32_t gen, const char *name,
                             rl_bucket *out)
{
    memset(out, 0, sizeof(*out));
    out->table = t;
    out->rec = &t->buckets[no];
    out->no = no;
    out->gen = gen;
    strlcpy(out->name, name, sizeof(out->name));
}

/* How long a creation that finds every record taken, some by deleted buckets waiting for
 * their grace period (a process preempted inside a section holds it back), yields to the
 * others before RL_EFULL: ns. */
#define FULL_PATIENCE_NS 20000000ULL

/* A creation aborted by another of its name (shm_index.c): try again, out of the section. */
#define CREATE_AGAIN 1

/* One attempt at a creation, in a section: a resize (rl__table_moved) waits for it, or it
 * sees the resize and makes nothing. *no: our record, kept built across attempts while
 * *built; *winner: the name's (ours if they match). */
static int create(rl_table *t, const char *name, const struct rl_policy *pol, uint32_t expire_ms,
                  rl_bucket *parent, uint32_t *no, bool *built, uint32_t *winner, rl_bucket **out)
{
    struct rl_section s;
    uint32_t gen = 0;
    rl__section_enter(t, &s);
    int err = rl__table_moved(t);
    /* The parent's record is not reused before the section ends: the child names it. */
    if (!err && parent_lost(parent))
        err = RL_ENOENT;
    if (!err && parent)
        note_parent(t, parent);
    if (!err && !*built) {
        err = record_create(t, name, pol, expire_ms, parent, no);
        *built = !err;
    }
    if (!err)
        err = rl__index_insert(t, name, *no, winner, &gen);
    if (*built && (err < 0 || (!err && *winner != *no))) {
        record_give_back(t, *no);
        *built = false;
    }
    if (!err && *winner == *no && parent_lost(parent)) { /* B2: deleted meanwhile: the child too */
        rl_bucket mine;
        record_as_handle(t, *no, gen, name, &mine);
        delete_in_section(&mine);
        err = RL_ENOENT;
    }
    /* Only an RL_ENOENT of the winner's handle means an orphan: *winner is set by this
     * attempt's insert then (an earlier attempt's may be stale). */
    int handle_err = err ? err : rl__bucket_handle(t, *winner, gen, out);
    if (!err && handle_err == RL_ENOENT && *winner != *no) {
        /* The name's bucket lost its parent (its deleter was killed before it deleted the
         * children it found): delete it, and make ours. */
        rl_bucket orphan;
        record_as_handle(t, *winner, gen, name, &orphan);
        if (delete_in_section(&orphan) == 0) { /* relaxed: statistics */
            rl__fetch_add_relaxed(&t->hdr->defined, (uint64_t)-1);
            rl__fetch_add_relaxed(&t->hdr->deleted, 1);
        }
        handle_err = CREATE_AGAIN;
    }
    rl__section_exit(&s);
    return handle_err;
}

/* Define a bucket or a template (its name is a pattern); the name is already checked. A
 * tenant (made from its template) matches any config the table matched: it leaves the
 * applied digest alone; any other creation forgets it (applied.c). */
int rl__bucket_create(rl_table *t, const char *name, const struct rl_policy *pol,
                      uint32_t expire_ms, const char *parent_name, bool tenant, rl_bucket **out)
{
    struct rl_parse_error perr;
    rl_bucket *parent = NULL, *dummy;
    if (!out)
        out = &dummy;
    if (!pol || rl_policy_check(pol, &perr) < 0)
        return rl__fail(RL_EPARSE, "bucket '%s': %s", name, pol ? perr.message : "no policy");
    if (parent_name && rl_bucket_lookup(t, parent_name, &parent) < 0)
        return rl__fail(RL_ENOENT, "bucket '%s': parent '%s' does not exist", name, parent_name);
    if (parent_depth(parent) + 1 > RL_MAX_DEPTH)
        return rl__fail(RL_ECYCLE, "bucket '%s': chains hold at most %d buckets", name,
                        RL_MAX_DEPTH);
    if (rl__bucket_find(t, name, out) == 0)
        return check_existing(t, pol, expire_ms, parent, out);
    if (t->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", t->path);
    int err = rl__guard_check(t);
    if (!err && !tenant)
        rl__applied_forget(t);
    uint32_t no = 0, winner = 0;
    uint64_t until = 0;
    bool built = false;
    for (unsigned tries = 0; !err; tries++) {
        rl__reclaim(t); /* blocks and records deletions left may serve this one */
        rl__record_collect(t);
        err = create(t, name, pol, expire_ms, parent, &no, &built, &winner, out);
        if (err == CREATE_AGAIN && tries < RL_CREATE_TRIES) {
            for (unsigned k = 0; k < tries; k++) /* let the other creator go first */
                sched_yield();
            err = 0;
            continue;
        }
        /* Full, with records waiting for their grace period: again, after a reclaim. */
        if (err != RL_EFULL || rl__record_spare(t) == 0)
            break;
        uint64_t now = rl__clock_mono();
        until = until ? until : now + FULL_PATIENCE_NS;
        if (now >= until)
            break;
        err = 0;
        sched_yield();
    }
    if (err == CREATE_AGAIN) {
        struct rl_section s;
        rl__section_enter(t, &s);
        if (built) /* kept across the attempts; once given back, never again */
            record_give_back(t, no);
        rl__section_exit(&s);
        return rl__fail(RL_EFULL, "table %s: bucket '%s' lost its creation %d times in a row",
                        t->path, name, RL_CREATE_TRIES);
    }
    if (err == RL_ENOENT)
        return rl__fail(RL_ENOENT, "bucket '%s': parent '%s' was deleted meanwhile", name,
                        parent_name);
    if (err < 0)
        return err;
    if (!tenant)
        rl__applied_forget(t);
    if (winner != no)
        return check_existing(t, pol, expire_ms, parent, out);
    rl__fetch_add_relaxed(&t->hdr->defined, 1); /* relaxed: a statistic */
    return 0;
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

/* A live child of b: a stand-in handle for it in *out (B3: inside the caller's section). A
 * record that lost a creation race, or whose creator died before its slot was live, is no
 * child. */
static bool child_find(const rl_bucket *b, rl_bucket *out)
{
    rl_table *t = b->table;
    uint32_t no, gen;
    /* E2: seq_cst, after the deleter's B4 (see note_parent). A bucket above every parent
     * has no child: an expiry or a delete of a tenant costs no walk of the table. */
    if (b->no >= rl__load_seq_cst(&t->hdr->parents_below))
        return false;
    /* B3: seq_cst, after B4 and E2, so a record a late child claimed is counted. */
    uint64_t handed = rl__load_seq_cst(&t->hdr->next_bucket);
    uint32_t count = handed < t->capacity ? (uint32_t)handed : t->capacity;
    for (uint32_t i = 0; i < count; i++) {
        const struct shm_bucket *rec = &t->buckets[i];
        char name[RL_NAME_MAX + 1];
        /* B3, X2: seq_cst; a reference published by R3 brings the parent and life. */
        if (rl__load_seq_cst(&rec->policy_off) == 0 || rec->parent != b->no + 1 ||
            (uint32_t)rl__load_acquire(&rec->life) != b->gen) /* A9 */
            continue;
        memcpy(name, rec->name, RL_NAME_MAX);
        name[RL_NAME_MAX] = '\0';
        if (rl__index_find(t, name, &no, &gen) == 0 && no == i) {
            record_as_handle(t, no, gen, name, out);
            return true;
        }
    }
    return false;
}

static bool has_child(const rl_bucket *b, char name[RL_NAME_MAX + 1]);

bool rl__bucket_is_parent(const rl_bucket *b)
{
    char name[RL_NAME_MAX + 1];
    return has_child(b, name);
}

/* The deletion, inside the caller's section: a switch in progress is finished first, so
 * that its new block is not left behind, and the block's next_off is claimed so that no
 * switch starts from it (D1, update.c); then the reference goes to 0 (the linearization
 * point), the block is retired like one a switch left, and the record leaves the index. */
static int delete_in_section(rl_bucket *b)
{
    for (unsigned steps = 0; steps < RL_SWITCH_STEPS; steps++) {
        struct policy_view v;
        uint64_t ref = rl__load_seq_cst(&b->rec->policy_off); /* X2 */
        if (!rl__bucket_live(b))
            return rl__fail(RL_ENOENT, "bucket '%s' was already deleted", b->name);
        bool sound = rl__block_view(b->table, ref, &v) == 0;
        if (sound && (rl__switch_help(b, &v) || !rl__switch_close(b->table, &v)))
            continue;
        /* Seq_cst, as S5: the unlink comes before the retirement's epoch read (X6). B4. */
        if (rl__cas_seq_cst(&b->rec->policy_off, &ref, 0)) {
            if (sound) /* a damaged block is never reused */
                rl__block_retire(b->table, ref, b->rec);
            rl__index_unlink(b->table, b->name, b->no);
            return 0;
        }
    }
    return rl__fail(RL_ECORRUPT, "bucket '%s': its chain of rule switches is damaged", b->name);
}

/* After b was deleted: children defined meanwhile go too (B3), and the statistics. */
static void deleted(rl_bucket *b, bool expired)
{
    rl_bucket child;
    struct rl_section s;
    for (uint32_t n = 0; n < b->table->capacity; n++) {
        rl__section_enter(b->table, &s);
        bool found = child_find(b, &child);
        rl__section_exit(&s);
        int err = found ? delete_now(&child) : 0;
        if (!found || (err && err != RL_ENOENT)) /* RL_ENOENT: another deleted it */
            break;
    }
    /* Relaxed: statistics. */
    rl__fetch_add_relaxed(&b->table->hdr->defined, (uint64_t)-1);
    rl__fetch_add_relaxed(&b->table->hdr->deleted, 1);
    if (expired)
        rl__fetch_add_relaxed(&b->table->hdr->expired, 1);
}

static int delete_now(rl_bucket *b)
{
    struct rl_section s;
    rl__applied_forget(b->table); /* before and after the change: applied.c */
    rl__section_enter(b->table, &s);
    int err = rl__table_moved(b->table);
    if (!err)
        err = delete_in_section(b);
    rl__section_exit(&s);
    rl__applied_forget(b->table);
    if (err == 0)
        deleted(b, false);
    return err;
}

/* A live child's name, for the refusal (b's own section). */
static bool has_child(const rl_bucket *b, char name[RL_NAME_MAX + 1])
{
    rl_bucket child;
    struct rl_section s;
    rl__section_enter(b->table, &s);
    bool found = child_find(b, &child);
    rl__section_exit(&s);
    if (found)
        strlcpy(name, child.name, RL_NAME_MAX + 1);
    return found;
}

int rl_bucket_delete(rl_bucket *b)
{
    char child[RL_NAME_MAX + 1];
    if (!b)
        return rl__fail(RL_EINVAL, "rl_bucket_delete needs a bucket");
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    if (has_child(b, child))
        return rl__fail(RL_EINVAL, "bucket '%s' is the parent of '%s': delete it first", b->name,
                        child);
    return delete_now(b);
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
        if (*expired)
            rl__index_unlink(b->table, b->name, b->no);
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
    char child[RL_NAME_MAX + 1];
    if (has_child(b, child))
        return 0;          /* a parent is in use while it has children */
    rl__reclaim(b->table); /* outside the section, as for an update */
    rl__section_enter(b->table, &s);
    int err = rl__table_moved(b->table);
    if (!err)
        err = expire_in_section(b, idle_ns, expired);
    rl__section_exit(&s);
    if (*expired)
        deleted(b, true);
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
        char name[RL_NAME_MAX + 1];
        uint32_t found, gen;
        rl_bucket *b = NULL;
        struct rl_section s;
        rl__section_enter(t, &s);
        /* Acquire (A4): a BUILT record's name is final. Records that lost a creation race,
         * deleted ones and spare ones are not indexed under their name: skip them. */
        if (rl__load32_acquire(&rec->state) == RL_BUCKET_BUILT) {
            memcpy(name, rec->name, RL_NAME_MAX);
            name[RL_NAME_MAX] = '\0';
            if (rl__index_find(t, name, &found, &gen) == 0 && found == no &&
                rl__bucket_handle(t, no, gen, &b) < 0)
                b = NULL;
        }
        rl__section_exit(&s);
        if (!b)
            continue;
        int rc = fn(b, arg);
        if (rc)
            return rc;
    }
    return 0;
}
