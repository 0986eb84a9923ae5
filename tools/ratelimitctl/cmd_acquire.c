/*
 * cmd_acquire.c - `ratelimitctl acquire NAME`: take units from a bucket, for shell scripts.
 */
#include <string.h>

#include <bsd/stdlib.h>

#include "ctl.h"

#define DEFAULT_TIMEOUT_NS (60 * 1000000000ULL)

static const char help[] =
    "Usage: ratelimitctl acquire [--cost N] [--timeout DURATION | --nowait] NAME\n"
    "\n"
    "Take N units (default 1) from bucket NAME and every ancestor of its parent\n"
    "chain, all or nothing, before a shell script sends one request:\n"
    "  ratelimitctl acquire foundry && curl https://api.example.com/...\n"
    "A bucket not defined yet is made from its template (prefix/*), if any.\n"
    "By default acquire waits for its turn: it reserves the earliest instant the\n"
    "rules admit the request (first come, first served among all processes) and\n"
    "sleeps until then. If that instant is further away than the timeout, it\n"
    "reserves nothing and fails at once. With --nowait it takes the units only\n"
    "if the budget allows them now. A process killed while it waits loses its\n"
    "turn; the budget is never exceeded. Needs write access to the table.\n"
    "Prints nothing when admitted.\n"
    "\n"
    "Options:\n"
    "  --cost N            take N units, e.g. for a bulk endpoint (default 1)\n"
    "  --timeout DURATION  wait at most this long, e.g. 500ms, 30s, 5m (default\n"
    "                      60s); 'forever' waits however long the turn takes\n"
    "  --nowait            do not wait: fail at once unless admitted now\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status:\n"
    "  0  admitted: send the request now\n"
    "  1  --nowait: rejected; stderr says when it would be admitted, as in\n"
    "     \"ratelimitctl: acquire foundry: rejected: next unit in 1.2s\"\n"
    "  2  timed out: the turn would come after the timeout (stderr says when)\n"
    "  3  usage error: bad cost, duration or name\n"
    "  4  error: no table, no such bucket (nor template), a cost the rules can\n"
    "     never admit\n"
    "  5  permission denied: no write access to the table\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl acquire --timeout 5m foundry && curl ...\n"
    "  if ratelimitctl acquire --nowait --cost 10 ti/bulk; then ...; fi\n";

static const struct option options[] = {{"cost", required_argument, NULL, 'c'},
                                        {"timeout", required_argument, NULL, 't'},
                                        {"nowait", no_argument, NULL, 'n'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

struct request {
    const char *name;
    uint32_t cost;
    bool nowait, timeout_given;
    uint64_t timeout_ns;
};

static int parse_timeout(const struct ctl *c, const char *text, struct request *rq)
{
    rq->timeout_given = true;
    if (strcmp(text, "forever") == 0) {
        rq->timeout_ns = UINT64_MAX;
        return CTL_OK;
    }
    return ctl_parse_duration(c, "--timeout", text, &rq->timeout_ns);
}

/* "next unit in 1.2s" or "3 units in 1.2s". */
static void say_wait(const struct ctl *c, const struct request *rq, const char *what,
                     const char *tail, uint64_t wait_ns)
{
    char wait[CTL_HUMAN_MAX];
    ctl_human_duration(wait, sizeof(wait), wait_ns);
    if (rq->cost == 1)
        ctl_say(c, rq->name, "%s: next unit in %s%s", what, wait, tail);
    else
        ctl_say(c, rq->name, "%s: %u units in %s%s", what, (unsigned)rq->cost, wait, tail);
}

static int acquire(const struct ctl *c, rl_bucket *b, const struct request *rq)
{
    struct rl_decision d;
    char tail[CTL_HUMAN_MAX + 32], timeout[CTL_HUMAN_MAX];
    int err =
        rq->nowait ? rl_try_acquire(b, rq->cost, &d) : rl_acquire(b, rq->cost, rq->timeout_ns, &d);
    switch (err) {
    case 0:
        return CTL_OK;
    case RL_ELIMITED:
        say_wait(c, rq, "rejected", "", d.wait_ns);
        return CTL_REJECTED;
    case RL_ETIMEDOUT:
        /* A turn within the timeout that no rule's state can record (see rl_acquire). */
        if (d.wait_ns <= rq->timeout_ns)
            snprintf(tail, sizeof(tail), ", too far ahead to reserve");
        else
            snprintf(tail, sizeof(tail), ", beyond the %s timeout",
                     ctl_human_duration(timeout, sizeof(timeout), rq->timeout_ns));
        say_wait(c, rq, "timed out", tail, d.wait_ns);
        return CTL_TIMEDOUT;
    default:
        return ctl_fail(c, rq->name, err);
    }
}

int ctl_acquire_run(struct ctl *c, int argc, char **argv)
{
    struct request rq = {NULL, 1, false, false, DEFAULT_TIMEOUT_NS};
    const char *errstr;
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        switch (opt) {
        case 'c':
            rq.cost = (uint32_t)strtonum(optarg, 1, UINT32_MAX, &errstr);
            if (errstr)
                return ctl_usage(c, "--cost '%s' is %s", optarg, errstr);
            break;
        case 't':
            if (parse_timeout(c, optarg, &rq))
                return CTL_USAGE;
            break;
        case 'n':
            rq.nowait = true;
            break;
        default:
            return ctl_option_end(opt);
        }
    }
    if (rq.nowait && rq.timeout_given)
        return ctl_usage(c, "--nowait and --timeout exclude each other");
    if (argc - optind != 1)
        return ctl_usage(c, "expected one bucket NAME");
    rq.name = argv[optind];
    rl_table *t;
    rl_bucket *b;
    int rc = ctl_check_name(c, rq.name, false);
    if (rc || (rc = ctl_open(c, 0, &t)))
        return rc;
    int err = rl_bucket_get(t, rq.name, &b); /* made from its template on first use */
    rc = err ? ctl_fail(c, rq.name, err) : acquire(c, b, &rq);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_acquire_syntax = {help, options};
