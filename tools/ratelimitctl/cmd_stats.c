/*
 * cmd_stats.c - `ratelimitctl stats [PATTERN]`: the counters of every bucket, as text, JSON
 * or Prometheus metrics.
 */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl stats [--json | --prometheus] [PATTERN]\n"
    "\n"
    "Print the counters of every bucket (whose name matches the shell glob\n"
    "PATTERN), sorted by name. They count since the table was created:\n"
    "  ADMITTED  requests admitted\n"
    "  UNITS     units admitted (the sum of the costs)\n"
    "  REJECTED  requests refused: try-acquire refusals and timeouts\n"
    "  WAITED    blocking acquires that had to sleep for their turn\n"
    "  WAIT      the time they reserved ahead, in total\n"
    "  DRY-RUN   requests a dry-run bucket admitted but would have refused\n"
    "  RESETS    times the budget was restored\n"
    "  429S      429 responses the clients reported (rl_report)\n"
    "The table is opened read-only: permission to read it is enough.\n"
    "\n"
    "Options:\n"
    "  --json        one JSON object: {\"table\": PATH, \"buckets\": [{\"name\": NAME,\n"
    "                \"counters\": COUNTERS}...]} (see ratelimitctl(1))\n"
    "  --prometheus  the Prometheus text exposition format, for the node_exporter\n"
    "                textfile collector. Counters, label bucket:\n"
    "                ratelimit_admitted_total, ratelimit_admitted_units_total,\n"
    "                ratelimit_rejected_total, ratelimit_waited_total,\n"
    "                ratelimit_waited_seconds_total,\n"
    "                ratelimit_dry_run_rejected_total, ratelimit_resets_total,\n"
    "                ratelimit_reported_429_total. Gauge, label bucket:\n"
    "                ratelimit_cooldown_seconds, ratelimit_margin_seconds,\n"
    "                ratelimit_margin_configured_seconds,\n"
    "                ratelimit_delay_p99_seconds. Gauges, labels bucket and rule:\n"
    "                ratelimit_limit,\n"
    "                ratelimit_used, ratelimit_remaining,\n"
    "                ratelimit_next_free_seconds. Gauges, label table:\n"
    "                ratelimit_table_capacity, ratelimit_table_buckets,\n"
    "                ratelimit_table_arena_bytes, ratelimit_table_arena_used_bytes,\n"
    "                ratelimit_table_arena_free_bytes,\n"
    "                ratelimit_table_arena_reclaimable_bytes,\n"
    "                ratelimit_table_blocks_reused, ratelimit_table_records_free,\n"
    "                ratelimit_table_buckets_deleted,\n"
    "                ratelimit_table_buckets_expired,\n"
    "                ratelimit_table_buckets_expired_auto,\n"
    "                ratelimit_table_index_slots,\n"
    "                ratelimit_table_index_empty_slots,\n"
    "                ratelimit_table_shim_attaches.\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 printed, 3 usage error, 4 error (no table; a damaged bucket,\n"
    "reported and left out; a name in the file that is not a valid name,\n"
    "reported and printed), 5 permission denied.\n"
    "\n"
    "Example, from cron every minute (the rename makes the update atomic):\n"
    "  d=/var/lib/node_exporter\n"
    "  ratelimitctl stats --prometheus > $d/rl.prom.$$ && mv $d/rl.prom.$$ $d/rl.prom\n";

enum format { TEXT, JSON, PROMETHEUS };

static const struct option options[] = {{"json", no_argument, NULL, 'j'},
                                        {"prometheus", no_argument, NULL, 'p'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

static void print_text(const struct ctl_view *view)
{
    char wait[CTL_HUMAN_MAX], name[CTL_VISIBLE_MAX];
    int w = (int)strlen("NAME");
    for (size_t i = 0; i < view->n; i++) {
        int len = (int)strlen(ctl_visible(name, sizeof(name), view->v[i].name));
        w = len > w ? len : w;
    }
    printf("%-*s  %10s  %10s  %10s  %10s  %8s  %8s  %6s  %6s  %8s  %8s\n", w, "NAME", "ADMITTED",
           "UNITS", "REJECTED", "WAITED", "WAIT", "DRY-RUN", "RESETS", "429S", "MARGIN", "DELAY99");
    for (size_t i = 0; i < view->n; i++) {
        const struct rl_counters *cn = &view->v[i].counters;
        const struct rl_margin_state *m = &view->v[i].margin;
        char margin[CTL_HUMAN_MAX], delay[CTL_HUMAN_MAX];
        printf("%-*s  %10" PRIu64 "  %10" PRIu64 "  %10" PRIu64 "  %10" PRIu64 "  %8s  %8" PRIu64
               "  %6" PRIu64 "  %6" PRIu64 "  %8s  %8s\n",
               w, ctl_visible(name, sizeof(name), view->v[i].name), cn->admitted,
               cn->admitted_units, cn->rejected, cn->waited,
               ctl_human_duration(wait, sizeof(wait), cn->waited_ns), cn->dry_run_rejected,
               cn->resets, cn->reported_429,
               ctl_human_duration(margin, sizeof(margin), m->effective_ns),
               m->delay_p99_ns ? ctl_human_duration(delay, sizeof(delay), m->delay_p99_ns) : "-");
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
        json_open(&j, NULL, '{');
        json_str(&j, "name", view->v[i].name);
        ctl_json_counters(&j, &view->v[i].counters);
        ctl_json_margin(&j, &view->v[i]);
        json_close(&j, '}');
    }
    json_close(&j, ']');
    ctl_shim_json(&j, t);
    json_close(&j, '}');
    json_end(&j);
}

static int print_prometheus(const struct ctl *c, rl_table *t, const struct ctl_view *view)
{
    struct rl_table_info ti;
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    int err = rl_table_info(t, &ti);
    if (!err)
        err = rl_table_space(t, &sp);
    if (err)
        return ctl_error(c, "cannot read the table header: %s", rl_strerror(err));
    ctl_prometheus(stdout, &ti, &sp, rl_table_path(t), view);
    return CTL_OK;
}

int ctl_stats_run(struct ctl *c, int argc, char **argv)
{
    enum format format = TEXT;
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        switch (opt) {
        case 'j':
        case 'p':
            if (format != TEXT && format != (opt == 'j' ? JSON : PROMETHEUS))
                return ctl_usage(c, "--json and --prometheus exclude each other");
            format = opt == 'j' ? JSON : PROMETHEUS;
            break;
        default:
            return ctl_option_end(opt);
        }
    }
    if (argc - optind > 1)
        return ctl_usage(c, "expected at most one PATTERN");
    rl_table *t;
    struct ctl_view view;
    int rc = ctl_open(c, RL_OPEN_READONLY, &t);
    if (rc)
        return rc;
    rc = ctl_view_read(c, t, optind < argc ? argv[optind] : NULL, &view);
    if (format == JSON)
        print_json(t, &view);
    else if (format == PROMETHEUS) {
        int err = print_prometheus(c, t, &view);
        rc = rc ? rc : err;
    } else {
        print_text(&view);
        ctl_shim_print(t);
    }
    ctl_view_free(&view);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_stats_syntax = {help, options};
