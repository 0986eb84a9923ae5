/*
 * cmd_reset.c - `ratelimitctl reset NAME... | --all [PATTERN]`: restore full budgets.
 */
#include <stdlib.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl reset NAME...\n"
    "       ratelimitctl reset --all [PATTERN]\n"
    "\n"
    "Restore the full budget of each bucket NAME, or with --all of every bucket\n"
    "(whose name matches the shell glob PATTERN, if given): what the bucket's own\n"
    "rules counted is forgotten, and it admits its whole limit again at once. A\n"
    "parent is not reset with its child: name it too. The counters are kept, and\n"
    "the bucket's resets counter goes up. Use it when the vendor confirms the\n"
    "budget is free, e.g. after a quota increase or a test run.\n"
    "Needs write access to the table (its owner, or root). Prints nothing; a\n"
    "bucket that fails is reported, and the others are still reset.\n"
    "\n"
    "Options:\n"
    "  --all       reset every bucket, or every one matching PATTERN\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 reset (also when --all matches nothing), 3 usage error,\n"
    "4 error (no table, no such bucket, damaged bucket), 5 permission denied\n"
    "(no write access).\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl reset foundry\n"
    "  ratelimitctl reset --all 'ti/*'\n";

static const struct option options[] = {
    {"all", no_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static int reset_one(const struct ctl *c, rl_bucket *b)
{
    int err = rl_bucket_reset(b);
    return err ? ctl_fail(c, rl_bucket_name(b), err) : CTL_OK;
}

static int reset_named(const struct ctl *c, rl_table *t, int n, char **names)
{
    int rc = CTL_OK;
    for (int i = 0; i < n; i++) {
        rl_bucket *b;
        int err = ctl_lookup(c, t, names[i], &b);
        if (!err)
            err = reset_one(c, b);
        if (err && !rc)
            rc = err;
    }
    return rc;
}

static int reset_matching(const struct ctl *c, rl_table *t, const char *pattern)
{
    struct ctl_buckets all;
    int rc = ctl_collect(c, t, pattern, &all);
    for (size_t i = 0; i < all.n; i++) {
        int err = reset_one(c, all.v[i]);
        if (err && !rc)
            rc = err;
    }
    free(all.v);
    return rc;
}

int ctl_reset_run(struct ctl *c, int argc, char **argv)
{
    bool all = false;
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        switch (opt) {
        case 'a':
            all = true;
            break;
        default:
            return ctl_option_end(opt);
        }
    }
    int n = argc - optind;
    if (all && n > 1)
        return ctl_usage(c, "--all takes at most one PATTERN");
    if (!all && n == 0)
        return ctl_usage(c, "expected bucket names, or --all");
    for (int i = optind; !all && i < argc; i++)
        if (ctl_check_name(c, argv[i], false))
            return CTL_USAGE;
    rl_table *t;
    int rc = ctl_open(c, 0, &t);
    if (rc)
        return rc;
    if (all)
        rc = reset_matching(c, t, n ? argv[optind] : NULL);
    else
        rc = reset_named(c, t, n, argv + optind);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_reset_syntax = {help, options};
