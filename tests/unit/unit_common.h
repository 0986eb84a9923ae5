/*
 * unit_common.h - helpers shared by the Criterion unit tests in tests/unit.
 *
 * Every test gets its own table path, /dev/shm/rl-test-<pid>-<suite>-<test>, set up by the
 * `per_test_path` fixture (use `.init = unit_setup, .fini = unit_teardown`): Criterion runs
 * tests in parallel processes, so nothing is shared between tests.
 */
#ifndef UNIT_COMMON_H
#define UNIT_COMMON_H

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ratelimit.h"
#include "shm_format.h"

#define NS_PER_MS  ((uint64_t)1000000)
#define NS_PER_SEC ((uint64_t)1000000000)
#define NS_PER_MIN (60 * NS_PER_SEC)
#define NS_PER_H   (3600 * NS_PER_SEC)
#define NS_PER_DAY (86400 * NS_PER_SEC)

/* This test's table path (valid after unit_setup). */
static char g_path[256];

static inline void unit_setup(void)
{
    snprintf(g_path, sizeof(g_path), "/dev/shm/rl-test-%ld-%s-%s", (long)getpid(),
             criterion_current_suite->name, criterion_current_test->name);
    unlink(g_path);
}

static inline void unit_teardown(void)
{
    unlink(g_path);
}

/* g_path with a suffix, e.g. a second table or a symlink of the same test. */
static inline const char *path_with(const char *suffix)
{
    static char p[300];
    snprintf(p, sizeof(p), "%s%s", g_path, suffix);
    return p;
}

/* Open (creating if missing) the table at `path`; asserts success. */
static inline rl_table *table_open_opts(const char *path, unsigned flags, uint32_t capacity,
                                        uint32_t arena_kib)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t = NULL;
    o.path = path;
    o.flags = flags;
    o.capacity = capacity;
    o.arena_kib = arena_kib;
    int rc = rl_table_open(&o, &t);
    cr_assert_eq(rc, 0, "rl_table_open(%s): %s (%s)", path, rl_err_name(rc), rl_errdetail());
    cr_assert_not_null(t);
    return t;
}

static inline rl_table *table_create(uint32_t capacity)
{
    return table_open_opts(g_path, RL_OPEN_CREATE, capacity, 0);
}

/* Try to open `path` with `flags` (no create unless asked); returns the code. */
static inline int table_try_open(const char *path, unsigned flags)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t = NULL;
    o.path = path;
    o.flags = flags;
    int rc = rl_table_open(&o, &t);
    if (rc == 0)
        rl_table_close(t);
    else
        cr_assert_null(t, "a failed open must not return a table");
    return rc;
}

static inline struct rl_policy policy_of(const char *text)
{
    struct rl_policy p;
    struct rl_parse_error e = {0};
    int rc = rl_policy_parse(text, &p, &e);
    cr_assert_eq(rc, 0, "parse '%s': column %u: %s", text, e.column, e.message);
    return p;
}

/* Define a bucket; asserts success. */
static inline rl_bucket *define(rl_table *t, const char *name, const char *policy,
                                const char *parent)
{
    struct rl_policy p = policy_of(policy);
    rl_bucket *b = NULL;
    int rc = rl_bucket_define(t, name, &p, parent, &b);
    cr_assert_eq(rc, 0, "define %s (%s) parent %s: %s (%s)", name, policy, parent ? parent : "-",
                 rl_err_name(rc), rl_errdetail());
    cr_assert_not_null(b);
    return b;
}

static inline int define_rc(rl_table *t, const char *name, const char *policy, const char *parent)
{
    struct rl_policy p = policy_of(policy);
    rl_bucket *b = NULL;
    return rl_bucket_define(t, name, &p, parent, &b);
}

static inline struct rl_bucket_info info_of(const rl_bucket *b)
{
    struct rl_bucket_info i;
    int rc = rl_bucket_info(b, &i);
    cr_assert_eq(rc, 0, "rl_bucket_info(%s): %s", rl_bucket_name(b), rl_err_name(rc));
    return i;
}

/* Units counted by rule `r` of bucket `b` right now. */
static inline uint64_t used_of(const rl_bucket *b, unsigned r)
{
    return info_of(b).rules[r].used;
}

/* rl_try_acquire `n` times with cost 1; returns how many were admitted (stops at the first
 * refusal). */
static inline unsigned admit_run(rl_bucket *b, unsigned n)
{
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        int rc = rl_try_acquire(b, 1, NULL);
        if (rc == RL_ELIMITED)
            break;
        cr_assert_eq(rc, 0, "try_acquire: %s (%s)", rl_err_name(rc), rl_errdetail());
        ok++;
    }
    return ok;
}

static inline int table_count_cb(rl_bucket *b, void *arg)
{
    (void)b;
    (*(unsigned *)arg)++;
    return 0;
}

static inline unsigned foreach_count(rl_table *t)
{
    unsigned n = 0;
    cr_assert_eq(rl_table_foreach(t, table_count_cb, &n), 0);
    return n;
}

/* ---- raw file access, for damaging tables */

static inline void file_read(const char *path, uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static inline void file_write(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static inline void file_write_u64(const char *path, uint64_t off, uint64_t v)
{
    file_write(path, off, &v, sizeof(v));
}

static inline uint64_t file_read_u64(const char *path, uint64_t off)
{
    uint64_t v;
    file_read(path, off, &v, sizeof(v));
    return v;
}

static inline struct shm_header header_of(const char *path)
{
    struct shm_header h;
    file_read(path, 0, &h, sizeof(h));
    return h;
}

static inline uint64_t file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

/* ---- processes */

/* Shared anonymous memory that forked children can write results into. */
static inline void *shared_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    memset(p, 0, len);
    return p;
}

/* Wait for `n` children; asserts each exited with status 0. */
static inline void wait_children(const pid_t *pids, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        int st = 0;
        cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %u: status %#x (exit code %d)", i,
                  st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* A start gate: children block in gate_wait() until the parent calls gate_open(). */
struct gate {
    int fd[2];
};

static inline void gate_init(struct gate *g)
{
    cr_assert_eq(pipe(g->fd), 0);
}

/* In the child: wait until the parent opens the gate. */
static inline void gate_wait(struct gate *g)
{
    char c;
    close(g->fd[1]);
    while (read(g->fd[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(g->fd[0]);
}

static inline void gate_open(struct gate *g)
{
    close(g->fd[0]);
    close(g->fd[1]); /* EOF wakes every child at once */
}

/* A barrier in shared memory for forked children (spins with short sleeps). */
static inline bool barrier_wait(atomic_uint *count, unsigned n)
{
    atomic_fetch_add(count, 1);
    for (unsigned i = 0; i < 200000 && atomic_load(count) < n; i++)
        usleep(100);
    return atomic_load(count) >= n;
}

#endif /* UNIT_COMMON_H */
