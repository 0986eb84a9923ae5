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
 * NULL if none; shim_fd_forget drops it (close, dup2/dup3 over it, shutdown). */
struct shim_http *shim_fd_http(int fd);
void shim_fd_forget(int fd);

/* The route that a TLS connection to server name `host` (SNI) on an unknown fd belongs
 * to: matches routes written with that host name (any port that is a TLS port of a route
 * counting requests). False if none. */
bool shim_routes_match_host(const char *host, struct shim_match *out);

/* Set by the TLS hooks while the calling thread is inside SSL_write/SSL_read (or GnuTLS's
 * equivalents): the plain hooks then leave the library's own send/recv alone. */
extern _Thread_local int shim_in_tls;

#endif /* RL_SHIM_HTTP_H */
