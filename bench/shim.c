/*
 * shim.c - what the preload shim costs a program whose connections it does not limit:
 * connect() to a loopback listener, timed in a child process re-executed with and without
 * LD_PRELOAD=libratelimit-preload.so, in interleaved rounds, under a config whose one route
 * (192.0.2.7:9, TEST-NET-1) matches nothing. Skipped, saying so, when the shim is not built.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define SHIM_RUNS 7
#define WARMUP    50

extern char **environ;

struct shim_env {
    char shim[PATH_MAX], config[PATH_MAX], table[PATH_MAX], port[16], ops[16];
    int listener;
};

int shim_connect_child(const char *port, const char *ops)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned n = (unsigned)atoi(ops);
    uint64_t total = 0;
    for (unsigned i = 0; i < WARMUP + n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct linger reset = {1, 0}; /* close with RST: no TIME_WAIT pile-up */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        uint64_t t0 = now_ns();
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
            die("connect", strerror(errno));
        total += i < WARMUP ? 0 : now_ns() - t0;
        close(fd);
    }
    printf("%.1f\n", (double)total / n);
    return 0;
}

/* build/bench/bench -> build/src/shim/libratelimit-preload.so */
bool shim_locate(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0)
        return false;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    int n2 = snprintf(out, len, "%s/../src/shim/libratelimit-preload.so", exe);
    return n2 > 0 && (size_t)n2 < len && access(out, R_OK) == 0;
}

static void *acceptor(void *arg)
{
    int listener = *(int *)arg, fd;
    while ((fd = accept(listener, NULL, NULL)) >= 0 || errno == EINTR || errno == ECONNABORTED)
        if (fd >= 0)
            close(fd);
    return NULL;
}

static void listen_loopback(struct shim_env *e)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    e->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (e->listener < 0 || bind(e->listener, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(e->listener, 4096) < 0 || getsockname(e->listener, (struct sockaddr *)&a, &len) < 0)
        die("listen", strerror(errno));
    snprintf(e->port, sizeof(e->port), "%u", ntohs(a.sin_port));
}

/* A config with one route that matches nothing, checked by the library's own parser. */
static void write_config(struct shim_env *e)
{
    char text[PATH_MAX + 128], *errors = NULL;
    snprintf(e->table, sizeof(e->table), "/dev/shm/rl-bench-%ld-shim", (long)getpid());
    snprintf(e->config, sizeof(e->config), "/tmp/rl-bench-%ld-shim.conf", (long)getpid());
    int len =
        snprintf(text, sizeof(text),
                 "table %s\ncapacity 16\nbucket bench 100/1s\nroute 192.0.2.7:9 bench\n", e->table);
    remove_at_exit(e->table, true);
    remove_at_exit(e->config, true);
    rl_config *c;
    if (rl_config_parse(text, (size_t)len, e->config, &c, &errors))
        die("shim config", errors ? errors : "cannot parse");
    rl_config_free(c);
    FILE *f = fopen(e->config, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die(e->config, strerror(errno));
}

static _Noreturn void child_exec(const struct shim_env *e, bool preload, int out)
{
    dup2(out, STDOUT_FILENO);
    setenv("RATELIMIT_CONFIG", e->config, 1);
    if (preload)
        setenv("LD_PRELOAD", e->shim, 1);
    else
        unsetenv("LD_PRELOAD");
    execl("/proc/self/exe", "bench", "--connect-child", e->port, e->ops, (char *)NULL);
    _exit(127);
}

/* Mean ns per connect() in a fresh child process. */
static double run_child(const struct shim_env *e, bool preload)
{
    int fds[2];
    if (pipe(fds) < 0)
        die("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child_exec(e, preload, fds[1]);
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
        die("shim", preload ? "the child with the shim failed" : "the child without it failed");
    return strtod(line, NULL);
}

static void shim_report(double *without, double *with, unsigned runs)
{
    struct spread a = spread_of(without, runs), b = spread_of(with, runs);
    printf("%-34s %10s %10s %10s\n", "connect() to 127.0.0.1", "median ns", "min", "max");
    printf("%-34s %10.0f %10.0f %10.0f\n", "without the shim", a.median, a.min, a.max);
    printf("%-34s %10.0f %10.0f %10.0f\n", "with the shim, no route matches", b.median, b.min,
           b.max);
    printf("overhead: %.0f ns per connect() (%.2fx)\n", b.median - a.median, b.median / a.median);
    FILE *csv = csv_open("shim", "variant,median_ns,min_ns,max_ns");
    csv_row(csv, "without,%.1f,%.1f,%.1f", a.median, a.min, a.max);
    csv_row(csv, "with_shim,%.1f,%.1f,%.1f", b.median, b.min, b.max);
    csv_close(csv);
    summary_add("shim: connect() to loopback, no route matches", "", NOT_APPLICABLE,
                "%+.0f ns (%.2fx of %.1f us)", b.median - a.median, b.median / a.median,
                a.median / 1000);
}

void bench_shim(void)
{
    static struct shim_env e;
    unsigned runs = bench_quick ? 1 : SHIM_RUNS;
    double without[SHIM_RUNS], with[SHIM_RUNS];
    section("preload shim: connect() overhead when no route matches");
    if (!shim_locate(e.shim, sizeof(e.shim))) {
        printf("shim not built (%s is missing): skipped\n", e.shim);
        summary_add("shim: connect() overhead", "", NOT_APPLICABLE, "skipped: shim not built");
        return;
    }
    snprintf(e.ops, sizeof(e.ops), "%u", bench_quick ? 100 : 5000);
    write_config(&e);
    listen_loopback(&e);
    pthread_t thread;
    if (pthread_create(&thread, NULL, acceptor, &e.listener) != 0)
        die("shim", "cannot start the accepting thread");
    for (unsigned r = 0; r < runs; r++) {
        without[r] = run_child(&e, false);
        with[r] = run_child(&e, true);
    }
    shutdown(e.listener, SHUT_RDWR);
    pthread_join(thread, NULL);
    close(e.listener);
    shim_report(without, with, runs);
    unlink(e.config);
    unlink(e.table);
    remove_at_exit(e.config, false);
    remove_at_exit(e.table, false);
}
