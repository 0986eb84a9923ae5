/*
 * policy.c - the one parser for rule text, shared by the library, the config file and the
 * command line. Grammar in ratelimit.h and README ("Rule syntax").
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rule.h"

struct cursor {
    const char *text;
    const char *p;
    struct rl_parse_error *err;
};

static int fail_at(struct cursor *c, const char *at, const char *fmt, ...)
{
    if (c->err) {
        va_list ap;
        va_start(ap, fmt);
        c->err->column = (unsigned)(at - c->text) + 1;
        vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
        va_end(ap);
    }
    return RL_EPARSE;
}

static void skip_space(struct cursor *c)
{
    while (*c->p == ' ' || *c->p == '\t')
        c->p++;
}

/* The word at the cursor (letters, digits, '-'), without moving. */
static size_t word_len(const char *p)
{
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '-')
        n++;
    return n;
}

static bool take_word(struct cursor *c, const char *word)
{
    size_t n = word_len(c->p);
    if (n != strlen(word) || strncmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

static int parse_count(struct cursor *c, uint64_t *out, const char *what)
{
    const char *start = c->p;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*c->p))
        return fail_at(c, start, "expected %s (a whole number)", what);
    while (isdigit((unsigned char)*c->p)) {
        unsigned d = (unsigned)(*c->p++ - '0');
        if (v > (UINT64_MAX - d) / 10)
            return fail_at(c, start, "%s is too large", what);
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    uint64_t ns;
} units[] = {{"ns", 1ULL},
             {"us", 1000ULL},
             {"ms", 1000000ULL},
             {"s", 1000000000ULL},
             {"sec", 1000000000ULL},
             {"m", 60000000000ULL},
             {"min", 60000000000ULL},
             {"h", 3600000000000ULL},
             {"hour", 3600000000000ULL},
             {"d", 86400000000000ULL},
             {"day", 86400000000000ULL}};

/* DURATION := [COUNT] UNIT; a missing count means 1 ("/s", "/min"). */
int rl_parse_duration(const char *text, const char **end, uint64_t *ns, struct rl_parse_error *e)
{
    struct cursor c = {text, text, e};
    uint64_t n = 1;
    if (isdigit((unsigned char)*c.p) && parse_count(&c, &n, "a duration") < 0)
        return RL_EPARSE;
    const char *unit = c.p;
    size_t len = 0;
    while (isalpha((unsigned char)unit[len]))
        len++;
    if (len == 0 && n == 0 && unit != text) { /* a bare 0 needs no unit */
        *ns = 0;
        *end = unit;
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (len == strlen(units[i].name) && strncmp(unit, units[i].name, len) == 0) {
            if (n > UINT64_MAX / units[i].ns)
                return fail_at(&c, text, "duration is too long");
            *ns = n * units[i].ns;
            *end = unit + len;
            return 0;
        }
    }
    return fail_at(&c, unit, "expected a duration unit (ns, us, ms, s, m, h or d)");
}

static int parse_duration_at(struct cursor *c, uint64_t *ns)
{
    struct rl_parse_error e;
    if (rl_parse_duration(c->p, &c->p, ns, &e) < 0)
        return fail_at(c, c->p + e.column - 1, "%s", e.message);
    return 0;
}

/* A Redis address at p (a scheme and ':'): only a config file may give one, after 'global'. */
static bool address_at(const char *p)
{
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    return n > 0 && p[n] == ':';
}

static int address_fail(struct cursor *c)
{
    return fail_at(c, c->p,
                   "a Redis address goes only in a config file, right after 'global' "
                   "(ratelimit-agent reads it there); here write 'N/T global lease K'");
}

static int parse_rule(struct cursor *c, struct rl_rule *r)
{
    memset(r, 0, sizeof(*r));
    r->kind = RL_SLIDING;
    if (parse_count(c, &r->limit, "a request count such as 200 in 200/60s") < 0)
        return RL_EPARSE;
    skip_space(c);
    if (*c->p != '/')
        return fail_at(c, c->p, "expected '/' and a duration after the count, as in 200/60s");
    c->p++;
    skip_space(c);
    if (parse_duration_at(c, &r->period_ns) < 0)
        return RL_EPARSE;
    skip_space(c);
    if (take_word(c, "burst")) {
        skip_space(c);
        r->kind = RL_GCRA;
        return parse_count(c, &r->burst, "a burst size after 'burst'");
    }
    if (take_word(c, "global")) {
        r->kind = RL_GLOBAL;
        r->burst = r->limit / 10 ? r->limit / 10 : 1; /* the largest lease: N/10 by default */
        r->burst = r->burst < RL_LEASE_MAX ? r->burst : RL_LEASE_MAX;
        skip_space(c);
        if (address_at(c->p))
            return address_fail(c);
        if (!take_word(c, "lease"))
            return 0;
        skip_space(c);
        return parse_count(c, &r->burst, "the largest lease in units after 'lease'");
    }
    if (take_word(c, "fixed"))
        r->kind = RL_FIXED;
    else
        take_word(c, "sliding");
    return 0;
}

/* Options seen so far, bits of `seen`: the grammar allows each once. */
#define SEEN_MARGIN  1U
#define SEEN_DRY_RUN 2U

static int parse_option(struct cursor *c, struct rl_policy *out, unsigned *seen)
{
    const char *at = c->p;
    unsigned bit = take_word(c, "margin")    ? SEEN_MARGIN
                   : take_word(c, "dry-run") ? SEEN_DRY_RUN
                                             : 0;
    if (bit & *seen)
        return fail_at(c, at, "duplicate '%s': each option is given at most once",
                       bit == SEEN_MARGIN ? "margin" : "dry-run");
    *seen |= bit;
    if (bit == SEEN_MARGIN) {
        skip_space(c);
        const char *value = c->p;
        if (parse_duration_at(c, &out->margin_ns) < 0)
            return RL_EPARSE;
        return out->margin_ns > RL_MARGIN_MAX_NS ? fail_at(c, value, "margin is above 60s") : 0;
    }
    if (bit == SEEN_DRY_RUN) {
        out->flags |= RL_POLICY_DRY_RUN;
        return 0;
    }
    if (address_at(at))
        return address_fail(c);
    if (*at == ',')
        return fail_at(c, at,
                       "a rule after the options: 'margin' and 'dry-run' apply to the "
                       "whole bucket and come after its last rule, as in "
                       "'10/1s, 100/1m margin 50ms'");
    size_t n = word_len(at);
    return fail_at(c, at,
                   "unexpected '%.*s': expected ',' and another rule, 'margin', or 'dry-run'",
                   (int)(n ? n : 1), at);
}

static int check_rule(const struct rl_rule *r, unsigned i, struct cursor *c, const char *at);

static int parse_policy(struct cursor *c, struct rl_policy *out)
{
    for (;;) {
        skip_space(c);
        if (out->nrules == RL_MAX_RULES)
            return fail_at(c, c->p, "too many rules: at most %d per bucket", RL_MAX_RULES);
        const char *at = c->p;
        if (parse_rule(c, &out->rules[out->nrules]) < 0 ||
            check_rule(&out->rules[out->nrules], out->nrules, c, at) < 0)
            return RL_EPARSE;
        for (unsigned i = 0; i < out->nrules; i++)
            if (out->rules[i].kind == RL_GLOBAL && out->rules[out->nrules].kind == RL_GLOBAL)
                return fail_at(c, at, "rule %u: at most one global rule per bucket",
                               out->nrules + 1);
        out->nrules++;
        skip_space(c);
        if (*c->p != ',')
            break;
        c->p++;
    }
    unsigned seen = 0;
    while (skip_space(c), *c->p)
        if (parse_option(c, out, &seen) < 0)
            return RL_EPARSE;
    return 0;
}

/* Semantic checks of rule i, reported at `at` (the rule's first character). */
static int check_rule(const struct rl_rule *r, unsigned i, struct cursor *cur, const char *at)
{
    struct cursor c = *cur;
    unsigned n = i + 1;
    c.p = at;
    if (r->limit == 0)
        return fail_at(&c, c.p, "rule %u: a limit of 0 admits nothing", n);
    if (r->limit > RL_LIMIT_MAX)
        return fail_at(&c, c.p, "rule %u: limit %" PRIu64 " is above %llu", n, r->limit,
                       RL_LIMIT_MAX);
    if (r->period_ns < RL_PERIOD_MIN_NS || r->period_ns > RL_PERIOD_MAX_NS)
        return fail_at(&c, c.p, "rule %u: the period must be between 1ms and 366d", n);
    if (r->kind == RL_FIXED && r->period_ns < RL_FIXED_PERIOD_MIN_NS)
        return fail_at(&c, c.p, "rule %u: a fixed window must be at least 100ms long", n);
    if (r->kind == RL_SLIDING && r->limit > RL_SLIDING_LIMIT_MAX)
        return fail_at(&c, c.p,
                       "rule %u: a sliding window keeps one entry per unit, at most %u; "
                       "use 'fixed' or 'burst' for larger limits",
                       n, RL_SLIDING_LIMIT_MAX);
    if (r->kind == RL_GCRA && (r->burst == 0 || r->burst > RL_LIMIT_MAX ||
                               r->burst > (1ULL << 62) / rl__gcra_interval(r->limit, r->period_ns)))
        return fail_at(&c, c.p,
                       "rule %u: burst %" PRIu64 " is out of range (1..%llu, and burst "
                       "times T/N at most 146 years)",
                       n, r->burst, RL_LIMIT_MAX);
    if (r->kind == RL_GLOBAL && r->period_ns < RL_GLOBAL_MIN_NS)
        return fail_at(&c, c.p, "rule %u: a global rule's period must be at least 1s", n);
    if (r->kind == RL_GLOBAL && (r->burst == 0 || r->burst > r->limit || r->burst > RL_LEASE_MAX))
        return fail_at(&c, c.p,
                       "rule %u: lease %" PRIu64 " is out of range (1..the limit, at most %u)", n,
                       r->burst, RL_LEASE_MAX);
    if (r->kind > RL_GLOBAL)
        return fail_at(&c, c.p, "rule %u: unknown kind %d", n, (int)r->kind);
    return 0;
}

int rl_policy_check(const struct rl_policy *p, struct rl_parse_error *e)
{
    struct cursor c = {"", "", e};
    if (p->nrules == 0 || p->nrules > RL_MAX_RULES)
        return fail_at(&c, c.p, "a bucket needs 1 to %d rules", RL_MAX_RULES);
    if (p->margin_ns > RL_MARGIN_MAX_NS)
        return fail_at(&c, c.p, "margin is above 60s");
    if (p->flags & ~(unsigned)RL_POLICY_DRY_RUN)
        return fail_at(&c, c.p, "unknown policy flags");
    unsigned global = 0;
    for (unsigned i = 0; i < p->nrules; i++) {
        if (check_rule(&p->rules[i], i, &c, c.p) < 0)
            return RL_EPARSE;
        global += p->rules[i].kind == RL_GLOBAL;
    }
    /* The agent keeps one lease per bucket: a second global rule would never get units. */
    return global > 1 ? fail_at(&c, c.p, "at most one global rule per bucket") : 0;
}

int rl_policy_parse(const char *text, struct rl_policy *out, struct rl_parse_error *err)
{
    struct cursor c = {text, text, err};
    struct rl_policy p = {.margin_ns = RL_MARGIN_DEFAULT_NS};
    if (!text || !out)
        return RL_EINVAL;
    if (parse_policy(&c, &p) < 0 || rl_policy_check(&p, err) < 0)
        return RL_EPARSE;
    *out = p;
    return 0;
}

int rl__duration_format(char *buf, size_t len, uint64_t ns)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } big[] = {{"d", 86400000000000ULL}, {"h", 3600000000000ULL}, {"m", 60000000000ULL},
               {"s", 1000000000ULL},     {"ms", 1000000ULL},      {"us", 1000ULL}};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
        if (ns >= big[i].ns && ns % big[i].ns == 0)
            return snprintf(buf, len, "%" PRIu64 "%s", (uint64_t)(ns / big[i].ns), big[i].name);
    return snprintf(buf, len, "%" PRIu64 "ns", ns);
}

struct out {
    char *buf;
    size_t len, used;
};

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->used < o->len ? o->len - o->used : 0;
    int n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
    va_end(ap);
    o->used += n > 0 ? (size_t)n : 0;
}

int rl_policy_format(const struct rl_policy *p, char *buf, size_t len)
{
    struct out o = {buf, len, 0};
    char dur[32];
    if (len)
        buf[0] = '\0';
    for (unsigned i = 0; i < p->nrules && i < RL_MAX_RULES; i++) {
        const struct rl_rule *r = &p->rules[i];
        rl__duration_format(dur, sizeof(dur), r->period_ns);
        put(&o, "%s%" PRIu64 "/%s", i ? ", " : "", r->limit, dur);
        if (r->kind == RL_GCRA)
            put(&o, " burst %" PRIu64, r->burst);
        else if (r->kind == RL_FIXED)
            put(&o, " fixed");
        else if (r->kind == RL_GLOBAL)
            put(&o, " global lease %" PRIu64, r->burst);
    }
    if (p->margin_ns != RL_MARGIN_DEFAULT_NS) {
        rl__duration_format(dur, sizeof(dur), p->margin_ns);
        put(&o, " margin %s", p->margin_ns ? dur : "0ms");
    }
    if (p->flags & RL_POLICY_DRY_RUN)
        put(&o, " dry-run");
    return (int)o.used;
}
