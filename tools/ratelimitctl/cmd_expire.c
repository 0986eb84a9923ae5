/*
 * cmd_expire.c - `ratelimitctl expire [--dry-run] [PATTERN]`: apply the templates' expiry
 * now (rl_bucket_expire_due), for a timer.
 */
#include <stdlib.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl expire [--dry-run] [PATTERN]\n"
    "\n"
    "Delete every bucket made from a template with an expiry ('template tenant/*\n"
    "200/60s expire 1h' in the config, or 'ratelimitctl define' with expire)\n"
    "that is due: unused for its longest window plus the expiry, with no\n"
    "cool-down, no debt and no children (as 'delete --idle' tells it). Making a\n"
    "tenant already expires a few due ones each time; run this from a timer to\n"
    "expire all of them. A decision racing the expiry keeps the bucket; the\n"
    "bucket made again has the full budget its rules would give the idle one.\n"
    "Without PATTERN every bucket is examined; PATTERN is a shell glob on the\n"
    "names, such as 'tenant/*'. Templates and buckets without an expiry stay.\n"
    "Needs write access to the table (its owner, or root), but for --dry-run.\n"
    "Prints \"expired NAME\" per bucket (\"due NAME\" with --dry-run).\n"
    "\n"
    "Options:\n"
    "  --dry-run   only print the buckets that are due\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 done (also when nothing is due), 3 usage error, 4 error (no\n"
    "table, a damaged bucket, reported while the others are expired), 5\n"
    "permission denied.\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl expire\n"
    "  ratelimitctl expire --dry-run 'tenant/*'\n";

static const struct option options[] = {
    {"dry-run", no_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static int expire_all(const struct ctl *c, rl_table *t, const char *pattern, bool dry_run)
{
    struct ctl_buckets all;
    char name[CTL_VISIBLE_MAX];
    int rc = ctl_collect(c, t, pattern, &all);
    for (size_t i = 0; i < all.n; i++) {
        bool due = false;
        int err = rl_bucket_expire_due(all.v[i], dry_run, &due);
        if (err && err != RL_ENOENT) /* RL_ENOENT: deleted meanwhile */
            rc = rc ? rc : ctl_fail(c, rl_bucket_name(all.v[i]), err);
        else if (due)
            printf("%s %s\n", dry_run ? "due" : "expired",
                   ctl_visible(name, sizeof(name), rl_bucket_name(all.v[i])));
    }
    free(all.v);
    return rc;
}

int ctl_expire_run(struct ctl *c, int argc, char **argv)
{
    bool dry_run = false;
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        if (opt != 'n')
            return ctl_option_end(opt);
        dry_run = true;
    }
    if (argc - optind > 1)
        return ctl_usage(c, "expected at most one PATTERN");
    rl_table *t;
    int rc = ctl_open(c, dry_run ? RL_OPEN_READONLY : 0, &t);
    if (rc)
        return rc;
    rc = expire_all(c, t, optind < argc ? argv[optind] : NULL, dry_run);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_expire_syntax = {help, options};
