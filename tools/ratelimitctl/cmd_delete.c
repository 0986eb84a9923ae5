/*
 * cmd_delete.c - `ratelimitctl delete NAME|PATTERN...`: delete buckets (rl_bucket_delete).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl delete [--idle DURATION] NAME|PATTERN...\n"
    "\n"
    "Delete each bucket NAME, or every bucket and template whose name matches\n"
    "the shell glob PATTERN (an argument with * ? or [): 'tenant/*' deletes the\n"
    "template tenant/* and every bucket made from it.\n"
    "The name is free at once: defining it again makes a new bucket with a full\n"
    "budget. Processes holding the deleted bucket get \"no such bucket\" on every\n"
    "call and look the name up again. A parent goes after its children: name\n"
    "them too (a pattern deletes children first). The bucket's record, index\n"
    "slot and policy block serve later buckets, once no process can still be\n"
    "reading them.\n"
    "Needs write access to the table (its owner, or root). Prints one line per\n"
    "bucket deleted; a bucket that fails is reported, and the others are still\n"
    "deleted.\n"
    "\n"
    "Options:\n"
    "  --idle DURATION  delete only the buckets idle that long: nothing counted\n"
    "                   now nor DURATION ago, no cool-down, no debt, no global\n"
    "                   rule, no children (for tenants that come and go; a\n"
    "                   decision racing the expiry keeps the bucket). Prints\n"
    "                   \"expired NAME\" per bucket; busy ones are left alone\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 deleted (also when a PATTERN matches nothing), 3 usage error,\n"
    "4 error (no table, no such bucket, a parent with children, damaged bucket),\n"
    "5 permission denied (no write access).\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl delete old/api\n"
    "  ratelimitctl delete 'tenant/*'\n"
    "  ratelimitctl delete --idle 1h 'tenant/?*'\n";

static const struct option options[] = {
    {"idle", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

/* --idle: 0 for a plain delete. */
static uint64_t idle_ns;
static bool idle_only;

static int delete_one(const struct ctl *c, rl_bucket *b)
{
    char name[CTL_VISIBLE_MAX];
    bool expired = false;
    if (idle_only && rl_bucket_is_template(b))
        return CTL_OK;
    int err = idle_only ? rl_bucket_expire(b, idle_ns, &expired) : rl_bucket_delete(b);
    if (err)
        return ctl_fail(c, rl_bucket_name(b), err);
    if (!idle_only || expired)
        printf("%s %s\n", idle_only ? "expired" : "deleted",
               ctl_visible(name, sizeof(name), rl_bucket_name(b)));
    return CTL_OK;
}

static unsigned depth(const rl_bucket *b)
{
    unsigned d = 0;
    for (const rl_bucket *x = b; x; x = rl_bucket_parent(x))
        d++;
    return d;
}

/* Deepest first: children before their parents. */
static int by_depth(const void *a, const void *b)
{
    unsigned x = depth(*(rl_bucket *const *)a), y = depth(*(rl_bucket *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

static int delete_matching(const struct ctl *c, rl_table *t, const char *pattern)
{
    struct ctl_buckets all;
    int rc = ctl_collect(c, t, pattern, &all);
    if (all.n)
        qsort(all.v, all.n, sizeof(all.v[0]), by_depth);
    for (size_t i = 0; i < all.n; i++) {
        int err = delete_one(c, all.v[i]);
        if (err && !rc)
            rc = err;
    }
    free(all.v);
    return rc;
}

static int delete_arg(const struct ctl *c, rl_table *t, const char *arg)
{
    rl_bucket *b;
    if (strpbrk(arg, "*?["))
        return delete_matching(c, t, arg);
    int err = ctl_lookup(c, t, arg, &b);
    return err ? err : delete_one(c, b);
}

int ctl_delete_run(struct ctl *c, int argc, char **argv)
{
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        if (opt != 'i')
            return ctl_option_end(opt);
        if (ctl_parse_duration(c, "--idle", optarg, &idle_ns))
            return CTL_USAGE;
        idle_only = true;
    }
    if (argc - optind == 0)
        return ctl_usage(c, "expected bucket names or patterns");
    for (int i = optind; i < argc; i++)
        if (!strpbrk(argv[i], "*?[") && ctl_check_name(c, argv[i], false))
            return CTL_USAGE;
    rl_table *t;
    int rc = ctl_open(c, 0, &t);
    if (rc)
        return rc;
    for (int i = optind; i < argc; i++) {
        int err = delete_arg(c, t, argv[i]);
        if (err && !rc)
            rc = err;
    }
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_delete_syntax = {help, options};
