/*
 * cmd_info.c - `ratelimitctl info`: the table file itself.
 */
#include <inttypes.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl info [--json]\n"
    "\n"
    "Describe the table file: its path; its layout version; its capacity (the\n"
    "most buckets it can hold) and the buckets defined; its arena, the space for\n"
    "rules and sliding-window logs (a sliding rule of N per T takes 8 x N bytes),\n"
    "used and total; its size; its age (tables do not outlive a reboot); and\n"
    "whether its buckets are known to match the config last applied ('config\n"
    "applied, digest 0x...'), or not ('config unknown': none was applied, or a\n"
    "define or update changed the table since; the next apply does the full work).\n"
    "The buckets line counts the free records (never used, or given back by\n"
    "deleted buckets: the next creations reuse them) and the buckets deleted and\n"
    "expired. The reuse line: arena space free for the next policy blocks of its\n"
    "sizes, space switches and deletions left that is freed once no process can\n"
    "still be reading it, and how many blocks were handed out again. The index\n"
    "line: the name index's slots and those never used. A deleted name leaves a\n"
    "tombstone, not an empty slot, and the first lookup of a new name walks to an\n"
    "empty one: below a quarter, churn of new names has made those lookups long,\n"
    "and 'ratelimitctl resize --capacity N' (the same N will do) rebuilds it.\n"
    "The table is opened read-only: permission to read it is enough.\n"
    "\n"
    "Options:\n"
    "  --json      one JSON object: {\"table\": PATH, \"layout_version\": N,\n"
    "              \"capacity\": N, \"buckets\": N, \"arena_bytes\": N, \"arena_used\": N,\n"
    "              \"records_free\": N, \"records_spare\": N, \"deleted\": N,\n"
    "              \"expired\": N, \"expired_auto\": N (by a template's expiry),\n"
    "              \"arena_free\": N,\n"
    "              \"arena_reclaimable\": N, \"blocks_reused\": N,\n"
    "              \"index_slots\": N, \"index_empty\": N,\n"
    "              \"file_bytes\": N, \"age_ns\": NS, \"age\": TEXT,\n"
    "              \"applied_digest\": N (0: unknown)}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 described, 3 usage error, 4 error (no table; not a table,\n"
    "damaged, or from before the last reboot), 5 permission denied.\n";

static const struct option options[] = {
    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static uint64_t age_of(const struct rl_table_info *ti)
{
    uint64_t now = rl_now_ns();
    return now > ti->created_ns ? now - ti->created_ns : 0;
}

/* The digest of the config the table is known to match, 0 if none. */
static uint64_t applied_digest(const struct rl_table_info *ti)
{
    return ti->applied_digest >> 63 ? ti->applied_digest & ~(1ULL << 63) : 0;
}

static void print_text(const rl_table *t, const struct rl_table_info *ti,
                       const struct rl_table_space *sp)
{
    char used[CTL_HUMAN_MAX], total[CTL_HUMAN_MAX], age[CTL_HUMAN_MAX];
    printf("%-10s %s\n", "table", rl_table_path(t));
    printf("%-10s version %" PRIu32 "\n", "layout", ti->layout_version);
    printf("%-10s %" PRIu32 " buckets\n", "capacity", ti->capacity);
    printf("%-10s %" PRIu32 " defined, %" PRIu32 " free, %" PRIu32 " deleted (%" PRIu64
           " expired, %" PRIu64 " automatically)\n",
           "buckets", ti->buckets, ti->capacity - sp->records_used, sp->deleted, sp->expired,
           sp->expired_auto);
    printf("%-10s %s of %s used (%.1f%%)\n", "arena",
           ctl_human_bytes(used, sizeof(used), ti->arena_used),
           ctl_human_bytes(total, sizeof(total), ti->arena_bytes),
           ti->arena_bytes ? 100.0 * (double)ti->arena_used / (double)ti->arena_bytes : 0.0);
    char free_b[CTL_HUMAN_MAX], limbo_b[CTL_HUMAN_MAX];
    printf("%-10s %s free for reuse, %s reclaimable, %" PRIu64 " blocks reused\n", "reuse",
           ctl_human_bytes(free_b, sizeof(free_b), sp->arena_free),
           ctl_human_bytes(limbo_b, sizeof(limbo_b), sp->arena_reclaimable), sp->blocks_reused);
    /* Below a quarter never used, a new name's first lookup walks far (README "Limits of
     * record reuse"): say what rebuilds the index. */
    printf("%-10s %" PRIu64 " slots, %" PRIu64 " never used%s\n", "index", sp->index_slots,
           sp->index_empty,
           sp->index_empty < sp->index_slots / 4
               ? " (new names' lookups walk far: 'ratelimitctl resize' rebuilds it)"
               : "");
    printf("%-10s %s (%" PRIu64 " bytes)\n", "file",
           ctl_human_bytes(total, sizeof(total), ti->file_bytes), ti->file_bytes);
    printf("%-10s %s\n", "age", ctl_human_duration(age, sizeof(age), age_of(ti)));
    if (ti->applied_digest >> 63)
        printf("%-10s applied, digest %#" PRIx64 "\n", "config", applied_digest(ti));
    else
        printf("%-10s unknown\n", "config");
}

static void print_json(const rl_table *t, const struct rl_table_info *ti,
                       const struct rl_table_space *sp)
{
    struct json j;
    json_begin(&j, stdout);
    json_open(&j, NULL, '{');
    json_str(&j, "table", rl_table_path(t));
    json_u64(&j, "layout_version", ti->layout_version);
    json_u64(&j, "capacity", ti->capacity);
    json_u64(&j, "buckets", ti->buckets);
    json_u64(&j, "arena_bytes", ti->arena_bytes);
    json_u64(&j, "arena_used", ti->arena_used);
    json_u64(&j, "records_free", ti->capacity - sp->records_used);
    json_u64(&j, "records_spare", sp->records_spare);
    json_u64(&j, "deleted", sp->deleted);
    json_u64(&j, "expired", sp->expired);
    json_u64(&j, "expired_auto", sp->expired_auto);
    json_u64(&j, "arena_free", sp->arena_free);
    json_u64(&j, "arena_reclaimable", sp->arena_reclaimable);
    json_u64(&j, "blocks_reused", sp->blocks_reused);
    json_u64(&j, "index_slots", sp->index_slots);
    json_u64(&j, "index_empty", sp->index_empty);
    json_u64(&j, "file_bytes", ti->file_bytes);
    json_duration(&j, "age_ns", "age", age_of(ti));
    json_u64(&j, "applied_digest", applied_digest(ti));
    json_close(&j, '}');
    json_end(&j);
}

int ctl_info_run(struct ctl *c, int argc, char **argv)
{
    bool json = false;
    int rc = ctl_json_option(c, argc, argv, &json);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return ctl_usage(c, "unexpected argument '%s'", argv[optind]);
    rl_table *t;
    struct rl_table_info ti;
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    rc = ctl_open(c, RL_OPEN_READONLY, &t);
    if (rc)
        return rc;
    int err = rl_table_info(t, &ti);
    if (!err)
        err = rl_table_space(t, &sp);
    if (err)
        rc = ctl_error(c, "cannot read the table header: %s", rl_strerror(err));
    else if (json)
        print_json(t, &ti, &sp);
    else
        print_text(t, &ti, &sp);
    ctl_warn_if_replaced(c, t);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_info_syntax = {help, options};
