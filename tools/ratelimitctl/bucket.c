/*
 * bucket.c - one bucket's state for people and programs: the canonical rule text, the
 * summary over its rules, and its JSON objects (schema in ratelimitctl(1), "JSON OUTPUT").
 */
#include "ctl.h"

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* Over the bucket's own rules and the vendor's feedback (a cool-down after a 429, the
 * server's remaining budget): what the bucket admits now, and when it admits a unit. */
void ctl_summarize(const struct rl_bucket_info *bi, struct ctl_summary *out)
{
    const struct rl_feedback_state *fb = &bi->feedback;
    out->remaining = UINT64_MAX;
    out->next_free_ns = 0;
    for (unsigned i = 0; i < bi->policy.nrules; i++) {
        const struct rl_rule_state *rs = &bi->rules[i];
        if (rs->remaining < out->remaining)
            out->remaining = rs->remaining;
        out->next_free_ns = max_u64(out->next_free_ns, rs->next_free_ns);
    }
    if (fb->server_reset_ns && fb->server_remaining < out->remaining)
        out->remaining = fb->server_remaining;
    if (fb->server_reset_ns && fb->server_remaining == 0)
        out->next_free_ns = max_u64(out->next_free_ns, fb->server_reset_ns);
    if (fb->cooldown_ns) {
        out->remaining = 0;
        out->next_free_ns = max_u64(out->next_free_ns, fb->cooldown_ns);
    }
    if (out->remaining == UINT64_MAX)
        out->remaining = 0;
}

void ctl_rules_text(const struct rl_bucket_info *bi, uint64_t expire_ns, char *buf, size_t len)
{
    char dur[CTL_HUMAN_MAX];
    int n = rl_policy_format(&bi->policy, buf, len);
    if (expire_ns && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " expire %s",
                 ctl_human_duration(dur, sizeof(dur), expire_ns));
}

/* The most units the rule holds at once: its burst for GCRA, else its limit. */
uint64_t ctl_rule_capacity(const struct rl_rule *r)
{
    return r->kind == RL_GCRA ? r->burst : r->limit;
}

/* The canonical text of one rule alone, e.g. "120/1m burst 20". */
void ctl_rule_text(const struct rl_rule *r, char *buf, size_t len)
{
    struct rl_policy one = {.nrules = 1, .margin_ns = RL_MARGIN_DEFAULT_NS};
    one.rules[0] = *r;
    rl_policy_format(&one, buf, len);
}

const char *ctl_kind_name(enum rl_rule_kind kind)
{
    switch (kind) {
    case RL_SLIDING:
        return "sliding";
    case RL_GCRA:
        return "gcra";
    case RL_FIXED:
        return "fixed";
    case RL_GLOBAL:
        return "global";
    }
    return "unknown";
}

static void json_rule(struct json *j, const struct rl_rule_state *rs)
{
    char text[CTL_POLICY_MAX];
    ctl_rule_text(&rs->rule, text, sizeof(text));
    json_open(j, NULL, '{');
    json_str(j, "rule", text);
    json_str(j, "kind", ctl_kind_name(rs->rule.kind));
    json_u64(j, "limit", rs->rule.limit);
    json_u64(j, "period_ns", rs->rule.period_ns);
    json_u64(j, "burst", rs->rule.kind == RL_GCRA ? rs->rule.burst : 0);
    json_u64(j, "used", rs->used);
    json_u64(j, "remaining", rs->remaining);
    json_duration(j, "next_free_ns", "next_free", rs->next_free_ns);
    json_close(j, '}');
}

static void json_feedback(struct json *j, const struct rl_feedback_state *fb)
{
    json_open(j, "feedback", '{');
    json_duration(j, "cooldown_ns", "cooldown", fb->cooldown_ns);
    json_u64(j, "backoff", fb->backoff);
    json_u64(j, "last_429_ns", fb->last_429_ns);
    json_bool(j, "tightened", fb->server_reset_ns != 0);
    json_u64(j, "server_remaining", fb->server_remaining);
    json_duration(j, "server_reset_ns", "server_reset", fb->server_reset_ns);
    json_close(j, '}');
}

/* The margin in effect and why: "configured", or "learned" from 429s the rules admitted. */
void ctl_json_margin(struct json *j, const struct rl_bucket_info *bi)
{
    const struct rl_margin_state *m = &bi->margin;
    json_open(j, "margin", '{');
    json_duration(j, "effective_ns", "effective", m->effective_ns);
    json_str(j, "reason", m->learned_ns > bi->policy.margin_ns ? "learned" : "configured");
    json_u64(j, "configured_ns", bi->policy.margin_ns);
    json_u64(j, "learned_ns", m->learned_ns);
    json_u64(j, "ceiling_ns", m->ceiling_ns);
    json_u64(j, "narrowing_steps", m->narrowing_steps);
    json_u64(j, "narrow_every_ns", m->narrow_every_ns);
    json_duration(j, "delay_p99_ns", "delay_p99", m->delay_p99_ns);
    json_duration(j, "recommended_ns", "recommended", m->recommended_ns);
    json_close(j, '}');
}

/* The bucket object: name, parent, policy, expiry, summary, "rules" (per-rule state) and the
 * vendor's "feedback". The caller closes it, after adding members of its own. */
void ctl_json_bucket(struct json *j, const char *key, const struct rl_bucket_info *bi,
                     uint64_t expire_ns)
{
    char policy[CTL_POLICY_MAX];
    struct ctl_summary sum;
    rl_policy_format(&bi->policy, policy, sizeof(policy));
    ctl_summarize(bi, &sum);
    json_open(j, key, '{');
    json_str(j, "name", bi->name);
    json_str(j, "parent", *bi->parent ? bi->parent : NULL);
    json_bool(j, "template", bi->is_template);
    json_str(j, "policy", policy);
    json_u64(j, "margin_ns", bi->policy.margin_ns);
    json_bool(j, "dry_run", bi->policy.flags & RL_POLICY_DRY_RUN);
    json_duration(j, "expire_ns", "expire", expire_ns);
    json_u64(j, "remaining", sum.remaining);
    json_duration(j, "next_free_ns", "next_free", sum.next_free_ns);
    json_open(j, "rules", '[');
    for (unsigned i = 0; i < bi->policy.nrules; i++)
        json_rule(j, &bi->rules[i]);
    json_close(j, ']');
    json_feedback(j, &bi->feedback);
    ctl_json_margin(j, bi);
}

void ctl_json_counters(struct json *j, const struct rl_counters *cn)
{
    json_open(j, "counters", '{');
    json_u64(j, "admitted", cn->admitted);
    json_u64(j, "admitted_units", cn->admitted_units);
    json_u64(j, "rejected", cn->rejected);
    json_u64(j, "waited", cn->waited);
    json_duration(j, "waited_ns", "waited_time", cn->waited_ns);
    json_u64(j, "dry_run_rejected", cn->dry_run_rejected);
    json_u64(j, "resets", cn->resets);
    json_u64(j, "reported_429", cn->reported_429);
    json_close(j, '}');
}
