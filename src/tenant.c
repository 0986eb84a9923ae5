/*
 * tenant.c - buckets made from templates ("tenants"): made on first use (rl_bucket_get), and
 * deleted once idle when their template has an expiry.
 *
 * Automatic expiry. A tenant's policy block carries its template's expire_ms (block.c). The
 * tenant is due once its rules count nothing now nor expire_ms ago (rl__block_idle): it has
 * been unused for its longest window plus the expiry. No daemon looks for due tenants:
 *   - making a tenant first examines SWEEP_STEP records, taken from a cursor shared in the
 *     header (expire_cursor, E1), and expires those due;
 *   - a creation that finds the table full examines up to SWEEP_FULL more, then tries once
 *     again before it answers RL_EFULL;
 *   - rl_bucket_expire_due (ratelimitctl expire) expires one bucket if it is due.
 * Each expiry is rl_bucket_expire's: lock-free, and it never over-admits (update.c:
 * rl__switch_expire). The cursor only says where to look next. So a process killed anywhere
 * in a sweep leaves at most one record unexamined (the next lap finds it) or an expiry's
 * switch half done (whoever meets it finishes it, and the bucket stays).
 */
#include <bsd/string.h>

#include "rule.h"

/* Records a tenant's creation examines; more when the table is full. */
#define SWEEP_STEP 2
#define SWEEP_FULL 256

/* The template for `name` with the longest prefix, if any. */
static int template_for(rl_table *t, const char *name, rl_bucket **out)
{
    char pattern[RL_NAME_MAX + 3];
    strlcpy(pattern, name, sizeof(pattern));
    for (char *slash = strrchr(pattern, '/'); slash; slash = strrchr(pattern, '/')) {
        strlcpy(slash, "/*", 3);
        if (rl__bucket_find(t, pattern, out) == 0 && rl_bucket_is_template(*out))
            return 0;
        *slash = '\0';
    }
    return RL_ENOENT;
}

/* The viewed block's expiry in ns, as rl__block_idle's `idle`: every rule must count nothing
 * that long ago, so each unit's window ended that long ago. Every admission counts in every
 * rule: the bucket has been unused for its longest window plus the expiry. 0: none. */
static uint64_t idle_for(const struct policy_view *v)
{
    return (uint64_t)v->expire_ms * 1000000;
}

/* Inside the caller's section: the idle time after which the record's bucket (not a
 * template) is due, if it is due now; else 0. */
static uint64_t due_idle(const rl_table *t, const struct shm_bucket *rec)
{
    struct policy_view v;
    /* X2 (seq_cst, inside the section), A3: the current block. 0: deleted. */
    uint64_t ref = rl__load_seq_cst(&rec->policy_off);
    if (ref == 0 || rl__block_view(t, ref, &v) < 0)
        return 0;
    uint64_t idle = idle_for(&v), now = rl__clock_rel(t);
    /* Relaxed, as rl_bucket_expire reads them: a cool-down or a server view keeps it. */
    uint64_t server = rl__load_relaxed(&rec->server);
    /* A block made (or switched to) less than the expiry ago keeps its tenant, used or
     * not: a tenant just made by rl_bucket_get is not swept away before its first use. */
    if (!idle || rl__sat_add(v.block->carry_at, idle) > now ||
        rl__load_relaxed(&rec->cooldown_until) > now || (server && rl__server_until(server) > now))
        return 0;
    return rl__block_idle(t, &v, now, idle) ? idle : 0;
}

int rl_bucket_expire_due(rl_bucket *b, bool dry_run, bool *due)
{
    struct rl_section s;
    bool dummy;
    if (!due)
        due = &dummy;
    *due = false;
    if (!b)
        return rl__fail(RL_EINVAL, "rl_bucket_expire_due needs a bucket");
    if (b->is_template)
        return 0;
    rl__section_enter(b->table, &s);
    uint64_t idle = due_idle(b->table, b->rec);
    rl__section_exit(&s);
    if (idle && rl__bucket_is_parent(b)) /* as rl_bucket_expire: a parent is in use */
        idle = 0;
    if (!idle || dry_run) {
        *due = idle != 0;
        return 0;
    }
    int err = rl_bucket_expire(b, idle, due);
    if (!err && *due)
        rl__fetch_add_relaxed(&b->table->hdr->expired_auto, 1); /* relaxed: a statistic */
    return err;
}

int rl_bucket_expiry(const rl_bucket *b, uint64_t *expire_ns)
{
    struct policy_view v;
    struct rl_section s;
    if (!b || !expire_ns)
        return rl__fail(RL_EINVAL, "rl_bucket_expiry: bad arguments");
    rl__section_enter(b->table, &s);
    int err = rl__bucket_view(b, &v);
    rl__section_exit(&s);
    if (err)
        return err;
    *expire_ns = (uint64_t)v.expire_ms * 1000000;
    return 0;
}

/* The next record to examine: the cursor's, which then moves on, wrapping at `count`. */
static uint32_t cursor_next(rl_table *t, uint32_t count)
{
    rl_atomic64 *cursor = &t->hdr->expire_cursor;
    uint64_t cur = rl__load_relaxed(cursor); /* relaxed: E1 checks it */
    /* E1: only where to look; any value will do (a damaged one restarts at 0). Acq_rel is
     * more than needed. */
    while (!rl__cas_acq_rel(cursor, &cur, cur + 1 < count ? cur + 1 : 0))
        ;
    return cur < count ? (uint32_t)cur : 0;
}

/* Inside the caller's section: the record's block was claimed by a delete (D1, update.c)
 * whose deleter was killed before it finished, or is finishing now: no switch or expiry can
 * start from it. Finishing it is safe either way: both deleters race on the reference's
 * CAS to 0, and the loser gets RL_ENOENT. */
static bool delete_claimed(const rl_table *t, const struct shm_bucket *rec)
{
    struct policy_view v;
    uint64_t ref = rl__load_seq_cst(&rec->policy_off); /* X2 */
    /* Acquire, as A6: the claim is final once seen. */
    return ref && rl__block_view(t, ref, &v) == 0 &&
           rl__load_acquire(&v.block->next_off) == RL_NEXT_DELETED;
}

/* A due tenant at record `no`, or one a killed deleter left (*abandoned): its handle, else
 * NULL. */
static rl_bucket *due_tenant(rl_table *t, uint32_t no, bool *abandoned)
{
    const struct shm_bucket *rec = &t->buckets[no];
    struct rl_section s;
    rl_bucket *b = NULL;
    char name[RL_NAME_MAX + 1];
    uint32_t found, gen;
    /* A4: a BUILT record's name; read before the section, so it may be another's by the
     * time the section starts: the index lookup below checks it. A template is never due. */
    if (rl__load32_acquire(&rec->state) != RL_BUCKET_BUILT)
        return NULL;
    size_t len = strnlen(rec->name, sizeof(rec->name));
    if (len == sizeof(rec->name) || (len >= 2 && strcmp(rec->name + len - 2, "/*") == 0))
        return NULL;
    memcpy(name, rec->name, len + 1);
    rl__section_enter(t, &s);
    /* The bucket its name resolves to, of that generation: a record that lost its creation,
     * or was deleted and is being reused, is no tenant (record.c). */
    bool live = rl__index_find(t, name, &found, &gen) == 0 && found == no;
    *abandoned = live && delete_claimed(t, rec);
    if (live && (*abandoned || due_idle(t, rec)) && rl__bucket_handle(t, no, gen, &b) < 0)
        b = NULL;
    rl__section_exit(&s);
    return b;
}

/* Examine up to n records from the cursor and expire those due; how many were. Outside any
 * section (an expiry reclaims blocks). */
static unsigned sweep(rl_table *t, unsigned n)
{
    uint32_t count = rl__bucket_count(t);
    unsigned expired = 0;
    for (unsigned i = 0; i < n && i < count && !t->read_only; i++) {
        bool abandoned = false, due = false;
        rl_bucket *b = due_tenant(t, cursor_next(t, count), &abandoned);
        if (b && abandoned) /* finish the delete: the bucket takes no switch nor expiry */
            rl_bucket_delete(b);
        else if (b && rl_bucket_expire_due(b, false, &due) == 0 && due)
            expired++;
    }
    return expired;
}

int rl_bucket_get(rl_table *t, const char *name, rl_bucket **out)
{
    rl_bucket *tpl;
    struct rl_policy pol;
    struct policy_view v;
    struct rl_section s;
    int err = rl_bucket_lookup(t, name, out);
    if (err != RL_ENOENT)
        return err;
    if (template_for(t, name, &tpl) < 0)
        return rl__fail(RL_ENOENT, "no bucket named '%s' and no template for it in %s", name,
                        t->path);
    rl__section_enter(t, &s);
    err = rl__bucket_view(tpl, &v);
    if (err == 0)
        rl__block_read(&v, &pol);
    rl__section_exit(&s);
    if (err < 0)
        return err;
    const char *parent = tpl->parent ? tpl->parent->name : NULL;
    sweep(t, SWEEP_STEP);
    err = rl__bucket_create(t, name, &pol, v.expire_ms, parent, true, out);
    if (err == RL_EFULL && sweep(t, SWEEP_FULL) > 0)
        err = rl__bucket_create(t, name, &pol, v.expire_ms, parent, true, out);
    return err;
}
