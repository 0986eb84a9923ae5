/*
 * shim.h - what the preload shim's files share (libratelimit-preload.so; README "Preload
 * shim"). interpose.c exports connect() and sendto() and asks shim_admit(); deepbind.c
 * exports dlopen() and brings RTLD_DEEPBIND loads back to them; shim.c loads the
 * config and the table once and decides; routes.c holds the route table (RCU) and matches
 * destinations against it; helper.c runs the thread that resolves host names; say.c decides
 * where diagnostics go. The request-level shim (route option `count requests`) is in
 * http.h: http.c parses a connection's HTTP/1.1, fd.c keeps its state per socket fd, and
 * interpose.c's reads, writes and closes feed them.
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
    struct shim_tab *tab;         /* the bucket's table, referenced until shim_match_done */
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

/* Take n units from the route's bucket for n requests (http.c), waiting for the turn as
 * shim_admit does: 0, or the errno to fail the write with. Reentrant calls pass (0).
 * *decided_ns: the admission instant (rl_decision.at_ns), or 0 when the units were not
 * admitted although the write may go (an on-timeout pass, fail-open, a dry run's refusal,
 * a reentrant call). */
int shim_take_units(const struct shim_match *m, unsigned n, uint64_t *decided_ns);

/* Report a response to the route's bucket (rl_report); nothing if it has no bucket. */
void shim_report(const struct shim_match *m, const struct rl_response *r);

/* Mark the calling thread as the shim's own (the resolver thread): its connects pass. */
void shim_thread_is_ours(void);

/* ------------------------------------------------------------------ say.c */

/*
 * One line "ratelimit-preload: ..." with a single write(2) to the host's stderr, if fd 2 is
 * still the file it was when the shim was loaded; else to syslog (ident ratelimit-shim,
 * LOG_PID, LOG_USER; socket $RATELIMIT_SYSLOG_SOCKET, default /dev/log). Keeps errno.
 */
void shim_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The calling thread's fd table is private (the resolver thread): say.c reaches the host's
 * stderr through /proc/self/fd/2. */
void shim_say_from_private_fds(void);

/* fd moved above 2 (F_DUPFD_CLOEXEC; the original closed), so that it never sits where the
 * host's stdin, stdout or stderr was. Negative fds pass through; -1 if the move fails. */
int shim_fd_high(int fd);

/* ------------------------------------------------------------------ deepbind.c */

/* The next dlopen (libc's), for the exported dlopen's jump (deepbind.c). */
extern void *_Atomic shim_next_dlopen;

/* dlopen(file, mode) as if called from `caller`; after a RTLD_DEEPBIND load, rewrites the
 * slots that bind the shim's interposed functions past it (deepbind.c). */
void *shim_dlopen_from(const char *file, int mode, const void *caller);

/* ------------------------------------------------------------------ helper.c */

/* Start the resolver thread if it is not running and ask it for one pass
 * (shim_routes_refresh). Never waits for the pass. False if the thread cannot start. */
bool shim_helper_wake(void);

/* Wait until the resolver thread has finished a pass (at once if it has). */
void shim_helper_wait_pass(void);

/* ------------------------------------------------------------------ routes.c */

/* Parse connect()'s address; false if it is not AF_INET/AF_INET6 (or too short). */
bool shim_dest_from(const struct sockaddr *sa, socklen_t len, struct shim_dest *out);

/*
 * Build and publish the first route table from the config's routes, looking buckets up in
 * `table` (NULL: the table is unusable, every route lacks its bucket), and wake the
 * resolver thread for the host names. Reports missing buckets (shim_say), one line each.
 * Called once per process (shim.c's init), before any match.
 */
void shim_routes_init(const rl_config *config, const char *config_path, rl_table *table);

/* Wait for the first resolution if `port` is that of a host-name route; else return. */
void shim_routes_wait_first(unsigned port);

/* If the refresh interval has passed, wake the resolver thread; never waits for it. */
void shim_routes_refresh_if_due(void);

/*
 * Resolve host names again, retry missing buckets and publish the new table (the resolver
 * thread's pass). After the first pass, reports unresolvable names, one line each. Call
 * outside any read-side critical section.
 */
void shim_routes_refresh(void);

/* Find the most specific route for d (longest prefix; then the first in the file). A match
 * with a bucket holds its table: call shim_match_done once the bucket is no longer used. */
bool shim_routes_match(const struct shim_dest *d, struct shim_match *out);
void shim_match_done(struct shim_match *m);
/* One more reference to m's table, for a copy of m kept past the caller's (a connection's
 * request-level state); that copy is let go with shim_match_done too. */
void shim_match_hold(const struct shim_match *m);

/* At most once a second: if the table file was deleted or replaced, ask the resolver
 * thread to open the path again (shim_routes_refresh does). Never waits for it. */
void shim_routes_check_if_due(void);

/* ------------------------------------------------------------------ shim.c (again) */

/* Open the config's table again (creating it if missing, as at start) and apply the
 * config to it; `old_path` names the table found replaced. NULL if that fails (said). */
rl_table *shim_table_reopen(const char *old_path);

#endif /* RL_SHIM_H */
