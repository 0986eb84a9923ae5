/*
 * fd.c - the request-level shim's state of each plain-TCP socket, by fd number.
 *
 * A fixed array of FD_SLOTS pointers, zero until a connect on a route counting requests
 * fills a slot. A hook on any other fd does one load of its slot and finds NULL: that is
 * the whole cost for the host's files, pipes and unrouted sockets. Larger fds are not kept
 * (their connects are counted as connections; one line says so).
 *
 * A slot's state is freed while another thread may be about to use it (a close racing a
 * send on the same fd, a host bug, but not ours to crash on). Each hook takes a reference
 * between two counts of the fd's stripe in `users`:
 *
 *   hook:    users[s] += 1 (H4)   h = slot (H5)   h->refs += 1   users[s] -= 1
 *   forget:  old = exchange(slot, NULL) (H6)      wait for users[s] == 0 (H7)   drop old
 *
 * All four marked accesses are sequentially consistent, so either the hook's load sees
 * NULL or the forgetter's wait sees the hook's count. The wait spans only a hook's few
 * instructions; it gives up after a bounded number of yields and then leaks the state
 * rather than free it under a hook (a hook interrupted by a signal handler that closes the
 * same fd, say).
 */
#include <sched.h>

#include "../atomics.h"
#include "http.h"

#define FD_SLOTS    65536U
#define STRIPES     1024U
#define WAIT_YIELDS 10000U

_Thread_local int shim_in_tls __attribute__((tls_model("initial-exec")));

static void *_Atomic slots[FD_SLOTS];
static rl_atomic64 users[STRIPES];

/* Non-zero once a too-large fd has been reported (one line per process). */
static rl_atomic64 warned_large;

struct shim_http *shim_fd_http(int fd)
{
    if (fd < 0 || (unsigned)fd >= FD_SLOTS)
        return NULL;
    /* Relaxed: a test only; see the header for when the pointer may be used. */
    return rl__ptr_load_relaxed(&slots[fd]);
}

struct shim_http *shim_fd_hold(int fd)
{
    if (fd < 0 || (unsigned)fd >= FD_SLOTS || !rl__ptr_load_relaxed(&slots[fd]))
        return NULL; /* Relaxed: the common case, no state; a state found is loaded again */
    rl_atomic64 *u = &users[(unsigned)fd % STRIPES];
    rl__fetch_add_seq_cst(u, 1);                            /* H4: see the file comment */
    struct shim_http *h = rl__ptr_load_seq_cst(&slots[fd]); /* H5 */
    if (h)
        shim_http_hold(h);
    /* Release: our reference is counted before a forgetter sees the stripe at zero. */
    rl__fetch_add_acq_rel(u, UINT64_MAX);
    return h;
}

/* Drop the table's reference to old, which slot `fd` held until now. */
static void retire(int fd, struct shim_http *old)
{
    const rl_atomic64 *u = &users[(unsigned)fd % STRIPES];
    for (unsigned i = 0; rl__load_seq_cst(u) != 0; i++) { /* H7 */
        if (i == WAIT_YIELDS)
            return; /* a hook stays inside: leak old rather than free it under the hook */
        sched_yield();
    }
    shim_http_free(old);
}

void shim_fd_forget(int fd)
{
    /* Relaxed: the common case, no state; a state found is taken by the exchange. */
    if (fd < 0 || (unsigned)fd >= FD_SLOTS || !rl__ptr_load_relaxed(&slots[fd]))
        return;
    struct shim_http *old = rl__ptr_xchg_seq_cst(&slots[fd], NULL); /* H6 */
    if (old)
        retire(fd, old);
}

bool shim_fd_attach(int fd, struct shim_http *h)
{
    if (!h)
        return false;
    if (fd < 0 || (unsigned)fd >= FD_SLOTS) {
        /* Relaxed: only the count matters (one line per process). */
        if (rl__fetch_add_relaxed(&warned_large, 1) == 0)
            shim_say("socket fd %d is beyond the %u the request-level shim tracks: its "
                     "connections (and those of larger fds) are counted as connections",
                     fd, FD_SLOTS);
        shim_http_free(h);
        return false;
    }
    /* H6 too: the exchange publishes h's contents to hooks (H5) and takes the old state. */
    struct shim_http *old = rl__ptr_xchg_seq_cst(&slots[fd], h);
    if (old)
        retire(fd, old);
    return true;
}
