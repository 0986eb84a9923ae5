/*
 * fixture.h - the helpers every Criterion test shares, whatever its folder.
 *
 * Every test gets its own table path, /dev/shm/rl-test-<pid>-<suite>-<test>: Criterion runs
 * tests in parallel processes, so nothing is shared between tests. Two fixtures:
 *   .init = fixture_setup, .fini = fixture_teardown: the path only (g_path);
 *   .init = fixture_open, .fini = fixture_close: a table there too (g_table).
 */
#ifndef TESTS_FIXTURE_H
#define TESTS_FIXTURE_H

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

#include <bsd/string.h>

#include "internal.h"
#include "ratelimit.h"
#include "shm_format.h"

#define NS_PER_MS  ((uint64_t)1000000)
#define NS_PER_SEC ((uint64_t)1000000000)
#define NS_PER_MIN (60 * NS_PER_SEC)
#define NS_PER_H   (3600 * NS_PER_SEC)
#define NS_PER_DAY (86400 * NS_PER_SEC)

/* This test's table path (valid after fixture_setup). */
static char g_path[256];
/* This test's table (valid after fixture_open). */
static rl_table *g_table;

static inline void fixture_setup(void)
{
    snprintf(g_path, sizeof(g_path), "/dev/shm/rl-test-%ld-%s-%s", (long)getpid(),
             criterion_current_suite->name, criterion_current_test->name);
    unlink(g_path);
}

static inline void fixture_teardown(void)
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

/* Open (creating) the table at g_path with room for `capacity` buckets. */
static inline rl_table *table_at(uint32_t capacity, uint32_t arena_kib)
{
    return table_open_opts(g_path, RL_OPEN_CREATE, capacity, arena_kib);
}

static inline void fixture_open(void)
{
    fixture_setup();
    g_table = table_at(1024, 0);
}

static inline void fixture_close(void)
{
    rl_table_close(g_table);
    fixture_teardown();
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

/* Take units one by one until refused: how many the bucket admits now. */
static inline unsigned drain(rl_bucket *b)
{
    return admit_run(b, 100000);
}

static inline int table_count_cb(rl_bucket *b, void *arg)
{
    (void)b;
    (*(unsigned *)arg)++;
    return 0;
}

/* Buckets and templates in the table. */
static inline unsigned foreach_count(rl_table *t)
{
    unsigned n = 0;
    cr_assert_eq(rl_table_foreach(t, table_count_cb, &n), 0);
    return n;
}

/* ---- config files */

/* Parse `text` (named "t.conf" in messages); asserts it is valid. */
static inline rl_config *parse_ok(const char *text)
{
    rl_config *c = NULL;
    char *errors = NULL;
    int rc = rl_config_parse(text, strlen(text), "t.conf", &c, &errors);
    cr_assert_eq(rc, 0, "parse: %s\n%s", rl_err_name(rc), errors ? errors : "(no errors)");
    cr_assert_null(errors);
    cr_assert_not_null(c);
    return c;
}

/* Parse `text`, which must be invalid; returns the error lines (caller frees). */
static inline char *parse_bad(const char *text)
{
    rl_config *c = (rl_config *)1;
    char *errors = NULL;
    int rc = rl_config_parse(text, strlen(text), "t.conf", &c, &errors);
    cr_assert_eq(rc, RL_EPARSE, "parse: got %s, expected RL_EPARSE", rl_err_name(rc));
    cr_assert_null(c, "an invalid file yields no config");
    cr_assert_not_null(errors);
    return errors;
}

static inline unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The text must be invalid with exactly one problem, at "t.conf:<where>: ", whose message
 * contains `needle`. */
static inline void expect_error(const char *text, const char *where, const char *needle)
{
    char prefix[64];
    char *errors = parse_bad(text);
    snprintf(prefix, sizeof(prefix), "t.conf:%s: ", where);
    cr_expect_eq(count_lines(errors), 1, "expected one problem for:\n%s\ngot:\n%s", text, errors);
    cr_expect(strncmp(errors, prefix, strlen(prefix)) == 0, "expected '%s...' for:\n%s\ngot: %s",
              prefix, text, errors);
    cr_expect(strstr(errors, needle) != NULL, "expected '%s' in: %s", needle, errors);
    free(errors);
}

/* The canonical text of a policy, for comparing rules. */
static inline const char *rules_of(const struct rl_policy *p, char *buf, size_t len)
{
    rl_policy_format(p, buf, len);
    return buf;
}

/* The canonical text of rule text. */
static inline const char *canonical(const char *rules, char *buf, size_t len)
{
    struct rl_policy p;
    struct rl_parse_error e = {0};
    cr_assert_eq(rl_policy_parse(rules, &p, &e), 0, "'%s': %s", rules, e.message);
    return rules_of(&p, buf, len);
}

/* Notes from rl_config_apply, one per line. */
struct notes {
    char text[16384];
};

static inline void note_add(void *arg, const char *line)
{
    struct notes *n = arg;
    strlcat(n->text, line, sizeof(n->text));
    strlcat(n->text, "\n", sizeof(n->text));
}

/* Apply; asserts success; returns the notes. */
static inline struct notes *apply_ok(const rl_config *c, rl_table *t)
{
    struct notes *n = calloc(1, sizeof(*n));
    cr_assert_not_null(n);
    int rc = rl_config_apply(c, t, note_add, n);
    cr_assert_eq(rc, 0, "apply: %s (%s)\nnotes:\n%s", rl_err_name(rc), rl_errdetail(), n->text);
    return n;
}

struct found {
    const char *name;
    rl_bucket *bucket;
};

static inline int find_cb(rl_bucket *b, void *arg)
{
    struct found *f = arg;
    if (strcmp(rl_bucket_name(b), f->name) != 0)
        return 0;
    f->bucket = b;
    return 1;
}

/* The bucket or template named `name` in the table (templates cannot be looked up by name),
 * or NULL. */
static inline rl_bucket *find(rl_table *t, const char *name)
{
    struct found f = {name, NULL};
    rl_table_foreach(t, find_cb, &f);
    return f.bucket;
}

/* The table holds `name` with rules `rules` (rule text), parent `parent` (NULL: none), and
 * is a template or not. */
static inline void expect_bucket(rl_table *t, const char *name, const char *rules,
                                 const char *parent, bool is_template)
{
    char want[256], have[256];
    struct rl_bucket_info info;
    rl_bucket *b = find(t, name);
    cr_assert_not_null(b, "no bucket '%s' in the table", name);
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    cr_expect_str_eq(rules_of(&info.policy, have, sizeof(have)),
                     canonical(rules, want, sizeof(want)), "rules of %s", name);
    cr_expect_str_eq(info.parent, parent ? parent : "", "parent of %s", name);
    cr_expect_eq(rl_bucket_is_template(b), is_template, "%s: template or not", name);
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

#endif /* TESTS_FIXTURE_H */
