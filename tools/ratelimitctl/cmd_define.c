/*
 * cmd_define.c - `ratelimitctl define NAME RULES... [parent P]`: create a bucket.
 */
#include <stdlib.h>
#include <string.h>

#include <bsd/stdlib.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl define [--capacity N] [--mode MODE] NAME RULES...\n"
    "                           [expire DURATION] [parent PARENT]\n"
    "\n"
    "Create bucket NAME with RULES, drawing also from bucket PARENT (which must\n"
    "exist) if given. The words of RULES are joined with spaces: quoting is\n"
    "optional. A NAME written prefix/* defines a template: the buckets\n"
    "prefix/anything are made from it, with its rules and parent, when first\n"
    "acquired. 'expire DURATION' (templates only, 1ms to 49d) deletes each\n"
    "bucket made from it once unused for its longest window plus DURATION (see\n"
    "'ratelimitctl expire'). If NAME exists with the same rules, expiry and\n"
    "parent, nothing changes; else define fails. The table is created if\n"
    "it is missing; --capacity and --mode apply only then. Prints nothing.\n"
    "\n"
    "Names: 1 to 63 bytes of letters, digits and . _ : @ / - , not starting or\n"
    "ending with '/', without '//'. Rule text (as rl_policy_parse reads it):\n"
    "  RULES    := RULE { , RULE } [ margin DURATION ] [ dry-run ]\n"
    "  RULE     := COUNT / DURATION [ burst COUNT | fixed | sliding ]\n"
    "  DURATION := [COUNT] UNIT; UNIT is ms, s, m, h or d (sec, min, hour, day)\n"
    "  200/60s          at most 200 in any rolling 60 s (sliding, the default)\n"
    "  120/1m burst 20  token bucket: 120 a minute, at most 20 back to back\n"
    "  1000/1h fixed    1000 per clock hour, windows aligned to the hour\n"
    "  1000/1h, 100/1m  several rules: a request must pass all of them\n"
    "  ... margin 50ms  count windows 50 ms longer than the server (default 20ms)\n"
    "  ... dry-run      decide and count, but admit everything\n"
    "At most 4 rules per bucket and 4 buckets in a parent chain.\n"
    "\n"
    "Options:\n"
    "  --capacity N  a new table holds at most N buckets (default 1024)\n"
    "  --mode MODE   a new table's file mode in octal (default 0600); 0640 or\n"
    "                0644 let others inspect it; never world-writable\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 defined (or already defined alike), 3 usage error (bad name;\n"
    "bad rule text, with the column), 4 error (no such parent, defined with\n"
    "other rules, table full), 5 permission denied.\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl define foundry 200/60s\n"
    "  ratelimitctl define ti 1000/1h fixed, 100/1m\n"
    "  ratelimitctl define ti/reporting 30/1m parent ti\n"
    "  ratelimitctl define 'tenant/*' 10/1m\n"
    "  ratelimitctl define 'tenant/*' 200/60s expire 1h\n";

static const struct option options[] = {{"capacity", required_argument, NULL, 'c'},
                                        {"mode", required_argument, NULL, 'm'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

/* The operands: NAME, the rule words joined by spaces, PARENT and EXPIRE or NULL. */
struct definition {
    const char *name;
    char *rules;
    const char *parent, *expire;
};

static int split(const struct ctl *c, int n, char **words, struct definition *d)
{
    size_t len = 0;
    if (n < 2)
        return ctl_usage(c, "expected a bucket NAME and RULES");
    d->name = words[0];
    d->parent = d->expire = NULL;
    /* The options after the rules, in either order, each once. */
    for (const char **opt; n >= 4; n -= 2) {
        opt = strcmp(words[n - 2], "parent") == 0   ? &d->parent
              : strcmp(words[n - 2], "expire") == 0 ? &d->expire
                                                    : NULL;
        if (!opt)
            break;
        if (*opt)
            return ctl_usage(c, "'%s' is given twice", words[n - 2]);
        *opt = words[n - 1];
    }
    for (int i = 1; i < n; i++)
        len += strlen(words[i]) + 1;
    if (!(d->rules = malloc(len)))
        return ctl_error(c, "out of memory");
    d->rules[0] = '\0';
    for (int i = 1; i < n; i++) {
        strcat(d->rules, words[i]);
        if (i + 1 < n)
            strcat(d->rules, " ");
    }
    return CTL_OK;
}

static int parse_mode(const struct ctl *c, const char *text, unsigned *mode)
{
    size_t len = strlen(text);
    if (len == 0 || len > 4 || text[strspn(text, "01234567")])
        return ctl_usage(c, "--mode '%s': expected an octal file mode such as 0640", text);
    unsigned long v = strtoul(text, NULL, 8);
    if (v & ~0666UL)
        return ctl_usage(c, "--mode '%s': only read and write bits (0666) are allowed", text);
    if (v & 0002)
        return ctl_usage(c, "--mode '%s': a table must never be world-writable", text);
    *mode = (unsigned)v;
    return CTL_OK;
}

static int define(const struct ctl *c, struct rl_table_opts *o, const struct definition *d)
{
    struct rl_policy policy;
    struct rl_parse_error e;
    uint64_t expire_ns = 0;
    rl_table *t;
    int rc = ctl_check_name(c, d->name, true);
    if (rc || (d->parent && (rc = ctl_check_name(c, d->parent, false))))
        return rc;
    if (rl_policy_parse(d->rules, &policy, &e) < 0)
        return ctl_usage(c, "rule text '%s', column %u: %s", d->rules, e.column, e.message);
    if (d->expire && !ctl_is_pattern(d->name))
        return ctl_usage(c, "'expire' is for templates (a NAME written prefix/*)");
    if (d->expire && (rc = ctl_parse_duration(c, "expire", d->expire, &expire_ns)))
        return rc;
    if (d->expire && (expire_ns < 1000000 || expire_ns > RL_EXPIRE_MAX_NS))
        return ctl_usage(c, "expire '%s': expected 1ms to 49d", d->expire);
    if ((rc = ctl_open_opts(c, o, &t)))
        return rc;
    int err = ctl_is_pattern(d->name)
                  ? rl_template_define_expire(t, d->name, &policy, d->parent, expire_ns)
                  : rl_bucket_define(t, d->name, &policy, d->parent, NULL);
    if (err)
        rc = ctl_fail(c, d->name, err);
    rl_table_close(t);
    return rc;
}

int ctl_define_run(struct ctl *c, int argc, char **argv)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct definition d = {NULL, NULL, NULL, NULL};
    const char *errstr;
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        switch (opt) {
        case 'c':
            o.capacity = (uint32_t)strtonum(optarg, 1, UINT32_MAX, &errstr);
            if (errstr)
                return ctl_usage(c, "--capacity '%s' is %s", optarg, errstr);
            break;
        case 'm':
            if (parse_mode(c, optarg, &o.mode))
                return CTL_USAGE;
            break;
        default:
            return ctl_option_end(opt);
        }
    }
    int rc = split(c, argc - optind, argv + optind, &d);
    if (rc)
        return rc;
    o.flags = RL_OPEN_CREATE;
    rc = define(c, &o, &d);
    free(d.rules);
    return rc;
}

const struct ctl_syntax ctl_define_syntax = {help, options};
