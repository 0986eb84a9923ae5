/*
 * vendor_pool - a preforked pool of workers calling a (mock) vendor API over HTTP.
 *
 *   vendor_pool --port P --mode naive  : every worker paces itself as if the budget were
 *                                        its own, as pools do today
 *   vendor_pool --port P --mode shared : every worker goes through rl_call() on one shared
 *                                        bucket: acquire, send, report, retry on a 429
 *
 * Prints one line of totals: requests sent, answered 200, answered 429.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "ratelimit.h"

struct totals {
    atomic_uint sent, ok, throttled, failed;
};

struct pool {
    unsigned workers, seconds, port;
    bool shared;
    const char *table, *bucket, *rules;
    struct totals *totals;
};

/* What one HTTP exchange returned: the status and the rate-limit headers. */
struct reply {
    char buf[4096];
    struct rl_response response;
};

static const char *header(char *head, const char *name)
{
    size_t len = strlen(name);
    for (char *line = strstr(head, "\r\n"); line && line[2] != '\r';
         line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, name, len) == 0 && line[2 + len] == ':')
            return line + 3 + len;
    return NULL;
}

/* Cut the header values out of the response head (NUL-terminate each at its CR). */
static void parse_reply(struct reply *r)
{
    struct rl_response *resp = &r->response;
    static const char *names[] = {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                                  "X-RateLimit-Reset"};
    const char *values[4];
    char *end = strstr(r->buf, "\r\n\r\n");
    if (end)
        end[2] = '\0';
    *resp = (struct rl_response)RL_RESPONSE_INIT;
    sscanf(r->buf, "HTTP/%*s %d", &resp->status);
    for (int i = 0; i < 4; i++)
        values[i] = header(r->buf, names[i]);
    for (char *cr = strchr(r->buf, '\r'); cr; cr = strchr(cr + 1, '\r'))
        *cr = '\0';
    resp->retry_after = values[0];
    resp->limit = values[1];
    resp->remaining = values[2];
    resp->reset = values[3];
}

/* One GET to the vendor on loopback; fills r. Returns 0 or -1. */
static int http_get(unsigned port, struct reply *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    static const char req[] = "GET /api/v1/users HTTP/1.0\r\nHost: localhost\r\n\r\n";
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t got = 0;
    ssize_t n = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1))
        while (got < sizeof(r->buf) - 1 &&
               (n = read(fd, r->buf + got, sizeof(r->buf) - 1 - got)) > 0)
            got += (size_t)n;
    close(fd);
    r->buf[got] = '\0';
    if (got == 0)
        return -1;
    parse_reply(r);
    return 0;
}

struct call {
    const struct pool *pool;
    struct reply reply;
};

static void count(const struct pool *p, int status)
{
    atomic_fetch_add(&p->totals->sent, 1);
    if (status == 200)
        atomic_fetch_add(&p->totals->ok, 1);
    else if (status == 429)
        atomic_fetch_add(&p->totals->throttled, 1);
    else
        atomic_fetch_add(&p->totals->failed, 1);
}

/* rl_call's request callback: send, count, hand the response back for reporting. */
static int send_request(void *arg, struct rl_response *resp)
{
    struct call *c = arg;
    if (http_get(c->pool->port, &c->reply) < 0)
        return -1;
    count(c->pool, c->reply.response.status);
    *resp = c->reply.response;
    return 0;
}

static void shared_worker(const struct pool *p, uint64_t stop)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    rl_bucket *b;
    struct call c = {p, {.buf = ""}};
    struct rl_response last = RL_RESPONSE_INIT;
    o.path = p->table;
    if (rl_table_open(&o, &t) < 0 || rl_bucket_lookup(t, p->bucket, &b) < 0) {
        fprintf(stderr, "vendor_pool: %s\n", rl_errdetail());
        _exit(1);
    }
    while (rl_now_ns() < stop) {
        int rc = rl_call(b, 1, stop - rl_now_ns(), 3, send_request, &c, &last);
        if (rc == RL_ETIMEDOUT)
            break; /* no turn before the end of the run */
        if (rc < 0 && rc != RL_ELIMITED)
            atomic_fetch_add(&p->totals->failed, 1);
    }
    rl_table_close(t);
    _exit(0);
}

/* Today's pool: each worker believes the whole budget is its own. */
static void naive_worker(const struct pool *p, uint64_t stop, uint64_t interval)
{
    struct reply r;
    for (uint64_t next = rl_now_ns(); next < stop; next += interval) {
        struct timespec ts = {(time_t)(next / 1000000000ULL), (long)(next % 1000000000ULL)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        count(p, http_get(p->port, &r) == 0 ? r.response.status : 0);
    }
    _exit(0);
}

static int define_bucket(const struct pool *p)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct rl_parse_error e;
    struct rl_policy pol;
    rl_table *t;
    o.path = p->table;
    if (rl_policy_parse(p->rules, &pol, &e) < 0) {
        fprintf(stderr, "vendor_pool: --rules '%s': column %u: %s\n", p->rules, e.column,
                e.message);
        return -1;
    }
    int rc = rl_table_open(&o, &t);
    if (rc == 0)
        rc = rl_bucket_define(t, p->bucket, &pol, NULL, NULL);
    if (rc < 0)
        fprintf(stderr, "vendor_pool: %s\n", rl_errdetail());
    rl_table_close(t);
    return rc;
}

static void usage(const char *why)
{
    fprintf(stderr,
            "usage: vendor_pool --port P --mode naive|shared --rules N/DURATION [--workers W]\n"
            "                   [--seconds S] [--table PATH] [--bucket NAME]\n%s\n",
            why);
    exit(2);
}

static void parse_args(int argc, char **argv, struct pool *p)
{
    static const struct option opts[] = {
        {"port", 1, 0, 'p'},    {"mode", 1, 0, 'm'},  {"rules", 1, 0, 'r'},  {"workers", 1, 0, 'w'},
        {"seconds", 1, 0, 's'}, {"table", 1, 0, 't'}, {"bucket", 1, 0, 'b'}, {0, 0, 0, 0}};
    const char *err = NULL;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1 && !err;) {
        if (c == 'p')
            p->port = (unsigned)strtonum(optarg, 1, 65535, &err);
        else if (c == 'm')
            p->shared = strcmp(optarg, "shared") == 0;
        else if (c == 'r')
            p->rules = optarg;
        else if (c == 'w')
            p->workers = (unsigned)strtonum(optarg, 1, 256, &err);
        else if (c == 's')
            p->seconds = (unsigned)strtonum(optarg, 1, 600, &err);
        else if (c == 't')
            p->table = optarg;
        else if (c == 'b')
            p->bucket = optarg;
        else
            err = "unknown option";
    }
    if (err || !p->port || !p->rules)
        usage(err ? err : "--port and --rules are required");
}

int main(int argc, char **argv)
{
    struct pool p = {16, 3, 0, false, "/dev/shm/ratelimit-vendor-pool", "foundry", NULL, NULL};
    struct rl_policy pol;
    parse_args(argc, argv, &p);
    if (rl_policy_parse(p.rules, &pol, NULL) < 0)
        usage("--rules: not a valid rule");
    if (p.shared && define_bucket(&p) < 0)
        return 1;
    p.totals =
        mmap(NULL, sizeof(*p.totals), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t stop = rl_now_ns() + p.seconds * 1000000000ULL;
    uint64_t interval = pol.rules[0].period_ns / pol.rules[0].limit; /* the whole budget */
    for (unsigned i = 0; i < p.workers; i++)
        if (fork() == 0) {
            if (p.shared)
                shared_worker(&p, stop);
            naive_worker(&p, stop, interval);
        }
    while (wait(NULL) > 0)
        ;
    printf("sent %u, answered 200: %u, answered 429: %u, failed: %u\n", p.totals->sent,
           p.totals->ok, p.totals->throttled, p.totals->failed);
    return 0;
}
