/*
 * tls_gnutls.c - the GnuTLS interposers (libgnutls.so.30). On a route that counts requests,
 * gnutls_record_send takes one unit before each request head in the plaintext,
 * gnutls_record_recv hears the responses, and the ALPN offer loses "h2".
 *
 * A session's route comes from the socket given with gnutls_transport_set_int2 (and the
 * gnutls_transport_set_int macro over it) or else from the server name given with
 * gnutls_server_name_set; it is decided at the handshake (or the first record). gnutls_deinit
 * forgets the session. A send that GnuTLS asks to be repeated (GNUTLS_E_AGAIN) is repeated with the
 * same data, or with NULL and 0: those bytes were parsed already.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "tls.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct gnutls_session_int *gnutls_session_t;
typedef struct {
    unsigned char *data;
    unsigned int size;
} gnutls_datum_t;

/* The interposed functions, as gnutls.h declares them (enums as int). */
int gnutls_alpn_set_protocols(gnutls_session_t session, const gnutls_datum_t *protocols,
                              unsigned protocols_size, unsigned flags);
int gnutls_server_name_set(gnutls_session_t session, int type, const void *name,
                           size_t name_length);
void gnutls_transport_set_int2(gnutls_session_t session, int r, int s);
int gnutls_handshake(gnutls_session_t session);
ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t size);
ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t size);
void gnutls_deinit(gnutls_session_t session);

#define GNUTLS_NAME_DNS         1
#define GNUTLS_E_PUSH_ERROR     (-53)
#define GNUTLS_E_INTERNAL_ERROR (-59)

#define LIBGNUTLS "libgnutls.so"
static struct tls_real real_send = TLS_REAL(gnutls_record_send, LIBGNUTLS);
static struct tls_real real_recv = TLS_REAL(gnutls_record_recv, LIBGNUTLS);
static struct tls_real real_handshake = TLS_REAL(gnutls_handshake, LIBGNUTLS);
static struct tls_real real_server_name = TLS_REAL(gnutls_server_name_set, LIBGNUTLS);
static struct tls_real real_transport = TLS_REAL(gnutls_transport_set_int2, LIBGNUTLS);
static struct tls_real real_alpn = TLS_REAL(gnutls_alpn_set_protocols, LIBGNUTLS);
static struct tls_real real_deinit = TLS_REAL(gnutls_deinit, LIBGNUTLS);

typedef ssize_t (*send_fn)(gnutls_session_t, const void *, size_t);
typedef ssize_t (*recv_fn)(gnutls_session_t, void *, size_t);
typedef int (*handshake_fn)(gnutls_session_t);
typedef int (*server_name_fn)(gnutls_session_t, int, const void *, size_t);
typedef void (*transport_fn)(gnutls_session_t, int, int);
typedef int (*alpn_fn)(gnutls_session_t, const gnutls_datum_t *, unsigned, unsigned);
typedef void (*deinit_fn)(gnutls_session_t);

/* ------------------------------------------------------------------ ALPN */

/*
 * GnuTLS appends to the session's list on every gnutls_alpn_set_protocols call (its size
 * is never reset), so the offer cannot be set twice. The shim sets it once: the host's
 * call is recorded and the offer set when the route is decided, at the handshake, without
 * "h2" on a route counting requests. A list GnuTLS would refuse (more than 8 names, a name
 * of 32 bytes or more) goes to it at once, untouched, for its error.
 */
#define ALPN_NAMES     8  /* MAX_ALPN_PROTOCOLS */
#define ALPN_NAME_SIZE 32 /* MAX_ALPN_PROTOCOL_NAME: names are shorter */

/* The list `p` (n names) in wire format, then the flags byte; its length with the flags
 * byte, or 0 if it is not one to record. */
static size_t to_wire(const gnutls_datum_t *p, unsigned n, unsigned flags, unsigned char *out)
{
    size_t len = 0;
    if (!p || n == 0 || n > ALPN_NAMES || flags > 0xff)
        return 0;
    for (unsigned i = 0; i < n; i++) {
        if (!p[i].data || p[i].size == 0 || p[i].size >= ALPN_NAME_SIZE)
            return 0;
        out[len] = (unsigned char)p[i].size;
        memcpy(out + len + 1, p[i].data, p[i].size);
        len += 1 + p[i].size;
    }
    out[len] = (unsigned char)flags;
    return len + 1;
}

/* Set the offer `wire` (len bytes, without the flags byte) on the session. */
static void set_wire(gnutls_session_t session, const unsigned char *wire, size_t len,
                     unsigned flags, alpn_fn fn)
{
    gnutls_datum_t list[ALPN_NAMES];
    unsigned n = 0;
    for (size_t i = 0; i < len && n < ALPN_NAMES; i += 1 + (size_t)wire[i])
        list[n++] = (gnutls_datum_t){(unsigned char *)(uintptr_t)(wire + i + 1), wire[i]};
    fn(session, list, n, flags);
}

/* Set the recorded offer, without "h2" on a route counting requests, and forget it. */
static void set_offer(gnutls_session_t session, struct tls_session *s, const void *site)
{
    TLS_FN(alpn_fn, fn, &real_alpn, site);
    unsigned char out[ALPN_NAMES * ALPN_NAME_SIZE];
    if (!s->alpn || !fn)
        return;
    size_t len = s->alpn_len - 1, n = s->http ? shim_tls_alpn_http1(s->alpn, len, out) : 0;
    unsigned flags = s->alpn[len];
    set_wire(session, n ? out : s->alpn, n ? n : len, flags, fn);
    shim_tls_set_alpn(s, NULL, 0);
}

static struct tls_session *session_of(gnutls_session_t session, const void *site)
{
    struct tls_session *s = shim_in_tls || !session ? NULL : shim_tls_session(session, true);
    if (s && !s->decided) {
        shim_tls_decide(s, s->fd);
        set_offer(session, s, site);
    }
    return s;
}

EXPORT int gnutls_alpn_set_protocols(gnutls_session_t session, const gnutls_datum_t *protocols,
                                     unsigned protocols_size, unsigned flags)
{
    const void *site = TLS_SITE();
    TLS_FN(alpn_fn, fn, &real_alpn, site);
    unsigned char wire[ALPN_NAMES * ALPN_NAME_SIZE + 1];
    if (!fn)
        return GNUTLS_E_INTERNAL_ERROR;
    size_t len = to_wire(protocols, protocols_size, flags, wire);
    struct tls_session *s = len && !shim_in_tls && session ? shim_tls_session(session, true) : NULL;
    if (s && (!s->decided || s->http) && shim_tls_set_alpn(s, wire, len)) {
        if (s->decided)
            set_offer(session, s, site); /* decided already: at once, kept to HTTP/1.1 */
        return 0;                        /* else set at the handshake */
    }
    return fn(session, protocols, protocols_size, flags);
}

/* ------------------------------------------------------------------ the route */

EXPORT int gnutls_server_name_set(gnutls_session_t session, int type, const void *name,
                                  size_t name_length)
{
    const void *site = TLS_SITE();
    TLS_FN(server_name_fn, fn, &real_server_name, site);
    if (!fn)
        return GNUTLS_E_INTERNAL_ERROR;
    int r = fn(session, type, name, name_length);
    if (r != 0 || type != GNUTLS_NAME_DNS || !name || shim_in_tls || !session)
        return r;
    struct tls_session *s = shim_tls_session(session, true);
    if (s && !s->decided)
        shim_tls_set_host(s, name, strnlen(name, name_length < 255 ? name_length : 255));
    return r;
}

EXPORT void gnutls_transport_set_int2(gnutls_session_t session, int r, int s)
{
    const void *site = TLS_SITE();
    TLS_FN(transport_fn, fn, &real_transport, site);
    if (fn)
        fn(session, r, s);
    struct tls_session *t = shim_in_tls || !session ? NULL : shim_tls_session(session, true);
    if (t && !t->decided)
        t->fd = r == s ? s : -1; /* one socket both ways */
}

EXPORT int gnutls_handshake(gnutls_session_t session)
{
    const void *site = TLS_SITE();
    TLS_FN(handshake_fn, fn, &real_handshake, site);
    if (!fn)
        return GNUTLS_E_INTERNAL_ERROR;
    session_of(session, site);
    shim_in_tls++;
    int r = fn(session);
    shim_in_tls--;
    return r;
}

/* ------------------------------------------------------------------ records */

EXPORT ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t size)
{
    const void *site = TLS_SITE();
    TLS_FN(send_fn, fn, &real_send, site);
    if (!fn)
        return GNUTLS_E_INTERNAL_ERROR;
    struct tls_session *s = session_of(session, site);
    if (s && s->http && data && shim_tls_before_send(s, data, size))
        return GNUTLS_E_PUSH_ERROR;
    shim_in_tls++;
    ssize_t r = fn(session, data, size);
    shim_in_tls--;
    if (s && s->http)
        shim_tls_sent(s, r > 0 ? (size_t)r : 0);
    return r;
}

EXPORT ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t size)
{
    const void *site = TLS_SITE();
    TLS_FN(recv_fn, fn, &real_recv, site);
    if (!fn)
        return GNUTLS_E_INTERNAL_ERROR;
    struct tls_session *s = session_of(session, site);
    shim_in_tls++;
    ssize_t r = fn(session, data, size);
    shim_in_tls--;
    if (s && s->http && r > 0)
        shim_http_after_recv(s->http, data, (size_t)r);
    return r;
}

EXPORT void gnutls_deinit(gnutls_session_t session)
{
    TLS_FN(deinit_fn, fn, &real_deinit, TLS_SITE());
    if (session && !shim_in_tls)
        shim_tls_forget(session);
    if (fn)
        fn(session);
}
