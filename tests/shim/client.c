/*
 * client.c - the shim tests' preloaded side: run by driver.c under
 * LD_PRELOAD=libratelimit-preload.so, it connects as a role asks and checks what it sees
 * (results, errno, timing). Failures go to stdout as "client: ..." with exit 1; stderr is
 * left to the shim, whose lines the driver checks.
 *
 *   script ACTION...           each ACTION is KIND:TARGET:EXPECT[:xN], done N times, each
 *                              within 1 s; KIND tcp4 (127.0.0.1:PORT), tcp6m (the same
 *                              through an IPv6 socket, ::ffff:127.0.0.1), udp (connect,
 *                              send, sendto), unix (PATH), tfo (sendto MSG_FASTOPEN);
 *                              EXPECT "ok" or an errno name (ETIMEDOUT, EACCES)
 *   limit PORT N K T_MS        N blocking connects through a K/T_MS bucket
 *   eintr PORT N K T_MS        the same while SIGALRM fires every 5 ms
 *   nonblock PORT T_MS         non-blocking sockets through a 1/T_MS bucket
 *   refresh PORT LH_PORT FILE  threads connect while host names are re-resolved
 *   fork LH_PORT               threads connect while the process forks children
 *   closed2 PORT N FILE|-|keep close fd 2 (and open FILE on it, writing a line; keep: leave
 *                              fd 2 alone), then N connects and one to PORT+1; FILE must
 *                              hold just that line afterwards
 *   badaddr PORT               connect and sendto(MSG_FASTOPEN) with unreadable addresses
 *   dnshang PORT OTHER FILE    connects while the fake resolver hangs (api.test from FILE)
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    printf("client: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static unsigned arg_num(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v > 1000000)
        die("bad number '%s'", s);
    return (unsigned)v;
}

/* ------------------------------------------------------------------ connects */

static struct sockaddr_in inet4(const char *ip, unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

/* Connect a new TCP socket to ip:port; 0 or the errno. The socket is closed unless fd. */
static int tcp_to(const char *ip, unsigned port, int flags, int *fd)
{
    struct sockaddr_in sa = inet4(ip, port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    int rc = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
    if (fd)
        *fd = s;
    else
        close(s);
    return rc;
}

static int tcp6_mapped(unsigned port)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &sa.sin6_addr);
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
    close(s);
    return rc;
}

static int udp_to(unsigned port)
{
    struct sockaddr_in sa = inet4("127.0.0.1", port);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;
    if (sendto(s, "u", 1, 0, (struct sockaddr *)&sa, sizeof(sa)) != 1)
        rc = errno;
    else if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 || send(s, "v", 1, 0) != 1)
        rc = errno;
    close(s);
    return rc;
}

static int unix_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
    close(s);
    return rc;
}

/* TCP Fast Open: the connection opens with the data; 0 or the errno. */
static int tfo_to(unsigned port)
{
    struct sockaddr_in sa = inet4("127.0.0.1", port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;
    if (sendto(s, "t", 1, MSG_FASTOPEN, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        rc = errno;
    close(s);
    return rc;
}

/* ------------------------------------------------------------------ script */

static int do_action(const char *kind, const char *target)
{
    if (strcmp(kind, "tcp4") == 0)
        return tcp_to("127.0.0.1", arg_num(target), 0, NULL);
    if (strcmp(kind, "tcp6m") == 0)
        return tcp6_mapped(arg_num(target));
    if (strcmp(kind, "udp") == 0)
        return udp_to(arg_num(target));
    if (strcmp(kind, "unix") == 0)
        return unix_to(target);
    if (strcmp(kind, "tfo") == 0)
        return tfo_to(arg_num(target));
    die("unknown action kind '%s'", kind);
}

static void script_action(char *action)
{
    char *kind = strtok(action, ":"), *target = strtok(NULL, ":"), *expect = strtok(NULL, ":");
    char *times = strtok(NULL, ":");
    unsigned n = times && times[0] == 'x' ? arg_num(times + 1) : 1;
    if (!kind || !target || !expect)
        die("bad action");
    for (unsigned i = 0; i < n; i++) {
        double t = now_ms();
        int rc = do_action(kind, target);
        const char *got = rc == 0 ? "ok" : strerrorname_np(rc);
        if (strcmp(got, expect) != 0)
            die("%s:%s #%u: got %s, expected %s", kind, target, i + 1, got, expect);
        if (now_ms() - t > 1000)
            die("%s:%s #%u took %.0f ms", kind, target, i + 1, now_ms() - t);
    }
}

static void role_script(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        script_action(argv[i]);
}

/* ------------------------------------------------------------------ limit, eintr */

/* N connects through a K per T_MS bucket: connect i+K cannot finish within T_MS of the start
 * of connect i, and the whole run does not wait much longer than the bucket requires. */
static void paced_connects(unsigned port, unsigned n, unsigned k, unsigned t_ms)
{
    double pre[64], post[64];
    if (n > 64 || k == 0)
        die("at most 64 connects");
    for (unsigned i = 0; i < n; i++) {
        pre[i] = now_ms();
        int rc = tcp_to("127.0.0.1", port, 0, NULL);
        post[i] = now_ms();
        if (rc != 0)
            die("connect %u: %s", i + 1, strerror(rc));
    }
    for (unsigned i = 0; i + k < n; i++)
        if (post[i + k] - pre[i] < t_ms)
            die("connects %u and %u finished %.1f ms apart: the bucket allows %u per %u ms", i + 1,
                i + k + 1, post[i + k] - pre[i], k, t_ms);
    double most = ((n - 1) / k) * (t_ms + 20.0) + 700;
    if (post[n - 1] - pre[0] > most)
        die("%u connects took %.0f ms, more than %.0f", n, post[n - 1] - pre[0], most);
    printf("client: %u connects in %.0f ms\n", n, post[n - 1] - pre[0]);
}

static void role_limit(char **argv)
{
    paced_connects(arg_num(argv[0]), arg_num(argv[1]), arg_num(argv[2]), arg_num(argv[3]));
}

static atomic_uint alarms;

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&alarms, 1);
}

static void role_eintr(char **argv)
{
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
    struct itimerval every = {{0, 5000}, {0, 5000}}, off = {{0, 0}, {0, 0}};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &every, NULL);
    paced_connects(arg_num(argv[0]), arg_num(argv[1]), arg_num(argv[2]), arg_num(argv[3]));
    setitimer(ITIMER_REAL, &off, NULL);
    if (atomic_load(&alarms) < 20)
        die("only %u SIGALRMs fired during the waits", atomic_load(&alarms));
    printf("client: %u SIGALRMs during the waits\n", atomic_load(&alarms));
}

/* ------------------------------------------------------------------ nonblock */

/* A non-blocking connect that may complete later: 0 and EINPROGRESS are both fine. */
static int nb_connect(unsigned port, double *took)
{
    int fd;
    double t = now_ms();
    int rc = tcp_to("127.0.0.1", port, SOCK_NONBLOCK, &fd);
    *took = now_ms() - t;
    if (rc != 0 && rc != EINPROGRESS)
        die("non-blocking connect: %s", strerror(rc));
    return fd;
}

static void role_nonblock(char **argv)
{
    unsigned port = arg_num(argv[0]), t_ms = arg_num(argv[1]);
    struct sockaddr_in sa = inet4("127.0.0.1", port);
    struct pollfd p = {.events = POLLOUT};
    double took;
    udp_to(port); /* a UDP connect loads the shim's config: not timed below */
    p.fd = nb_connect(port, &took);
    if (took > 300)
        die("the first non-blocking connect took %.0f ms: its turn was free", took);
    if (poll(&p, 1, 2000) != 1)
        die("the first connection never completed");
    /* Asking again for the outcome opens no connection: it costs nothing and is not held.
     * Linux answers 0 the first time after the connection completed, then EISCONN. */
    double t = now_ms();
    for (int i = 0; i < 2; i++)
        if (connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EISCONN)
            die("connect() again on a connected socket: %s", strerror(errno));
    if (now_ms() - t > 100)
        die("connect() again on a connected socket waited %.0f ms", now_ms() - t);
    int second = nb_connect(port, &took);
    if (took < t_ms - 100)
        die("the second non-blocking connect took %.0f ms: it should wait its turn", took);
    printf("client: the second non-blocking connect waited %.0f ms for its turn\n", took);
    close(p.fd);
    close(second);
}

/* ------------------------------------------------------------------ refresh */

struct hammer {
    unsigned port, lh_port;
    atomic_bool stop;
    atomic_uint c2, c3, lh, failures;
};

/* One connect, counted; failures are counted too (and printed once). */
static void hit(struct hammer *h, const char *ip, unsigned port, atomic_uint *count)
{
    int rc = tcp_to(ip, port, 0, NULL);
    atomic_fetch_add(count, 1);
    if (rc != 0 && atomic_fetch_add(&h->failures, 1) == 0)
        printf("client: connect %s:%u: %s\n", ip, port, strerror(rc));
}

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    while (!atomic_load(&h->stop)) {
        if (h->port) {
            hit(h, "127.0.0.2", h->port, &h->c2);
            hit(h, "127.0.0.3", h->port, &h->c3);
        }
        hit(h, "127.0.0.1", h->lh_port, &h->lh);
        usleep(500);
    }
    return NULL;
}

/* Run 4 hammering threads until `until` (now_ms time). */
static void hammer_until(struct hammer *h, double until)
{
    pthread_t t[4];
    atomic_store(&h->stop, false);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer_thread, h);
    while (now_ms() < until)
        usleep(10000);
    atomic_store(&h->stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&h->failures))
        die("%u connects failed", atomic_load(&h->failures));
}

static uint64_t admitted(const char *bucket)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    rl_bucket *b;
    struct rl_bucket_info info;
    o.path = getenv("SHIM_TEST_TABLE");
    o.flags = RL_OPEN_READONLY;
    if (rl_table_open(&o, &t) != 0 || rl_bucket_lookup(t, bucket, &b) != 0 ||
        rl_bucket_info(b, &info) != 0)
        die("bucket %s: %s", bucket, rl_errdetail());
    rl_table_close(t);
    return info.counters.admitted;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die("cannot write %s", path);
}

static void expect_admitted(const char *bucket, uint64_t want, const char *when)
{
    uint64_t got = admitted(bucket);
    if (got != want)
        die("%s: bucket %s admitted %llu connects, expected %llu", when, bucket,
            (unsigned long long)got, (unsigned long long)want);
}

/*
 * Route api.test (resolved by the fake resolver from FILE) and localhost, resolve-every 1s.
 * Phase 1 (0-0.8 s): api.test is 127.0.0.2. Then FILE says 127.0.0.3; the refreshes at about
 * 1 s and 2 s resolve it (the first keeps 127.0.0.2 as the previous address, the second
 * drops it). Phase 3 (2.8-3.6 s): only 127.0.0.3 is limited. localhost is matched by every
 * connect throughout, while the table is swapped under the threads.
 */
static void role_refresh(char **argv)
{
    static struct hammer h;
    h.port = arg_num(argv[0]);
    h.lh_port = arg_num(argv[1]);
    hit(&h, "127.0.0.2", h.port, &h.c2); /* loads the config: t0 */
    double t0 = now_ms();
    hammer_until(&h, t0 + 800);
    expect_admitted("dyn", atomic_load(&h.c2), "phase 1");
    expect_admitted("lh", atomic_load(&h.lh), "phase 1");
    write_file(argv[2], "127.0.0.3\n");
    hammer_until(&h, t0 + 2800);
    expect_admitted("lh", atomic_load(&h.lh), "phase 2");
    uint64_t before = admitted("dyn");
    atomic_store(&h.c3, 0);
    hammer_until(&h, t0 + 3600);
    expect_admitted("dyn", before + atomic_load(&h.c3), "phase 3");
    expect_admitted("lh", atomic_load(&h.lh), "phase 3");
    printf("client: %u connects to localhost, all limited; 127.0.0.3 limited after the "
           "refresh\n",
           atomic_load(&h.lh));
}

/* ------------------------------------------------------------------ fork */

/* A forked child (only the forking thread survives): connect for 1.5 s, across refreshes;
 * report the count on the pipe. */
static void child(int out, unsigned port)
{
    unsigned n = 0;
    for (double end = now_ms() + 1500; now_ms() < end; n++) {
        if (tcp_to("127.0.0.1", port, 0, NULL) != 0)
            _exit(2);
        usleep(1000);
    }
    _exit(write(out, &n, sizeof(n)) == sizeof(n) ? 0 : 3);
}

static unsigned reap(int in, int kids)
{
    unsigned total = 0, n;
    for (int i = 0; i < kids; i++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("a forked child failed (status %d)", status);
    }
    while (read(in, &n, sizeof(n)) == sizeof(n))
        total += n;
    return total;
}

static void role_fork(char **argv)
{
    static struct hammer h;
    int fds[2];
    h.lh_port = arg_num(argv[0]);
    if (pipe2(fds, O_CLOEXEC) != 0)
        die("pipe");
    hit(&h, "127.0.0.1", h.lh_port, &h.lh); /* the parent loads the config first */
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer_thread, &h);
    for (int k = 0; k < 4; k++) {
        usleep(400000);
        pid_t pid = fork();
        if (pid == 0)
            child(fds[1], h.lh_port);
        if (pid < 0)
            die("fork");
    }
    close(fds[1]);
    unsigned kids = reap(fds[0], 4);
    atomic_store(&h.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&h.failures))
        die("%u connects failed", atomic_load(&h.failures));
    expect_admitted("lh", atomic_load(&h.lh) + kids, "after the children");
    printf("client: %u connects by threads, %u by 4 forked children, all limited\n",
           atomic_load(&h.lh), kids);
}

/* Connect N times through a library loaded with dlopen(); print each outcome. */
static void role_dlopen(char **argv)
{
    void *lib = dlopen(argv[0], RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        die("dlopen %s: %s", argv[0], dlerror());
    int (*dl_connect)(unsigned) = (int (*)(unsigned))(uintptr_t)dlsym(lib, "dl_helper_connect");
    if (!dl_connect)
        die("dlsym dl_helper_connect: %s", dlerror());
    for (unsigned i = 0, n = arg_num(argv[2]); i < n; i++) {
        int err = dl_connect(arg_num(argv[1]));
        printf("client: dlopen'd connect %u: %s\n", i + 1, err ? strerror(err) : "ok");
    }
    dlclose(lib);
}

/*
 * As role_dlopen, but both libraries are loaded with RTLD_DEEPBIND (lazily, as PHP loads its
 * extensions): dl_helper's connects still reach the shim, and dl_own's own connect() still
 * wins inside dl_own (the reason for DEEPBIND).
 */
static void role_deepbind(char **argv)
{
    void *lib = dlopen(argv[0], RTLD_LAZY | RTLD_DEEPBIND);
    void *own = dlopen(argv[1], RTLD_LAZY | RTLD_DEEPBIND);
    if (!lib || !own)
        die("dlopen with RTLD_DEEPBIND: %s", dlerror());
    int (*dl_connect)(unsigned) = (int (*)(unsigned))(uintptr_t)dlsym(lib, "dl_helper_connect");
    int (*own_connect)(void) = (int (*)(void))(uintptr_t)dlsym(own, "dl_own_connect");
    if (!dl_connect || !own_connect)
        die("dlsym: %s", dlerror());
    for (unsigned i = 0, n = arg_num(argv[3]); i < n; i++) {
        int err = dl_connect(arg_num(argv[2]));
        printf("client: deep-bound connect %u: %s\n", i + 1, err ? strerror(err) : "ok");
    }
    int mark = own_connect();
    printf("client: dl_own's connect gave %d\n", mark);
    if (mark != 4242)
        die("dl_own's own connect() was not called: DEEPBIND is broken");
    dlclose(own);
    dlclose(lib);
}

/* ------------------------------------------------------------------ closed2 */

static void role_closed2(char **argv)
{
    static const char line[] = "the host's own data\n";
    char back[256];
    unsigned port = arg_num(argv[0]), n = arg_num(argv[1]);
    int fd = -1, first = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = inet4("127.0.0.1", port);
    bool keep = strcmp(argv[2], "keep") == 0;
    if (!keep)
        close(STDERR_FILENO); /* after the socket: with "-", fd 2 is free for the shim */
    if (!keep && strcmp(argv[2], "-") != 0) {
        fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd != STDERR_FILENO)
            die("open %s gave fd %d, not 2", argv[2], fd);
        if (write(fd, line, sizeof(line) - 1) != (ssize_t)sizeof(line) - 1)
            die("write %s", argv[2]);
    }
    if (connect(first, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect 1: %s", strerror(errno));
    for (unsigned i = 1; i < n; i++) {
        int rc = tcp_to("127.0.0.1", port, 0, NULL);
        if (rc != 0)
            die("connect %u: %s", i + 1, strerror(rc));
    }
    close(first);
    /* The unresolvable route's port: this connect waits for the first lookup, which
     * reports before it ends, so the line is out before the client exits. */
    tcp_to("127.0.0.1", port + 1, 0, NULL);
    if (fd < 0)
        return;
    ssize_t got = pread(fd, back, sizeof(back) - 1, 0);
    back[got > 0 ? got : 0] = '\0';
    if (strcmp(back, line) != 0)
        die("the file on fd 2 now holds '%s'", back);
    printf("client: the file on fd 2 holds only the host's line\n");
}

/* ------------------------------------------------------------------ badaddr */

static void expect_efault(const char *what, long rc)
{
    if (rc != -1 || errno != EFAULT)
        die("%s: got %ld (%s), expected EFAULT", what, rc, strerror(errno));
}

/* Addresses the kernel cannot read: a bad pointer, and 16 bytes of which the last 8 lie on
 * an inaccessible page. Each fails with EFAULT, as without the shim; the routed connects around
 * them are limited as usual. */
static void role_badaddr(char **argv)
{
    unsigned port = arg_num(argv[0]);
    long page = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map + page, (size_t)page, PROT_NONE) != 0)
        die("mmap");
    const void *edge = map + page - 8, *bad = (const void *)1;
    if (tcp_to("127.0.0.1", port, 0, NULL) != 0)
        die("the first connect failed");
    const void *addrs[] = {bad, edge};
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        expect_efault("connect", connect(s, addrs[i], 16));
        expect_efault("sendto MSG_FASTOPEN", sendto(s, "x", 1, MSG_FASTOPEN, addrs[i], 16));
        close(s);
    }
    if (tcp_to("127.0.0.1", port, 0, NULL) != 0)
        die("the last connect failed");
    printf("client: unreadable addresses gave EFAULT\n");
}

/* ------------------------------------------------------------------ dnshang */

/* The fake resolver's gate (fake_resolver.c): FIFOs opened read-write, so that neither side
 * blocks in open(). */
static struct {
    int entered, release;
    atomic_uint releases;
} gate;

static void gate_open(const char *base)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s.gate.entered", base);
    unlink(path);
    if (mkfifo(path, 0600) != 0 || (gate.entered = open(path, O_RDWR | O_CLOEXEC)) < 0)
        die("fifo %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s.gate.release", base);
    unlink(path);
    if (mkfifo(path, 0600) != 0 || (gate.release = open(path, O_RDWR | O_CLOEXEC)) < 0)
        die("fifo %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s.gate", base);
    setenv("FAKE_RESOLVER_GATE", path, 1);
}

/* Let `n` held lookups go on. */
static void gate_release(unsigned n)
{
    char bytes[64] = {0};
    atomic_fetch_add(&gate.releases, 1);
    if (write(gate.release, bytes, n) != (ssize_t)n)
        die("write to the gate");
}

/* Wait until a lookup is held at the gate; false if none arrives within `ms`. */
static bool gate_entered(int ms)
{
    struct pollfd p = {.fd = gate.entered, .events = POLLIN};
    char c;
    if (poll(&p, 1, ms) != 1)
        return false;
    return read(gate.entered, &c, 1) == 1;
}

struct guard {
    atomic_bool done;
};

/* If the connect is stuck behind the gate for 10 s (the shim resolves on the connect), let
 * the lookup go so that the test ends and reports it. */
static void *guard_thread(void *arg)
{
    struct guard *g = arg;
    for (int i = 0; i < 1000 && !atomic_load(&g->done); i++)
        usleep(10000);
    if (!atomic_load(&g->done))
        gate_release(64);
    return NULL;
}

/* Connect while a lookup may be held: the connect must return with no release meanwhile. */
static void connect_while_held(const char *ip, unsigned port, const char *what)
{
    struct guard g = {false};
    pthread_t t;
    unsigned before = atomic_load(&gate.releases);
    pthread_create(&t, NULL, guard_thread, &g);
    int rc = tcp_to(ip, port, 0, NULL);
    bool released = atomic_load(&gate.releases) != before;
    atomic_store(&g.done, true);
    pthread_join(t, NULL);
    if (rc != 0)
        die("%s: %s", what, strerror(rc));
    if (released)
        die("%s waited for the resolver", what);
}

static void *routed_connect(void *arg)
{
    const unsigned *port = arg;
    if (tcp_to("127.0.0.2", *port, 0, NULL) != 0)
        die("the connect to api.test failed");
    return NULL;
}

/*
 * Route api.test:PORT (resolve-every 1s); OTHER is an unrouted port on 127.0.0.1.
 * 1. The first connect (to OTHER) starts the first lookup and returns while it is held.
 * 2. A connect to api.test's port waits for that first lookup, so it is limited.
 * 3. At the next refresh, with the lookup held again, a connect to OTHER and one to
 *    api.test (its address from the first lookup) both return before the release.
 */
static void role_dnshang(char **argv)
{
    static unsigned port;
    unsigned other = arg_num(argv[1]);
    pthread_t t;
    port = arg_num(argv[0]);
    setenv("FAKE_RESOLVER_FILE", argv[2], 1);
    gate_open(argv[2]);
    connect_while_held("127.0.0.1", other, "the first connect (unrouted)");
    if (!gate_entered(30000))
        die("the first lookup never started");
    pthread_create(&t, NULL, routed_connect, &port);
    gate_release(1);
    pthread_join(t, NULL);
    expect_admitted("dyn", 1, "after the first lookup");
    bool held = false;
    for (int i = 0; i < 300 && !held; i++) {
        connect_while_held("127.0.0.1", other, "an unrouted connect");
        held = gate_entered(50);
    }
    if (!held)
        die("no refresh started");
    connect_while_held("127.0.0.1", other, "an unrouted connect during the refresh");
    connect_while_held("127.0.0.2", port, "a connect to api.test during the refresh");
    expect_admitted("dyn", 2, "during the refresh");
    gate_release(1);
    printf("client: no connect waited for a held lookup but the first on api.test's port\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        die("usage: client ROLE ARGS...");
    const char *role = argv[1];
    const char *uid = getenv("SHIM_TEST_SETUID"); /* become this user before any connect */
    if (uid && (setgid((gid_t)arg_num(uid)) != 0 || setuid((uid_t)arg_num(uid)) != 0))
        die("setuid %s: %s", uid, strerror(errno));
    if (strcmp(role, "script") == 0)
        role_script(argc - 2, argv + 2);
    else if (strcmp(role, "limit") == 0 && argc == 6)
        role_limit(argv + 2);
    else if (strcmp(role, "eintr") == 0 && argc == 6)
        role_eintr(argv + 2);
    else if (strcmp(role, "nonblock") == 0 && argc == 4)
        role_nonblock(argv + 2);
    else if (strcmp(role, "refresh") == 0 && argc == 5)
        role_refresh(argv + 2);
    else if (strcmp(role, "fork") == 0 && argc == 3)
        role_fork(argv + 2);
    else if (strcmp(role, "dlopen") == 0 && argc == 5)
        role_dlopen(argv + 2);
    else if (strcmp(role, "deepbind") == 0 && argc == 6)
        role_deepbind(argv + 2);
    else if (strcmp(role, "closed2") == 0 && argc == 5)
        role_closed2(argv + 2);
    else if (strcmp(role, "badaddr") == 0 && argc == 3)
        role_badaddr(argv + 2);
    else if (strcmp(role, "dnshang") == 0 && argc == 5)
        role_dnshang(argv + 2);
    else
        die("unknown role or arguments: %s", role);
    return 0;
}
