/*
 * http.c - one connection's HTTP/1.1 traffic as the request-level shim sees it (route
 * option `count requests`). Two small parsers, one per direction, read the bytes the host
 * writes and reads, never change them and never hold them back:
 *
 *   requests   request line (METHOD SP TARGET SP HTTP/1.x), header lines, then the body
 *              framed by Content-Length or chunked; a unit is taken before each head is
 *              written. Pipelined requests are found one after another.
 *   responses  status line, header lines (1xx interim ones skipped), then the body framed
 *              by the request's method (HEAD: none), the status (204, 304: none),
 *              Transfer-Encoding chunked, Content-Length, or the connection's end. Each
 *              final response head is reported with rl_report.
 *
 * Anything this file does not understand (a malformed line, a head over 64 KiB, a tunnel
 * after CONNECT or 101, a final answer before a 100-continue body) puts the connection in
 * pass-through for good: nothing more is parsed, counted or reported, and one line says so.
 *
 * Threads: the host serialises its writes on one connection, and its reads, but a writer
 * and a reader may run at once. Each side owns its parser. They share the FIFO of
 * outstanding requests (one producer, one consumer) and the pass-through flag.
 *
 * A write the kernel takes only in part (a short or failed send) must not count its heads
 * twice when the host writes the rest: the request parser is saved before each write and,
 * after a short one, brought forward over the bytes that went out only; heads it had paid
 * beyond them become credit for the next write.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../atomics.h"
#include "http.h"

#define HEAD_MAX      (64U * 1024) /* a request or response head longer than this: pass-through */
#define LINE_KEEP     512U         /* bytes of a line kept: method, names, the values we read */
#define TAIL          9U           /* a request line's last bytes: " HTTP/1.1" */
#define FIFO          64U          /* outstanding (pipelined) requests at most */
#define HEX           "0123456789abcdefABCDEF"
#define TLS_HANDSHAKE 0x16 /* the first byte of a TLS ClientHello record */

/* The reason for a quiet pass-through: the connection carries TLS. */
static const char TLS[] = "TLS";

enum state {
    S_LINE,        /* the request or status line */
    S_HEADER,      /* header lines, up to the empty line */
    S_BODY,        /* `left` body bytes */
    S_CHUNK_SIZE,  /* a chunk-size line (hex digits, extensions) */
    S_CHUNK_DATA,  /* `left` bytes of chunk data */
    S_CHUNK_CRLF,  /* the CRLF after chunk data */
    S_TRAILER,     /* trailer lines after the last chunk, up to the empty line */
    S_UNTIL_CLOSE, /* a response body that ends with the connection */
};

/* The header values read: framing, and what rl_report wants. */
enum value {
    V_CONTENT_LENGTH,
    V_TRANSFER_ENCODING,
    V_EXPECT,
    V_RETRY_AFTER,
    V_LIMIT,
    V_REMAINING,
    V_RESET,
    V_RATELIMIT,
    V_POLICY,
    NVALUES
};

static const char *const value_names[NVALUES] = {
    "content-length",    "transfer-encoding", "expect",
    "retry-after",       "x-ratelimit-limit", "x-ratelimit-remaining",
    "x-ratelimit-reset", "ratelimit",         "ratelimit-policy",
};

/* A request's kind, as the response parser needs it (FIFO entries). */
enum { K_OTHER = 0, K_HEAD = 1, K_CONNECT = 2, K_EXPECT = 4 };

/* One line being read: its first LINE_KEEP bytes, its last TAIL bytes, counts. */
struct line {
    uint32_t len;    /* bytes so far, CR and LF excluded */
    uint32_t colon;  /* header line: 1 + the offset of the first ':' (0: none yet) */
    uint32_t spaces; /* request/status line: SP bytes */
    bool cr;         /* the last byte was CR */
    char keep[LINE_KEEP + 1];
    char tail[TAIL];
};

/* One direction's parser. */
struct msg {
    enum state state;
    uint32_t head_len; /* bytes of the current head */
    uint64_t left;     /* S_BODY, S_CHUNK_DATA: bytes to skip */
    uint64_t length;   /* request: its Content-Length */
    struct line line;
    /* The current message, from its head. */
    unsigned kind; /* request: K_*; response: its request's, from the FIFO */
    int status;    /* response */
    bool have[NVALUES];
    char values[NVALUES][LINE_KEEP + 1];
};

struct shim_http {
    struct shim_match m;
    rl_atomic64 refs;        /* owners: the fd table, the hooks in a call (fd.c) */
    rl_atomic64 passthrough; /* non-zero: nothing more is parsed (release: see give_up) */
    rl_atomic64 expect_done; /* a final response came before a 100-continue body */
    /* The FIFO of outstanding requests' kinds: the writer appends at w, the reader takes
     * at r. w - r <= FIFO. */
    rl_atomic64 w, r;
    unsigned char kinds[FIFO];
    struct msg req, rsp;
    /* The last write: the request parser and FIFO end before it, the heads it paid. */
    struct msg saved;
    uint64_t saved_w;
    size_t saved_len;
    unsigned saved_heads;
    unsigned credit; /* heads paid for that have not gone out yet */
};

/* ------------------------------------------------------------------ life */

struct shim_http *shim_http_new(const struct shim_match *m)
{
    if (!m || !m->route || m->route->count != RL_COUNT_REQUESTS)
        return NULL;
    struct shim_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->m = *m;
    /* Relaxed: the object is published to other threads by fd.c's exchange (or the TLS
     * hooks' own), which orders this store before it. */
    rl__store_relaxed(&h->refs, 1);
    return h;
}

void shim_http_hold(struct shim_http *h)
{
    /* Relaxed: the caller already owns a reference, so the object cannot go meanwhile. */
    rl__fetch_add_relaxed(&h->refs, 1);
}

void shim_http_free(struct shim_http *h)
{
    /* Acq_rel: the last owner sees every other owner's writes before it frees. */
    if (h && rl__fetch_add_acq_rel(&h->refs, UINT64_MAX) == 1)
        free(h);
}

bool shim_http_passing(const struct shim_http *h)
{
    /* Relaxed: a stale zero parses one more buffer, which give_up's callers tolerate. */
    return rl__load_relaxed(&h->passthrough) != 0;
}

/* Pass-through for good, with one line saying why (the first caller says it; NULL: say
 * nothing). */
static void give_up(struct shim_http *h, const char *why)
{
    uint64_t zero = 0;
    /* C: claims the one message; orders nothing else (both parsers stop on seeing it). */
    if (rl__cas_acq_rel(&h->passthrough, &zero, 1) && why)
        shim_say("route %s:%u counts requests: %s; this connection passes through uncounted",
                 h->m.route->dest, h->m.route->port, why);
}

void shim_http_give_up(struct shim_http *h, const char *why)
{
    give_up(h, why);
}

/* ------------------------------------------------------------------ lines */

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What a line byte may be: 0 bad, 1 fine. Start lines take visible ASCII and SP; header
 * lines also HT and obs-text in values. */
static bool line_byte(const struct msg *p, unsigned char c, bool response)
{
    if (p->state == S_LINE && !response)
        return c >= 0x20 && c < 0x7f;
    if (p->state == S_HEADER && p->line.colon == 0) /* a header name, or the ':' ending it */
        return tchar(c) || c == ':';
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static void line_add(struct line *l, unsigned char c)
{
    if (l->len < LINE_KEEP)
        l->keep[l->len] = (char)c;
    memmove(l->tail, l->tail + 1, TAIL - 1);
    l->tail[TAIL - 1] = (char)c;
    l->len++;
}

/* ------------------------------------------------------------------ heads */

/* The value a header line carries if it is one we read; trims OWS. */
static void header_line(struct msg *p)
{
    struct line *l = &p->line;
    size_t name = l->colon - 1, kept = l->len < LINE_KEEP ? l->len : LINE_KEEP;
    if (l->len > LINE_KEEP && name >= LINE_KEEP)
        return; /* a name that long is none of ours */
    for (unsigned v = 0; v < NVALUES; v++) {
        if (strlen(value_names[v]) != name || strncasecmp(l->keep, value_names[v], name) != 0)
            continue;
        if (p->have[v] || l->len > LINE_KEEP) {
            p->have[v] = true;
            p->values[v][0] = '\x7f'; /* repeated or too long: unusable */
            p->values[v][1] = '\0';
            return;
        }
        size_t a = name + 1, b = kept;
        while (a < b && (l->keep[a] == ' ' || l->keep[a] == '\t'))
            a++;
        while (b > a && (l->keep[b - 1] == ' ' || l->keep[b - 1] == '\t'))
            b--;
        memcpy(p->values[v], l->keep + a, b - a);
        p->values[v][b - a] = '\0';
        p->have[v] = true;
        return;
    }
}

/* A request line: METHOD SP TARGET SP HTTP/1.x. Sets kind. */
static bool request_line(struct msg *p)
{
    struct line *l = &p->line;
    if (l->spaces != 2 || l->len < 1 + 1 + 1 + TAIL || memcmp(l->tail, " HTTP/1.", 8) != 0 ||
        (l->tail[8] != '0' && l->tail[8] != '1'))
        return false;
    size_t m = 0;
    while (m < l->len && m < LINE_KEEP && l->keep[m] != ' ')
        if (!tchar((unsigned char)l->keep[m++]))
            return false;
    if (m == 0 || m >= LINE_KEEP || m + 1 + TAIL >= l->len)
        return false; /* no method, or no target between the spaces */
    p->kind = m == 4 && memcmp(l->keep, "HEAD", 4) == 0      ? K_HEAD
              : m == 7 && memcmp(l->keep, "CONNECT", 7) == 0 ? K_CONNECT
                                                             : K_OTHER;
    return true;
}

/* A status line: HTTP/1.x SP DDD [SP reason]. Sets status. */
static bool status_line(struct msg *p)
{
    const char *k = p->line.keep;
    if (p->line.len < 12 || memcmp(k, "HTTP/1.", 7) != 0 || (k[7] != '0' && k[7] != '1') ||
        k[8] != ' ' || k[9] < '1' || k[9] > '5' || k[10] < '0' || k[10] > '9' || k[11] < '0' ||
        k[11] > '9' || (p->line.len > 12 && k[12] != ' '))
        return false;
    p->status = (k[9] - '0') * 100 + (k[10] - '0') * 10 + (k[11] - '0');
    return true;
}

/* A decimal length, digits only; false if empty, too long or malformed. */
static bool length_of(const char *s, uint64_t *out)
{
    uint64_t n = 0;
    if (!*s || strlen(s) > 15)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        n = n * 10 + (uint64_t)(*s - '0');
    }
    *out = n;
    return true;
}

/* True if the last transfer coding of a Transfer-Encoding value is chunked. */
static bool ends_chunked(const char *v)
{
    const char *last = strrchr(v, ',');
    last = last ? last + 1 : v;
    while (*last == ' ' || *last == '\t')
        last++;
    return strcasecmp(last, "chunked") == 0;
}

/* ------------------------------------------------------------------ requests */

/* The body after a request head. NULL or why the request is not understood. */
static const char *request_body(struct msg *p)
{
    uint64_t n = 0;
    if (p->have[V_TRANSFER_ENCODING]) {
        if (p->have[V_CONTENT_LENGTH] || !ends_chunked(p->values[V_TRANSFER_ENCODING]))
            return "a request with a Transfer-Encoding other than chunked";
        p->state = S_CHUNK_SIZE;
        return NULL;
    }
    if (p->have[V_CONTENT_LENGTH] && !length_of(p->values[V_CONTENT_LENGTH], &n))
        return "a request with a malformed Content-Length";
    p->left = p->length = n;
    p->state = n ? S_BODY : S_LINE;
    if (n && p->have[V_EXPECT] && strcasecmp(p->values[V_EXPECT], "100-continue") == 0)
        p->kind |= K_EXPECT;
    return NULL;
}

/* Append the request's kind to the FIFO. False if FIFO requests are outstanding. */
static bool fifo_push(struct shim_http *h, unsigned kind)
{
    /* Relaxed: w is ours (one writer). A: pairs with the reader's release of r (H2): the
     * slot we reuse has been read. */
    uint64_t w = rl__load_relaxed(&h->w), r = rl__load_acquire(&h->r);
    if (w - r >= FIFO)
        return false;
    if (kind & K_EXPECT) /* Relaxed: this request's answer is not read before H1 publishes it */
        rl__store_relaxed(&h->expect_done, 0);
    h->kinds[w % FIFO] = (unsigned char)kind;
    /* H1: publishes the slot to the reader (pairs with its acquire of w). */
    rl__store_release(&h->w, w + 1);
    return true;
}

/* ------------------------------------------------------------------ responses */

/* Report a final response's head to the route's bucket. */
static void report(struct shim_http *h, const struct msg *p)
{
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = p->status;
    r.retry_after = p->have[V_RETRY_AFTER] ? p->values[V_RETRY_AFTER] : NULL;
    r.limit = p->have[V_LIMIT] ? p->values[V_LIMIT] : NULL;
    r.remaining = p->have[V_REMAINING] ? p->values[V_REMAINING] : NULL;
    r.reset = p->have[V_RESET] ? p->values[V_RESET] : NULL;
    r.ratelimit = p->have[V_RATELIMIT] ? p->values[V_RATELIMIT] : NULL;
    r.ratelimit_policy = p->have[V_POLICY] ? p->values[V_POLICY] : NULL;
    shim_report(&h->m, &r);
}

/* The body after a response head, and its report. NULL or why it is not understood. */
static const char *response_body(struct shim_http *h, struct msg *p)
{
    uint64_t n = 0;
    if (p->status < 200) {
        if (p->status == 101)
            return "the protocol switched (101)";
        p->state = S_LINE; /* an interim response: the final one follows */
        return NULL;
    }
    /* Relaxed: r is ours (one reader). A: pairs with H1, the slot's kind is written. */
    uint64_t r = rl__load_relaxed(&h->r);
    if (r == rl__load_acquire(&h->w))
        return "a response to no request";
    p->kind = h->kinds[r % FIFO];
    /* H2: the slot is free again (pairs with the writer's acquire of r). */
    rl__store_release(&h->r, r + 1);
    if (p->kind & K_EXPECT)
        rl__store_release(&h->expect_done, 1); /* H3: pairs with the writer's acquire */
    report(h, p);
    if ((p->kind & K_CONNECT) && p->status < 300)
        return "a tunnel opened (CONNECT)";
    p->state = S_LINE;
    if ((p->kind & K_HEAD) || p->status == 204 || p->status == 304)
        return NULL;
    if (p->have[V_TRANSFER_ENCODING]) {
        p->state = ends_chunked(p->values[V_TRANSFER_ENCODING]) ? S_CHUNK_SIZE : S_UNTIL_CLOSE;
        return NULL;
    }
    if (!p->have[V_CONTENT_LENGTH]) {
        p->state = S_UNTIL_CLOSE;
        return NULL;
    }
    if (!length_of(p->values[V_CONTENT_LENGTH], &n))
        return "a response with a malformed Content-Length";
    p->left = n;
    p->state = n ? S_BODY : S_LINE;
    return NULL;
}

/* ------------------------------------------------------------------ the machine */

/* The empty line ending a head: the body's framing; the next message starts afresh. */
static const char *head_done(struct shim_http *h, struct msg *p, bool response)
{
    const char *why = response ? response_body(h, p) : request_body(p);
    if (!why && !response && !fifo_push(h, p->kind))
        why = "more than 64 requests in flight";
    p->head_len = 0;
    memset(p->have, 0, sizeof(p->have));
    return why;
}

/* A whole line was read in state S_LINE/S_HEADER/S_CHUNK_SIZE/S_TRAILER. NULL or why the
 * traffic is not understood. */
static const char *line_done(struct shim_http *h, struct msg *p, bool response)
{
    struct line *l = &p->line;
    l->keep[l->len < LINE_KEEP ? l->len : LINE_KEEP] = '\0';
    switch (p->state) {
    case S_LINE:
        if (!(response ? status_line(p) : request_line(p)))
            return response ? "a malformed status line" : "a malformed request line";
        p->state = S_HEADER;
        return NULL;
    case S_HEADER:
        if (l->len == 0)
            return head_done(h, p, response);
        if (l->colon < 2)
            return "a malformed header line";
        header_line(p);
        return NULL;
    case S_CHUNK_SIZE: {
        uint64_t n = 0;
        size_t i = 0;
        for (; i < l->len && i < 15 && l->keep[i] && strchr(HEX, l->keep[i]); i++)
            n = n * 16 +
                (uint64_t)(l->keep[i] <= '9' ? l->keep[i] - '0' : (l->keep[i] | 0x20) - 'a' + 10);
        if (i == 0 || (i < l->len && l->keep[i] != ';' && l->keep[i] != ' ' && l->keep[i] != '\t'))
            return "a malformed chunk size";
        p->left = n;
        p->state = n ? S_CHUNK_DATA : S_TRAILER;
        return NULL;
    }
    case S_TRAILER:
        if (l->len == 0)
            p->state = S_LINE;
        else if (l->colon < 2)
            return "a malformed trailer line";
        return NULL;
    default:
        return NULL;
    }
}

/* A fresh line. */
static void line_reset(struct msg *p)
{
    p->line.len = p->line.colon = p->line.spaces = 0;
    p->line.cr = false;
}

/* One byte of a line. *why: set when the traffic is not understood. */
static void line_byte_in(struct shim_http *h, struct msg *p, unsigned char c, bool response,
                         const char **why)
{
    struct line *l = &p->line;
    bool head = p->state == S_LINE || p->state == S_HEADER;
    if (head && ++p->head_len > HEAD_MAX) {
        *why = "a head over 64 KiB";
        return;
    }
    if (c == '\n') {
        *why = line_done(h, p, response);
        line_reset(p);
        return;
    }
    if (l->cr) {
        *why = "a CR without LF";
        return;
    }
    if (c == '\r') {
        l->cr = true;
        return;
    }
    if (p->state == S_CHUNK_SIZE || p->state == S_TRAILER) {
        if (c < 0x20 && c != '\t')
            *why = "a control byte in chunked framing";
        else if (p->state == S_TRAILER && l->colon == 0 && c == ':')
            l->colon = l->len + 1;
        if (l->len >= HEAD_MAX)
            *why = "a chunk line over 64 KiB";
        line_add(l, c);
        return;
    }
    if (!line_byte(p, c, response)) {
        *why = p->state == S_LINE ? "a bad byte in the start line" : "a bad byte in a header";
        return;
    }
    if (p->state == S_HEADER && l->colon == 0 && c == ':')
        l->colon = l->len + 1;
    if (p->state == S_LINE && c == ' ')
        l->spaces++;
    line_add(l, c);
}

/*
 * Feed n bytes to one direction's parser. *heads (requests) counts the request heads that
 * begin in them. Returns NULL, or why the traffic is not understood (the parser is then
 * left as it is: the caller gives up on the connection).
 */
static const char *feed(struct shim_http *h, struct msg *p, const unsigned char *b, size_t n,
                        bool response, unsigned *heads)
{
    const char *why = NULL;
    for (size_t i = 0; i < n && !why;) {
        uint64_t skip;
        switch (p->state) {
        case S_UNTIL_CLOSE:
            return NULL;
        case S_BODY:
        case S_CHUNK_DATA:
            skip = p->left < n - i ? p->left : n - i;
            p->left -= skip;
            i += (size_t)skip;
            if (p->left == 0)
                p->state = p->state == S_BODY ? S_LINE : S_CHUNK_CRLF;
            continue;
        case S_CHUNK_CRLF:
            if (b[i] == '\r' && !p->line.cr) {
                p->line.cr = true;
            } else if (b[i] == '\n') {
                p->line.cr = false;
                p->state = S_CHUNK_SIZE;
            } else {
                why = "chunk data longer than its size";
            }
            i++;
            continue;
        case S_LINE:
            if (p->head_len == 0 && (b[i] == '\r' || b[i] == '\n')) {
                i++; /* empty lines before a message are ignored (RFC 9112 2.2) */
                continue;
            }
            if (!response && p->head_len == 0 && b[i] == TLS_HANDSHAKE)
                return TLS; /* TLS: the TLS hooks count its requests, if it has any */
            if (!response && p->head_len == 0)
                ++*heads;
            /* fall through */
        default:
            line_byte_in(h, p, b[i++], response, &why);
        }
    }
    return why;
}

/* ------------------------------------------------------------------ writes */

/* A final response came to a request whose 100-continue body has not begun: the host may
 * send the body or the next request, and we cannot tell which. */
static bool expect_unknown(struct shim_http *h)
{
    /* A: pairs with H3 in response_body. */
    return (h->req.kind & K_EXPECT) && h->req.state == S_BODY && h->req.left == h->req.length &&
           rl__load_acquire(&h->expect_done);
}

int shim_http_before_sendv(struct shim_http *h, const struct iovec *iov, int n)
{
    unsigned heads = 0;
    const char *why = NULL;
    if (shim_http_passing(h))
        return 0;
    if (expect_unknown(h)) {
        give_up(h, "a final response came before the 100-continue body");
        return 0;
    }
    h->saved = h->req;
    /* Relaxed: w is written by this thread only. */
    h->saved_w = rl__load_relaxed(&h->w);
    h->saved_len = 0;
    for (int i = 0; i < n && !why; i++) {
        why = feed(h, &h->req, iov[i].iov_base, iov[i].iov_len, false, &heads);
        h->saved_len += iov[i].iov_len;
    }
    if (why)
        give_up(h, why == TLS ? NULL : why);
    h->saved_heads = heads;
    unsigned paid = heads < h->credit ? heads : h->credit;
    h->credit -= paid;
    int err = heads > paid ? shim_take_units(&h->m, heads - paid) : 0;
    if (err) { /* the write fails: it never happened */
        h->req = h->saved;
        h->credit += paid;
        /* Relaxed: see fifo_push; the reader cannot have taken requests never sent. */
        rl__store_relaxed(&h->w, h->saved_w);
    }
    return err;
}

void shim_http_after_sendv(struct shim_http *h, const struct iovec *iov, int n, size_t sent)
{
    unsigned out = 0;
    const char *why = NULL;
    if (sent >= h->saved_len || shim_http_passing(h))
        return;
    /* Parse again from before the write, the bytes that went out only: the heads paid for
     * beyond them are still to go. */
    h->req = h->saved;
    /* Relaxed: see fifo_push. Requests that did not go out have no response yet. */
    rl__store_relaxed(&h->w, h->saved_w);
    for (int i = 0; i < n && sent && !why; i++) {
        size_t k = iov[i].iov_len < sent ? iov[i].iov_len : sent;
        why = feed(h, &h->req, iov[i].iov_base, k, false, &out);
        sent -= k;
    }
    if (why)
        give_up(h, why);
    h->credit += h->saved_heads - out;
    h->saved_len = 0;
}

int shim_http_before_send(struct shim_http *h, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return shim_http_before_sendv(h, &iov, 1);
}

void shim_http_after_send(struct shim_http *h, const void *buf, size_t len, size_t sent)
{
    struct iovec iov = {(void *)buf, len};
    shim_http_after_sendv(h, &iov, 1, sent);
}

/* ------------------------------------------------------------------ reads */

void shim_http_after_recv(struct shim_http *h, const void *buf, size_t len)
{
    unsigned none = 0;
    if (shim_http_passing(h))
        return;
    const char *why = feed(h, &h->rsp, buf, len, true, &none);
    if (why)
        give_up(h, why);
}
