/*
 * cmd_report.c - `ratelimitctl report NAME --status CODE ...`: tell the pool what the vendor
 * answered, from a shell script (rl_report), and say what the pool will do about it.
 */
#include <bsd/stdlib.h>

#include "ctl.h"

#define HOUR_NS (3600 * 1000000000ULL) /* rl_report's cap when max_cooldown_ns is 0 */

static const char help[] =
    "Usage: ratelimitctl report NAME --status CODE [--retry-after VALUE]\n"
    "           [--remaining N] [--reset VALUE] [--limit N] [--ratelimit VALUE]\n"
    "           [--ratelimit-policy VALUE] [--max-cooldown DURATION]\n"
    "           [--decided NS] [--json]\n"
    "\n"
    "Tell the pool what the vendor answered to a request drawn from bucket NAME,\n"
    "so that every process sharing the bucket acts on it (rl_report). A bucket\n"
    "not defined yet is made from its template (prefix/*), if any.\n"
    "  code=$(curl -s -o /dev/null -w '%{http_code}' ...)\n"
    "  ratelimitctl report foundry --status \"$code\" --retry-after \"$ra\"\n"
    "- A 429 (or a 503 with a Retry-After) pauses the bucket for every process:\n"
    "  until the Retry-After; else until the server's reset, when it says none\n"
    "  remain; else for an exponential backoff with full jitter (a random pause\n"
    "  below 1s, 2s, 4s, ... up to 1h) counting the pool's 429s in a row.\n"
    "- A success (2xx, 3xx) resets that count.\n"
    "- A remaining budget below the bucket's own tightens the bucket until the\n"
    "  server's reset. Its rules are never loosened.\n"
    "Give header values as received: the library checks them and ignores (and\n"
    "reports) malformed, negative, overflowing or absurd ones. An empty value is\n"
    "an absent header, so \"$ra\" may be empty. Needs write access to the table.\n"
    "Prints what the pool will do, one line per fact, e.g.\n"
    "  foundry: paused for 32s (Retry-After)\n"
    "  foundry: backoff attempt 3: paused for 2.1s (no Retry-After)\n"
    "  foundry: tightened: 3 remain until the server's reset in 58s\n"
    "  foundry: ignored malformed: Retry-After\n"
    "\n"
    "Options:\n"
    "  --status CODE             the HTTP status, 100 to 599 (required)\n"
    "  --retry-after VALUE       Retry-After: delay-seconds or an HTTP-date\n"
    "  --remaining N             X-RateLimit-Remaining\n"
    "  --reset VALUE             X-RateLimit-Reset: seconds from now, or epoch\n"
    "                            seconds (above 10^9) or milliseconds (10^12)\n"
    "  --limit N                 X-RateLimit-Limit (checked, not used)\n"
    "  --ratelimit VALUE         RateLimit: \"name\";r=REMAINING;t=SECONDS\n"
    "  --ratelimit-policy VALUE  RateLimit-Policy: \"name\";q=QUOTA;w=WINDOW\n"
    "  --max-cooldown DURATION   pause at most this long (default 1h)\n"
    "  --decided NS              the request's admission instant, as printed by\n"
    "                            `acquire --print-decided`: measures the delay, and\n"
    "                            a 429 the rules admitted widens the margin\n"
    "  --json                    one JSON object: {\"bucket\": NAME, \"status\":\n"
    "                            CODE, \"cooldown_ns\": NS, \"cooldown\": TEXT,\n"
    "                            \"cause\": \"retry-after\" | \"reset\" | \"backoff\" |\n"
    "                            null, \"backoff\": N, \"tightened\": BOOL,\n"
    "                            \"server_remaining\": N, \"server_reset_ns\": NS,\n"
    "                            \"server_reset\": TEXT, \"ignored\": [HEADER...]}\n"
    "  -h, --help                show this help\n"
    "The HEADERs ignored are Retry-After, X-RateLimit-Remaining,\n"
    "X-RateLimit-Reset, RateLimit (for RateLimit or RateLimit-Policy) and\n"
    "X-RateLimit-Limit.\n"
    "\n"
    "Exit status: 0 reported (whatever the status), 3 usage error (no status or\n"
    "one outside 100..599, such as curl's 000 when no answer came; a bad\n"
    "duration or name), 4 error (no table, no such bucket nor template),\n"
    "5 permission denied (no write access).\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl report foundry --status 429 --retry-after 30\n"
    "  ratelimitctl report ti/standard --status 200 --remaining 3 --reset 42\n";

static const struct option options[] = {{"status", required_argument, NULL, 's'},
                                        {"retry-after", required_argument, NULL, 'a'},
                                        {"remaining", required_argument, NULL, 'r'},
                                        {"reset", required_argument, NULL, 'e'},
                                        {"limit", required_argument, NULL, 'l'},
                                        {"ratelimit", required_argument, NULL, 'R'},
                                        {"ratelimit-policy", required_argument, NULL, 'P'},
                                        {"max-cooldown", required_argument, NULL, 'm'},
                                        {"decided", required_argument, NULL, 'd'},
                                        {"json", no_argument, NULL, 'j'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

/* The headers rl_report may ignore, in the order of enum rl_feedback_ignored. */
static const char *const ignored_names[] = {"Retry-After", "X-RateLimit-Remaining",
                                            "X-RateLimit-Reset", "RateLimit", "X-RateLimit-Limit"};

struct report {
    const char *name;
    struct rl_response response;
    bool json;
    struct rl_feedback fb;
    struct rl_feedback_state state; /* the bucket's feedback after the report */
};

/* A header value as given: an empty one is an absent header. */
static const char *header(const char *value)
{
    return *value ? value : NULL;
}

static int parse_status(const struct ctl *c, const char *text, int *status)
{
    const char *errstr;
    *status = (int)strtonum(text, 100, 599, &errstr);
    if (errstr)
        return ctl_usage(c, "--status '%s': expected an HTTP status, 100 to 599", text);
    return CTL_OK;
}

static int parse_max_cooldown(const struct ctl *c, const char *text, uint64_t *ns)
{
    if (ctl_parse_duration(c, "--max-cooldown", text, ns))
        return CTL_USAGE;
    return *ns ? CTL_OK : ctl_usage(c, "--max-cooldown must be longer than 0");
}

/* One option into rp; returns CTL_OK or an exit status. */
static int option(const struct ctl *c, int opt, struct report *rp)
{
    struct rl_response *r = &rp->response;
    const char *errstr;
    switch (opt) {
    case 's':
        return parse_status(c, optarg, &r->status);
    case 'a':
        r->retry_after = header(optarg);
        break;
    case 'r':
        r->remaining = header(optarg);
        break;
    case 'e':
        r->reset = header(optarg);
        break;
    case 'l':
        r->limit = header(optarg);
        break;
    case 'R':
        r->ratelimit = header(optarg);
        break;
    case 'P':
        r->ratelimit_policy = header(optarg);
        break;
    case 'm':
        return parse_max_cooldown(c, optarg, &r->max_cooldown_ns);
    case 'd':
        r->decided_ns = (uint64_t)strtonum(optarg, 1, INT64_MAX, &errstr);
        if (errstr)
            return ctl_usage(c,
                             "--decided '%s': expected the ns printed by acquire "
                             "--print-decided (%s)",
                             optarg, errstr);
        break;
    case 'j':
        rp->json = true;
        break;
    default:
        return ctl_option_end(opt);
    }
    return CTL_OK;
}

/* Why the pool pauses, by rl_report's rule (a backoff pause may be 0s). */
enum cause { NOT_PAUSED, BY_RETRY_AFTER, BY_RESET, BY_BACKOFF };
static const char *const cause_names[] = {NULL, "retry-after", "reset", "backoff"};

static enum cause cause_of(const struct report *rp)
{
    const struct rl_response *r = &rp->response;
    bool retry_after = r->retry_after && !(rp->fb.ignored & RL_IGNORED_RETRY_AFTER);
    if (r->status != 429 && !(r->status == 503 && retry_after))
        return NOT_PAUSED;
    if (rp->fb.backoff)
        return BY_BACKOFF;
    return retry_after ? BY_RETRY_AFTER : BY_RESET;
}

/* ", capped" when the pause is the longest the report accepts. */
static const char *capped(const struct report *rp)
{
    uint64_t cap = rp->response.max_cooldown_ns ? rp->response.max_cooldown_ns : HOUR_NS;
    return rp->fb.cooldown_ns == cap ? ", capped" : "";
}

static void print_pause(const struct report *rp)
{
    char pause[CTL_HUMAN_MAX];
    ctl_human_duration(pause, sizeof(pause), rp->fb.cooldown_ns);
    switch (cause_of(rp)) {
    case NOT_PAUSED:
        if (rp->response.status < 400)
            printf("%s: not paused; the count of 429s in a row is reset\n", rp->name);
        else
            printf("%s: not paused: only a 429, or a 503 with Retry-After, pauses\n", rp->name);
        break;
    case BY_RETRY_AFTER:
        printf("%s: paused for %s (Retry-After%s)\n", rp->name, pause, capped(rp));
        break;
    case BY_RESET:
        printf("%s: paused for %s (until the server's reset%s)\n", rp->name, pause, capped(rp));
        break;
    case BY_BACKOFF:
        printf("%s: backoff attempt %u: paused for %s (no Retry-After%s)\n", rp->name,
               rp->fb.backoff, pause, capped(rp));
        break;
    }
}

static void print_text(const struct report *rp)
{
    char reset[CTL_HUMAN_MAX];
    print_pause(rp);
    if (rp->fb.tightened)
        printf("%s: tightened: %llu %s until the server's reset in %s\n", rp->name,
               (unsigned long long)rp->state.server_remaining,
               rp->state.server_remaining == 1 ? "remains" : "remain",
               ctl_human_duration(reset, sizeof(reset), rp->state.server_reset_ns));
    if (!rp->fb.ignored)
        return;
    printf("%s: ignored malformed:", rp->name);
    for (unsigned i = 0, sep = 0; i < sizeof(ignored_names) / sizeof(ignored_names[0]); i++)
        if (rp->fb.ignored & (1U << i))
            printf("%s %s", sep++ ? "," : "", ignored_names[i]);
    putchar('\n');
}

static void print_json(const struct report *rp)
{
    struct json j;
    json_begin(&j, stdout);
    json_open(&j, NULL, '{');
    json_str(&j, "bucket", rp->name);
    json_u64(&j, "status", (uint64_t)rp->response.status);
    json_duration(&j, "cooldown_ns", "cooldown", rp->fb.cooldown_ns);
    json_str(&j, "cause", cause_names[cause_of(rp)]);
    json_u64(&j, "backoff", rp->fb.backoff);
    json_bool(&j, "tightened", rp->fb.tightened);
    json_u64(&j, "server_remaining", rp->fb.tightened ? rp->state.server_remaining : 0);
    json_duration(&j, "server_reset_ns", "server_reset",
                  rp->fb.tightened ? rp->state.server_reset_ns : 0);
    json_open(&j, "ignored", '[');
    for (unsigned i = 0; i < sizeof(ignored_names) / sizeof(ignored_names[0]); i++)
        if (rp->fb.ignored & (1U << i))
            json_str(&j, NULL, ignored_names[i]);
    json_close(&j, ']');
    json_close(&j, '}');
    json_end(&j);
}

static int report(const struct ctl *c, rl_table *t, struct report *rp)
{
    rl_bucket *b;
    struct rl_bucket_info bi;
    int err = rl_bucket_get(t, rp->name, &b); /* made from its template on first use */
    if (err || (err = rl_report(b, &rp->response, &rp->fb)))
        return ctl_fail(c, rp->name, err);
    if (rp->fb.tightened && rl_bucket_info(b, &bi) == 0)
        rp->state = bi.feedback; /* the view now in force, perhaps an older stricter one */
    if (rp->json)
        print_json(rp);
    else
        print_text(rp);
    return CTL_OK;
}

int ctl_report_run(struct ctl *c, int argc, char **argv)
{
    struct report rp = {.response = RL_RESPONSE_INIT};
    rl_table *t;
    int opt, rc;
    while ((opt = ctl_getopt(c, argc, argv)) != -1)
        if ((rc = option(c, opt, &rp)) || opt == CTL_OPT_HELP)
            return rc;
    if (argc - optind != 1)
        return ctl_usage(c, "expected one bucket NAME");
    if (!rp.response.status)
        return ctl_usage(c, "--status CODE is required");
    rp.name = argv[optind];
    if ((rc = ctl_check_name(c, rp.name, false)) || (rc = ctl_open(c, 0, &t)))
        return rc;
    rc = report(c, t, &rp);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_report_syntax = {help, options};
