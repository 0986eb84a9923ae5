/*
 * tls.h - what the TLS hooks share (route option `count requests` over HTTPS; README
 * "Preload shim"). tls.c finds the caller's real library functions and keeps the state of
 * each TLS session; tls_openssl.c and tls_gnutls.c export the interposers. Neither links
 * libssl or libgnutls: they call only functions found in the libraries already loaded.
 */
#ifndef RL_SHIM_TLS_H
#define RL_SHIM_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

/* The calling site of the interposer that runs: the caller's own library is searched. */
#define TLS_SITE() __builtin_extract_return_addr(__builtin_return_address(0))

/* How many calling sites of one function keep their resolution (more: resolved per call). */
#define TLS_SITES 16

/*
 * A function of a TLS library, resolved per calling site: the definition that the caller's
 * own object sees (its libssl, not another copy a Python wheel brought), else the next one
 * after the shim, else the first loaded object named `lib` that defines it.
 */
struct tls_real {
    const char *name; /* "SSL_write" */
    const char *lib;  /* a substring of the library's file name: "libssl.so" */
    struct {
        void *_Atomic site; /* NULL: free; claimed by CAS */
        void *_Atomic fn;   /* NULL: being filled in (resolve again) */
    } hit[TLS_SITES];
};

#define TLS_REAL(fn, library)                                                                      \
    {                                                                                              \
        .name = #fn, .lib = library                                                                \
    }

/* The real function for a call from `site`, or NULL if no loaded library defines it. Never
 * returns one of the shim's own interposers. Lock-free after a site's first call (which
 * takes the dynamic loader's lock). */
void *shim_tls_real(struct tls_real *r, const void *site);

/* The real function as a function pointer of type `type` (NULL: none). */
#define TLS_FN(type, var, real, site)                                                              \
    type var;                                                                                      \
    do {                                                                                           \
        void *sym_ = shim_tls_real(real, site);                                                    \
        memcpy(&var, &sym_, sizeof(var));                                                          \
    } while (0)

/* ------------------------------------------------------------------ sessions */

/*
 * One TLS session (an SSL *, a gnutls_session_t), or one SSL_CTX's ALPN offer, keyed by
 * its address. A session is used by one thread at a time, as the TLS libraries require;
 * the table itself is thread-safe.
 */
struct tls_session {
    const void *key;
    struct tls_session *next;
    struct shim_http *http; /* the route counts requests: the parser; else NULL */
    bool decided;           /* the route is known for good (http or none) */
    char *host;             /* the server name (SNI) sent, malloc'd; NULL: none yet */
    int fd;                 /* the socket, if the library was given one; else -1 */
    size_t ahead;           /* plaintext parsed but not yet taken by the library */
    unsigned char *alpn;    /* the ALPN offer as set (wire format), malloc'd; NULL: none */
    size_t alpn_len;
};

/* The state of `key`, made if `make` and it has none (NULL: none, or out of memory). */
struct tls_session *shim_tls_session(const void *key, bool make);

/* Drop key's state (SSL_free, SSL_shutdown, gnutls_deinit, SSL_CTX_free). */
void shim_tls_forget(const void *key);

/* Record the server name sent (SNI); false if out of memory. */
bool shim_tls_set_host(struct tls_session *s, const char *host, size_t len);

/* Record an ALPN offer (wire format); false if out of memory. */
bool shim_tls_set_alpn(struct tls_session *s, const unsigned char *alpn, size_t len);

/*
 * Decide the session's route, once (at the handshake or the first record, before the
 * ClientHello is written): by the peer of the socket `fd` it runs on when that is a TCP/IP
 * socket, else by its server name. True when this call made s->http (the caller then keeps
 * the offer to HTTP/1.1).
 */
bool shim_tls_decide(struct tls_session *s, int fd);

/* The offer `in` (wire format) without "h2", in `out` (at least `len` bytes): its length,
 * or 0 when nothing would remain or `in` is malformed (then the offer is left as it is). */
size_t shim_tls_alpn_http1(const unsigned char *in, size_t len, unsigned char *out);

/*
 * Before `len` plaintext bytes are handed to the library: the parser sees those it has
 * not seen (a retried write hands the same bytes again). 0 or an errno to fail with.
 */
int shim_tls_before_send(struct tls_session *s, const void *buf, size_t len);

/* After a write call: the library took `taken` bytes (0 on failure). */
void shim_tls_sent(struct tls_session *s, size_t taken);

#endif /* RL_SHIM_TLS_H */
