/*
 * out_prom.c - stats in the Prometheus text exposition format (version 0.0.4), for the
 * node_exporter textfile collector: each family's HELP and TYPE, then its samples.
 */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "ctl.h"

#define NS_PER_SEC UINT64_C(1000000000)

/*
 * A label value, printable ASCII only: backslash and double quote escaped as the format
 * wants; any other byte (a control character, a newline) as the text \xHH, its backslash
 * escaped, so that a name read from a file shows as in the other outputs.
 */
static void put_label(FILE *f, const char *name, const char *value)
{
    fprintf(f, "%s=\"", name);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '\\' || *p == '"')
            fprintf(f, "\\%c", *p);
        else if (*p >= 0x20 && *p < 0x7f)
            fputc(*p, f);
        else
            fprintf(f, "\\\\x%02x", *p);
    }
    fputc('"', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const struct counter {
    const char *name, *help;
    size_t offset; /* in struct rl_counters */
    bool in_ns;    /* exported in seconds */
} counters[] = {
    {"ratelimit_admitted_total", "Requests admitted.", offsetof(struct rl_counters, admitted),
     false},
    {"ratelimit_admitted_units_total", "Units admitted (the sum of the admitted costs).",
     offsetof(struct rl_counters, admitted_units), false},
    {"ratelimit_rejected_total", "Requests refused (try-acquire refusals and timeouts).",
     offsetof(struct rl_counters, rejected), false},
    {"ratelimit_waited_total", "Blocking acquires that had to sleep for their turn.",
     offsetof(struct rl_counters, waited), false},
    {"ratelimit_waited_seconds_total", "Time reserved ahead by blocking acquires.",
     offsetof(struct rl_counters, waited_ns), true},
    {"ratelimit_dry_run_rejected_total",
     "Requests a dry-run bucket admitted but would have refused.",
     offsetof(struct rl_counters, dry_run_rejected), false},
    {"ratelimit_resets_total", "Times the budget was restored by a reset.",
     offsetof(struct rl_counters, resets), false},
    {"ratelimit_reported_429_total", "429 responses reported by the clients.",
     offsetof(struct rl_counters, reported_429), false},
};

static const struct gauge {
    const char *name, *help;
    size_t offset; /* in struct rl_rule_state */
    bool in_ns;
} gauges[] = {
    {"ratelimit_limit", "The limit N of the rule.", offsetof(struct rl_rule_state, rule.limit),
     false},
    {"ratelimit_used", "Units counted by the rule in its current window (GCRA: the debt).",
     offsetof(struct rl_rule_state, used), false},
    {"ratelimit_remaining", "Units the rule admits now.", offsetof(struct rl_rule_state, remaining),
     false},
    {"ratelimit_next_free_seconds", "Time until the rule admits one more unit (0: now).",
     offsetof(struct rl_rule_state, next_free_ns), true},
};

static uint64_t field(const void *base, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)base + offset, sizeof(v));
    return v;
}

/* The sample's value, in seconds exactly if it is kept in nanoseconds. */
static void put_value(FILE *f, uint64_t v, bool in_ns)
{
    if (in_ns)
        fprintf(f, " %" PRIu64 ".%09" PRIu64 "\n", v / NS_PER_SEC, v % NS_PER_SEC);
    else
        fprintf(f, " %" PRIu64 "\n", v);
}

static void put_counters(FILE *f, const struct ctl_view *view)
{
    for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
        family(f, counters[k].name, "counter", counters[k].help);
        for (size_t i = 0; i < view->n; i++) {
            fprintf(f, "%s{", counters[k].name);
            put_label(f, "bucket", view->v[i].name);
            fputs("}", f);
            put_value(f, field(&view->v[i].counters, counters[k].offset), counters[k].in_ns);
        }
    }
}

/* Rules are labelled by their text; a rule repeated in one bucket is exported once. */
static bool repeated_rule(const struct rl_bucket_info *bi, unsigned r, const char *text)
{
    char other[CTL_POLICY_MAX];
    for (unsigned i = 0; i < r; i++) {
        ctl_rule_text(&bi->rules[i].rule, other, sizeof(other));
        if (strcmp(other, text) == 0)
            return true;
    }
    return false;
}

static void put_rule_gauges(FILE *f, const struct ctl_view *view)
{
    char text[CTL_POLICY_MAX];
    for (size_t k = 0; k < sizeof(gauges) / sizeof(gauges[0]); k++) {
        family(f, gauges[k].name, "gauge", gauges[k].help);
        for (size_t i = 0; i < view->n; i++) {
            const struct rl_bucket_info *bi = &view->v[i];
            for (unsigned r = 0; r < bi->policy.nrules; r++) {
                ctl_rule_text(&bi->rules[r].rule, text, sizeof(text));
                if (repeated_rule(bi, r, text))
                    continue;
                fprintf(f, "%s{", gauges[k].name);
                put_label(f, "bucket", bi->name);
                fputc(',', f);
                put_label(f, "rule", text);
                fputs("}", f);
                put_value(f, field(&bi->rules[r], gauges[k].offset), gauges[k].in_ns);
            }
        }
    }
}

static void put_table_gauge(FILE *f, const char *name, const char *help, const char *path,
                            uint64_t v)
{
    family(f, name, "gauge", help);
    fprintf(f, "%s{", name);
    put_label(f, "table", path);
    fprintf(f, "} %" PRIu64 "\n", v);
}

static const struct bucket_gauge {
    const char *name, *help;
    size_t offset; /* in struct rl_bucket_info, ns */
} bucket_gauges[] = {
    {"ratelimit_cooldown_seconds",
     "Pause left after a 429 before the bucket admits again (0: none).",
     offsetof(struct rl_bucket_info, feedback.cooldown_ns)},
    {"ratelimit_margin_seconds", "The margin decisions use: configured, or learned from 429s.",
     offsetof(struct rl_bucket_info, margin.effective_ns)},
    {"ratelimit_margin_configured_seconds", "The margin the rules configure.",
     offsetof(struct rl_bucket_info, policy.margin_ns)},
    {"ratelimit_delay_p99_seconds",
     "Estimated p99 of the delay from decision to response (0: not measured).",
     offsetof(struct rl_bucket_info, margin.delay_p99_ns)},
};

/* Bucket gauges of the vendor's feedback and the margin. */
static void put_feedback(FILE *f, const struct ctl_view *view)
{
    for (size_t k = 0; k < sizeof(bucket_gauges) / sizeof(bucket_gauges[0]); k++) {
        family(f, bucket_gauges[k].name, "gauge", bucket_gauges[k].help);
        for (size_t i = 0; i < view->n; i++) {
            fprintf(f, "%s{", bucket_gauges[k].name);
            put_label(f, "bucket", view->v[i].name);
            fputs("}", f);
            put_value(f, field(&view->v[i], bucket_gauges[k].offset), true);
        }
    }
}

/* Global rules: what ratelimit-agent last wrote, when it runs. */
static void put_global(FILE *f, const char *path, const struct ctl_view *view)
{
    static const struct {
        const char *name, *help;
        size_t offset;
    } g[] = {
        {"ratelimit_global_limit", "The global budget N shared by every host.",
         offsetof(struct ctl_global, limit)},
        {"ratelimit_global_lease_units", "Units this host holds in its lease.",
         offsetof(struct ctl_global, lease)},
        {"ratelimit_global_host_window_units", "This host's units in Redis's window.",
         offsetof(struct ctl_global, held)},
        {"ratelimit_global_other_hosts_window_units", "The other hosts' units in Redis's window.",
         offsetof(struct ctl_global, others)},
    };
    struct ctl_global st;
    if (ctl_global_read(path, NULL, &st) != 0)
        return;
    put_table_gauge(f, "ratelimit_global_redis_up", "1 if the agent's last Redis call succeeded.",
                    path, st.redis_ok && !st.stale);
    for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
        family(f, g[k].name, "gauge", g[k].help);
        for (size_t i = 0; i < view->n; i++) {
            if (!ctl_has_global(&view->v[i]) || ctl_global_read(path, view->v[i].name, &st) != 0 ||
                !st.found)
                continue;
            fprintf(f, "%s{", g[k].name);
            put_label(f, "bucket", view->v[i].name);
            fputs("}", f);
            put_value(f, field(&st, g[k].offset), false);
        }
    }
}

void ctl_prometheus(FILE *f, const struct rl_table_info *ti, const struct rl_table_space *sp,
                    const char *path, const struct ctl_view *view)
{
    put_counters(f, view);
    put_feedback(f, view);
    put_rule_gauges(f, view);
    put_table_gauge(f, "ratelimit_table_capacity", "Buckets the table can hold.", path,
                    ti->capacity);
    put_table_gauge(f, "ratelimit_table_buckets", "Buckets defined in the table.", path,
                    ti->buckets);
    put_table_gauge(f, "ratelimit_table_arena_bytes", "Bytes for rules and sliding logs.", path,
                    ti->arena_bytes);
    put_table_gauge(f, "ratelimit_table_arena_used_bytes", "Arena bytes in use.", path,
                    ti->arena_used);
    put_table_gauge(f, "ratelimit_table_arena_free_bytes",
                    "Arena bytes on the free lists, reused by the next blocks of their sizes.",
                    path, sp->arena_free);
    put_table_gauge(f, "ratelimit_table_arena_reclaimable_bytes",
                    "Arena bytes that switches and deletions left, freed once no process reads "
                    "them.",
                    path, sp->arena_reclaimable);
    put_table_gauge(f, "ratelimit_table_blocks_reused", "Policy blocks handed out again.", path,
                    sp->blocks_reused);
    put_table_gauge(f, "ratelimit_table_records_free",
                    "Bucket records free: never used, or deleted buckets'.", path,
                    ti->capacity - sp->records_used);
    put_table_gauge(f, "ratelimit_table_buckets_deleted", "Buckets deleted.", path, sp->deleted);
    put_table_gauge(f, "ratelimit_table_buckets_expired", "Buckets deleted as idle.", path,
                    sp->expired);
    put_table_gauge(f, "ratelimit_table_buckets_expired_auto",
                    "Buckets deleted as idle by their template's expiry.", path, sp->expired_auto);
    put_table_gauge(f, "ratelimit_table_index_slots", "Slots of the name index.", path,
                    sp->index_slots);
    put_table_gauge(f, "ratelimit_table_index_empty_slots",
                    "Index slots never used; a new name's lookup walks to one (resize rebuilds).",
                    path, sp->index_empty);
    put_table_gauge(f, "ratelimit_table_shim_attaches",
                    "Processes that attached to the table through the preload shim.", path,
                    ti->shim_attaches);
    put_global(f, path, view);
}
