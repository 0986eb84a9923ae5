/*
 * client.c - the shim tests' preloaded side: run by driver.c under
 * LD_PRELOAD=libratelimit-preload.so, it connects as a role asks and checks what it sees
 * (results, errno, the buckets' counters, lower bounds on waits). Failures go to stdout as
 * "client: ..." with exit 1; stderr is left to the shim, whose lines the driver checks.
 * Nothing here has a time ceiling: a loaded machine only makes things later.
 *
 *   script ACTION...           each ACTION is KIND:TARGET:EXPECT[:xN], done N times;
 *                              KIND tcp4 (127.0.0.1:PORT), tcp6m (the same
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
 *   replace PORT N TABLE       N connects use up an N/1h bucket (wait 0s, on-timeout fail),
 *                              then TABLE is deleted; connects every 20 ms (at most 10 s)
 *                              until N more pass (the table the shim made again), then one
 *                              more must fail with ETIMEDOUT
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

/* The counters of a bucket in the shim's table ($SHIM_TEST_TABLE). */
static struct rl_counters counters_of(const char *bucket)
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
    return info.counters;
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
        int rc = do_action(kind, target);
        const char *got = rc == 0 ? "ok" : strerrorname_np(rc);
        if (strcmp(got, expect) != 0)
            die("%s:%s #%u: got %s, expected %s", kind, target, i + 1, got, expect);
    }
}

static void role_script(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        script_action(argv[i]);
}

/* ------------------------------------------------------------------ limit, eintr */

static atomic_bool in_connect; /* role_eintr: inside a paced connect */

/* N connects through a K per T_MS bucket: connect i+K cannot finish within T_MS of the start
 * of connect i. A lower bound only: how late a wait ends is the bench's (waiters). */
static void paced_connects(unsigned port, unsigned n, unsigned k, unsigned t_ms)
{
    double pre[64], post[64];
    if (n > 64 || k == 0)
        die("at most 64 connects");
    for (unsigned i = 0; i < n; i++) {
        pre[i] = now_ms();
        atomic_store(&in_connect, true);
        int rc = tcp_to("127.0.0.1", port, 0, NULL);
        atomic_store(&in_connect, false);
        post[i] = now_ms();
        if (rc != 0)
            die("connect %u: %s", i + 1, strerror(rc));
    }
    for (unsigned i = 0; i + k < n; i++)
        if (post[i + k] - pre[i] < t_ms)
            die("connects %u and %u finished %.1f ms apart: the bucket allows %u per %u ms", i + 1,
                i + k + 1, post[i + k] - pre[i], k, t_ms);
    printf("client: %u connects in %.0f ms\n", n, post[n - 1] - pre[0]);
}

static void role_limit(char **argv)
{
    paced_connects(arg_num(argv[0]), arg_num(argv[1]), arg_num(argv[2]), arg_num(argv[3]));
}

static atomic_uint alarms, alarms_in_connect;

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&alarms, 1);
    if (atomic_load(&in_connect))
        atomic_fetch_add(&alarms_in_connect, 1);
}

/* The paced connects wait T_MS at least (checked): a 5 ms timer fires in that wait however
 * busy the machine is, and at least one of its signals lands inside a connect. */
static void role_eintr(char **argv)
{
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
    struct itimerval every = {{0, 5000}, {0, 5000}}, off = {{0, 0}, {0, 0}};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &every, NULL);
    paced_connects(arg_num(argv[0]), arg_num(argv[1]), arg_num(argv[2]), arg_num(argv[3]));
    setitimer(ITIMER_REAL, &off, NULL);
    if (atomic_load(&alarms_in_connect) == 0)
        die("no SIGALRM arrived inside a waiting connect (%u in all)", atomic_load(&alarms));
    printf("client: %u SIGALRMs, %u inside the connects\n", atomic_load(&alarms),
           atomic_load(&alarms_in_connect));
}

/* ------------------------------------------------------------------ nonblock */

/* A non-blocking connect that may complete later: 0 and EINPROGRESS are both fine. */
static int nb_connect(unsigned port)
{
    int fd;
    int rc = tcp_to("127.0.0.1", port, SOCK_NONBLOCK, &fd);
    if (rc != 0 && rc != EINPROGRESS)
        die("non-blocking connect: %s", strerror(rc));
    return fd;
}

/* Bucket `one` has admitted `admitted` connects, `waited` of them after a wait. */
static void expect_one(uint64_t admitted, uint64_t waited, const char *when)
{
    struct rl_counters c = counters_of("one");
    if (c.admitted != admitted || c.waited != waited)
        die("%s: bucket one admitted %llu connects (%llu waited), expected %llu (%llu)", when,
            (unsigned long long)c.admitted, (unsigned long long)c.waited,
            (unsigned long long)admitted, (unsigned long long)waited);
}

/* Through a 1/T_MS bucket: the first connect takes the free turn without a wait; asking
 * connect() again takes nothing; the second ends T_MS after the first began at the
 * earliest (a lower bound: load only delays it). */
static void role_nonblock(char **argv)
{
    unsigned port = arg_num(argv[0]), t_ms = arg_num(argv[1]);
    struct sockaddr_in sa = inet4("127.0.0.1", port);
    struct pollfd p = {.events = POLLOUT};
    udp_to(port); /* a UDP connect loads the shim's config */
    double start = now_ms();
    p.fd = nb_connect(port);
    expect_one(1, 0, "after the first non-blocking connect");
    if (poll(&p, 1, 10000) != 1)
        die("the first connection never completed");
    /* Asking again for the outcome opens no connection: it costs nothing and is not held.
     * Linux answers 0 the first time after the connection completed, then EISCONN. */
    for (int i = 0; i < 2; i++)
        if (connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EISCONN)
            die("connect() again on a connected socket: %s", strerror(errno));
    expect_one(1, 0, "after connect() again on the connected socket");
    int second = nb_connect(port);
    double apart = now_ms() - start;
    if (apart < t_ms)
        die("the second non-blocking connect ended %.1f ms after the first began: the bucket "
            "allows one per %u ms",
            apart, t_ms);
    printf("client: the second non-blocking connect ended %.0f ms after the first began\n", apart);
    close(p.fd);
    close(second);
}

/* ------------------------------------------------------------------ the resolver's gate */

/* The fake resolver's gate (fake_resolver.c): FIFOs opened read-write, so that neither side
 * blocks in open(). */
static struct {
    int entered, release;
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
    return counters_of(bucket).admitted;
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

/* Let lookups through the gate: all of them while `budget` is negative, else that many
 * more, then hold the next one (and say so in `held`) until the role ends. */
struct keeper {
    atomic_int budget;
    atomic_bool held, stop;
};

static void *keeper_thread(void *arg)
{
    struct keeper *k = arg;
    while (!atomic_load(&k->stop) && !atomic_load(&k->held)) {
        if (!gate_entered(100))
            continue;
        int left = atomic_load(&k->budget);
        if (left == 0) {
            atomic_store(&k->held, true);
            break;
        }
        if (left > 0)
            atomic_store(&k->budget, left - 1);
        gate_release(1);
    }
    return NULL;
}

/*
 * Route api.test (resolved by the fake resolver from FILE) and localhost, resolve-every 1s,
 * with every lookup of api.test passing the gate. Phase 1 (0.8 s): api.test is 127.0.0.2.
 * Then FILE says 127.0.0.3, two more lookups go through (the first keeps 127.0.0.2 as the
 * previous address, the second drops it) and the next one is held: it started, so the
 * second's routes are in place, and no refresh changes them until the end. Phase 3 (0.8 s):
 * only 127.0.0.3 is limited. localhost is matched by every connect throughout, while the
 * table is swapped under the threads. The phases are event-driven: a slow machine only
 * makes them later.
 */
static void role_refresh(char **argv)
{
    static struct hammer h;
    static struct keeper k;
    pthread_t keeper;
    h.port = arg_num(argv[0]);
    h.lh_port = arg_num(argv[1]);
    gate_open(argv[2]);
    atomic_store(&k.budget, -1);
    pthread_create(&keeper, NULL, keeper_thread, &k);
    hit(&h, "127.0.0.2", h.port, &h.c2); /* loads the config, waits for the first lookup */
    hammer_until(&h, now_ms() + 800);
    expect_admitted("dyn", atomic_load(&h.c2), "phase 1");
    expect_admitted("lh", atomic_load(&h.lh), "phase 1");
    write_file(argv[2], "127.0.0.3\n");
    atomic_store(&k.budget, 2);
    for (double end = now_ms() + 60000; !atomic_load(&k.held);) {
        if (now_ms() > end)
            die("in 60 s, fewer than 3 lookups of api.test started after the change");
        hammer_until(&h, now_ms() + 200);
    }
    expect_admitted("lh", atomic_load(&h.lh), "phase 2");
    uint64_t before = admitted("dyn");
    atomic_store(&h.c3, 0);
    hammer_until(&h, now_ms() + 800);
    expect_admitted("dyn", before + atomic_load(&h.c3), "phase 3");
    expect_admitted("lh", atomic_load(&h.lh), "phase 3");
    atomic_store(&k.stop, true);
    pthread_join(keeper, NULL);
    gate_release(1);
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

/* Connect while a lookup is held at the gate, which nobody releases meanwhile: a connect
 * that waited for the resolver would never return (the driver ends the client after 90 s
 * and the case fails). Exact, however slow the machine is. */
static void connect_while_held(const char *ip, unsigned port, const char *what)
{
    int rc = tcp_to(ip, port, 0, NULL);
    if (rc != 0)
        die("%s: %s", what, strerror(rc));
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
    for (int i = 0; i < 1000 && !held; i++) { /* 50 s at least, for a refresh due in 1 s */
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

/* ------------------------------------------------------------------ replace */

static void role_replace(char **argv)
{
    unsigned port = arg_num(argv[0]), n = arg_num(argv[1]), ok = 0, tries = 0;
    for (unsigned i = 0; i < n; i++)
        if (tcp_to("127.0.0.1", port, 0, NULL) != 0)
            die("connect %u of the first table's %u failed", i + 1, n);
    int rc = tcp_to("127.0.0.1", port, 0, NULL);
    if (rc != ETIMEDOUT)
        die("the first table's bucket is used up, yet a connect got %s", strerrorname_np(rc));
    if (unlink(argv[2]) != 0)
        die("unlink %s: %s", argv[2], strerror(errno));
    struct timespec pause = {0, 20 * 1000000L};
    for (; ok < n && tries < 500; tries++) {
        rc = tcp_to("127.0.0.1", port, 0, NULL);
        if (rc != 0 && rc != ETIMEDOUT)
            die("connect after the deletion: %s", strerror(rc));
        ok += rc == 0;
        if (rc != 0)
            nanosleep(&pause, NULL);
    }
    if (ok < n)
        die("after the table was deleted, %u of %u connects passed in %u tries: the shim "
            "kept the deleted table",
            ok, n, tries);
    rc = tcp_to("127.0.0.1", port, 0, NULL);
    if (rc != ETIMEDOUT)
        die("the new table's bucket is used up, yet a connect got %s", strerrorname_np(rc));
    printf("client: %u connects passed on the new table after %u tries\n", n, tries);
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
    else if (strcmp(role, "replace") == 0 && argc == 5)
        role_replace(argv + 2);
    else
        die("unknown role or arguments: %s", role);
    return 0;
}
