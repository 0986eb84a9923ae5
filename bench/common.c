/*
 * common.c - errors, clocks, shared memory, private tables, and process teams.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

_Noreturn void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench: %s: %s\n", what, detail);
    exit(1);
}

_Noreturn void die_rl(const char *what)
{
    die(what, rl_errdetail());
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t cpu_ns(void)
{
    return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

void *shared_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap", "cannot map shared memory");
    return p;
}

void shared_free(const void *p, size_t n)
{
    munmap((void *)p, n);
}

#define CLEANUPS_MAX 4
static cleanup_fn *cleanups[CLEANUPS_MAX];

static void run_cleanups(void)
{
    for (int i = CLEANUPS_MAX - 1; i >= 0; i--)
        if (cleanups[i])
            cleanups[i]();
}

static void on_signal(int sig)
{
    run_cleanups();
    signal(sig, SIG_DFL);
    raise(sig);
}

void on_exit_or_signal(cleanup_fn *fn)
{
    int i = 0;
    while (i < CLEANUPS_MAX && cleanups[i] && cleanups[i] != fn)
        i++;
    if (i == CLEANUPS_MAX)
        die("cleanup", "too many cleanup functions");
    if (i == 0) {
        atexit(run_cleanups);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGHUP, on_signal);
    }
    cleanups[i] = fn;
}

#define FILES_MAX 8
static char live_files[FILES_MAX][PATH_MAX];
static pid_t files_owner;

static void remove_live_files(void)
{
    for (int i = 0; i < FILES_MAX && getpid() == files_owner; i++)
        if (live_files[i][0])
            unlink(live_files[i]);
}

void remove_at_exit(const char *path, bool remove)
{
    if (!files_owner) {
        files_owner = getpid();
        on_exit_or_signal(remove_live_files);
    }
    for (int i = 0; i < FILES_MAX; i++)
        if (remove ? !live_files[i][0] : strcmp(live_files[i], path) == 0) {
            snprintf(live_files[i], sizeof(live_files[i]), "%s", remove ? path : "");
            return;
        }
    if (remove)
        die(path, "too many temporary files at once");
}

rl_table *table_create(const char *tag, uint32_t capacity, uint32_t arena_kib)
{
    char path[128];
    snprintf(path, sizeof(path), "/dev/shm/rl-bench-%ld-%s", (long)getpid(), tag);
    unlink(path);
    remove_at_exit(path, true);
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = path;
    o.capacity = capacity;
    o.arena_kib = arena_kib;
    rl_table *t;
    if (rl_table_open(&o, &t))
        die_rl(path);
    return t;
}

void table_remove(rl_table *t)
{
    char path[128];
    snprintf(path, sizeof(path), "%s", rl_table_path(t));
    rl_table_close(t);
    unlink(path);
    remove_at_exit(path, false);
}

const void *table_map(rl_table *t, size_t *len)
{
    struct rl_table_info info;
    rl_table_info(t, &info);
    int fd = open(rl_table_path(t), O_RDONLY | O_CLOEXEC);
    void *p = fd < 0 ? MAP_FAILED : mmap(NULL, info.file_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die(rl_table_path(t), strerror(errno));
    close(fd);
    *len = info.file_bytes;
    return p;
}

rl_bucket *bucket_define(rl_table *t, const char *name, const char *rules, const char *parent)
{
    struct rl_policy p;
    struct rl_parse_error err;
    rl_bucket *b;
    if (rl_policy_parse(rules, &p, &err))
        die(rules, err.message);
    if (rl_bucket_define(t, name, &p, parent, &b))
        die_rl(name);
    return b;
}

/* A member prepares, then blocks reading the start pipe until the parent closes its end: all
 * start at once, without polling. */
static _Noreturn void member(unsigned i, int start_fd, struct team *t, const struct team_fns *fns,
                             void *arg)
{
    char c;
    if (fns->prepare)
        fns->prepare(i, t, arg);
    while (read(start_fd, &c, 1) < 0 && errno == EINTR)
        ;
    fns->run(i, t, arg);
    _exit(0);
}

static void wait_members(const pid_t *pids, unsigned n)
{
    bool failed = false;
    for (unsigned i = 0; i < n; i++) {
        int status;
        failed |= waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status);
    }
    if (failed)
        die("team", "a member process failed");
}

void team_run(unsigned n, uint64_t run_ns, const struct team_fns *fns, void *arg, struct team *out)
{
    static struct team *t;
    int start[2];
    pid_t *pids = calloc(n, sizeof(*pids));
    if (!t)
        t = shared_alloc(sizeof(*t));
    if (!pids || pipe(start) < 0)
        die("team", strerror(errno));
    fflush(NULL); /* children must not repeat buffered output */
    for (unsigned i = 0; i < n; i++)
        if ((pids[i] = fork()) == 0) {
            close(start[1]);
            member(i, start[0], t, fns, arg);
        } else if (pids[i] < 0) {
            t->stop_ns = 0; /* the members started so far end at once */
            close(start[1]);
            die("fork", strerror(errno));
        }
    close(start[0]);
    t->start_ns = now_ns();
    t->stop_ns = t->start_ns + run_ns;
    close(start[1]); /* go: every member's read returns 0 */
    wait_members(pids, n);
    free(pids);
    *out = *t;
}
