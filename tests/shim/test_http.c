/*
 * test_http.c - the request-level shim's HTTP/1.1 parser (src/shim/http.c), alone: the
 * shim's decisions are replaced by stubs that count the units taken, record the responses
 * reported and count the messages. Every case checks exact counts, and most run again with
 * the bytes split at every offset (the host may write a request in any pieces).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../src/shim/http.h"

/* ------------------------------------------------------------------ stubs */

static unsigned units, says, reports, takes;
static int take_error;
static bool take_passes;    /* the take times out and the route passes: not admitted */
static char last[1024];     /* the last report: "status retry limit remaining reset rl policy" */
static uint64_t decided[8]; /* the decision instant of each report, in order */

/* Take k (from 1) admits at instant k * 1000. */
int shim_take_units(const struct shim_match *m, unsigned n, uint64_t *decided_ns)
{
    (void)m;
    *decided_ns = 0;
    if (take_error)
        return take_error;
    units += n;
    takes++;
    *decided_ns = take_passes ? 0 : takes * 1000ULL;
    return 0;
}

void shim_report(const struct shim_match *m, const struct rl_response *r)
{
    (void)m;
    if (reports < sizeof(decided) / sizeof(decided[0]))
        decided[reports] = r->decided_ns;
    reports++;
#define V(x) ((x) ? (x) : "-")
    snprintf(last, sizeof(last), "%d %s %s %s %s %s %s", r->status, V(r->retry_after), V(r->limit),
             V(r->remaining), V(r->reset), V(r->ratelimit), V(r->ratelimit_policy));
#undef V
}

/* The parser's connections hold no table here (m.tab is NULL). */
void shim_match_hold(const struct shim_match *m)
{
    cr_assert_null(m->tab);
}

void shim_match_done(struct shim_match *m)
{
    cr_assert_null(m->tab);
}

void shim_say(const char *fmt, ...)
{
    (void)fmt;
    says++;
}

/* ------------------------------------------------------------------ helpers */

static const struct rl_route route = {"127.0.0.1",      32, 80, "v", 0, RL_ROUTE_FAIL, 1,
                                      RL_COUNT_REQUESTS};

static struct shim_http *conn(void)
{
    struct shim_match m = {&route, NULL, NULL};
    units = says = reports = takes = 0;
    take_error = 0;
    take_passes = false;
    memset(decided, 0, sizeof(decided));
    last[0] = '\0';
    struct shim_http *h = shim_http_new(&m);
    cr_assert_not_null(h);
    return h;
}

/* Write s whole: 0 or the error. */
static int put(struct shim_http *h, const char *s)
{
    size_t n = strlen(s);
    int err = shim_http_before_send(h, s, n);
    if (!err)
        shim_http_after_send(h, s, n, n);
    return err;
}

/* Write s in two pieces, split at `at`. */
static void put_split(struct shim_http *h, const char *s, size_t at)
{
    size_t n = strlen(s);
    cr_assert_eq(shim_http_before_send(h, s, at), 0);
    shim_http_after_send(h, s, at, at);
    cr_assert_eq(shim_http_before_send(h, s + at, n - at), 0);
    shim_http_after_send(h, s + at, n - at, n - at);
}

static void get(struct shim_http *h, const char *s)
{
    shim_http_after_recv(h, s, strlen(s));
}

/* The units that writing s takes, split at each offset in turn: all must agree. */
static unsigned units_split_anywhere(const char *s)
{
    struct shim_http *h = conn();
    cr_assert_eq(put(h, s), 0);
    unsigned whole = units;
    cr_assert_not(shim_http_passing(h), "whole: %s", s);
    shim_http_free(h);
    for (size_t at = 0; at <= strlen(s); at++) {
        h = conn();
        put_split(h, s, at);
        cr_assert_eq(units, whole, "split at %zu: %u units, whole %u", at, units, whole);
        cr_assert_not(shim_http_passing(h));
        shim_http_free(h);
    }
    return whole;
}

/* ------------------------------------------------------------------ requests */

Test(http, one_unit_per_request_pipelined)
{
    cr_expect_eq(units_split_anywhere("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                                      "DELETE /c?d=e HTTP/1.0\r\n\r\n"),
                 3);
}

Test(http, content_length_body_is_not_a_request)
{
    cr_expect_eq(units_split_anywhere("POST /a HTTP/1.1\r\nContent-Length:  18 \r\n\r\n"
                                      "GET / HTTP/1.1\r\n\r\n"
                                      "GET /b HTTP/1.1\r\n\r\n"),
                 2);
}

Test(http, chunked_body_is_not_a_request)
{
    cr_expect_eq(units_split_anywhere("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "12;ext=1\r\nGET / HTTP/1.1\r\n\r\n\r\n"
                                      "0\r\nTrailer: x\r\n\r\n"
                                      "GET /b HTTP/1.1\r\n\r\n"),
                 2);
}

Test(http, empty_lines_between_requests_are_ignored)
{
    cr_expect_eq(units_split_anywhere("GET /a HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 2);
}

Test(http, a_short_write_counts_its_requests_once)
{
    static const char two[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    for (size_t sent = 0; sent < sizeof(two) - 1; sent++) {
        struct shim_http *h = conn();
        cr_assert_eq(shim_http_before_send(h, two, sizeof(two) - 1), 0);
        shim_http_after_send(h, two, sizeof(two) - 1, sent); /* the host writes the rest */
        cr_assert_eq(put(h, two + sent), 0);
        cr_expect_eq(units, 2, "sent %zu first: %u units", sent, units);
        cr_assert_eq(put(h, "GET /c HTTP/1.1\r\n\r\n"), 0);
        cr_expect_eq(units, 3);
        shim_http_free(h);
    }
}

Test(http, a_write_refused_its_turn_is_not_parsed)
{
    struct shim_http *h = conn();
    take_error = ETIMEDOUT;
    cr_assert_eq(put(h, "GET /a HTTP/1.1\r\n\r\n"), ETIMEDOUT);
    take_error = 0;
    cr_assert_eq(put(h, "GET /a HTTP/1.1\r\n\r\n"), 0);
    cr_expect_eq(units, 1);
    get(h, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    cr_expect_eq(reports, 1, "one request in flight, not two");
    cr_expect_not(shim_http_passing(h));
    shim_http_free(h);
}

Test(http, malformed_requests_pass_through_with_one_message)
{
    static const char *const bad[] = {
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1\rX\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\n folded: header\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct shim_http *h = conn();
        put(h, bad[i]);
        cr_expect(shim_http_passing(h), "%s", bad[i]);
        unsigned before = units;
        put(h, "GET / HTTP/1.1\r\n\r\n");
        cr_expect_eq(units, before, "nothing counted after pass-through: %s", bad[i]);
        cr_expect_eq(says, 1, "%s", bad[i]);
        shim_http_free(h);
    }
}

Test(http, a_head_over_64_kib_passes_through)
{
    static char big[70000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    struct shim_http *h = conn();
    cr_assert_eq(shim_http_before_send(h, big, sizeof(big)), 0);
    cr_expect(shim_http_passing(h));
    cr_expect_eq(units, 1, "the head began: its unit is taken");
    shim_http_free(h);
}

Test(http, tls_passes_through_quietly)
{
    struct shim_http *h = conn();
    put(h, "\x16\x03\x01\x02\x00\x01");
    cr_expect(shim_http_passing(h));
    cr_expect_eq(units, 0);
    cr_expect_eq(says, 0);
    shim_http_free(h);
}

/* ------------------------------------------------------------------ responses */

Test(http, a_429_is_reported_with_its_headers)
{
    struct shim_http *h = conn();
    put(h, "GET / HTTP/1.1\r\n\r\n");
    get(h, "HTTP/1.1 429 Too Many Requests\r\nretry-after:  3 \r\nX-RateLimit-Limit: 50\r\n"
           "X-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 1700000000\r\n"
           "RateLimit: \"default\";r=0;t=3\r\nRateLimit-Policy: \"default\";q=50;w=1\r\n"
           "Content-Length: 2\r\n\r\n{}");
    cr_expect_eq(reports, 1);
    cr_expect_str_eq(last, "429 3 50 0 1700000000 \"default\";r=0;t=3 \"default\";q=50;w=1");
    shim_http_free(h);
}

Test(http, responses_framed_every_way)
{
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nHTTP/1.1 500 x\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n" /* HEAD: no body */
                    "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
                    "HTTP/1.1 201\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nHTTP/\r\n0\r\n\r\n"
                    "HTTP/1.1 429 Slow\r\nRetry-After: 1\r\n\r\nHTTP/1.1 200 no\r\n\r\n";
    for (size_t at = 0; at <= strlen(r); at += 7) {
        struct shim_http *c = conn();
        put(c, "GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"
               "GET /4 HTTP/1.1\r\n\r\nGET /5 HTTP/1.1\r\n\r\n");
        shim_http_after_recv(c, r, at);
        shim_http_after_recv(c, r + at, strlen(r) - at);
        cr_expect_eq(units, 5);
        cr_expect_eq(reports, 5, "split at %zu", at);
        cr_expect_str_eq(last, "429 1 - - - - -", "the last one ends with the connection");
        cr_expect_not(shim_http_passing(c));
        shim_http_free(c);
    }
}

Test(http, expect_100_continue)
{
    struct shim_http *h = conn();
    put(h, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    get(h, "HTTP/1.1 100 Continue\r\n\r\n");
    cr_expect_eq(reports, 0, "an interim response is not reported");
    put(h, "GET "); /* the 5 body bytes, in two writes */
    put(h, "/");
    get(h, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    put(h, "GET / HTTP/1.1\r\n\r\n");
    cr_expect_eq(units, 2);
    cr_expect_eq(reports, 1);
    cr_expect_not(shim_http_passing(h));
    shim_http_free(h);
}

Test(http, a_final_answer_before_the_100_continue_body_passes_through)
{
    struct shim_http *h = conn();
    put(h, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    get(h, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n");
    cr_expect_eq(reports, 1);
    put(h, "GET / HTTP/1.1\r\n\r\n"); /* a body, or the next request? */
    cr_expect(shim_http_passing(h));
    cr_expect_eq(units, 1);
    shim_http_free(h);
}

Test(http, responses_without_requests_or_with_tunnels_pass_through)
{
    static const char *const cases[][2] = {
        {"", "HTTP/1.1 200 OK\r\n\r\n"},
        {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
        {"CONNECT a:443 HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"},
        {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
        {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n"},
        {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n"},
        {"GET / HTTP/1.1\r\n\r\n", "SSH-2.0-OpenSSH\r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct shim_http *h = conn();
        put(h, cases[i][0]);
        get(h, cases[i][1]);
        cr_expect(shim_http_passing(h), "%s", cases[i][1]);
        cr_expect_eq(says, 1, "%s", cases[i][1]);
        shim_http_free(h);
    }
}

Test(http, a_too_long_value_is_not_reported)
{
    static char rsp[2048];
    struct shim_http *h = conn();
    put(h, "GET / HTTP/1.1\r\n\r\n");
    memset(rsp, '9', sizeof(rsp) - 1);
    memcpy(rsp, "HTTP/1.1 429 x\r\nRetry-After: ", 29);
    memcpy(rsp + sizeof(rsp) - 7, "\r\n\r\n", 5);
    get(h, rsp);
    cr_expect_eq(reports, 1);
    cr_expect_eq(last[4], '\x7f', "an unusable value, which rl_report ignores: %s", last);
    shim_http_free(h);
}

/* ------------------------------------------------------------------ decision instants */

static const char OK[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static void answer(struct shim_http *h, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        get(h, OK);
    cr_assert_eq(reports, n);
}

Test(http, pipelined_requests_report_their_decision_instants_in_order)
{
    struct shim_http *h = conn();
    cr_assert_eq(put(h, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"),
                 0);
    cr_assert_eq(put(h, "GET /d HTTP/1.1\r\n\r\n"), 0);
    answer(h, 4);
    cr_expect_eq(takes, 2, "one take per write");
    static const uint64_t want[] = {1000, 1000, 1000, 2000};
    for (unsigned i = 0; i < 4; i++)
        cr_expect_eq(decided[i], want[i], "response %u: decided %llu", i,
                     (unsigned long long)decided[i]);
    shim_http_free(h);
}

Test(http, a_head_split_over_writes_keeps_the_instant_it_began_with)
{
    static const char two[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    for (size_t at = 0; at <= sizeof(two) - 1; at++) {
        struct shim_http *h = conn();
        put_split(h, two, at);
        answer(h, 2);
        /* Heads that began in the first piece took its instant, the rest the second
         * piece's; the first take is the second piece's if the first began no head. The
         * second head begins at offset 19. */
        uint64_t b = at > 19 || at == 0 ? 1000 : 2000;
        cr_expect_eq(decided[0], 1000, "split at %zu: first %llu", at,
                     (unsigned long long)decided[0]);
        cr_expect_eq(decided[1], b, "split at %zu: second %llu", at,
                     (unsigned long long)decided[1]);
        shim_http_free(h);
    }
}

Test(http, a_short_write_keeps_the_instants_it_paid)
{
    static const char two[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    for (size_t sent = 0; sent < sizeof(two) - 1; sent++) {
        struct shim_http *h = conn();
        cr_assert_eq(shim_http_before_send(h, two, sizeof(two) - 1), 0);
        shim_http_after_send(h, two, sizeof(two) - 1, sent); /* the host writes the rest */
        cr_assert_eq(put(h, two + sent), 0);
        cr_assert_eq(put(h, "GET /c HTTP/1.1\r\n\r\n"), 0);
        answer(h, 3);
        cr_expect(decided[0] == 1000 && decided[1] == 1000, "sent %zu: paid at the first write",
                  sent);
        cr_expect_eq(decided[2], 2000, "sent %zu: the next request its own", sent);
        shim_http_free(h);
    }
}

Test(http, a_unit_not_admitted_reports_no_instant)
{
    struct shim_http *h = conn();
    take_passes = true; /* on-timeout pass: the write goes, its unit was not admitted */
    cr_assert_eq(put(h, "GET /a HTTP/1.1\r\n\r\n"), 0);
    take_passes = false;
    take_error = ETIMEDOUT; /* a refused write never happened */
    cr_assert_eq(put(h, "GET /b HTTP/1.1\r\n\r\n"), ETIMEDOUT);
    take_error = 0;
    cr_assert_eq(put(h, "GET /b HTTP/1.1\r\n\r\n"), 0);
    answer(h, 2);
    cr_expect_eq(decided[0], 0, "passed on timeout: not admitted");
    cr_expect_eq(decided[1], 2000);
    shim_http_free(h);
}

Test(http, only_count_requests_routes_get_state)
{
    struct rl_route r = route;
    struct shim_match m = {&r, NULL, NULL};
    r.count = RL_COUNT_CONNECTIONS;
    cr_expect_null(shim_http_new(&m));
    cr_expect_null(shim_http_new(NULL));
    shim_http_free(NULL);
}
