/*
 * resize.c - copy a table into a new, larger file with every bucket's state, and rename it
 * over the path: rl_table_resize.
 *
 *   1. Build the new table under a temporary name, on the old one's clock bases (epoch,
 *      wall-clock alignment), so that every state word means the same instant in both.
 *   2. Z2: set the old table's `moved` (seq_cst), then wait until the epoch advanced twice:
 *      every section that began before `moved` has ended (reclaim.c), and every later one
 *      sees it (Z3) and admits nothing, changes nothing. The old table is still.
 *   3. Copy every bucket and template, parents first (by depth: record numbers are reused,
 *      so a parent may have a higher one): rules, state words, sliding logs,
 *      carried usage, feedback words, counters. The copy holds exactly what the old table
 *      counted, and nothing is counted there any more.
 *   4. rename() the new file over the path. Processes follow it (rl_table_reopen_if_replaced,
 *      the shim's reopen); until they do, the old table refuses every request.
 * `moved` holds the resizer's pid (one resize at a time; a dead resizer's claim is taken
 * over), then MOVED_DONE after the rename: a table already copied is never copied again.
 * A failure before the rename clears `moved`: the old table works on, as it was. A resize
 * killed between 2 and 4 leaves the old table refusing (never over-admitting): running the
 * resize again finishes the job.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rule.h"

/* How long a resize waits for the decisions in progress to end. */
#define QUIESCE_NS (5 * 1000000000ULL)

/* The new table at `path`, on t's clock bases. */
static int new_table(rl_table *t, const char *path, uint32_t capacity, uint32_t arena_kib,
                     rl_table **out)
{
    struct stat st;
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    if (fstat(t->fd, &st) < 0)
        return rl__fail(RL_ESYS, "cannot stat %s: %s", t->path, strerror(errno));
    o.path = path;
    o.flags = RL_OPEN_CREATE;
    o.capacity = capacity;
    o.arena_kib = arena_kib;
    o.mode = st.st_mode & 0666;
    o.group = (long)st.st_gid;
    unlink(path); /* a leftover of a resize killed before its rename */
    int err = rl_table_open(&o, out);
    if (err)
        return err;
    rl_table *n = *out;
    /* Not yet shared (a name of our own): plain copies, then the process's own. */
    n->hdr->epoch_ns = t->epoch_ns;
    rl__store_relaxed(&n->hdr->wall_offset_ns, rl__load_relaxed(&t->hdr->wall_offset_ns));
    rl__store_relaxed(&n->hdr->wall_offset_prev, rl__load_relaxed(&t->hdr->wall_offset_prev));
    n->epoch_ns = t->epoch_ns;
    rl__store_relaxed(&n->wall->offset, rl__load_relaxed(&t->wall->offset));
    rl__store_relaxed(&n->wall->prev, rl__load_relaxed(&t->wall->prev));
    return 0;
}

/* Copy the state of block v (old) into block w (new, same rules). */
static void copy_block(const struct policy_view *v, const struct policy_view *w)
{
    /* Relaxed: the old table is still (step 2), the new one not yet shared. */
    w->block->carry_at = v->block->carry_at;
    for (uint32_t i = 0; i < v->nrules; i++) {
        uint64_t word = rl__load_relaxed(&v->block->rules[i].word);
        rl__store_relaxed(&w->block->rules[i].word, word & ~RL_FROZEN);
        rl__store_relaxed(&w->block->carry_excess[i], rl__load_relaxed(&v->block->carry_excess[i]));
        if (v->rules[i].kind == RL_SLIDING)
            for (uint64_t k = 0; k < v->rules[i].limit; k++)
                rl__store_relaxed(&w->log[i][k], rl__load_relaxed(&v->log[i][k]));
    }
}

static void copy_record(const struct shm_bucket *a, struct shm_bucket *z, uint64_t block_admitted)
{
    /* Relaxed, as in copy_block. */
    rl__store_relaxed(&z->cooldown_until, rl__load_relaxed(&a->cooldown_until));
    rl__store_relaxed(&z->server, rl__load_relaxed(&a->server));
    rl__store_relaxed(&z->margin, rl__load_relaxed(&a->margin));
    rl__store_relaxed(&z->backoff, rl__load_relaxed(&a->backoff));
    rl__store_relaxed(&z->last_429, rl__load_relaxed(&a->last_429));
    const rl_atomic64 *from = &a->counters.admitted;
    rl_atomic64 *to = &z->counters.admitted;
    for (size_t i = 0; i < sizeof(a->counters) / sizeof(*from); i++)
        rl__store_relaxed(&to[i], rl__load_relaxed(&from[i]));
    rl__fetch_add_relaxed(&z->counters.admitted, block_admitted);
}

struct copy_ctx {
    rl_table *to;
    unsigned copied;
    int depth; /* this pass copies the buckets with this many ancestors */
    int err;
};

static int ancestors(const rl_bucket *b)
{
    int n = 0;
    for (const rl_bucket *x = b->parent; x; x = x->parent)
        n++;
    return n;
}

/* Step 3 for one bucket of the old table. A switch left half done is finished first.
 * Record numbers are reused, so a parent may come after its child: pass d copies the
 * buckets with d ancestors. */
static int copy_bucket(rl_bucket *b, void *arg)
{
    struct copy_ctx *cx = arg;
    if (ancestors(b) != cx->depth)
        return 0;
    struct policy_view v, w;
    struct rl_policy pol;
    rl_bucket *nb = NULL;
    int err = rl__bucket_view(b, &v);
    for (unsigned steps = 0; !err && steps < RL_SWITCH_STEPS && rl__switch_help(b, &v); steps++)
        err = rl__bucket_view(b, &v);
    if (err)
        return cx->err = err;
    rl__block_read(&v, &pol);
    const char *parent = b->parent ? b->parent->name : NULL;
    /* The name is valid (it has a handle); its expiry goes with its rules. */
    err = rl__bucket_create(cx->to, b->name, &pol, v.expire_ms, parent, false, &nb);
    if (!err)
        err = rl__bucket_view(nb, &w);
    if (err)
        return cx->err = err;
    copy_block(&v, &w);
    copy_record(b->rec, nb->rec, rl__load_relaxed(&v.block->rules[0].admitted));
    cx->copied++;
    return 0;
}

/* moved once the new file is in place: no resize starts from this table again. */
#define MOVED_DONE UINT64_MAX

/* Z2: claim the resize of t (moved 0 -> our pid, or from a resizer that died). */
static int claim(rl_table *t)
{
    uint64_t me = (uint64_t)getpid();
    uint64_t cur = rl__load_seq_cst(&t->hdr->moved);
    for (;;) {
        if (cur == MOVED_DONE)
            return rl__fail(RL_ESTALE, "table %s was resized already: open the path again",
                            t->path);
        if (cur != 0 && (cur > INT32_MAX || kill((pid_t)cur, 0) == 0 || errno != ESRCH))
            return rl__fail(RL_EEXIST, "table %s is being resized by process %llu", t->path,
                            (unsigned long long)cur);
        if (rl__cas_seq_cst(&t->hdr->moved, &cur, me))
            return 0;
    }
}

/* Steps 2 to 4, the new table built. */
static int move_into(rl_table *t, rl_table *n, const char *tmp, unsigned *copied)
{
    struct copy_ctx cx = {n, 0, 0, 0};
    struct rl_section s;
    /* The file at the path is this one (a resize killed after its rename left it so). */
    int err = rl_table_check(t);
    if (!err)
        err = claim(t);
    if (err)
        return err;
    err = rl__epoch_quiesce(t, QUIESCE_NS);
    if (!err) {
        rl__section_enter(t, &s); /* ours: the blocks we read stay */
        for (cx.depth = 0; cx.depth < RL_MAX_DEPTH && !cx.err; cx.depth++)
            rl_table_foreach(t, copy_bucket, &cx);
        rl__section_exit(&s);
        err = cx.err;
        /* Relaxed: not yet shared. The copy matches whatever config the old table did. */
        rl__store_relaxed(&n->hdr->applied_digest, rl__applied_load(t));
    }
    if (!err && rename(tmp, t->path) < 0)
        err = rl__fail(RL_ESYS, "cannot rename %s to %s: %s", tmp, t->path, strerror(errno));
    /* Failed: the old table works on, as it was. Done: it never starts a resize again. */
    rl__store_seq_cst(&t->hdr->moved, err ? 0 : MOVED_DONE);
    *copied = cx.copied;
    return err;
}

int rl_table_resize(rl_table *t, uint32_t capacity, uint32_t arena_kib, unsigned *copied)
{
    char tmp[PATH_MAX];
    rl_table *n = NULL;
    unsigned dummy;
    if (!t || capacity == 0)
        return rl__fail(RL_EINVAL, "rl_table_resize needs a table and a capacity");
    if (t->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", t->path);
    if (!copied)
        copied = &dummy;
    *copied = 0;
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    rl_table_space(t, &sp); /* an estimate: the copy checks */
    if (capacity < sp.records_used)
        return rl__fail(RL_EINVAL, "table %s holds about %u buckets: capacity %u is too small",
                        t->path, sp.records_used, capacity);
    if (snprintf(tmp, sizeof(tmp), "%s.resize.%ld", t->path, (long)getpid()) >= (int)sizeof(tmp))
        return rl__fail(RL_EINVAL, "table path is too long: %s", t->path);
    int err = new_table(t, tmp, capacity, arena_kib, &n);
    if (!err)
        err = move_into(t, n, tmp, copied);
    if (err)
        unlink(tmp);
    rl_table_close(n);
    return err;
}
