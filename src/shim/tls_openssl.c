/*
 * tls_openssl.c - the OpenSSL 3 interposers (libssl.so.3; the 1.1 API is the same). On a
 * route that counts requests, SSL_write and SSL_write_ex take one unit before each request
 * head in the plaintext, SSL_read and SSL_read_ex hear the responses, and the ALPN offer
 * loses "h2" so that the client speaks HTTP/1.1.
 *
 * A session's route comes from its socket (SSL_get_fd) or, when it has none (curl and
 * asyncio bring their own BIOs), from the server name set with SSL_set_tlsext_host_name,
 * a macro over SSL_ctrl. It is decided at the handshake (or the first record, which starts
 * it); the ALPN offer (the session's own, else its SSL_CTX's) is replaced then, before the
 * ClientHello is written.
 *
 * While a thread is inside a libssl call, shim_in_tls is raised: the send and recv libssl
 * makes are not requests, and libssl's own calls back into exported functions (SSL_connect
 * calls SSL_do_handshake) pass straight through.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "tls.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

/* The interposed functions, as libssl declares them. */
int SSL_write(SSL *ssl, const void *buf, int num);
int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written);
int SSL_read(SSL *ssl, void *buf, int num);
int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes);
int SSL_connect(SSL *ssl);
int SSL_do_handshake(SSL *ssl);
long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg);
int SSL_set_alpn_protos(SSL *ssl, const unsigned char *protos, unsigned len);
int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *protos, unsigned len);
int SSL_shutdown(SSL *ssl);
void SSL_free(SSL *ssl);
void SSL_CTX_free(SSL_CTX *ctx);

#define SSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define TLSEXT_NAMETYPE_host_name    0
#define ALPN_MAX                     1024 /* longer offers are left as they are */

#define LIBSSL "libssl.so"
static struct tls_real real_write = TLS_REAL(SSL_write, LIBSSL);
static struct tls_real real_write_ex = TLS_REAL(SSL_write_ex, LIBSSL);
static struct tls_real real_read = TLS_REAL(SSL_read, LIBSSL);
static struct tls_real real_read_ex = TLS_REAL(SSL_read_ex, LIBSSL);
static struct tls_real real_ctrl = TLS_REAL(SSL_ctrl, LIBSSL);
static struct tls_real real_connect = TLS_REAL(SSL_connect, LIBSSL);
static struct tls_real real_handshake = TLS_REAL(SSL_do_handshake, LIBSSL);
static struct tls_real real_shutdown = TLS_REAL(SSL_shutdown, LIBSSL);
static struct tls_real real_free = TLS_REAL(SSL_free, LIBSSL);
static struct tls_real real_ctx_free = TLS_REAL(SSL_CTX_free, LIBSSL);
static struct tls_real real_set_alpn = TLS_REAL(SSL_set_alpn_protos, LIBSSL);
static struct tls_real real_ctx_set_alpn = TLS_REAL(SSL_CTX_set_alpn_protos, LIBSSL);
static struct tls_real real_get_fd = TLS_REAL(SSL_get_fd, LIBSSL);
static struct tls_real real_get_ctx = TLS_REAL(SSL_get_SSL_CTX, LIBSSL);

typedef int (*write_fn)(SSL *, const void *, int);
typedef int (*write_ex_fn)(SSL *, const void *, size_t, size_t *);
typedef int (*read_fn)(SSL *, void *, int);
typedef int (*read_ex_fn)(SSL *, void *, size_t, size_t *);
typedef long (*ctrl_fn)(SSL *, int, long, void *);
typedef int (*ssl_fn)(SSL *);
typedef void (*free_fn)(SSL *);
typedef void (*ctx_free_fn)(SSL_CTX *);
typedef int (*set_alpn_fn)(SSL *, const unsigned char *, unsigned);
typedef int (*ctx_set_alpn_fn)(SSL_CTX *, const unsigned char *, unsigned);
typedef int (*get_fd_fn)(const SSL *);
typedef SSL_CTX *(*get_ctx_fn)(const SSL *);

/* ------------------------------------------------------------------ the route */

static int socket_of(SSL *ssl, const void *site)
{
    TLS_FN(get_fd_fn, get_fd, &real_get_fd, site);
    return get_fd ? get_fd(ssl) : -1;
}

/* Offer HTTP/1.1 only: the session's own offer (else its context's) without "h2". */
static void keep_http1(SSL *ssl, struct tls_session *s, const void *site)
{
    TLS_FN(get_ctx_fn, get_ctx, &real_get_ctx, site);
    TLS_FN(set_alpn_fn, set_alpn, &real_set_alpn, site);
    struct tls_session *ctx = !s->alpn && get_ctx ? shim_tls_session(get_ctx(ssl), false) : NULL;
    const struct tls_session *offer = s->alpn ? s : ctx;
    unsigned char out[ALPN_MAX];
    if (!set_alpn || !offer || !offer->alpn || offer->alpn_len > sizeof(out))
        return;
    size_t n = shim_tls_alpn_http1(offer->alpn, offer->alpn_len, out);
    if (n && n < offer->alpn_len)
        set_alpn(ssl, out, (unsigned)n);
}

/* The session's state, its route decided as far as it can be now; NULL inside libssl's own
 * calls and when out of memory (the call passes untouched). */
static struct tls_session *session(SSL *ssl, const void *site)
{
    struct tls_session *s = shim_in_tls || !ssl ? NULL : shim_tls_session(ssl, true);
    if (s && !s->decided && shim_tls_decide(s, socket_of(ssl, site)))
        keep_http1(ssl, s, site);
    return s;
}

/* ------------------------------------------------------------------ writes and reads */

/* Before a write of len bytes: 0, or the errno to fail it with. */
static int before_write(struct tls_session *s, const void *buf, size_t len)
{
    int err = s && s->http ? shim_tls_before_send(s, buf, len) : 0;
    if (err)
        errno = err;
    return err;
}

static void after_write(struct tls_session *s, size_t taken)
{
    if (s && s->http)
        shim_tls_sent(s, taken);
}

static void after_read(struct tls_session *s, const void *buf, size_t got)
{
    if (s && s->http && got)
        shim_http_after_recv(s->http, buf, got);
}

EXPORT int SSL_write(SSL *ssl, const void *buf, int num)
{
    const void *site = TLS_SITE();
    TLS_FN(write_fn, fn, &real_write, site);
    struct tls_session *s = fn ? session(ssl, site) : NULL;
    if (!fn || before_write(s, buf, num > 0 ? (size_t)num : 0))
        return -1;
    shim_in_tls++;
    int r = fn(ssl, buf, num);
    shim_in_tls--;
    after_write(s, r > 0 ? (size_t)r : 0);
    return r;
}

EXPORT int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)
{
    const void *site = TLS_SITE();
    TLS_FN(write_ex_fn, fn, &real_write_ex, site);
    struct tls_session *s = fn ? session(ssl, site) : NULL;
    if (!fn || before_write(s, buf, num))
        return 0;
    shim_in_tls++;
    int r = fn(ssl, buf, num, written);
    shim_in_tls--;
    after_write(s, r == 1 && written ? *written : 0);
    return r;
}

EXPORT int SSL_read(SSL *ssl, void *buf, int num)
{
    const void *site = TLS_SITE();
    TLS_FN(read_fn, fn, &real_read, site);
    if (!fn)
        return -1;
    struct tls_session *s = session(ssl, site);
    shim_in_tls++;
    int r = fn(ssl, buf, num);
    shim_in_tls--;
    after_read(s, buf, r > 0 ? (size_t)r : 0);
    return r;
}

EXPORT int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes)
{
    const void *site = TLS_SITE();
    TLS_FN(read_ex_fn, fn, &real_read_ex, site);
    if (!fn)
        return 0;
    struct tls_session *s = session(ssl, site);
    shim_in_tls++;
    int r = fn(ssl, buf, num, readbytes);
    shim_in_tls--;
    after_read(s, buf, r == 1 && readbytes ? *readbytes : 0);
    return r;
}

/* ------------------------------------------------------------------ the handshake */

static int handshake(SSL *ssl, struct tls_real *real, const void *site)
{
    TLS_FN(ssl_fn, fn, real, site);
    if (!fn)
        return -1;
    session(ssl, site);
    shim_in_tls++;
    int r = fn(ssl);
    shim_in_tls--;
    return r;
}

EXPORT int SSL_connect(SSL *ssl)
{
    return handshake(ssl, &real_connect, TLS_SITE());
}

EXPORT int SSL_do_handshake(SSL *ssl)
{
    return handshake(ssl, &real_handshake, TLS_SITE());
}

/* SSL_set_tlsext_host_name(ssl, name) is SSL_ctrl(ssl, 55, 0, name). */
EXPORT long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg)
{
    const void *site = TLS_SITE();
    TLS_FN(ctrl_fn, fn, &real_ctrl, site);
    if (!fn)
        return 0;
    long r = fn(ssl, cmd, larg, parg);
    if (cmd != SSL_CTRL_SET_TLSEXT_HOSTNAME || larg != TLSEXT_NAMETYPE_host_name || r != 1 ||
        !parg || shim_in_tls)
        return r;
    struct tls_session *s = shim_tls_session(ssl, true);
    if (s && !s->decided)
        shim_tls_set_host(s, parg, strnlen(parg, 255));
    return r;
}

/* ------------------------------------------------------------------ ALPN */

EXPORT int SSL_set_alpn_protos(SSL *ssl, const unsigned char *protos, unsigned len)
{
    const void *site = TLS_SITE();
    TLS_FN(set_alpn_fn, fn, &real_set_alpn, site);
    if (!fn)
        return 1; /* its failure value */
    struct tls_session *s = shim_in_tls || !ssl ? NULL : shim_tls_session(ssl, true);
    bool kept = protos && len <= ALPN_MAX; /* longer: recorded as no offer */
    if (s)
        shim_tls_set_alpn(s, kept ? protos : NULL, kept ? len : 0);
    unsigned char out[ALPN_MAX];
    size_t n = s && s->http && kept ? shim_tls_alpn_http1(protos, len, out) : 0;
    return n ? fn(ssl, out, (unsigned)n) : fn(ssl, protos, len);
}

/* A context serves every route: its offer is recorded, and changed per session. */
EXPORT int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *protos, unsigned len)
{
    TLS_FN(ctx_set_alpn_fn, fn, &real_ctx_set_alpn, TLS_SITE());
    if (!fn)
        return 1;
    int r = fn(ctx, protos, len);
    struct tls_session *s = r == 0 && ctx ? shim_tls_session(ctx, true) : NULL;
    if (s && !shim_tls_set_alpn(s, protos && len <= ALPN_MAX ? protos : NULL,
                                protos && len <= ALPN_MAX ? len : 0))
        shim_tls_forget(ctx);
    return r;
}

/* ------------------------------------------------------------------ the end */

EXPORT int SSL_shutdown(SSL *ssl)
{
    const void *site = TLS_SITE();
    TLS_FN(ssl_fn, fn, &real_shutdown, site);
    if (!fn)
        return -1;
    if (!shim_in_tls)
        shim_tls_forget(ssl);
    shim_in_tls++;
    int r = fn(ssl);
    shim_in_tls--;
    return r;
}

/* libssl's SSL_free calls SSL_CTX_free for its reference: that is no free of the context. */
EXPORT void SSL_free(SSL *ssl)
{
    TLS_FN(free_fn, fn, &real_free, TLS_SITE());
    if (ssl && !shim_in_tls)
        shim_tls_forget(ssl);
    shim_in_tls++;
    if (fn)
        fn(ssl);
    shim_in_tls--;
}

EXPORT void SSL_CTX_free(SSL_CTX *ctx)
{
    TLS_FN(ctx_free_fn, fn, &real_ctx_free, TLS_SITE());
    if (ctx && !shim_in_tls)
        shim_tls_forget(ctx);
    if (fn)
        fn(ctx);
}
