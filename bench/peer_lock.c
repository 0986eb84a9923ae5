/*
 * peer_lock.c - the library's GCRA decision made the way a lock-based peer makes it: under
 * a robust PTHREAD_PROCESS_SHARED mutex in shared memory, or under flock() on a file whose
 * pages hold the state. Same arithmetic, same counters, same clock, read under the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

/*
 * The GCRA decision the library makes (admit if max(TAT, now) - now <= allowance; then TAT
 * = max(TAT, now) + interval), with its counters.
 */
struct gcra_state {
    uint64_t tat, interval_ns, allowance_ns;
    uint64_t admitted, admitted_units, rejected;
};

struct mutex_peer {
    _Alignas(128) pthread_mutex_t lock; /* one peer per pair of cache lines */
    struct gcra_state g;
};

struct flock_peer {
    int fd;
    struct gcra_state *g;
};

static void gcra_state_init(struct gcra_state *g, uint64_t interval_ns, uint64_t burst)
{
    memset(g, 0, sizeof(*g));
    g->interval_ns = interval_ns;
    g->allowance_ns = (burst - 1) * interval_ns;
}

static int gcra_decide(struct gcra_state *g, uint64_t now)
{
    uint64_t base = g->tat > now ? g->tat : now;
    if (base - now > g->allowance_ns) {
        g->rejected++;
        return RL_ELIMITED;
    }
    g->tat = base + g->interval_ns;
    g->admitted++;
    g->admitted_units++;
    return 0;
}

struct mutex_peer *mutex_peer_create(unsigned count, uint64_t interval_ns, uint64_t burst)
{
    struct mutex_peer *peers = shared_alloc(count * sizeof(*peers));
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    for (unsigned i = 0; i < count; i++) {
        if (pthread_mutex_init(&peers[i].lock, &a) != 0)
            die("mutex peer", "pthread_mutex_init failed");
        gcra_state_init(&peers[i].g, interval_ns, burst);
    }
    pthread_mutexattr_destroy(&a);
    return peers;
}

struct mutex_peer *mutex_peer_at(struct mutex_peer *peers, unsigned i)
{
    return &peers[i];
}

void mutex_peer_destroy(struct mutex_peer *peers, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        pthread_mutex_destroy(&peers[i].lock);
    shared_free(peers, count * sizeof(*peers));
}

int mutex_peer_decide(struct mutex_peer *p)
{
    int rc = pthread_mutex_lock(&p->lock);
    /* The owner died holding the lock. The state is one TAT store plus counters, valid at
     * every instruction: mark the mutex consistent and go on. */
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&p->lock);
    if (rc != 0)
        die("mutex peer", strerror(rc));
    rc = gcra_decide(&p->g, now_ns());
    pthread_mutex_unlock(&p->lock);
    return rc;
}

struct flock_peer *flock_peer_open(const char *path, uint64_t interval_ns, uint64_t burst)
{
    struct flock_peer *p = malloc(sizeof(*p));
    if (!p || (p->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
        ftruncate(p->fd, 4096) < 0)
        die(path, strerror(errno));
    p->g = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (p->g == MAP_FAILED)
        die(path, strerror(errno));
    flock(p->fd, LOCK_EX);
    if (p->g->interval_ns == 0) /* the first to open the file sets it up */
        gcra_state_init(p->g, interval_ns, burst);
    flock(p->fd, LOCK_UN);
    return p;
}

int flock_peer_decide(struct flock_peer *p)
{
    if (flock(p->fd, LOCK_EX) < 0)
        die("flock", strerror(errno));
    int rc = gcra_decide(p->g, now_ns());
    flock(p->fd, LOCK_UN);
    return rc;
}

void flock_peer_close(struct flock_peer *p)
{
    munmap(p->g, 4096);
    close(p->fd);
    free(p);
}
