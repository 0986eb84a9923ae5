/*
 * shim_tls.c - what the preload shim's TLS hooks cost a routed HTTPS request besides its
 * turn. One process holds both ends of a loopback TLS 1.3 connection (OpenSSL, a
 * self-signed certificate made with the openssl CLI) and makes N keep-alive request and
 * response exchanges on it: the client's SSL_write of a request head, the server's
 * SSL_read, its SSL_write of a response head, the client's SSL_read. The child is timed
 * with and without LD_PRELOAD=libratelimit-preload.so, in interleaved rounds, under a
 * config whose route counts requests on the listener's port, with a bucket so large that
 * every turn is immediate. CPU time is measured. The difference per exchange is the hooks' cost
 * (both ends' four calls, the session lookups, the parser) plus one uncontended rl_acquire and
 * rl_report.
 *
 * bench_shim_tls [N]     (default 20000 exchanges per run, 7 runs per side)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 7

static const char request[] = "GET /v1/items HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
static const char response[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "X-RateLimit-Remaining: 99\r\nContent-Length: 2\r\n\r\n{}";

static void die(const char *what)
{
    fprintf(stderr, "bench_shim_tls: %s: %s\n", what, errno ? strerror(errno) : "failed");
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* CPU time of the whole process (the shim's resolver thread included): what the issue's
 * budget counts, and less disturbed by other load than the wall clock. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Both ends of a TLS connection over loopback, handshaken (non-blocking, one thread). */
static void pair(int listener, const char *dir, SSL **client, SSL **server)
{
    char cert[PATH_MAX], key[PATH_MAX];
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method()), *sctx = SSL_CTX_new(TLS_server_method());
    if (!cctx || !sctx || SSL_CTX_use_certificate_file(sctx, cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1)
        die("SSL_CTX");
    getsockname(listener, (struct sockaddr *)&a, &len);
    int c = socket(AF_INET, SOCK_STREAM, 0), s;
    if (c < 0 || connect(c, (struct sockaddr *)&a, len) != 0 || (s = accept(listener, 0, 0)) < 0)
        die("loopback connection");
    fcntl(c, F_SETFL, O_NONBLOCK);
    fcntl(s, F_SETFL, O_NONBLOCK);
    *client = SSL_new(cctx);
    *server = SSL_new(sctx);
    SSL_set_fd(*client, c);
    SSL_set_fd(*server, s);
    SSL_set_tlsext_host_name(*client, "localhost");
    for (int i = 0, done = 0; done != 3; i++) {
        if (i > 100000)
            die("handshake");
        done |= SSL_connect(*client) == 1 ? 1 : 0;
        done |= SSL_accept(*server) == 1 ? 2 : 0;
    }
}

/* Write all of msg on one end, read it all on the other (retrying would-block). */
static void exchange(SSL *from, SSL *to, const char *msg, size_t len)
{
    char buf[512];
    size_t got = 0;
    if (SSL_write(from, msg, (int)len) != (int)len)
        die("SSL_write");
    for (int tries = 0; got < len; tries++) {
        int r = SSL_read(to, buf, sizeof(buf));
        if (r <= 0 && (SSL_get_error(to, r) != SSL_ERROR_WANT_READ || tries > 1000000))
            die("SSL_read");
        got += r > 0 ? (size_t)r : 0;
    }
}

/* The child: n exchanges after a warm-up; prints CPU ns per exchange. */
static int child(int listener, const char *dir, unsigned n)
{
    SSL *client, *server;
    pair(listener, dir, &client, &server);
    uint64_t t0 = 0;
    for (unsigned i = 0; i < n + 200; i++) {
        if (i == 200)
            t0 = cpu_ns();
        exchange(client, server, request, sizeof(request) - 1);
        exchange(server, client, response, sizeof(response) - 1);
    }
    printf("%.1f\n", (double)(cpu_ns() - t0) / n);
    return 0;
}

static double run(char *const argv[], bool preload, const char *shim, const char *config)
{
    int out[2];
    char buf[64] = "";
    if (pipe(out) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        if (preload) {
            setenv("LD_PRELOAD", shim, 1);
            setenv("RATELIMIT_CONFIG", config, 1);
        }
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(out[1]);
    ssize_t n = read(out[0], buf, sizeof(buf) - 1);
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("child");
    return atof(buf);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "child") == 0)
        return child(atoi(argv[2]), argv[3], (unsigned)atoi(argv[4]));
    char dir[] = "/tmp/rl-bench-tls.XXXXXX", shim[PATH_MAX], config[PATH_MAX], cmd[PATH_MAX * 2];
    char exe[PATH_MAX], lfd[16], ops[16];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 20000;
    if (len < 0 || !mkdtemp(dir))
        die("setup");
    exe[len] = '\0';
    *strrchr(exe, '/') = '\0';
    int w = snprintf(shim, sizeof(shim), "%s/../src/shim/libratelimit-preload.so", exe);
    if (w < 0 || (size_t)w >= sizeof(shim) || access(shim, R_OK) != 0)
        return printf("shim_tls: skipped, no %s\n", shim), 0;
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem "
             "-days 1 -subj /CN=localhost 2>/dev/null",
             dir, dir);
    if (system(cmd) != 0)
        die("openssl req");
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(listener, 16) != 0 || getsockname(listener, (struct sockaddr *)&a, &alen) != 0)
        die("listener");
    snprintf(config, sizeof(config), "%s/ratelimit.conf", dir);
    FILE *f = fopen(config, "w");
    if (!f)
        die(config);
    fprintf(f,
            "table %s/table\nbucket b 1000000000/1s burst 1000000000\n"
            "route 127.0.0.1:%u b count requests\n",
            dir, ntohs(a.sin_port));
    fclose(f);
    snprintf(lfd, sizeof(lfd), "%d", listener);
    snprintf(ops, sizeof(ops), "%u", n);
    char *child_argv[] = {argv[0], "child", lfd, dir, ops, NULL};
    double plain[RUNS], shimmed[RUNS];
    for (int i = 0; i < RUNS; i++) {
        plain[i] = run(child_argv, false, shim, config);
        shimmed[i] = run(child_argv, true, shim, config);
    }
    qsort(plain, RUNS, sizeof(double), cmp);
    qsort(shimmed, RUNS, sizeof(double), cmp);
    printf("shim_tls: %u request/response exchanges per run, median of %d runs\n", n, RUNS);
    printf("  without the shim   %8.0f ns of CPU per exchange\n", plain[RUNS / 2]);
    printf("  with the shim      %8.0f ns of CPU per exchange\n", shimmed[RUNS / 2]);
    printf("  the hooks' cost    %8.0f ns of CPU per request (turn and report included)\n",
           shimmed[RUNS / 2] - plain[RUNS / 2]);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
