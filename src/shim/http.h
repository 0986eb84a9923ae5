/*
 * http.h - the request-level shim (route option `count requests`; README "Preload shim").
 * http.c parses one connection's HTTP/1.1 traffic: it takes one unit before each request
 * head is written and reports each response head with rl_report. fd.c keeps that state per
 * plain-TCP socket fd. The TLS hooks use the same parser on the plaintext.
 */
#ifndef RL_SHIM_HTTP_H
#define RL_SHIM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "shim.h"

struct shim_http; /* one connection's request/response parser state; opaque */

/* A connection on a route counted by requests (route option `count requests`), or NULL when
 * `m` is not such a route. Allocates; thread-safe. */
struct shim_http *shim_http_new(const struct shim_match *m);
void shim_http_free(struct shim_http *h);

/* Before `len` bytes of `buf` are written to the connection (plain or TLS plaintext):
 * parses them, and for each request head that begins in them takes one unit from the
 * route's bucket, waiting its turn as a connect does (route's wait/on-timeout). Returns 0
 * to go ahead, or an errno to fail the write with (fail-closed timeout). Never buffers or
 * changes the data. Not reentrant per connection (the caller serialises writes on one
 * connection, as the host's own write calls are). */
int shim_http_before_send(struct shim_http *h, const void *buf, size_t len);

/* After `len` bytes were read from the connection: parses responses; on each complete
 * response head reports status + Retry-After, X-RateLimit-*, RateLimit, RateLimit-Policy
 * through rl_report on the route's bucket. */
void shim_http_after_recv(struct shim_http *h, const void *buf, size_t len);

/* Plain TCP: the state of a socket fd (made at connect when its route counts requests),
 * NULL if none; shim_fd_forget drops it (close, dup2/dup3 over it, shutdown). The pointer
 * returned by shim_fd_http is for a NULL test only, or for a caller that owns fd (no other
 * thread may forget it meanwhile); the hooks use shim_fd_hold. */
struct shim_http *shim_fd_http(int fd);
void shim_fd_forget(int fd);

/* The route that a TLS connection to server name `host` (SNI) on an unknown fd belongs
 * to: matches routes written with that host name (any port that is a TLS port of a route
 * counting requests). False if none. */
bool shim_routes_match_host(const char *host, struct shim_match *out);

/* ------------------------------------------------------------------ beyond the TLS interface */

/* After a write that began with shim_http_before_send(h, buf, len): `sent` of the len
 * bytes went out (0 if the write failed). Heads beyond them were paid for and count as
 * paid when the host writes them again. Nothing to do when sent == len. */
void shim_http_after_send(struct shim_http *h, const void *buf, size_t len, size_t sent);

/* The same for a gather write (writev, sendmsg): the buffers in order. */
int shim_http_before_sendv(struct shim_http *h, const struct iovec *iov, int n);
void shim_http_after_sendv(struct shim_http *h, const struct iovec *iov, int n, size_t sent);

/* Another owner of h (shim_http_free drops one; the last frees it). */
void shim_http_hold(struct shim_http *h);

/* True once the connection passes through uncounted. */
bool shim_http_passing(const struct shim_http *h);

/* Put the connection in pass-through for good, with one line saying why. */
void shim_http_give_up(struct shim_http *h, const char *why);

/* The state of fd with a reference the caller drops with shim_http_free, or NULL (at
 * once, one load, for a socket without state). Lock-free. */
struct shim_http *shim_fd_hold(int fd);

/* Make h (a new connection on a route counting requests) the state of fd, dropping any
 * state it had. False if fd is too large for the table (its connect then takes one unit,
 * as a route counting connections does) or h is NULL. Takes over the caller's reference. */
bool shim_fd_attach(int fd, struct shim_http *h);

/* Set by the TLS hooks while the calling thread is inside SSL_write/SSL_read (or GnuTLS's
 * equivalents): the plain hooks then leave the library's own send/recv alone. */
extern _Thread_local int shim_in_tls __attribute__((tls_model("initial-exec")));

#endif /* RL_SHIM_HTTP_H */
