/*
 * test_slots.c - reader slots tell their owners alive, and a read-only look never shows a
 * block reused under it. The test is linked with -Wl,--wrap for rl__gcra_tat_after (a
 * decision on the GCRA fast path calls it inside its section: an armed process stops there
 * until told to go on), rl__bucket_view (an armed read-only info runs a rival's rule
 * switches right after it copied the bucket's block) and rl__fd_lock (an armed process's
 * file system has no OFD locks).
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>

#include "fixture.h"

uint64_t __real_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
uint64_t __wrap_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
int __real_rl__bucket_view(const rl_bucket *b, struct policy_view *v);
int __wrap_rl__bucket_view(const rl_bucket *b, struct policy_view *v);
int __real_rl__fd_lock(int fd, uint64_t off, bool on);
int __wrap_rl__fd_lock(int fd, uint64_t off, bool on);

TestSuite(slots, .init = fixture_setup, .fini = fixture_teardown, .timeout = 120);

/* Shared with the test's children (MAP_SHARED): a process stopped inside a decision. */
struct shared {
    atomic_int inside; /* the stopped decision is in its section */
    atomic_int go_on;  /* it may finish */
    atomic_int done;   /* it finished, with rc */
    atomic_int rc;
    atomic_int grandchild; /* a pid the test waits for as subreaper */
};

static struct shared *sh;
static bool stop_armed; /* this process's next fast-path decision stops inside */

static struct shared *shared_new(void)
{
    void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return memset(p, 0, sizeof(struct shared));
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait (at most 60 s, a hang guard) for *flag to be set. */
static bool wait_flag(atomic_int *flag)
{
    for (unsigned k = 0; k < 60000; k++) {
        if (atomic_load(flag))
            return true;
        pause_ms(1);
    }
    return false;
}

uint64_t __wrap_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns)
{
    if (stop_armed) {
        stop_armed = false;
        atomic_store(&sh->inside, 1);
        wait_flag(&sh->go_on);
    }
    return __real_rl__gcra_tat_after(tat, d, cost, interval_ns);
}

static void *decide_stopped(void *arg)
{
    stop_armed = true;
    rl_try_acquire(arg, 1, NULL);
    return NULL;
}

/* Blocks waiting for their grace period (rl_table_space). */
static uint64_t reclaimable(rl_table *t)
{
    struct rl_table_space s = RL_TABLE_SPACE_INIT;
    cr_assert_eq(rl_table_space(t, &s), 0);
    return s.arena_reclaimable;
}

/* Switch x to other rules: its block goes to the limbo. */
static void retire_block(rl_bucket *x, const char *rules)
{
    struct rl_policy p = policy_of(rules);
    cr_assert_eq(rl_bucket_update(x, &p), 0, "%s", rl_errdetail());
    cr_assert_gt(reclaimable(x->table), 0, "the old block waits in the limbo");
}

/* Does the limbo drain (reclaim until it is empty; a hang guard of 30 s)? */
static bool limbo_drains(rl_table *t)
{
    for (unsigned k = 0; k < 30000; k++) {
        rl__reclaim(t);
        if (reclaimable(t) == 0)
            return true;
        pause_ms(1);
    }
    return false;
}

/* The first character of the state field of /proc/PID/stat ('Z': a zombie). */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end = strrchr(buf, ')');
    return end && end[1] == ' ' ? end[2] : '?';
}

/* The name /proc/PID/comm gives the program pid runs ("" if gone). */
static void proc_comm(pid_t pid, char *out, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f) {
        if (fgets(out, (int)size, f))
            out[strcspn(out, "\n")] = '\0';
        fclose(f);
    }
}

/* A forked child whose other thread stops inside a decision on x; then the child does
 * `then` (exec or exit). */
static pid_t child_stopped_inside(rl_bucket *x, bool exec, int ready_fd)
{
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        pthread_t th;
        if (pthread_create(&th, NULL, decide_stopped, x) != 0 || !wait_flag(&sh->inside))
            _exit(3);
        if (exec)
            execl("/bin/sleep", "sleep", "60", (char *)NULL);
        _exit(exec ? 4 : 0);
    }
    close(ready_fd);
    cr_assert(wait_flag(&sh->inside), "the child's thread is inside a decision");
    return c;
}

/* Before: the slot of a process that exec'd kept its active count raised and its pid
 * lived on, so nothing was reused until the new program exited. */
Test(slots, an_exec_with_a_thread_inside_a_decision_frees_the_slot)
{
    rl_table *t = table_create(8);
    rl_bucket *x = define(t, "x", "1000/1h burst 1000 margin 0", NULL);
    sh = shared_new();
    int pipefd[2];
    cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
    pid_t c = child_stopped_inside(x, true, pipefd[1]);
    char byte;
    while (read(pipefd[0], &byte, 1) != 0 && errno == EINTR) /* EOF: the exec closed it */
        ;
    close(pipefd[0]);
    retire_block(x, "999/1h burst 999 margin 0");
    cr_expect(limbo_drains(t), "the exec'd process holds no section");
    cr_expect_eq(kill(c, 0), 0, "the exec'd program still runs");
    /* The exec names the process before it closes the pipe, but the new program may still
     * be loading: it is any state but dead. */
    char comm[32];
    proc_comm(c, comm, sizeof(comm));
    cr_expect_str_eq(comm, "sleep", "the pipe closed in the exec of /bin/sleep");
    char state = proc_state(c);
    cr_expect(state != 'Z' && state != 'X' && state != '?', "it is alive (state %c)", state);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    rl_table_close(t);
}

/* Before: an unreaped zombie's pid answers kill(pid, 0), so its slot never drained. */
Test(slots, a_zombie_that_died_inside_a_decision_frees_the_slot)
{
    rl_table *t = table_create(8);
    rl_bucket *x = define(t, "x", "1000/1h burst 1000 margin 0", NULL);
    sh = shared_new();
    int pipefd[2];
    cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
    pid_t c = child_stopped_inside(x, false, pipefd[1]);
    siginfo_t si;
    cr_assert_eq(waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT), 0);
    close(pipefd[0]);
    cr_assert_eq(proc_state(c), 'Z', "a zombie, not reaped");
    retire_block(x, "999/1h burst 999 margin 0");
    cr_expect(limbo_drains(t), "the zombie holds no section");
    cr_expect_eq(proc_state(c), 'Z', "still unreaped");
    waitpid(c, NULL, 0);
    rl_table_close(t);
}

/* Before: a process of another pid namespace killed inside a decision was never taken for
 * dead: nothing was reused again. (Needs CAP_SYS_ADMIN for the namespace: skipped without.) */
Test(slots, a_process_of_another_pid_namespace_killed_inside_frees_the_slot)
{
    rl_table *t = table_create(8);
    rl_bucket *x = define(t, "x", "1000/1h burst 1000 margin 0", NULL);
    sh = shared_new();
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        if (unshare(CLONE_NEWPID) < 0)
            _exit(77);
        pid_t g = fork(); /* pid 1 of the new namespace */
        if (g == 0) {
            decide_stopped(x);
            _exit(0);
        }
        atomic_store(&sh->grandchild, g);
        waitpid(g, NULL, 0);
        _exit(0);
    }
    for (unsigned k = 0; k < 60000 && !atomic_load(&sh->inside); k++) {
        int st;
        if (waitpid(c, &st, WNOHANG) == c) {
            if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
                cr_skip_test("no new pid namespace here: %s", strerror(EPERM));
            cr_assert_fail("the child exited early");
        }
        pause_ms(1);
    }
    cr_assert(atomic_load(&sh->inside), "the namespace's init is inside a decision");
    cr_assert(wait_flag(&sh->grandchild), "its pid outside the namespace");
    kill(atomic_load(&sh->grandchild), SIGKILL);
    waitpid(c, NULL, 0);
    retire_block(x, "999/1h burst 999 margin 0");
    cr_expect(limbo_drains(t), "the killed process holds no section");
    rl_table_close(t);
}

/* A child made without fork()'s atfork handlers. */
static pid_t raw_fork(void)
{
#ifdef SYS_fork
    return (pid_t)syscall(SYS_fork);
#else
    return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
#endif
}

/* Before: a child of syscall(SYS_fork) used its parent's slot; with the parent dead, the
 * slot counted as drained while the child was still inside, and the block it read could be
 * reused under it. */
Test(slots, a_child_of_a_raw_fork_reads_under_a_slot_of_its_own)
{
    rl_table *t = table_create(8);
    rl_bucket *x = define(t, "x", "1000/1h burst 1000 margin 0", NULL);
    sh = shared_new();
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    pid_t p = fork();
    cr_assert_geq(p, 0);
    if (p == 0) {
        if (rl_try_acquire(x, 1, NULL) != 0) /* the parent's own slot */
            _exit(3);
        pid_t c = raw_fork();
        if (c == 0) {
            atomic_store(&sh->grandchild, getpid());
            stop_armed = true;
            atomic_store(&sh->rc, rl_try_acquire(x, 1, NULL));
            atomic_store(&sh->done, 1);
            _exit(0);
        }
        for (;;)
            pause();
    }
    cr_assert(wait_flag(&sh->inside), "the raw child is inside a decision");
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    retire_block(x, "999/1h burst 999 margin 0");
    for (unsigned k = 0; k < 20; k++)
        rl__reclaim(t);
    cr_expect_gt(reclaimable(t), 0, "the block the child reads is not reused under it");
    atomic_store(&sh->go_on, 1);
    cr_assert(wait_flag(&sh->done));
    cr_assert_gt(atomic_load(&sh->grandchild), 0);
    waitpid(atomic_load(&sh->grandchild), NULL, 0);
    cr_expect_eq(atomic_load(&sh->rc), 0, "the child's decision, on the old rules");
    cr_expect(limbo_drains(t), "then the block is reused");
    rl_table_close(t);
}

static bool no_ofd_locks; /* this process's file system "has no OFD locks" */

int __wrap_rl__fd_lock(int fd, uint64_t off, bool on)
{
    if (!no_ofd_locks)
        return __real_rl__fd_lock(fd, off, on);
    errno = EINVAL;
    return -1;
}

/* Where OFD locks fail with EINVAL, a slot's owner is known alive by its pid, as before
 * the locks: a process killed inside a decision (and reaped) holds nothing back. */
Test(slots, without_ofd_locks_a_killed_owner_is_known_by_its_pid)
{
    rl_table *t = table_create(8);
    rl_bucket *x = define(t, "x", "1000/1h burst 1000 margin 0", NULL);
    sh = shared_new();
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        no_ofd_locks = true;
        decide_stopped(x);
        _exit(0);
    }
    cr_assert(wait_flag(&sh->inside));
    unsigned mine = RL_READER_SLOTS;
    for (unsigned i = 1; i < RL_READER_SLOTS; i++)
        if ((atomic_load(&t->readers[i].owner) & 0xffffffffULL) == (uint64_t)c)
            mine = i;
    cr_assert_lt(mine, RL_READER_SLOTS, "the child has a slot of its own");
    cr_expect_eq(atomic_load(&t->readers[mine].owner) & (1ULL << 32), 0, "without the lock bit");
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    retire_block(x, "999/1h burst 999 margin 0");
    cr_expect(limbo_drains(t), "its pid is dead");
    rl_table_close(t);
}

/* Slots of the table whose owner is pid. */
static unsigned slots_of(const rl_table *t, pid_t pid)
{
    unsigned n = 0;
    for (unsigned i = 0; i < RL_READER_SLOTS; i++)
        n += (atomic_load(&t->readers[i].owner) & 0xffffffffULL) == (uint64_t)pid;
    return n;
}

/* A process that cannot open another descriptor (for its slot's lock) decides under the
 * shared slot 0, which is never taken for gone. */
Test(slots, a_process_at_its_descriptor_limit_uses_the_shared_slot)
{
    rl_table *t = table_create(8);
    rl_bucket *x = define(t, "x", "1000/1h burst 1000 margin 0", NULL);
    cr_assert_eq(rl_try_acquire(x, 1, NULL), 0);
    cr_assert_eq(slots_of(t, getpid()), 1, "this process's slot");
    sh = shared_new();
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        int lowest = dup(t->fd); /* every descriptor below it is open */
        close(lowest);
        struct rlimit rl = {.rlim_cur = (rlim_t)lowest, .rlim_max = (rlim_t)lowest};
        if (lowest < 0 || setrlimit(RLIMIT_NOFILE, &rl) < 0 || dup(t->fd) >= 0)
            _exit(3);
        atomic_store(&sh->rc, rl_try_acquire(x, 1, NULL));
        atomic_store(&sh->grandchild, (int)slots_of(t, getpid()));
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child could not lower its limit");
    cr_expect_eq(atomic_load(&sh->rc), 0, "admitted: %s", rl_err_name(atomic_load(&sh->rc)));
    cr_expect_eq(atomic_load(&sh->grandchild), 0, "no slot of its own");
    cr_expect_eq(atomic_load(&t->readers[0].active[0]) + atomic_load(&t->readers[0].active[1]), 0,
                 "its section in slot 0 ended");
    retire_block(x, "999/1h burst 999 margin 0");
    cr_expect(limbo_drains(t));
    rl_table_close(t);
}

/* The rival of a read-only look: switches it runs once, right after the look copied x. */
static rl_bucket *rival;
static bool race_armed;

static void switch_twice_then_use(void)
{
    struct rl_policy b = policy_of("4/1h burst 4 margin 0"), c = policy_of("5/1h burst 5 margin 0");
    uint64_t first = atomic_load(&rival->rec->policy_off);
    cr_assert_eq(rl_bucket_update(rival, &b), 0);
    cr_assert_eq(rl_bucket_update(rival, &c), 0); /* reuses the first block */
    cr_assert_eq(rl__ref_off(atomic_load(&rival->rec->policy_off)), rl__ref_off(first),
                 "the block the look copied now holds the third rules");
    cr_assert_eq(drain(rival), 5);
}

int __wrap_rl__bucket_view(const rl_bucket *b, struct policy_view *v)
{
    int err = __real_rl__bucket_view(b, v);
    if (race_armed && b->table->read_only) {
        race_armed = false;
        switch_twice_then_use();
    }
    return err;
}

/* Before: the look showed the first rules (10/1h) with the state words of the block's new
 * life (5 of 5 used): 10 of 10 used, a state the bucket never had. Now it reads again and
 * shows what the bucket holds. */
Test(slots, a_read_only_look_never_mixes_a_reused_block)
{
    rl_table *t = table_create(8);
    rival = define(t, "x", "10/1h burst 10 margin 0", NULL);
    rl_table *ro = table_open_opts(g_path, RL_OPEN_READONLY, 0, 0);
    rl_bucket *x;
    cr_assert_eq(rl_bucket_lookup(ro, "x", &x), 0);
    race_armed = true;
    struct rl_bucket_info i;
    int rc = rl_bucket_info(x, &i);
    cr_assert_not(race_armed, "the race ran");
    cr_assert_eq(rc, 0, "%s: %s", rl_err_name(rc), rl_errdetail());
    cr_expect_eq(i.policy.rules[0].limit, 5, "the rules the bucket holds (shown: %" PRIu64 ")",
                 i.policy.rules[0].limit);
    cr_expect_eq(i.rules[0].used, 5, "their usage (shown: %" PRIu64 ")", i.rules[0].used);
    cr_expect_eq(i.rules[0].remaining, 0);
    rl_table_close(ro);
    rl_table_close(t);
}

/* Rules of the same block size, each with its own numbers. */
static const char *const same_size[] = {"10/1h burst 10 margin 0", "20/2h burst 20 margin 0",
                                        "30/3h burst 30 margin 0"};

/* A writer that switches x between the three, so their blocks are reused all the time, for
 * `ns`. */
static void switcher(const char *path, uint64_t ns)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    rl_bucket *x;
    o.path = path;
    if (rl_table_open(&o, &t) != 0 || rl_bucket_lookup(t, "x", &x) != 0)
        _exit(3);
    struct rl_policy p[3];
    for (unsigned k = 0; k < 3; k++)
        if (rl_policy_parse(same_size[k], &p[k], NULL) != 0)
            _exit(4);
    atomic_store(&sh->inside, 1);
    uint64_t end = rl_now_ns() + ns;
    for (unsigned k = 0; rl_now_ns() < end && !atomic_load(&sh->go_on); k++)
        if (rl_bucket_update(x, &p[k % 3]) != 0)
            _exit(5);
    rl_table_close(t);
    _exit(0);
}

/* A read-only look racing that writer shows one of the three, whole: never the numbers of
 * one with those of another, never usage beyond the rules shown, never damage. */
Test(slots, a_read_only_look_racing_a_switcher_shows_whole_blocks)
{
    rl_table *t = table_create(8);
    define(t, "x", same_size[0], NULL);
    sh = shared_new();
    pid_t w = fork();
    cr_assert_geq(w, 0);
    if (w == 0)
        switcher(g_path, 3 * NS_PER_SEC);
    cr_assert(wait_flag(&sh->inside));
    rl_table *ro = table_open_opts(g_path, RL_OPEN_READONLY, 0, 0);
    rl_bucket *x;
    cr_assert_eq(rl_bucket_lookup(ro, "x", &x), 0);
    unsigned reads = 0, changing = 0, bad = 0;
    uint64_t end = rl_now_ns() + 2 * NS_PER_SEC;
    while (rl_now_ns() < end && reads < 2000000) {
        struct rl_bucket_info i;
        int rc = rl_bucket_info(x, &i);
        reads++;
        if (rc == RL_ESTALE) {
            changing++;
            continue;
        }
        const struct rl_rule *r = &i.policy.rules[0];
        uint64_t k = r->limit / 10;
        bool whole = rc == 0 && i.policy.nrules == 1 && r->limit % 10 == 0 && k >= 1 && k <= 3 &&
                     r->burst == r->limit && r->period_ns == k * NS_PER_H &&
                     i.rules[0].rule.limit == r->limit && i.rules[0].used <= r->burst &&
                     i.rules[0].remaining <= r->burst;
        if (!whole && bad++ < 5)
            cr_log_error("read %u: %s, %u rules, %" PRIu64 "/%" PRIu64 "s burst %" PRIu64
                         ", used %" PRIu64 ", remaining %" PRIu64,
                         reads, rl_err_name(rc), i.policy.nrules, r->limit,
                         r->period_ns / NS_PER_SEC, r->burst, i.rules[0].used,
                         i.rules[0].remaining);
    }
    atomic_store(&sh->go_on, 1);
    int st;
    waitpid(w, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the switcher ran");
    cr_log_info("%u reads, %u said changing, %" PRIu64 " blocks reused", reads, changing,
                atomic_load(&t->hdr->reused_blocks));
    cr_expect_eq(bad, 0, "%u of %u reads showed a mixed or damaged block", bad, reads);
    cr_expect_gt(atomic_load(&t->hdr->reused_blocks), 0, "blocks were reused");
    rl_table_close(ro);
    rl_table_close(t);
}
