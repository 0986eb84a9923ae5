/*
 * table.c - open the table, find its buckets, read their state, reporting any failure.
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* Open the table of --table (or the library default) with o's creation options. */
int ctl_open_opts(const struct ctl *c, struct rl_table_opts *o, rl_table **out)
{
    o->path = c->table;
    int err = rl_table_open(o, out);
    return err ? ctl_fail(c, NULL, err) : CTL_OK;
}

/* A warning line if the path no longer names the table read (deleted or replaced
 * meanwhile): what was shown is a budget no process opening the path gets. */
void ctl_warn_if_replaced(const struct ctl *c, const rl_table *t)
{
    if (rl_table_check(t) != 0)
        ctl_say(c, NULL, "warning: %s; what is shown is the old table's", rl_errdetail());
}

/* Open with flags: RL_OPEN_READONLY to inspect, 0 to change an existing table. */
int ctl_open(const struct ctl *c, unsigned flags, rl_table **out)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.flags = flags;
    return ctl_open_opts(c, &o, out);
}

struct collect {
    const char *pattern;
    struct ctl_buckets *out;
    size_t cap;
};

static int collect_one(rl_bucket *b, void *arg)
{
    struct collect *k = arg;
    struct ctl_buckets *out = k->out;
    if (k->pattern && fnmatch(k->pattern, rl_bucket_name(b), 0) != 0)
        return 0;
    if (out->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        rl_bucket **v = reallocarray(out->v, cap, sizeof(*v));
        if (!v)
            return RL_ENOMEM;
        out->v = v;
        k->cap = cap;
    }
    out->v[out->n++] = b;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(rl_bucket_name(*(rl_bucket *const *)a), rl_bucket_name(*(rl_bucket *const *)b));
}

/* The buckets whose names match the fnmatch(3) pattern (all if NULL), sorted by name.
 * Returns 0 or RL_ENOMEM, reporting nothing. The caller frees out->v. */
int ctl_collect_quiet(rl_table *t, const char *pattern, struct ctl_buckets *out)
{
    struct collect k = {pattern, out, 0};
    *out = (struct ctl_buckets){NULL, 0};
    if (rl_table_foreach(t, collect_one, &k) != 0) {
        free(out->v);
        *out = (struct ctl_buckets){NULL, 0};
        return RL_ENOMEM;
    }
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), by_name);
    return 0;
}

/* ctl_collect_quiet, reporting a failure. */
int ctl_collect(const struct ctl *c, rl_table *t, const char *pattern, struct ctl_buckets *out)
{
    return ctl_collect_quiet(t, pattern, out) ? ctl_error(c, "out of memory") : CTL_OK;
}

struct find {
    const char *name;
    rl_bucket *found;
};

static int find_template(rl_bucket *b, void *arg)
{
    struct find *f = arg;
    if (!rl_bucket_is_template(b) || strcmp(rl_bucket_name(b), f->name) != 0)
        return 0;
    f->found = b;
    return 1;
}

/* Bucket `name`, or the template `name` if it is a pattern (see ctl_is_pattern), which
 * rl_bucket_lookup does not find: the walk does. */
int ctl_lookup(const struct ctl *c, rl_table *t, const char *name, rl_bucket **out)
{
    struct find f = {name, NULL};
    if (!ctl_is_pattern(name)) {
        int err = rl_bucket_lookup(t, name, out);
        return err ? ctl_fail(c, name, err) : CTL_OK;
    }
    rl_table_foreach(t, find_template, &f);
    if (!f.found)
        return ctl_error(c, "no template named '%s' in %s", name, rl_table_path(t));
    *out = f.found;
    return CTL_OK;
}

int ctl_read(const struct ctl *c, const rl_bucket *b, struct rl_bucket_info *out)
{
    int err = rl_bucket_info(b, out);
    return err ? ctl_fail(c, rl_bucket_name(b), err) : CTL_OK;
}

/* A bucket name read from the table must be valid (a template's, without its "/\*"): the
 * file may be damaged, or written by a hostile user. Reports an invalid one: CTL_ERROR. */
int ctl_name_read_check(const struct ctl *c, const struct rl_bucket_info *bi)
{
    char name[RL_NAME_MAX + 1];
    size_t len = strnlen(bi->name, RL_NAME_MAX);
    if (bi->is_template && len >= 2)
        len -= 2;
    memcpy(name, bi->name, len);
    name[len] = '\0';
    if (rl_name_check(name) == 0)
        return CTL_OK;
    ctl_say(c, bi->name, "the table holds an invalid name: %s", rl_errdetail());
    return CTL_ERROR;
}

/* The state of every matching bucket, sorted by name. A bucket that cannot be read is
 * reported and left out; one with an invalid name is reported and kept (every output
 * prints it visibly). Either way the result is CTL_ERROR, with the others in *out. */
int ctl_view_read(const struct ctl *c, rl_table *t, const char *pattern, struct ctl_view *out)
{
    struct ctl_buckets all;
    int rc = ctl_collect(c, t, pattern, &all);
    *out = (struct ctl_view){NULL, NULL, 0};
    if (rc)
        return rc;
    if (all.n && (!(out->v = calloc(all.n, sizeof(*out->v))) ||
                  !(out->expire_ns = calloc(all.n, sizeof(*out->expire_ns))))) {
        free(all.v);
        ctl_view_free(out);
        return ctl_error(c, "out of memory");
    }
    for (size_t i = 0; i < all.n; i++) {
        int err = ctl_read(c, all.v[i], &out->v[out->n]);
        if (!err && (err = rl_bucket_expiry(all.v[i], &out->expire_ns[out->n])))
            err = ctl_fail(c, rl_bucket_name(all.v[i]), err);
        if (!err)
            err = ctl_name_read_check(c, &out->v[out->n++]);
        if (err)
            rc = err;
    }
    free(all.v);
    return rc;
}

void ctl_view_free(struct ctl_view *v)
{
    free(v->v);
    free(v->expire_ns);
    *v = (struct ctl_view){NULL, NULL, 0};
}
