/*
 * test_files.c - what the table file cannot do to a process that maps it: take fds 0-2,
 * SIGBUS it when the file system is full or the file is truncated, hang it as a FIFO.
 * Each scenario runs in a child process, judged by how it exited.
 */
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "fixture.h"

#define SKIP 77

/* Run fn in a child; returns its wait status. */
static int in_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none); /* an expected death leaves no core file */
        _exit(fn());
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void expect_exit0(int status, const char *what)
{
    cr_assert(!WIFSIGNALED(status), "%s: killed by signal %d", what, WTERMSIG(status));
    if (WEXITSTATUS(status) == SKIP)
        cr_skip_test("%s: cannot mount a tmpfs here (needs root and unshare -m)", what);
    cr_assert_eq(WEXITSTATUS(status), 0, "%s: failed check %d", what, WEXITSTATUS(status));
}

static bool detail_has(const char *needle)
{
    return strstr(rl_errdetail(), needle) != NULL;
}

static int open_at(const char *path, unsigned flags, uint32_t capacity, rl_table **t)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = path;
    o.flags = flags;
    o.capacity = capacity;
    return rl_table_open(&o, t);
}

static int define_text(rl_table *t, const char *name, const char *text)
{
    struct rl_policy p;
    struct rl_parse_error e;
    if (rl_policy_parse(text, &p, &e) < 0)
        return RL_EPARSE;
    return rl_bucket_define(t, name, &p, NULL, NULL);
}

/* ------------------------------------------------------------------ fds 0-2 */

static int low_fds_stay_closed(void)
{
    close(0);
    close(1);
    close(2);
    rl_table *t, *again;
    if (open_at(g_path, RL_OPEN_CREATE, 16, &t) || open_at(g_path, 0, 16, &again))
        return 1;
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            return 2 + fd; /* the library holds a low descriptor */
    if (open("/dev/null", O_RDONLY) != 0)
        return 5;
    rl_table_close(again);
    rl_table_close(t);
    return 0;
}

Test(files, table_never_takes_fds_0_to_2, .init = fixture_setup, .fini = fixture_teardown)
{
    expect_exit0(in_child(low_fds_stay_closed), "open with fds 0-2 closed");
}

/* ------------------------------------------------------------------ a full tmpfs */

static char g_small[64];

/* In a private mount namespace, a 256 KiB tmpfs at a fresh directory. */
static int small_tmpfs(void)
{
    snprintf(g_small, sizeof(g_small), "/tmp/rl-small-%ld", (long)getpid());
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return SKIP;
    if (mkdir(g_small, 0700) < 0 || mount("tmpfs", g_small, "tmpfs", 0, "size=256k") < 0) {
        rmdir(g_small);
        return SKIP;
    }
    return 0;
}

static int small_done(int rc)
{
    umount(g_small);
    rmdir(g_small);
    return rc;
}

static int create_does_not_fit(void)
{
    int rc = small_tmpfs();
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "%s/t", g_small);
    rl_table *t;
    /* 65536 buckets: a 1 MiB index, which 256 KiB cannot hold. */
    if (open_at(path, RL_OPEN_CREATE, 65536, &t) != RL_EFULL)
        return small_done(1);
    if (!detail_has("file system is full") || !detail_has(path))
        return small_done(2);
    if (access(path, F_OK) == 0 || rmdir(g_small) == 0) /* no table, no temporary file */
        return small_done(3);
    return small_done(0);
}

Test(files, create_on_a_full_tmpfs_fails_cleanly)
{
    expect_exit0(in_child(create_does_not_fit), "create on a full tmpfs");
}

static int define_does_not_fit(void)
{
    int rc = small_tmpfs();
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "%s/t", g_small);
    rl_table *t;
    struct rl_table_info before, after;
    if (open_at(path, RL_OPEN_CREATE, 16, &t))
        return small_done(1);
    rl_table_info(t, &before);
    /* A sliding log of 100000 words: 800 KB of arena. */
    if (define_text(t, "big", "100000/1h") != RL_EFULL || !detail_has("file system is full"))
        return small_done(2);
    rl_table_info(t, &after);
    if (after.arena_used != before.arena_used || after.buckets != 0)
        return small_done(3); /* a failed define took space */
    if (define_text(t, "small", "10/1s"))
        return small_done(4); /* what fits still fits */
    rl_bucket *b;
    if (rl_bucket_lookup(t, "small", &b) || rl_try_acquire(b, 1, NULL))
        return small_done(5);
    rl_table_close(t);
    return small_done(0);
}

Test(files, define_on_a_full_tmpfs_fails_cleanly)
{
    expect_exit0(in_child(define_does_not_fit), "define on a full tmpfs");
}

static int apply_does_not_fit(void)
{
    int rc = small_tmpfs();
    if (rc)
        return rc;
    char text[512];
    snprintf(text, sizeof(text),
             "table %s/t\ncapacity 16\nbucket first 10/1s\nbucket big 100000/1h\n"
             "bucket last 10/1s\n",
             g_small);
    rl_config *cfg;
    rl_table *t;
    struct rl_table_info info;
    if (rl_config_parse(text, strlen(text), "test.conf", &cfg, NULL))
        return small_done(1);
    /* The table exists first (opened for an empty config), so it is apply that must find
     * the room missing; rl_config_open_table would refuse to create it for this config. */
    rl_config *empty;
    char etext[300];
    snprintf(etext, sizeof(etext), "table %s/t\ncapacity 16\n", g_small);
    if (rl_config_parse(etext, strlen(etext), "empty.conf", &empty, NULL) ||
        rl_config_open_table(empty, RL_OPEN_CREATE, &t))
        return small_done(2);
    rl_config_free(empty);
    if (rl_config_apply(cfg, t, NULL, NULL) != RL_EFULL || !detail_has("file system is full"))
        return small_done(3);
    rl_table_info(t, &info);
    if (info.buckets != 0 || info.arena_used != 0)
        return small_done(4); /* half-applied */
    rl_table_close(t);
    rl_config_free(cfg);
    return small_done(0);
}

Test(files, apply_on_a_full_tmpfs_changes_nothing)
{
    expect_exit0(in_child(apply_does_not_fit), "apply on a full tmpfs");
}

/* ------------------------------------------------------------------ truncation */

static int decide_after_truncation(void)
{
    if (rl_guard_install() || rl_guard_install()) /* twice: the second does nothing */
        return 1;
    rl_table *t;
    rl_bucket *g, *s;
    if (open_at(g_path, RL_OPEN_CREATE, 16, &t) || define_text(t, "g", "10/1s burst 10") ||
        define_text(t, "s", "10/1s") || rl_bucket_lookup(t, "g", &g) ||
        rl_bucket_lookup(t, "s", &s))
        return 2;
    if (rl_try_acquire(g, 1, NULL) || rl_try_acquire(s, 1, NULL))
        return 3;
    int fd = open(g_path, O_RDWR);
    if (fd < 0 || ftruncate(fd, 0) < 0)
        return 4;
    close(fd);
    /* Both decision paths (GCRA fast path, general path), then everything else. */
    if (rl_try_acquire(g, 1, NULL) != RL_ESTALE || !detail_has("truncated"))
        return 5;
    if (rl_try_acquire(s, 1, NULL) != RL_ESTALE || rl_acquire(s, 1, NS_PER_SEC, NULL) != RL_ESTALE)
        return 6;
    if (rl_table_check(t) != RL_ESTALE || define_text(t, "new", "1/1s") != RL_ESTALE)
        return 7;
    rl_table_close(t);
    /* A new attachment to the truncated file is refused, as any short file is. */
    if (open_at(g_path, 0, 16, &t) != RL_EBADTABLE)
        return 8;
    return 0;
}

Test(files, decisions_after_truncation_fail_cleanly, .init = fixture_setup,
     .fini = fixture_teardown)
{
    expect_exit0(in_child(decide_after_truncation), "decide after truncation");
}

static void touch_truncated_file(void)
{
    char p[300];
    snprintf(p, sizeof(p), "%s-other", g_path);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    unlink(p);
    if (fd < 0 || ftruncate(fd, 4096) < 0)
        _exit(10);
    volatile char *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED || ftruncate(fd, 0) < 0)
        _exit(11);
    (void)m[0]; /* SIGBUS: not a table */
}

static sigjmp_buf g_jump;
static volatile sig_atomic_t g_raised, g_faulted;

static void own_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)sig, (void)ctx;
    if (info->si_code <= 0) {
        g_raised = 1;
        return;
    }
    g_faulted = 1;
    siglongjmp(g_jump, 1);
}

static int own_handler_still_called(void)
{
    struct sigaction sa = {.sa_sigaction = own_handler, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    rl_table *t;
    if (sigaction(SIGBUS, &sa, NULL) < 0 || rl_guard_install() ||
        open_at(g_path, RL_OPEN_CREATE, 16, &t))
        return 1;
    raise(SIGBUS);
    if (!g_raised)
        return 2;
    if (sigsetjmp(g_jump, 1) == 0)
        touch_truncated_file();
    if (!g_faulted)
        return 3;
    rl_table_close(t);
    return 0;
}

Test(files, other_sigbus_reaches_the_programs_handler, .init = fixture_setup,
     .fini = fixture_teardown)
{
    expect_exit0(in_child(own_handler_still_called), "own SIGBUS handler");
}

static int prepare_default(void)
{
    signal(SIGBUS, SIG_DFL);
    rl_table *t;
    if (rl_guard_install() || open_at(g_path, RL_OPEN_CREATE, 16, &t))
        return 1;
    return 0;
}

static int fault_by_default(void)
{
    if (prepare_default())
        return 1;
    touch_truncated_file();
    return 0; /* survived: wrong */
}

static int raise_by_default(void)
{
    if (prepare_default())
        return 1;
    raise(SIGBUS);
    return 0;
}

Test(files, other_sigbus_still_kills_by_default, .init = fixture_setup, .fini = fixture_teardown)
{
    int status = in_child(fault_by_default);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "a fault: status %#x", status);
    status = in_child(raise_by_default);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "raise(): status %#x", status);
}

/* ------------------------------------------------------------------ a FIFO at the path */

Test(files, fifo_at_the_path_is_refused_at_once, .init = fixture_setup, .fini = fixture_teardown)
{
    cr_assert_eq(mkfifo(g_path, 0600), 0);
    alarm(10); /* the old code blocked here for ever */
    unsigned modes[] = {RL_OPEN_READONLY, 0, RL_OPEN_CREATE};
    for (unsigned i = 0; i < 3; i++) {
        cr_expect_eq(table_try_open(g_path, modes[i]), RL_EBADTABLE, "flags %u", modes[i]);
        cr_expect(detail_has("is a FIFO, not a table"), "detail: %s", rl_errdetail());
    }
    alarm(0);
}
