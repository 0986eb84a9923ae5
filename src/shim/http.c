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
 * beyond them are paid for when the host writes them again.
 *
 * Each request's decision instant (rl_decision.at_ns of the units its head took; 0 if the
 * unit was not admitted: an on-timeout pass) goes with its response to rl_report, which
 * measures the delay from it and tells a 429 the rules admitted. Heads are numbered in the
 * order they begin; a head's instant is kept by its number (a ring of RING), and requests
 * are answered in that order.
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

/* Decision instants kept, by head number. The writer sets those of heads [paid, begun);
 * the reader reads that of head r < w. paid - r < RING: paid - begun is at most the heads
 * of one write (FIFO + 1: beyond FIFO outstanding the connection passes through), begun
 * - w at most 1 (the head being written) and w - r at most FIFO. */
#define RING (4U * FIFO)

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

#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
static const struct {
    const char *name;
    size_t len;
} value_names[NVALUES] = {
    NAME("content-length"),    NAME("transfer-encoding"), NAME("expect"),
    NAME("retry-after"),       NAME("x-ratelimit-limit"), NAME("x-ratelimit-remaining"),
    NAME("x-ratelimit-reset"), NAME("ratelimit"),         NAME("ratelimit-policy"),
};
#undef NAME

/* A request's kind, as the response parser needs it (FIFO entries). */
enum { K_OTHER = 0, K_HEAD = 1, K_CONNECT = 2, K_EXPECT = 4 };

/* One line being read: counts, and a request line's last TAIL bytes (its first LINE_KEEP
 * bytes are in struct msg's keep). */
struct line {
    uint32_t len;    /* bytes so far, CR and LF excluded */
    uint32_t colon;  /* header line: 1 + the offset of the first ':' (0: none yet) */
    uint32_t spaces; /* request/status line: SP bytes */
    bool cr;         /* the last byte was CR */
    char tail[TAIL];
};

/* One direction's parser. Between messages only the fields before `keep` matter (a write's
 * snapshot copies only them then). */
struct msg {
    enum state state;
    uint32_t head_len; /* bytes of the current head */
    uint64_t begun;    /* request heads begun on the connection (requests only) */
    uint64_t left;     /* S_BODY, S_CHUNK_DATA: bytes to skip */
    uint64_t length;   /* request: its Content-Length */
    struct line line;
    /* The current message, from its head. */
    unsigned kind; /* request: K_*; response: its request's, from the FIFO */
    int status;    /* response */
    bool have[NVALUES];
    char keep[LINE_KEEP + 1]; /* the line's first bytes */
    char values[NVALUES][LINE_KEEP + 1];
};

struct shim_http {
    struct shim_match m;
    rl_atomic64 refs;        /* owners: the fd table, the hooks in a call (fd.c) */
    rl_atomic64 passthrough; /* non-zero: nothing more is parsed (release: see give_up) */
    rl_atomic64 expect_done; /* a final response came before a 100-continue body */
    /* The FIFO of outstanding requests' kinds: the writer appends at pw (its own) and
     * publishes w once the heads are paid; the reader takes at r. pw - r <= FIFO. */
    rl_atomic64 w, r;
    uint64_t pw;
    unsigned char kinds[FIFO];
    uint64_t at[RING]; /* decision instants by head number (see RING) */
    uint64_t paid;     /* heads paid for: at least req.begun (more after a short write) */
    struct msg req, rsp;
    /* The last write: the request parser and FIFO end before it. */
    struct msg saved;
    size_t saved_size; /* bytes of `saved` that were copied */
    uint64_t saved_w;
    size_t saved_len;
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
    shim_match_hold(&h->m); /* the connection keeps its table until shim_http_free */
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
    if (h && rl__fetch_add_acq_rel(&h->refs, UINT64_MAX) == 1) {
        shim_match_done(&h->m);
        free(h);
    }
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

/* RFC 9110 token characters: letters, digits and ! # $ % & ' * + - . ^ _ ` | ~. */
static bool tchar(unsigned char c)
{
    /* Bit c of lo (c < 64) or bit c - 64 of hi (c < 128). */
    static const uint64_t lo = 0x03ff6cfa00000000ULL, hi = 0x57ffffffc7fffffeULL;
    return c < 64 ? (lo >> c) & 1 : c < 128 && (hi >> (c - 64)) & 1;
}

/* A byte of a field value (or a status line's reason): HT, SP, visible ASCII, obs-text. */
static bool field_byte(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\t';
}

/* The bytes of a line up to its CR or LF, in state p->state: checked, kept, counted.
 * Returns how many; sets *why if one is not allowed here. */
static size_t line_bytes(struct msg *p, const unsigned char *b, size_t n, bool response,
                         const char **why)
{
    struct line *l = &p->line;
    size_t i = 0;
    switch (p->state) {
    case S_LINE:
        for (; i < n && b[i] != '\r' && b[i] != '\n'; i++) {
            if (response ? !field_byte(b[i]) : b[i] < 0x20 || b[i] >= 0x7f) {
                *why = "a bad byte in the start line";
                return i;
            }
            l->spaces += b[i] == ' ';
        }
        break;
    case S_HEADER:
        for (; i < n && b[i] != '\r' && b[i] != '\n'; i++) {
            if (l->colon ? !field_byte(b[i]) : !tchar(b[i]) && b[i] != ':') {
                *why = "a bad byte in a header";
                return i;
            }
            if (!l->colon && b[i] == ':')
                l->colon = l->len + (uint32_t)i + 1;
        }
        break;
    default: /* S_CHUNK_SIZE, S_TRAILER */
        for (; i < n && b[i] != '\r' && b[i] != '\n'; i++) {
            if (!field_byte(b[i])) {
                *why = "a control byte in chunked framing";
                return i;
            }
            if (p->state == S_TRAILER && !l->colon && b[i] == ':')
                l->colon = l->len + (uint32_t)i + 1;
        }
    }
    if ((uint64_t)l->len + i > HEAD_MAX) {
        *why = p->state == S_LINE || p->state == S_HEADER ? "a head over 64 KiB"
                                                          : "a chunk line over 64 KiB";
        return i;
    }
    if (l->len < LINE_KEEP)
        memcpy(p->keep + l->len, b, i < LINE_KEEP - l->len ? i : LINE_KEEP - l->len);
    if (p->state == S_LINE && !response) {
        size_t t = i < TAIL ? i : TAIL;
        memmove(l->tail, l->tail + t, TAIL - t);
        memcpy(l->tail + TAIL - t, b + i - t, t);
    }
    l->len += (uint32_t)i;
    return i;
}

/* ------------------------------------------------------------------ heads */

/* The value a header line carries if it is one we read; trims OWS. */
static void header_line(struct msg *p)
{
    const struct line *l = &p->line;
    size_t name = l->colon - 1, kept = l->len < LINE_KEEP ? l->len : LINE_KEEP;
    if (l->len > LINE_KEEP && name >= LINE_KEEP)
        return; /* a name that long is none of ours */
    for (unsigned v = 0; v < NVALUES; v++) {
        if (value_names[v].len != name || strncasecmp(p->keep, value_names[v].name, name) != 0)
            continue;
        if (p->have[v] || l->len > LINE_KEEP) {
            p->have[v] = true;
            p->values[v][0] = '\x7f'; /* repeated or too long: unusable */
            p->values[v][1] = '\0';
            return;
        }
        size_t a = name + 1, b = kept;
        while (a < b && (p->keep[a] == ' ' || p->keep[a] == '\t'))
            a++;
        while (b > a && (p->keep[b - 1] == ' ' || p->keep[b - 1] == '\t'))
            b--;
        memcpy(p->values[v], p->keep + a, b - a);
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
    while (m < l->len && m < LINE_KEEP && p->keep[m] != ' ')
        if (!tchar((unsigned char)p->keep[m++]))
            return false;
    if (m == 0 || m >= LINE_KEEP || m + 1 + TAIL >= l->len)
        return false; /* no method, or no target between the spaces */
    p->kind = m == 4 && memcmp(p->keep, "HEAD", 4) == 0      ? K_HEAD
              : m == 7 && memcmp(p->keep, "CONNECT", 7) == 0 ? K_CONNECT
                                                             : K_OTHER;
    return true;
}

/* A status line: HTTP/1.x SP DDD [SP reason]. Sets status. */
static bool status_line(struct msg *p)
{
    const char *k = p->keep;
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

/* Append the request's kind to the FIFO (published later, by publish). False if FIFO
 * requests are outstanding. A slot already published (parsed again after a short write)
 * holds the same kind: it is left alone, the reader may be reading it. */
static bool fifo_push(struct shim_http *h, unsigned kind)
{
    uint64_t w = h->pw;
    h->pw = w + 1;
    if (w < rl__load_relaxed(&h->w)) /* relaxed: w is written by this thread only */
        return true;
    /* A: pairs with the reader's release of r (H2): the slot we reuse has been read. */
    if (w - rl__load_acquire(&h->r) >= FIFO) {
        h->pw = w;
        return false;
    }
    if (kind & K_EXPECT) /* Relaxed: this request's answer is not read before H1 publishes it */
        rl__store_relaxed(&h->expect_done, 0);
    h->kinds[w % FIFO] = (unsigned char)kind;
    return true;
}

/* H1: publishes the slots pushed and their heads' instants to the reader (pairs with its
 * acquire of w). After a short write w may move back: to requests that went out, which
 * are all those the reader can have taken. */
static void publish(struct shim_http *h)
{
    rl__store_release(&h->w, h->pw);
}

/* ------------------------------------------------------------------ responses */

/* Report a final response's head to the route's bucket; decided: its request's instant. */
static void report(struct shim_http *h, const struct msg *p, uint64_t decided)
{
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = p->status;
    r.decided_ns = decided;
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
    uint64_t decided = h->at[r % RING]; /* head r's: written before H1 published it */
    /* H2: the slot is free again (pairs with the writer's acquire of r). */
    rl__store_release(&h->r, r + 1);
    if (p->kind & K_EXPECT)
        rl__store_release(&h->expect_done, 1); /* H3: pairs with the writer's acquire */
    report(h, p, decided);
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
    p->keep[l->len < LINE_KEEP ? l->len : LINE_KEEP] = '\0';
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
        for (; i < l->len && i < 15 && p->keep[i] && strchr(HEX, p->keep[i]); i++)
            n = n * 16 +
                (uint64_t)(p->keep[i] <= '9' ? p->keep[i] - '0' : (p->keep[i] | 0x20) - 'a' + 10);
        if (i == 0 || (i < l->len && p->keep[i] != ';' && p->keep[i] != ' ' && p->keep[i] != '\t'))
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

/* Bytes of a line, at most up to its end (LF): returns how many were taken. *why: set
 * when the traffic is not understood. */
static size_t line_in(struct shim_http *h, struct msg *p, const unsigned char *b, size_t n,
                      bool response, const char **why)
{
    struct line *l = &p->line;
    bool head = p->state == S_LINE || p->state == S_HEADER;
    size_t i = l->cr ? 0 : line_bytes(p, b, n, response, why);
    if (head && (uint64_t)p->head_len + i + (i < n) > HEAD_MAX)
        *why = "a head over 64 KiB";
    if (*why)
        return i;
    p->head_len += head ? (uint32_t)(i + (i < n)) : 0;
    if (i == n)
        return i;
    if (b[i] == '\r' && !l->cr)
        l->cr = true;
    else if (b[i] != '\n')
        *why = "a CR without LF";
    else {
        *why = line_done(h, p, response);
        line_reset(p);
    }
    return i + 1;
}

/*
 * Feed n bytes to one direction's parser (requests: p->begun counts the heads that begin).
 * Returns NULL, or why the traffic is not understood (the parser is then left as it is:
 * the caller gives up on the connection).
 */
static const char *feed(struct shim_http *h, struct msg *p, const unsigned char *b, size_t n,
                        bool response)
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
                p->begun++;
            /* fall through */
        default:
            i += line_in(h, p, b + i, n - i, response, &why);
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

/* Keep the request parser as it is before a write: between messages, its fixed fields only
 * (the common case: a write begins a request or carries a body). */
static void save(struct shim_http *h)
{
    const struct msg *p = &h->req;
    bool between = p->head_len == 0 && p->line.len == 0 && !p->line.cr;
    h->saved_size = between ? offsetof(struct msg, keep) : sizeof(*p);
    memcpy(&h->saved, p, h->saved_size);
}

static void restore(struct shim_http *h)
{
    memcpy(&h->req, &h->saved, h->saved_size);
}

int shim_http_before_sendv(struct shim_http *h, const struct iovec *iov, int n)
{
    const char *why = NULL;
    if (shim_http_passing(h))
        return 0;
    if (expect_unknown(h)) {
        give_up(h, "a final response came before the 100-continue body");
        return 0;
    }
    save(h);
    h->saved_w = h->pw;
    h->saved_len = 0;
    for (int i = 0; i < n && !why; i++) {
        why = feed(h, &h->req, iov[i].iov_base, iov[i].iov_len, false);
        h->saved_len += iov[i].iov_len;
    }
    if (why)
        give_up(h, why == TLS ? NULL : why);
    /* Heads paid for before (a short write's) need nothing; the others take a unit each. */
    uint64_t at = 0, unpaid = h->req.begun > h->paid ? h->req.begun - h->paid : 0;
    int err = unpaid ? shim_take_units(&h->m, (unsigned)unpaid, &at) : 0;
    if (err) { /* the write fails: it never happened */
        restore(h);
        h->pw = h->saved_w; /* nothing was published */
        return err;
    }
    for (; h->paid < h->req.begun; h->paid++)
        h->at[h->paid % RING] = at;
    publish(h);
    return 0;
}

void shim_http_after_sendv(struct shim_http *h, const struct iovec *iov, int n, size_t sent)
{
    const char *why = NULL;
    if (sent >= h->saved_len || shim_http_passing(h))
        return;
    /* Parse again from before the write, the bytes that went out only: the heads paid for
     * beyond them are still to go (h->paid keeps them paid, and their instants). */
    restore(h);
    h->pw = h->saved_w;
    for (int i = 0; i < n && sent && !why; i++) {
        size_t k = iov[i].iov_len < sent ? iov[i].iov_len : sent;
        why = feed(h, &h->req, iov[i].iov_base, k, false);
        sent -= k;
    }
    if (why)
        give_up(h, why);
    publish(h);
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
    if (shim_http_passing(h))
        return;
    const char *why = feed(h, &h->rsp, buf, len, true);
    if (why)
        give_up(h, why);
}
