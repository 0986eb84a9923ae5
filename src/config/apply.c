/*
 * apply.c - bring a live table in line with a parsed config: open the table it
 * names, then plan every change (and check the plan fits) before making any.
 *
 * The plan: each config bucket or template is created, switched to its new rules (or a
 * template to its new expiry), or left alone; each bucket a config template made earlier
 * (same parent) follows the template's new rules and expiry. Refused before anything
 * changes: a bucket whose parent would change, too few free bucket records, too little
 * arena for the new policy blocks. Buckets the config does not mention are kept and
 * reported.
 */
#include <stdarg.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "../guard.h"
#include "../internal.h"

/*
 * Arena for a new table: every policy block the config defines, a block of its largest
 * template for every record left over (tenants made on first use), all twice (each rule
 * change writes a new block), plus 16 MiB as the default has. Sparse on tmpfs: only what is
 * used costs memory.
 */
static uint32_t arena_kib_for(const rl_config *config, uint32_t capacity)
{
    const struct rl_config_bucket *bs;
    size_t n = rl_config_buckets(config, &bs);
    uint64_t bytes = 0, tpl = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = rl__policy_bytes(&bs[i].policy);
        bytes += b;
        tpl = bs[i].is_template && b > tpl ? b : tpl;
    }
    bytes += (capacity > n ? capacity - n : 0) * tpl;
    uint64_t kib = (2 * bytes + (16ULL << 20)) / 1024 + 1;
    uint64_t max = 64ULL << 20; /* KiB: the library's 64 GiB arena limit */
    return (uint32_t)(kib < max ? kib : max);
}

#define PAGE 4096ULL

static uint64_t pages_of(uint64_t bytes)
{
    return (bytes + PAGE - 1) / PAGE * PAGE;
}

/* Whole pages spanned by [off, off + len): at most what writing it newly allocates. */
static uint64_t span_pages(uint64_t off, uint64_t len)
{
    return len ? ((off + len - 1) / PAGE - off / PAGE + 1) * PAGE : 0;
}

int rl_config_footprint(const rl_config *config, struct rl_config_footprint *out)
{
    const struct rl_config_bucket *bs;
    struct shm_header h;
    if (!config || !out)
        return rl__fail(RL_EINVAL, "rl_config_footprint: bad arguments");
    size_t n = rl_config_buckets(config, &bs);
    uint32_t capacity = rl_config_table(config)->capacity;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        uint64_t b = rl__policy_bytes(&bs[i].policy);
        out->block_bytes += b;
        if (bs[i].is_template &&
            (!out->tenant_template || b + sizeof(struct shm_bucket) > out->tenant_bytes)) {
            out->tenant_bytes = b + sizeof(struct shm_bucket);
            out->tenant_template = bs[i].name;
        }
    }
    memset(&h, 0, sizeof(h));
    rl__table_layout(&h, capacity, (uint64_t)arena_kib_for(config, capacity) * 1024);
    out->file_bytes = h.file_bytes;
    out->arena_bytes = h.arena_bytes;
    out->used_bytes = h.buckets_off + n * sizeof(struct shm_bucket) + out->block_bytes;
    out->tenants = out->tenant_template && capacity > n ? capacity - (uint32_t)n : 0;
    return 0;
}

/* Free bytes of the file system holding path; false if unknown (or unlimited). */
static bool fs_free(const char *path, uint64_t *free_bytes)
{
    struct statvfs fs;
    if (statvfs(path, &fs) < 0 || fs.f_blocks == 0)
        return false;
    *free_bytes = (uint64_t)fs.f_bavail * fs.f_frsize;
    return true;
}

/* The table file a new table would be: refused if its directory's file system cannot hold
 * what applying the config to it writes (checked before the table is made). */
static int check_new_table(const rl_config *config, const char *path)
{
    struct rl_config_footprint fp;
    char dir[4096];
    uint64_t free_bytes;
    rl_config_footprint(config, &fp);
    strlcpy(dir, path, sizeof(dir));
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = '\0';
    else
        strlcpy(dir, ".", sizeof(dir));
    /* The header, the whole index, then the records and blocks with a page each of slack. */
    uint64_t need = fp.used_bytes + 2 * PAGE;
    if (fs_free(dir, &free_bytes) && need > free_bytes)
        return rl__fail(RL_EFULL,
                        "table %s: the config needs %llu bytes in %s, only %llu are free "
                        "(nothing was created)",
                        path, (unsigned long long)need, dir, (unsigned long long)free_bytes);
    return 0;
}

int rl_config_open_table(const rl_config *config, unsigned flags, rl_table **out)
{
    const struct rl_config_table *ct = rl_config_table(config);
    const char *env = secure_getenv("RATELIMIT_TABLE"); /* as rl_table_open reads it */
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = ct->path ? ct->path : env && *env ? env : RL_TABLE_DEFAULT_PATH;
    o.flags = flags & ~(unsigned)RL_OPEN_CREATE;
    o.capacity = ct->capacity;
    o.arena_kib = arena_kib_for(config, ct->capacity);
    o.mode = ct->mode;
    o.group = ct->group;
    int err = rl_table_open(&o, out);
    if (err != RL_ENOENT || !(flags & RL_OPEN_CREATE))
        return err;
    if ((err = check_new_table(config, o.path)))
        return err;
    o.flags = flags;
    return rl_table_open(&o, out);
}

/* A bucket or template found in the table. */
struct have {
    rl_bucket *bucket;
    const char *name;
    char parent[RL_NAME_MAX + 1]; /* "" if none */
    struct rl_policy policy;
    uint64_t expire_ns; /* rl_bucket_expiry */
    int info_err;       /* rl_bucket_info's error: the bucket is damaged */
    bool is_template;
    bool mentioned; /* the config names it, or it follows one of the config's templates */
};

/* One change or non-change: `want` for `have` (NULL: create it). */
struct apply_step {
    const struct rl_config_bucket *want;
    struct have *have;
};

struct apply_plan {
    rl_table *table;
    const rl_config *config;
    const struct rl_config_bucket *wants; /* the config's buckets (rl_config_bucket_expire) */
    struct have *haves;                   /* in the table's order */
    struct have **by_name;
    size_t nhaves, cap;
    const struct rl_config_bucket **templates; /* the config's, by name */
    size_t ntemplates;
    struct apply_step *steps;
    size_t nsteps;
    uint64_t new_buckets, arena_bytes;
    void (*note)(void *arg, const char *line);
    void *arg;
};

__attribute__((format(printf, 2, 3))) static void say(const struct apply_plan *pl, const char *fmt,
                                                      ...)
{
    char line[512];
    va_list ap;
    if (!pl->note)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pl->note(pl->arg, line);
}

/* ------------------------------------------------------------------ what the table holds */

static int collect_have(rl_bucket *b, void *arg)
{
    struct apply_plan *pl = arg;
    struct rl_bucket_info info;
    if (pl->nhaves == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 64;
        struct have *a = reallocarray(pl->haves, cap, sizeof(*a));
        if (!a)
            return rl__fail(RL_ENOMEM, "out of memory reading table %s", rl_table_path(pl->table));
        pl->haves = a;
        pl->cap = cap;
    }
    struct have *h = &pl->haves[pl->nhaves++];
    *h = (struct have){.bucket = b,
                       .name = rl_bucket_name(b),
                       .info_err = rl_bucket_info(b, &info),
                       .is_template = rl_bucket_is_template(b)};
    strlcpy(h->parent, info.parent, sizeof(h->parent));
    h->policy = info.policy;
    if (!h->info_err)
        h->info_err = rl_bucket_expiry(b, &h->expire_ns);
    return 0;
}

static uint64_t want_expire(const struct apply_plan *pl, const struct rl_config_bucket *w)
{
    return rl_config_bucket_expire(pl->config, (size_t)(w - pl->wants));
}

/* The bucket has the rules and expiry the config wants for it. */
static bool have_same(const struct apply_plan *pl, const struct rl_policy *policy,
                      uint64_t expire_ns, const struct rl_config_bucket *w)
{
    return rl__policy_same(policy, &w->policy) && expire_ns == want_expire(pl, w);
}

/* Rule text and expiry, as the notes show them: "200/1m expire 1h". */
static void rules_text(const struct rl_policy *policy, uint64_t expire_ns, char *buf, size_t len)
{
    char dur[32];
    int n = rl_policy_format(policy, buf, len);
    if (expire_ns && n >= 0 && (size_t)n < len) {
        rl__duration_format(dur, sizeof(dur), expire_ns);
        snprintf(buf + n, len - (size_t)n, " expire %s", dur);
    }
}

static int have_order(const void *a, const void *b)
{
    return strcmp((*(struct have *const *)a)->name, (*(struct have *const *)b)->name);
}

/* Index the haves by name. */
static int index_haves(struct apply_plan *pl)
{
    if (!(pl->by_name = calloc(pl->nhaves + 1, sizeof(*pl->by_name))))
        return rl__fail(RL_ENOMEM, "out of memory planning the config");
    for (size_t i = 0; i < pl->nhaves; i++)
        pl->by_name[i] = &pl->haves[i];
    qsort(pl->by_name, pl->nhaves, sizeof(*pl->by_name), have_order);
    return 0;
}

static struct have *have_find(const struct apply_plan *pl, const char *name)
{
    struct have key = {.name = name}, *k = &key;
    struct have **found = bsearch(&k, pl->by_name, pl->nhaves, sizeof(k), have_order);
    return found ? *found : NULL;
}

/* ------------------------------------------------------------------ planning */

static const char *or_none(const char *s)
{
    return s && *s ? s : "(none)";
}

/* Plan one config bucket or template; check what can be checked before changing anything. */
static int plan_want(struct apply_plan *pl, const struct rl_config_bucket *want)
{
    struct have *h = have_find(pl, want->name);
    pl->steps[pl->nsteps++] = (struct apply_step){want, h};
    if (!h) {
        pl->new_buckets++;
        pl->arena_bytes += rl__policy_bytes(&want->policy);
        return 0;
    }
    h->mentioned = true;
    if (h->info_err)
        return rl__fail(h->info_err, "bucket '%s' in %s is damaged: %s", want->name,
                        rl_table_path(pl->table), rl_strerror(h->info_err));
    if (strcmp(h->parent, want->parent ? want->parent : "") != 0)
        return rl__fail(RL_EEXIST,
                        "bucket '%s' has parent %s in %s, the config (line %u) says %s: a bucket's "
                        "parent cannot change (remove the bucket or rename it)",
                        want->name, or_none(h->parent), rl_table_path(pl->table), want->line,
                        or_none(want->parent));
    if (!have_same(pl, &h->policy, h->expire_ns, want))
        pl->arena_bytes += rl__policy_bytes(&want->policy);
    return 0;
}

static int want_order(const void *a, const void *b)
{
    return strcmp((*(const struct rl_config_bucket *const *)a)->name,
                  (*(const struct rl_config_bucket *const *)b)->name);
}

/* Index the config's templates by name. */
static int index_templates(struct apply_plan *pl, const struct rl_config_bucket *bs, size_t n)
{
    if (!(pl->templates = calloc(n + 1, sizeof(*pl->templates))))
        return rl__fail(RL_ENOMEM, "out of memory planning the config");
    for (size_t i = 0; i < n; i++)
        if (bs[i].is_template)
            pl->templates[pl->ntemplates++] = &bs[i];
    qsort(pl->templates, pl->ntemplates, sizeof(*pl->templates), want_order);
    return 0;
}

/*
 * The config template that makes bucket `name`, or NULL: the longest "prefix/" "*" for it
 * among the config's templates and the table's, as rl_bucket_get picks. A longer template
 * the table has and the config does not is the bucket's own: then NULL. O(depth log n).
 */
static const struct rl_config_bucket *template_of(const struct apply_plan *pl, const char *name)
{
    char pattern[RL_NAME_MAX + 3];
    strlcpy(pattern, name, sizeof(pattern));
    for (char *slash = strrchr(pattern, '/'); slash; slash = strrchr(pattern, '/')) {
        strlcpy(slash, "/*", 3);
        struct rl_config_bucket key = {.name = pattern}, *k = &key;
        const struct rl_config_bucket **found =
            bsearch(&k, pl->templates, pl->ntemplates, sizeof(k), want_order);
        const struct have *h;
        if (found)
            return *found;
        if ((h = have_find(pl, pattern)) && h->is_template)
            return NULL;
        *slash = '\0';
    }
    return NULL;
}

/* Buckets made from a config template (with its parent) follow its new rules. */
static void plan_followers(struct apply_plan *pl)
{
    for (size_t i = 0; i < pl->nhaves; i++) {
        struct have *h = &pl->haves[i];
        const struct rl_config_bucket *t;
        if (h->mentioned || h->is_template || h->info_err || !(t = template_of(pl, h->name)) ||
            strcmp(h->parent, t->parent ? t->parent : "") != 0)
            continue;
        h->mentioned = true;
        pl->steps[pl->nsteps++] = (struct apply_step){t, h};
        if (!have_same(pl, &h->policy, h->expire_ns, t))
            pl->arena_bytes += rl__policy_bytes(&t->policy);
    }
}

/* At most the bytes the plan writes where the file has no page yet: the new records and
 * blocks (each bump-allocated, so contiguous) and an index page per new bucket. */
static uint64_t touch_bytes(const struct apply_plan *pl)
{
    const rl_table *t = pl->table;
    /* Relaxed: an estimate; the claims that follow check the counters again. */
    uint64_t next = rl__load_relaxed(&t->hdr->next_bucket);
    uint64_t used = rl__load_relaxed(&t->hdr->arena_used);
    uint64_t recs = (uint64_t)((unsigned char *)t->buckets - t->base) + next * sizeof(*t->buckets);
    uint64_t index = pages_of((uint64_t)t->index_slots * 8);
    uint64_t slots = pl->new_buckets * PAGE < index ? pl->new_buckets * PAGE : index;
    return span_pages(recs, pl->new_buckets * sizeof(*t->buckets)) +
           span_pages((uint64_t)(t->arena - t->base) + used, pl->arena_bytes) + slots;
}

static int check_room(const struct apply_plan *pl)
{
    struct rl_table_info info;
    rl_table_info(pl->table, &info);
    const char *path = rl_table_path(pl->table);
    if (info.read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", path);
    if (pl->new_buckets > info.capacity - info.buckets)
        return rl__fail(RL_EFULL, "table %s has room for %u more buckets, the config adds %llu",
                        path, info.capacity - info.buckets, (unsigned long long)pl->new_buckets);
    if (pl->arena_bytes > info.arena_bytes - info.arena_used)
        return rl__fail(RL_EFULL, "table %s: the config needs %llu arena bytes, %llu are free",
                        path, (unsigned long long)pl->arena_bytes,
                        (unsigned long long)(info.arena_bytes - info.arena_used));
    uint64_t need = touch_bytes(pl), free_bytes;
    if (fs_free(path, &free_bytes) && need > free_bytes)
        return rl__fail(RL_EFULL,
                        "table %s: the file system is full: the config needs up to %llu more "
                        "bytes, only %llu are free",
                        path, (unsigned long long)need, (unsigned long long)free_bytes);
    /* Reserve the file space too: a full file system fails here, not after half the steps. */
    return rl__table_reserve(pl->table, pl->new_buckets, pl->arena_bytes);
}

/* ------------------------------------------------------------------ changing the table */

/*
 * Another process made bucket `w` after the plan read the table (two applies at once).
 * Switch it to the config's rules, as if the plan had seen it. Its parent must be the
 * config's: a parent cannot change.
 */
static int adopt_bucket(const struct apply_plan *pl, const struct rl_config_bucket *w,
                        const char *rules)
{
    rl_bucket *b;
    struct rl_bucket_info info;
    uint64_t expire_ns;
    int err = rl_bucket_lookup(pl->table, w->name, &b);
    if (err || (err = rl_bucket_info(b, &info)) || (err = rl_bucket_expiry(b, &expire_ns)))
        return err;
    if (strcmp(info.parent, w->parent ? w->parent : "") != 0)
        return rl__fail(RL_EEXIST,
                        "bucket '%s' was created in %s while the config was applied, with parent "
                        "%s; the config (line %u) says %s",
                        w->name, rl_table_path(pl->table), or_none(info.parent), w->line,
                        or_none(w->parent));
    if (!have_same(pl, &info.policy, expire_ns, w) &&
        (err = rl_bucket_update_expire(b, &w->policy, want_expire(pl, w))))
        return err;
    say(pl, "updated %s%s (created meanwhile by another process): %s",
        w->is_template ? "template " : "", w->name, rules);
    return 0;
}

static int create_bucket(const struct apply_plan *pl, const struct rl_config_bucket *w,
                         const char *rules)
{
    int err = w->is_template ? rl_template_define_expire(pl->table, w->name, &w->policy, w->parent,
                                                         want_expire(pl, w))
                             : rl_bucket_define(pl->table, w->name, &w->policy, w->parent, NULL);
    if (err == RL_EEXIST)
        return adopt_bucket(pl, w, rules);
    if (!err)
        say(pl, "created %s%s %s%s%s", w->is_template ? "template " : "", w->name, rules,
            w->parent ? " parent " : "", w->parent ? w->parent : "");
    return err;
}

static int run_step(const struct apply_plan *pl, const struct apply_step *s)
{
    const struct rl_config_bucket *w = s->want;
    bool follower = s->have && strcmp(s->have->name, w->name) != 0;
    char rules[256], old[256];
    rules_text(&w->policy, want_expire(pl, w), rules, sizeof(rules));
    if (!s->have)
        return create_bucket(pl, w, rules);
    if (have_same(pl, &s->have->policy, s->have->expire_ns, w)) {
        if (!follower)
            say(pl, "unchanged %s%s", w->is_template ? "template " : "", w->name);
        return 0;
    }
    int err = rl_bucket_update_expire(s->have->bucket, &w->policy, want_expire(pl, w));
    rules_text(&s->have->policy, s->have->expire_ns, old, sizeof(old));
    if (!err && follower)
        say(pl, "updated %s (made from %s): %s -> %s", s->have->name, w->name, old, rules);
    else if (!err)
        say(pl, "updated %s%s: %s -> %s", w->is_template ? "template " : "", w->name, old, rules);
    return err;
}

static void report_kept(const struct apply_plan *pl)
{
    for (size_t i = 0; i < pl->nhaves; i++)
        if (!pl->haves[i].mentioned)
            say(pl, "kept %s%s: not in the config", pl->haves[i].is_template ? "template " : "",
                pl->haves[i].name);
}

static unsigned ancestors(const rl_bucket *b)
{
    unsigned n = 0;
    for (const rl_bucket *x = rl_bucket_parent(b); x; x = rl_bucket_parent(x))
        n++;
    return n;
}

/* RL_APPLY_PRUNE: delete what the config does not mention, children first: the deepest
 * first (records are reused, so a parent may have a higher number than its child). */
static int prune(const struct apply_plan *pl)
{
    for (unsigned depth = RL_MAX_DEPTH; depth-- > 0;)
        for (size_t i = pl->nhaves; i-- > 0;) {
            const struct have *h = &pl->haves[i];
            if (h->mentioned || ancestors(h->bucket) != depth)
                continue;
            int err = rl_bucket_delete(h->bucket);
            if (err)
                return err;
            say(pl, "deleted %s%s: not in the config", h->is_template ? "template " : "", h->name);
        }
    return 0;
}

static int plan_all(struct apply_plan *pl, const rl_config *config)
{
    const struct rl_config_bucket *bs;
    size_t n = rl_config_buckets(config, &bs);
    int err = rl_table_foreach(pl->table, collect_have, pl);
    if (err || (err = index_haves(pl)))
        return err;
    if (!(pl->steps = calloc(n + pl->nhaves + 1, sizeof(*pl->steps))))
        return rl__fail(RL_ENOMEM, "out of memory planning the config");
    for (size_t i = 0; i < n && !err; i++)
        err = plan_want(pl, &bs[i]);
    if (err)
        return err;
    if ((err = index_templates(pl, bs, n)))
        return err;
    plan_followers(pl);
    return check_room(pl);
}

/* 64-bit FNV-1a, then a finalizer that spreads every input bit (MurmurHash3's fmix64). */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    for (const unsigned char *c = p; n--; c++)
        h = (h ^ *c) * 0x100000001b3ULL;
    return h;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

/* One bucket or template as apply sees it: name, parent, kind, what rl__policy_same
 * compares, and its expiry (hashed only when set: configs without one keep their digest). */
static uint64_t want_hash(const struct rl_config_bucket *w, uint64_t expire_ns)
{
    const char *parent = w->parent ? w->parent : "";
    uint64_t f[4] = {w->is_template, w->policy.nrules, w->policy.flags, w->policy.margin_ns};
    uint64_t h = hash_bytes(0xcbf29ce484222325ULL, w->name, strlen(w->name) + 1);
    h = hash_bytes(h, parent, strlen(parent) + 1);
    h = hash_bytes(h, f, sizeof(f));
    for (unsigned i = 0; i < w->policy.nrules; i++) {
        const struct rl_rule *r = &w->policy.rules[i];
        uint64_t g[4] = {r->kind, r->limit, r->period_ns,
                         r->kind == RL_GCRA || r->kind == RL_GLOBAL ? r->burst : 0};
        h = hash_bytes(h, g, sizeof(g));
    }
    if (expire_ns)
        h = hash_bytes(h, &expire_ns, sizeof(expire_ns));
    return mix(h);
}

/* The config's digest: what applying it makes of a table, whatever the file's comments,
 * spacing or order (a sum over its buckets). 63 bits, never 0 (applied.c). */
static uint64_t config_digest(const rl_config *config)
{
    const struct rl_config_bucket *bs;
    size_t n = rl_config_buckets(config, &bs);
    uint64_t d = mix(n + 1);
    for (size_t i = 0; i < n; i++)
        d += want_hash(&bs[i], rl_config_bucket_expire(config, i));
    d &= ~(1ULL << 63);
    return d ? d : 1;
}

int rl_config_apply_flags(const rl_config *config, rl_table *table, unsigned flags,
                          void (*note)(void *arg, const char *line), void *arg)
{
    struct apply_plan pl = {.table = table, .config = config, .note = note, .arg = arg};
    if (!config || !table || (flags & ~RL_APPLY_PRUNE))
        return rl__fail(RL_EINVAL, "rl_config_apply: bad arguments");
    rl_config_buckets(config, &pl.wants);
    uint64_t digest = config_digest(config);
    /* The digest says the table matches the config, not that nothing else is in it. */
    if (!(flags & RL_APPLY_PRUNE) && rl__applied_load(table) == (digest | 1ULL << 63)) {
        say(&pl, "unchanged: all of it (this config was applied and the table has not changed "
                 "since)");
        return 0;
    }
    if (!table->read_only)
        rl__applied_begin(table); /* before the plan reads the table */
    int err = plan_all(&pl, config);
    for (size_t i = 0; i < pl.nsteps && !err; i++)
        err = run_step(&pl, &pl.steps[i]);
    if (!err && (flags & RL_APPLY_PRUNE))
        err = prune(&pl);
    else if (!err)
        report_kept(&pl);
    if (!table->read_only)
        rl__applied_publish(table, err ? 0 : digest);
    free(pl.templates);
    free(pl.steps);
    free(pl.by_name);
    free(pl.haves);
    return err;
}

int rl_config_apply(const rl_config *config, rl_table *table,
                    void (*note)(void *arg, const char *line), void *arg)
{
    return rl_config_apply_flags(config, table, 0, note, arg);
}
