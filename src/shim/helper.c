/*
 * helper.c - the resolver thread: host names are resolved here, never on a connect.
 *
 * A connect that finds a refresh due only wakes this thread (shim_helper_wake) and goes on
 * matching against the routes it has. The thread is started on the first wake, detached,
 * with every signal blocked, so no handler of the host runs on it. It does one pass
 * (shim_routes_refresh) per wake and counts the passes; shim_helper_wait_pass lets a
 * connect wait for the first one (routes.c says which connects do).
 *
 * Its file descriptor table is its own: it starts empty (close_range with
 * CLOSE_RANGE_UNSHARE, Linux 5.9). So what getaddrinfo and NSS open (resolv.conf, hosts,
 * DNS sockets) never takes one of the host's fd numbers, not even a closed 0, 1 or 2.
 * Without close_range it shares the host's table, as the connect path does.
 *
 * fork(): the child has no helper. The child handler resets the state, and the child's
 * next wake starts a new thread. A pass cut short by the fork is simply not counted.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include "shim.h"

/* lock guards running and passes; the thread never holds it while it resolves. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pass_done = PTHREAD_COND_INITIALIZER;
static bool running;
static unsigned long passes;
/* One post per wake; the thread runs one pass per post. */
static sem_t wakes;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static void after_fork_child(void)
{
    pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    lock = fresh_lock;
    pass_done = fresh_cond;
    running = false;
    sem_init(&wakes, 0, 0);
}

static void setup(void)
{
    sem_init(&wakes, 0, 0);
    pthread_atfork(NULL, NULL, after_fork_child);
}

static void *helper_main(void *arg)
{
    (void)arg;
    shim_thread_is_ours();
    if (close_range(0, ~0U, CLOSE_RANGE_UNSHARE) == 0)
        shim_say_from_private_fds();
    for (;;) {
        while (sem_wait(&wakes) != 0 && errno == EINTR)
            continue;
        shim_routes_refresh();
        pthread_mutex_lock(&lock);
        passes++;
        pthread_cond_broadcast(&pass_done);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* Start the thread unless it runs; call with lock held. False if it cannot start. */
static bool start_locked(void)
{
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    if (running)
        return true;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits the mask */
    running = pthread_create(&thread, &attr, helper_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return running;
}

bool shim_helper_wake(void)
{
    pthread_once(&setup_once, setup);
    pthread_mutex_lock(&lock);
    bool ok = start_locked();
    pthread_mutex_unlock(&lock);
    if (ok)
        sem_post(&wakes);
    return ok;
}

void shim_helper_wait_pass(void)
{
    pthread_once(&setup_once, setup);
    pthread_mutex_lock(&lock);
    /* A child forked before the first pass has no thread: start one and ask for a pass. */
    bool ok = passes > 0 || running || (start_locked() && sem_post(&wakes) == 0);
    while (ok && passes == 0)
        pthread_cond_wait(&pass_done, &lock);
    pthread_mutex_unlock(&lock);
}
