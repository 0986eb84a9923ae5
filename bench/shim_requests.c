/*
 * shim_requests.c - what the request-level shim (route option `count requests`) costs:
 *   - write() of 1 byte to /dev/null, an fd the shim keeps no state for: the hook's one
 *     load of the fd's slot (target: under 50 ns);
 *   - a request on a kept-alive loopback connection whose route counts requests: a
 *     write() of its head and the read()s of its answer, in batches of BATCH pipelined
 *     requests: the CPU time of the process per request, which covers parsing the head,
 *     taking its unit and parsing the answer (target: under 2 us, the turn's own
 *     rl_acquire included; the bucket is too large ever to make it wait).
 * Each is timed in a child process re-executed with and without
 * LD_PRELOAD=libratelimit-preload.so, in interleaved rounds; a thread of the parent answers
 * each request head with a fixed response. Skipped when the shim is not built.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define RUNS   7
#define WARMUP 200
#define BATCH  32

static const char head[] = "GET /v1/items?page=1 HTTP/1.1\r\nHost: api.vendor.example\r\n"
                           "User-Agent: bench/1.0\r\nAccept: application/json\r\n\r\n";
static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 2\r\n\r\n{}";

/* BATCH requests, one write() each, then their answers: the CPU time taken. */
static uint64_t batch(int fd)
{
    static char buf[BATCH * sizeof(answer)];
    uint64_t t0 = cpu_ns();
    for (unsigned i = 0; i < BATCH; i++)
        if (write(fd, head, sizeof(head) - 1) != (ssize_t)sizeof(head) - 1)
            die("write", strerror(errno));
    for (size_t got = 0, want = BATCH * (sizeof(answer) - 1); got < want;) {
        ssize_t r = read(fd, buf, want - got);
        if (r <= 0)
            die("read", r < 0 ? strerror(errno) : "the server closed");
        got += (size_t)r;
    }
    return cpu_ns() - t0;
}
struct req_env {
    char shim[PATH_MAX], config[PATH_MAX], table[PATH_MAX], port[16], ops[16];
    int listener;
};

/* The child: mean ns per write() ("null"), or of CPU per request ("request"). */
int shim_requests_child(const char *mode, const char *port, const char *ops)
{
    unsigned n = (unsigned)atoi(ops);
    bool request = strcmp(mode, "request") == 0;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (request) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        close(fd);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
            die("connect", strerror(errno));
    }
    uint64_t total = 0;
    for (unsigned i = 0; request && i < (WARMUP + n) / BATCH; i++)
        total += i < WARMUP / BATCH ? 0 : batch(fd);
    for (unsigned i = 0; !request && i < WARMUP + n; i++) {
        uint64_t t0 = now_ns();
        if (write(fd, "x", 1) != 1)
            die("write", strerror(errno));
        total += i < WARMUP ? 0 : now_ns() - t0;
    }
    close(fd);
    printf("%.1f\n", (double)total / (request ? n / BATCH * BATCH : n));
    return 0;
}

/* Answer each whole request head that came in (they all have the one size). */
static void answer_all(int fd)
{
    static char buf[BATCH * sizeof(head)], out[BATCH * sizeof(answer)];
    size_t partial = 0;
    for (unsigned i = 0; i < BATCH; i++)
        memcpy(out + i * (sizeof(answer) - 1), answer, sizeof(answer) - 1);
    for (ssize_t r; (r = read(fd, buf, sizeof(buf))) > 0;) {
        size_t heads = (partial + (size_t)r) / (sizeof(head) - 1);
        partial = (partial + (size_t)r) % (sizeof(head) - 1);
        for (size_t k; heads; heads -= k) {
            k = heads < BATCH ? heads : BATCH;
            if (write(fd, out, k * (sizeof(answer) - 1)) < 0)
                return;
        }
    }
}

static void *server(void *arg)
{
    int listener = *(int *)arg, fd;
    while ((fd = accept(listener, NULL, NULL)) >= 0 || errno == EINTR || errno == ECONNABORTED)
        if (fd >= 0) {
            answer_all(fd);
            close(fd);
        }
    return NULL;
}

static void setup(struct req_env *e)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    e->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (e->listener < 0 || bind(e->listener, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(e->listener, 16) < 0 || getsockname(e->listener, (struct sockaddr *)&a, &len) < 0)
        die("listen", strerror(errno));
    snprintf(e->port, sizeof(e->port), "%u", ntohs(a.sin_port));
    snprintf(e->table, sizeof(e->table), "/dev/shm/rl-bench-%ld-requests", (long)getpid());
    snprintf(e->config, sizeof(e->config), "/tmp/rl-bench-%ld-requests.conf", (long)getpid());
    remove_at_exit(e->table, true);
    remove_at_exit(e->config, true);
    FILE *f = fopen(e->config, "w");
    if (!f ||
        fprintf(f,
                "table %s\ncapacity 16\nbucket bench 1000000/1s burst 100000\n"
                "route 127.0.0.1:%s bench count requests\n",
                e->table, e->port) < 0 ||
        fclose(f) != 0)
        die(e->config, strerror(errno));
}

static double child(const struct req_env *e, const char *mode, bool preload)
{
    int fds[2];
    if (pipe(fds) < 0)
        die("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        setenv("RATELIMIT_CONFIG", e->config, 1);
        if (preload)
            setenv("LD_PRELOAD", e->shim, 1);
        else
            unsetenv("LD_PRELOAD");
        execl("/proc/self/exe", "bench", "--requests-child", mode, e->port, e->ops, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[64] = "";
    FILE *f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof(line), f))
        line[0] = '\0';
    if (f)
        fclose(f);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) ||
        !line[0])
        die("shim-requests", "a child failed");
    return strtod(line, NULL);
}

static void report(const char *what, const char *csv_name, double *without, double *with,
                   unsigned runs, double target_ns)
{
    struct spread a = spread_of(without, runs), b = spread_of(with, runs);
    double extra = b.median - a.median;
    printf("%-40s %10s %10s %10s\n", what, "median ns", "min", "max");
    printf("%-40s %10.0f %10.0f %10.0f\n", "  without the shim", a.median, a.min, a.max);
    printf("%-40s %10.0f %10.0f %10.0f\n", "  with the shim", b.median, b.min, b.max);
    printf("  overhead: %.0f ns\n", extra);
    FILE *csv = csv_open(csv_name, "variant,median_ns,min_ns,max_ns");
    csv_row(csv, "without,%.1f,%.1f,%.1f", a.median, a.min, a.max);
    csv_row(csv, "with_shim,%.1f,%.1f,%.1f", b.median, b.min, b.max);
    csv_close(csv);
    char target[32];
    snprintf(target, sizeof(target), "< %.0f ns", target_ns);
    summary_add(what, target, bench_quick ? NOT_APPLICABLE : verdict_of(extra < target_ns),
                "%+.0f ns", extra);
}

void bench_shim_requests(void)
{
    static struct req_env e;
    unsigned runs = bench_quick ? 1 : RUNS;
    double without[RUNS], with[RUNS];
    section("preload shim: request-level counting (route option `count requests`)");
    if (!shim_locate(e.shim, sizeof(e.shim))) {
        printf("shim not built: skipped\n");
        summary_add("shim: count requests", "", NOT_APPLICABLE, "skipped: shim not built");
        return;
    }
    snprintf(e.ops, sizeof(e.ops), "%u", bench_quick ? 320 : 100000);
    setup(&e);
    pthread_t thread;
    if (pthread_create(&thread, NULL, server, &e.listener) != 0)
        die("shim-requests", "cannot start the answering thread");
    static const struct {
        const char *mode, *what, *csv;
        double target;
    } cases[] = {
        {"null", "shim: write() of 1 byte to /dev/null", "shim_write_unrouted", 50},
        {"request", "shim: CPU per routed request (head + answer)", "shim_request_cpu", 2000},
    };
    for (size_t c = 0; c < 2; c++) {
        for (unsigned r = 0; r < runs; r++) {
            without[r] = child(&e, cases[c].mode, false);
            with[r] = child(&e, cases[c].mode, true);
        }
        report(cases[c].what, cases[c].csv, without, with, runs, cases[c].target);
    }
    shutdown(e.listener, SHUT_RDWR);
    pthread_join(thread, NULL);
    close(e.listener);
    unlink(e.config);
    unlink(e.table);
    remove_at_exit(e.config, false);
    remove_at_exit(e.table, false);
}
