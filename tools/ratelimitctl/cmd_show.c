/*
 * cmd_show.c - `ratelimitctl show NAME`: one bucket, its parent chain and its counters.
 */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl show [--json] NAME\n"
    "\n"
    "Show everything about bucket NAME (or template NAME, written prefix/*): its\n"
    "rules (canonical text) and the state of each (used and limit in the current\n"
    "window, remaining units, time to the next free unit); what the vendor's\n"
    "answers imposed (a cool-down after a 429, a smaller budget the server\n"
    "reported); each ancestor of its parent chain likewise, and what the whole\n"
    "chain admits now (a request draws from the bucket and every ancestor); and\n"
    "the bucket's counters, which count since the table was created:\n"
    "  admitted          requests admitted, and their units (the sum of costs)\n"
    "  rejected          requests refused: try-acquire refusals and timeouts\n"
    "  waited            blocking acquires that had to sleep, and the time they\n"
    "                    reserved ahead\n"
    "  dry-run rejected  requests a dry-run bucket admitted but would have refused\n"
    "  resets            times the budget was restored (ratelimitctl reset)\n"
    "  reported 429      429 responses the clients reported (rl_report)\n"
    "The table is opened read-only: permission to read it is enough.\n"
    "\n"
    "Options:\n"
    "  --json      one JSON object: {\"table\": PATH, \"bucket\": BUCKET,\n"
    "              \"ancestors\": [BUCKET...], \"chain_remaining\": N,\n"
    "              \"chain_next_free_ns\": NS, \"chain_next_free\": TEXT}, each\n"
    "              BUCKET with its \"counters\" (see ratelimitctl(1), JSON OUTPUT)\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 shown, 3 usage error (such as a bad name), 4 error (no table,\n"
    "no such bucket, damaged bucket; a name in the file that is not a valid\n"
    "name, reported and shown), 5 permission denied.\n"
    "\n"
    "Example:\n"
    "  ratelimitctl show ti/reporting\n";

static const struct option options[] = {
    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

/* The bucket and its ancestors, nearest first. */
struct chain {
    struct rl_bucket_info v[RL_MAX_DEPTH];
    uint64_t expire_ns[RL_MAX_DEPTH]; /* rl_bucket_expiry */
    unsigned n;
    struct ctl_summary sum; /* over the whole chain */
    bool bad_name;          /* a name in the chain is invalid (reported) */
};

static int chain_read(const struct ctl *c, const rl_bucket *b, struct chain *ch)
{
    ch->n = 0;
    ch->sum = (struct ctl_summary){UINT64_MAX, 0};
    ch->bad_name = false;
    for (; b && ch->n < RL_MAX_DEPTH; b = rl_bucket_parent(b)) {
        struct ctl_summary s;
        int rc = ctl_read(c, b, &ch->v[ch->n]), err;
        if (rc)
            return rc;
        if ((err = rl_bucket_expiry(b, &ch->expire_ns[ch->n])))
            return ctl_fail(c, rl_bucket_name(b), err);
        ch->bad_name |= ctl_name_read_check(c, &ch->v[ch->n]) != CTL_OK;
        ctl_summarize(&ch->v[ch->n++], &s);
        if (s.remaining < ch->sum.remaining)
            ch->sum.remaining = s.remaining;
        if (s.next_free_ns > ch->sum.next_free_ns)
            ch->sum.next_free_ns = s.next_free_ns;
    }
    return CTL_OK;
}

/* What the vendor's answers (rl_report) imposed, while it lasts. */
static void print_feedback(const struct rl_feedback_state *fb)
{
    char left[CTL_HUMAN_MAX];
    if (fb->cooldown_ns)
        printf("  %-18s %s left, after a 429 (%u in a row without Retry-After)\n", "cool-down",
               ctl_human_duration(left, sizeof(left), fb->cooldown_ns), fb->backoff);
    if (fb->server_reset_ns)
        printf("  %-18s %" PRIu64 " remaining until its reset in %s\n", "server says",
               fb->server_remaining, ctl_human_duration(left, sizeof(left), fb->server_reset_ns));
}

/* The margin in effect, why, and the delay it is measured against. */
static void print_margin(const struct rl_bucket_info *bi)
{
    const struct rl_margin_state *m = &bi->margin;
    char eff[CTL_HUMAN_MAX], conf[CTL_HUMAN_MAX], ceil[CTL_HUMAN_MAX], every[CTL_HUMAN_MAX];
    ctl_human_duration(eff, sizeof(eff), m->effective_ns);
    ctl_human_duration(conf, sizeof(conf), bi->policy.margin_ns);
    ctl_human_duration(ceil, sizeof(ceil), m->ceiling_ns);
    ctl_human_duration(every, sizeof(every), m->narrow_every_ns);
    if (m->learned_ns > bi->policy.margin_ns)
        printf("  %-18s %s, learned: the server answered 429 to requests the rules admitted\n"
               "  %-18s (configured %s, ceiling %s; narrowed %u steps, one per %s without a "
               "429)\n",
               "margin", eff, "", conf, ceil, m->narrowing_steps, every);
    else
        printf("  %-18s %s, configured (widens up to %s after 429s the rules admitted)\n", "margin",
               eff, ceil);
    if (m->delay_p99_ns) {
        char delay[CTL_HUMAN_MAX], rec[CTL_HUMAN_MAX];
        printf("  %-18s %s p99 from decision to response; recommended margin %s\n", "delay",
               ctl_human_duration(delay, sizeof(delay), m->delay_p99_ns),
               ctl_human_duration(rec, sizeof(rec), m->recommended_ns));
    }
}

static void print_state(const char *title, const struct rl_bucket_info *bi, uint64_t expire_ns)
{
    char text[CTL_POLICY_MAX], next[CTL_HUMAN_MAX], name[CTL_VISIBLE_MAX];
    struct ctl_summary sum;
    ctl_summarize(bi, &sum);
    rl_policy_format(&bi->policy, text, sizeof(text));
    ctl_visible(name, sizeof(name), bi->name);
    printf("%s %s\n", title, name);
    printf("  %-18s %s\n", "rules", text);
    printf("  %-18s %" PRIu64 "\n", "remaining", sum.remaining);
    printf("  %-18s %s\n", "next unit", ctl_human_wait(next, sizeof(next), sum.next_free_ns));
    print_feedback(&bi->feedback);
    if (!bi->is_template)
        print_margin(bi);
    if (bi->is_template)
        printf("  %-18s buckets %.*s/... are made from it on first use\n", "template",
               (int)strlen(name) - 2, name);
    if (expire_ns)
        printf("  %-18s %s: %s once unused for its longest window plus that\n", "expire",
               ctl_human_duration(next, sizeof(next), expire_ns),
               bi->is_template ? "each bucket made from it is deleted" : "deleted");
    for (unsigned i = 0; i < bi->policy.nrules; i++) {
        const struct rl_rule_state *rs = &bi->rules[i];
        ctl_rule_text(&rs->rule, text, sizeof(text));
        printf("  rule %-13u %s (%s): %" PRIu64 " of %" PRIu64 " used, %" PRIu64
               " remaining, next unit %s\n",
               i + 1, text, ctl_kind_name(rs->rule.kind), rs->used, ctl_rule_capacity(&rs->rule),
               rs->remaining, ctl_human_wait(next, sizeof(next), rs->next_free_ns));
    }
}

static void print_counters(const struct rl_counters *cn)
{
    char waited[CTL_HUMAN_MAX];
    printf("counters\n");
    printf("  %-18s %" PRIu64 " requests, %" PRIu64 " units\n", "admitted", cn->admitted,
           cn->admitted_units);
    printf("  %-18s %" PRIu64 "\n", "rejected", cn->rejected);
    printf("  %-18s %" PRIu64 " requests, %s in total\n", "waited", cn->waited,
           ctl_human_duration(waited, sizeof(waited), cn->waited_ns));
    printf("  %-18s %" PRIu64 "\n", "dry-run rejected", cn->dry_run_rejected);
    printf("  %-18s %" PRIu64 "\n", "resets", cn->resets);
    printf("  %-18s %" PRIu64 "\n", "reported 429", cn->reported_429);
}

/* A global rule: this host's lease (live) and Redis's view (ratelimit-agent's status). */
static void print_global(const rl_table *t, const struct rl_bucket_info *bi)
{
    char quiet[CTL_HUMAN_MAX];
    struct ctl_global g;
    for (unsigned i = 0; i < bi->policy.nrules; i++)
        if (bi->rules[i].rule.kind == RL_GLOBAL)
            printf("  %-18s %" PRIu64 " per %" PRIu64
                   "s for all hosts; this host's lease holds %" PRIu64 " units\n",
                   "global", bi->rules[i].rule.limit, bi->rules[i].rule.period_ns / 1000000000,
                   bi->rules[i].remaining);
    if (!ctl_has_global(bi))
        return;
    if (ctl_global_read(rl_table_path(t), bi->name, &g) != 0 || g.stale || !g.found) {
        printf("  %-18s no agent runs for this table: the lease is not refilled\n", "redis");
        return;
    }
    printf("  %-18s %s, %" PRIu64 " calls; in its window: this host %" PRIu64
           " units, other hosts %" PRIu64 "%s%s%s%s\n",
           "redis", g.redis_ok ? "ok" : "unreachable", g.calls, g.held, g.others,
           g.redis_ok ? "" : "; ", g.redis_ok ? "" : g.error,
           g.quiet_ns ? "; grants nothing for " : "",
           g.quiet_ns ? ctl_human_duration(quiet, sizeof(quiet), g.quiet_ns) : "");
}

static void print_text(const rl_table *t, const struct chain *ch)
{
    char next[CTL_HUMAN_MAX], name[CTL_VISIBLE_MAX];
    print_state("bucket", &ch->v[0], ch->expire_ns[0]);
    print_global(t, &ch->v[0]);
    for (unsigned i = 1; i < ch->n; i++)
        print_state("parent", &ch->v[i], ch->expire_ns[i]);
    if (ch->n > 1) {
        printf("chain");
        for (unsigned i = 0; i < ch->n; i++)
            printf("%s%s", i ? " -> " : " ", ctl_visible(name, sizeof(name), ch->v[i].name));
        printf("\n  %-18s %" PRIu64 "\n", "remaining", ch->sum.remaining);
        printf("  %-18s %s\n", "next unit",
               ctl_human_wait(next, sizeof(next), ch->sum.next_free_ns));
    }
    print_counters(&ch->v[0].counters);
}

static void json_bucket_counted(struct json *j, const char *key, const struct rl_bucket_info *bi,
                                uint64_t expire_ns)
{
    ctl_json_bucket(j, key, bi, expire_ns);
    ctl_json_counters(j, &bi->counters);
    json_close(j, '}');
}

static void print_json(const rl_table *t, const struct chain *ch)
{
    struct json j;
    json_begin(&j, stdout);
    json_open(&j, NULL, '{');
    json_str(&j, "table", rl_table_path(t));
    json_bucket_counted(&j, "bucket", &ch->v[0], ch->expire_ns[0]);
    json_open(&j, "ancestors", '[');
    for (unsigned i = 1; i < ch->n; i++)
        json_bucket_counted(&j, NULL, &ch->v[i], ch->expire_ns[i]);
    json_close(&j, ']');
    json_u64(&j, "chain_remaining", ch->sum.remaining);
    json_duration(&j, "chain_next_free_ns", "chain_next_free", ch->sum.next_free_ns);
    ctl_shim_json(&j, t);
    json_close(&j, '}');
    json_end(&j);
}

int ctl_show_run(struct ctl *c, int argc, char **argv)
{
    bool json = false;
    int rc = ctl_json_option(c, argc, argv, &json);
    if (rc >= 0)
        return rc;
    if (argc - optind != 1)
        return ctl_usage(c, "expected one bucket NAME");
    const char *name = argv[optind];
    rl_table *t;
    rl_bucket *b;
    struct chain ch;
    rc = ctl_check_name(c, name, true);
    if (rc || (rc = ctl_open(c, RL_OPEN_READONLY, &t)))
        return rc;
    rc = ctl_lookup(c, t, name, &b);
    if (!rc)
        rc = chain_read(c, b, &ch);
    if (!rc && json)
        print_json(t, &ch);
    else if (!rc) {
        print_text(t, &ch);
        ctl_shim_print(t);
    }
    rl_table_close(t);
    return !rc && ch.bad_name ? CTL_ERROR : rc;
}

const struct ctl_syntax ctl_show_syntax = {help, options};
