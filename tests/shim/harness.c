/*
 * harness.c - see harness.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "ratelimit.h"

static const struct env *current_env;
static const char *log_text(const struct env *e);

static void dump_stderr(void)
{
    char line[1024];
    FILE *f = current_env ? fopen(current_env->errfile, "r") : NULL;
    if (!f)
        return;
    fprintf(stderr, "--- client stderr:\n");
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
    fprintf(stderr, "--- syslog:\n%s", log_text(current_env));
}

void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    dump_stderr();
    exit(1);
}

/* ------------------------------------------------------------------ sockets */

static void *accept_loop(void *arg)
{
    struct listener *l = arg;
    for (;;) {
        int c = accept(l->fd, NULL, NULL);
        if (c >= 0) {
            atomic_fetch_add(&l->accepted, 1);
            close(c);
        }
    }
    return NULL;
}

static void set_inet(struct sockaddr_in *sa, const char *ip, unsigned port)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
        fail("bad address %s", ip);
}

void listener_start(struct listener *l, const char *ip, unsigned port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;
    set_inet(&sa, ip, port);
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(l->fd, 4096) != 0 || getsockname(l->fd, (struct sockaddr *)&sa, &len) != 0)
        fail("listen on %s:%u: %s", ip, port, strerror(errno));
    l->port = ntohs(sa.sin_port);
    atomic_init(&l->accepted, 0);
    if (pthread_create(&l->thread, NULL, accept_loop, l) != 0)
        fail("pthread_create");
}

int udp_bind(unsigned port)
{
    struct sockaddr_in sa;
    set_inet(&sa, "127.0.0.1", port);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail("udp bind %u: %s", port, strerror(errno));
    return fd;
}

static void *unix_accept_loop(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c >= 0)
            close(c);
    }
    return NULL;
}

void unix_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    pthread_t t;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0)
        fail("unix listen %s: %s", path, strerror(errno));
    if (pthread_create(&t, NULL, unix_accept_loop, (void *)(intptr_t)fd) != 0)
        fail("pthread_create");
}

/* ------------------------------------------------------------------ files */

static void cleanup(void)
{
    static const char *const gates[] = {".gate.entered", ".gate.release"};
    char path[PATH_MAX + 16];
    if (!current_env)
        return;
    unlink(current_env->config);
    unlink(current_env->table);
    unlink(current_env->errfile);
    unlink(current_env->scratch);
    unlink(current_env->logsock);
    for (int i = 0; i < 2; i++) { /* the resolver's gate (client.c gate_open), if made */
        snprintf(path, sizeof(path), "%s%s", current_env->scratch, gates[i]);
        unlink(path);
    }
}

/* A datagram socket at e->logsock, as syslogd's /dev/log is. */
static void log_listen(struct env *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->logsock);
    unlink(e->logsock);
    e->logfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (e->logfd < 0 || bind(e->logfd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail("cannot bind %s: %s", e->logsock, strerror(errno));
}

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL: the test ran out of time\n";
    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(1);
    _exit(1);
}

void env_init(struct env *e, const char *name, char **argv)
{
    long pid = (long)getpid();
    memset(e, 0, sizeof(*e));
    e->shim = argv[2];
    e->client = argv[3];
    e->fake = argv[4];
    snprintf(e->config, sizeof(e->config), "/dev/shm/rl-shim-%s-%ld.conf", name, pid);
    snprintf(e->table, sizeof(e->table), "/dev/shm/rl-shim-%s-%ld", name, pid);
    snprintf(e->errfile, sizeof(e->errfile), "/dev/shm/rl-shim-%s-%ld.err", name, pid);
    snprintf(e->scratch, sizeof(e->scratch), "/dev/shm/rl-shim-%s-%ld.x", name, pid);
    snprintf(e->logsock, sizeof(e->logsock), "/dev/shm/rl-shim-%s-%ld.log", name, pid);
    current_env = e;
    atexit(cleanup);
    log_listen(e);
    signal(SIGALRM, on_alarm);
    alarm(150);
}

void write_config(const struct env *e, const char *fmt, ...)
{
    va_list ap;
    FILE *f = fopen(e->config, "w");
    if (!f)
        fail("cannot write %s: %s", e->config, strerror(errno));
    fprintf(f, "# written by the shim test\ntable %s\n", e->table);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* ------------------------------------------------------------------ the client */

static void exec_client(const struct env *e, bool fake, const char *extra, const char *const *argv)
{
    char preload[2 * PATH_MAX + 2];
    snprintf(preload, sizeof(preload), "%s%s%s", e->shim, fake ? ":" : "", fake ? e->fake : "");
    setenv("LD_PRELOAD", preload, 1);
    setenv("RATELIMIT_CONFIG", e->config, 1);
    setenv("SHIM_TEST_TABLE", e->table, 1);
    setenv("RATELIMIT_SYSLOG_SOCKET", e->logsock, 1);
    unsetenv("RATELIMIT_FAIL_CLOSED");
    if (extra)
        putenv((char *)extra);
    int fd = open(e->errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
        _exit(126);
    execv(e->client, (char *const *)argv);
    _exit(127);
}

void run_client(const struct env *e, bool fake, const char *extra, const char *const *argv)
{
    const char *args[32] = {e->client};
    int status, i;
    for (i = 0; argv[i] && i < 30; i++)
        args[i + 1] = argv[i];
    args[i + 1] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0)
        exec_client(e, fake, extra, args);
    for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited++) {
        if (waited > 9000) {
            kill(pid, SIGKILL);
            fail("client %s ran for more than 90 s", argv[0]);
        }
        usleep(10000);
    }
    if (WIFSIGNALED(status))
        fail("client %s died of signal %d", argv[0], WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        fail("client %s exited %d", argv[0], WEXITSTATUS(status));
}

/* Every datagram received so far, one per line. */
static const char *log_text(const struct env *e)
{
    static char text[16384];
    static size_t len;
    char msg[2048];
    ssize_t n;
    while ((n = recv(e->logfd, msg, sizeof(msg) - 1, 0)) >= 0)
        if (len + (size_t)n + 2 < sizeof(text)) {
            memcpy(text + len, msg, (size_t)n);
            len += (size_t)n;
            text[len++] = '\n';
            text[len] = '\0';
        }
    return text;
}

unsigned log_lines(const struct env *e)
{
    unsigned n = 0;
    for (const char *c = log_text(e); *c; c++)
        n += *c == '\n';
    return n;
}

bool log_has(const struct env *e, const char *needle)
{
    return strstr(log_text(e), needle) != NULL;
}

unsigned err_lines(const struct env *e)
{
    FILE *f = fopen(e->errfile, "r");
    unsigned n = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

bool err_has(const struct env *e, const char *needle)
{
    char buf[8192] = "";
    FILE *f = fopen(e->errfile, "r");
    if (f) {
        buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
        fclose(f);
    }
    return strstr(buf, needle) != NULL;
}

void expect_one_line(const struct env *e, const char *needle1, const char *needle2)
{
    if (err_lines(e) != 1)
        fail("expected one line on stderr, got %u", err_lines(e));
    if (!err_has(e, "ratelimit-preload: "))
        fail("stderr lacks 'ratelimit-preload: '");
    if (needle1 && !err_has(e, needle1))
        fail("stderr lacks '%s'", needle1);
    if (needle2 && !err_has(e, needle2))
        fail("stderr lacks '%s'", needle2);
}

/* ------------------------------------------------------------------ the table */

struct counts bucket_counts(const struct env *e, const char *bucket)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    rl_bucket *b;
    struct rl_bucket_info info;
    o.path = e->table;
    o.flags = RL_OPEN_READONLY;
    if (rl_table_open(&o, &t) != 0 || rl_bucket_lookup(t, bucket, &b) != 0 ||
        rl_bucket_info(b, &info) != 0)
        fail("bucket %s in %s: %s", bucket, e->table, rl_errdetail());
    rl_table_close(t);
    return (struct counts){info.counters.admitted, info.counters.rejected, info.counters.waited};
}

void expect_counts(const struct env *e, const char *bucket, uint64_t admitted, uint64_t rejected)
{
    struct counts c = bucket_counts(e, bucket);
    if (c.admitted != admitted || c.rejected != rejected)
        fail("bucket %s: admitted %llu rejected %llu, expected %llu and %llu", bucket,
             (unsigned long long)c.admitted, (unsigned long long)c.rejected,
             (unsigned long long)admitted, (unsigned long long)rejected);
}

const char *num(unsigned n)
{
    static char ring[16][16];
    static unsigned next;
    char *s = ring[next++ % 16];
    snprintf(s, 16, "%u", n);
    return s;
}
