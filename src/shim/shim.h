/*
 * shim.h - what the preload shim's files share (libratelimit-preload.so; README "Preload
 * shim"). interpose.c exports connect() and sendto() and asks shim_admit(); shim.c loads the
 * config and the table once and decides; routes.c holds the route table (RCU) and matches
 * destinations against it.
 */
#ifndef RL_SHIM_H
#define RL_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ratelimit.h"

/* A TCP/IP destination as routes compare it: IPv4-mapped IPv6 addresses become IPv4. */
struct shim_addr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order; 4 bytes used for AF_INET */
};

struct shim_dest {
    struct shim_addr ip;
    unsigned port; /* host byte order */
};

/* What a matched route asks of a connect, copied out of the RCU-protected route table. */
struct shim_match {
    const struct rl_route *route; /* the config's entry: lives as long as the process */
    rl_bucket *bucket;            /* NULL: no usable bucket (table or bucket missing) */
};

/* ------------------------------------------------------------------ shim.c */

/*
 * The decision for a connect (or a sendto with MSG_FASTOPEN) of socket fd to sa: 0 to go
 * ahead with the real call, else the errno to fail it with (ETIMEDOUT, EACCES). Takes one
 * unit from the route's bucket, waiting for its turn. Never changes errno. Thread-safe;
 * reentrant calls from inside the shim (the resolver's own connects) pass straight through.
 * Not async-signal-safe.
 */
int shim_admit(int fd, const struct sockaddr *sa, socklen_t len);

/* Write one line "ratelimit-preload: ..." to stderr with a single write(2). */
void shim_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------ routes.c */

/* Parse connect()'s address; false if it is not AF_INET/AF_INET6 (or too short). */
bool shim_dest_from(const struct sockaddr *sa, socklen_t len, struct shim_dest *out);

/*
 * Build and publish the first route table from the config's routes, resolving host names
 * (getaddrinfo) and looking buckets up in `table` (NULL: the table is unusable, every route
 * lacks its bucket). Reports unresolvable host names and missing buckets on stderr, one line
 * each. Called once per process (shim.c's init), before any match.
 */
void shim_routes_init(const rl_config *config, const char *config_path, rl_table *table);

/*
 * If the refresh interval has passed, re-resolve host names and retry missing buckets; one
 * caller does it while the others go on with the current table. Call outside any read-side
 * critical section.
 */
void shim_routes_refresh_if_due(void);

/* Find the most specific route for d (longest prefix; then the first in the file). */
bool shim_routes_match(const struct shim_dest *d, struct shim_match *out);

#endif /* RL_SHIM_H */
