/*
 * fuzz_http.c - libFuzzer harness for the request-level shim's HTTP/1.1 parser
 * (src/shim/http.c), the shim's decisions stubbed.
 *
 * Input: a mode byte, a split byte, then the traffic. Mode bit 0 clear: the traffic is what
 * the host writes; set: what it reads, after 64 requests (HEAD ones where the split byte's
 * bits say) were written. Mode bit 1: writes go out in part first (a short write, the rest
 * written again). Checks, beyond "no crash, no sanitizer report": the traffic fed whole and
 * fed in pieces (sizes from the split byte) takes the same units, makes the same reports
 * with the same values, says the same number of lines and ends in the same pass-through
 * state; a short write and its rewrite count each request once.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    unsigned units, reports, says;
    uint64_t digest; /* of every report's status and values, in order */
};
static struct run now;

int shim_take_units(const struct shim_match *m, unsigned n, uint64_t *decided_ns)
{
    (void)m;
    now.units += n;
    *decided_ns = now.units; /* an instant per take, as the shim's own are */
    return 0;
}

static void mix(const char *s)
{
    for (s = s ? s : "\x01"; *s; s++)
        now.digest = (now.digest ^ (unsigned char)*s) * 1099511628211ULL;
    now.digest = (now.digest ^ 0xff) * 1099511628211ULL;
}

void shim_report(const struct shim_match *m, const struct rl_response *r)
{
    (void)m;
    char status[8];
    if (r->status < 100 || r->status > 599)
        abort();
    snprintf(status, sizeof(status), "%d", r->status);
    now.reports++;
    mix(status);
    mix(r->retry_after);
    mix(r->limit);
    mix(r->remaining);
    mix(r->reset);
    mix(r->ratelimit);
    mix(r->ratelimit_policy);
}

/* The parser's connections hold no table here (m.tab is NULL). */
void shim_match_hold(const struct shim_match *m)
{
    (void)m;
}

void shim_match_done(struct shim_match *m)
{
    (void)m;
}

void shim_say(const char *fmt, ...)
{
    (void)fmt;
    now.says++;
}

static const struct rl_route route = {"127.0.0.1",      32, 80, "v", 0, RL_ROUTE_FAIL, 1,
                                      RL_COUNT_REQUESTS};

/* Write b: in one piece if !sizes, else in pieces; short: each piece goes out in part first. */
static void write_all(struct shim_http *h, const uint8_t *b, size_t n, unsigned sizes, bool shrt)
{
    for (size_t i = 0, k = 1; i < n; i += k) {
        k = sizes ? 1 + (sizes * (i + 7)) % 23 : n;
        k = k < n - i ? k : n - i;
        if (shim_http_before_send(h, b + i, k) != 0)
            abort();
        size_t sent = shrt ? k / 2 : k;
        shim_http_after_send(h, b + i, k, sent);
        if (sent < k) {
            if (shim_http_before_send(h, b + i + sent, k - sent) != 0)
                abort();
            shim_http_after_send(h, b + i + sent, k - sent, k - sent);
        }
    }
}

static void read_all(struct shim_http *h, const uint8_t *b, size_t n, unsigned sizes)
{
    for (size_t i = 0, k = 1; i < n; i += k) {
        k = sizes ? 1 + (sizes * (i + 3)) % 29 : n;
        k = k < n - i ? k : n - i;
        shim_http_after_recv(h, b + i, k);
    }
}

static struct run one(unsigned mode, unsigned split, const uint8_t *b, size_t n, unsigned sizes)
{
    struct shim_match m = {&route, NULL, NULL};
    struct shim_http *h = shim_http_new(&m);
    memset(&now, 0, sizeof(now));
    if (!h)
        abort();
    if (mode & 1) {
        for (unsigned i = 0; i < 64; i++) {
            const char *req =
                split >> (i % 8) & 1 ? "HEAD / HTTP/1.1\r\n\r\n" : "GET / HTTP/1.1\r\n\r\n";
            write_all(h, (const uint8_t *)req, strlen(req), 0, false);
        }
        read_all(h, b, n, sizes);
    } else {
        write_all(h, b, n, sizes, sizes && (mode & 2));
    }
    now.says += shim_http_passing(h) ? 1000 : 0;
    shim_http_free(h);
    return now;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned mode = data[0], split = data[1];
    struct run whole = one(mode, split, data + 2, size - 2, 0);
    struct run parts = one(mode, split, data + 2, size - 2, split | 1);
    if (whole.units != parts.units || whole.reports != parts.reports ||
        whole.digest != parts.digest || whole.says != parts.says)
        abort();
    return 0;
}
