/*
 * cmd_list.c - `ratelimitctl list [PATTERN]`: one line per bucket.
 */
#include <string.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl list [--json] [PATTERN]\n"
    "\n"
    "List the buckets, sorted by name, one line each:\n"
    "  NAME       the bucket name\n"
    "  RULES      its rules, as canonical rule text, and the expiry of a\n"
    "             template and of the buckets made from it ('expire 1h')\n"
    "  USED       used/limit of each rule in its current window (for a token\n"
    "             bucket: debt/burst, in units)\n"
    "  REMAINING  units the bucket admits now, by its tightest rule (its\n"
    "             parents may admit fewer: see 'ratelimitctl show')\n"
    "  NEXT       time until the bucket admits one more unit ('now' if it does;\n"
    "             'template' for a template)\n"
    "REMAINING and NEXT include what the vendor's answers imposed: a cool-down\n"
    "after a 429, a smaller budget the server reported.\n"
    "Counts are shortened (12k: 12000 or a little more), times rounded.\n"
    "\n"
    "PATTERN is a shell glob (fnmatch(3)) on the names, such as 'ti*' or 'ti/*';\n"
    "'*' also matches '/'. Quote it. Without PATTERN every bucket is listed.\n"
    "The table is opened read-only: permission to read it is enough.\n"
    "\n"
    "Options:\n"
    "  --json      one JSON object, exact numbers:\n"
    "              {\"table\": PATH, \"buckets\": [BUCKET...]}\n"
    "              (BUCKET: see ratelimitctl(1), JSON OUTPUT)\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 listed (also when nothing matches), 3 usage error, 4 error\n"
    "(no table; a damaged bucket, reported while the others are listed; a\n"
    "bucket whose name in the file is not a valid name, reported and listed),\n"
    "5 permission denied.\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl list\n"
    "  ratelimitctl list 'ti/*'\n"
    "  ratelimitctl list --json | python3 -m json.tool\n";

static const struct option options[] = {
    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

enum { COL_NAME, COL_RULES, COL_USED, COL_REMAINING, COL_NEXT, NCOLS };

struct row {
    char col[NCOLS][CTL_POLICY_MAX];
};

static void row_fill(struct row *r, const struct rl_bucket_info *bi, uint64_t expire_ns)
{
    struct ctl_summary sum;
    char used[CTL_HUMAN_MAX], limit[CTL_HUMAN_MAX];
    size_t at = 0;
    ctl_summarize(bi, &sum);
    ctl_visible(r->col[COL_NAME], sizeof(r->col[COL_NAME]), bi->name);
    ctl_rules_text(bi, expire_ns, r->col[COL_RULES], sizeof(r->col[COL_RULES]));
    for (unsigned i = 0; i < bi->policy.nrules && at < sizeof(r->col[COL_USED]); i++)
        at += (size_t)snprintf(
            r->col[COL_USED] + at, sizeof(r->col[COL_USED]) - at, "%s%s/%s", i ? ", " : "",
            ctl_human_count(used, sizeof(used), bi->rules[i].used),
            ctl_human_count(limit, sizeof(limit), ctl_rule_capacity(&bi->rules[i].rule)));
    ctl_human_count(r->col[COL_REMAINING], sizeof(r->col[COL_REMAINING]), sum.remaining);
    if (bi->is_template) /* its rules are copied; its own state is never used */
        snprintf(r->col[COL_NEXT], sizeof(r->col[COL_NEXT]), "template");
    else
        ctl_human_wait(r->col[COL_NEXT], sizeof(r->col[COL_NEXT]), sum.next_free_ns);
}

static void print_row(const struct row *r, const int *width)
{
    printf("%-*s  %-*s  %-*s  %*s  %s\n", width[COL_NAME], r->col[COL_NAME], width[COL_RULES],
           r->col[COL_RULES], width[COL_USED], r->col[COL_USED], width[COL_REMAINING],
           r->col[COL_REMAINING], r->col[COL_NEXT]);
}

/* Two passes over the view, one to size the columns and one to print them. */
static void print_text(const struct ctl_view *view)
{
    static const struct row head = {{"NAME", "RULES", "USED", "REMAINING", "NEXT"}};
    struct row r;
    int width[NCOLS];
    for (int k = 0; k < NCOLS; k++)
        width[k] = (int)strlen(head.col[k]);
    for (size_t i = 0; i < view->n; i++) {
        row_fill(&r, &view->v[i], view->expire_ns[i]);
        for (int k = 0; k < NCOLS; k++)
            if ((int)strlen(r.col[k]) > width[k])
                width[k] = (int)strlen(r.col[k]);
    }
    print_row(&head, width);
    for (size_t i = 0; i < view->n; i++) {
        row_fill(&r, &view->v[i], view->expire_ns[i]);
        print_row(&r, width);
    }
}

static void print_json(const rl_table *t, const struct ctl_view *view)
{
    struct json j;
    json_begin(&j, stdout);
    json_open(&j, NULL, '{');
    json_str(&j, "table", rl_table_path(t));
    json_open(&j, "buckets", '[');
    for (size_t i = 0; i < view->n; i++) {
        ctl_json_bucket(&j, NULL, &view->v[i], view->expire_ns[i]);
        json_close(&j, '}');
    }
    json_close(&j, ']');
    ctl_shim_json(&j, t);
    json_close(&j, '}');
    json_end(&j);
}

int ctl_list_run(struct ctl *c, int argc, char **argv)
{
    bool json = false;
    int rc = ctl_json_option(c, argc, argv, &json);
    if (rc >= 0)
        return rc;
    if (argc - optind > 1)
        return ctl_usage(c, "expected at most one PATTERN");
    rl_table *t;
    struct ctl_view view;
    rc = ctl_open(c, RL_OPEN_READONLY, &t);
    if (rc)
        return rc;
    rc = ctl_view_read(c, t, optind < argc ? argv[optind] : NULL, &view);
    if (json)
        print_json(t, &view);
    else
        print_text(&view);
    ctl_view_free(&view);
    ctl_warn_if_replaced(c, t);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_list_syntax = {help, options};
