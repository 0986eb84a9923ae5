/*
 * prefork.c - a preforked worker pool that knows nothing of ratelimit, run under
 * LD_PRELOAD=libratelimit-preload.so by vendor.sh: `prefork PORT GO STOP WORKERS`. Once the
 * file GO exists the master sends one request (so the shim is loaded before the fork), then
 * forks WORKERS children that send "GET /" to 127.0.0.1:PORT, one connection per request,
 * until the file STOP exists. Prints "prefork: ok N throttled N failed N late N"; late counts
 * requests that failed after STOP appeared (the server stops then).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct tally {
    unsigned ok, throttled, failed, late;
};

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Read the whole response; its HTTP status, or -1. */
static int read_status(int fd)
{
    char buf[4096];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof(buf) - 1 && (got = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)got;
    buf[n] = '\0';
    int status;
    return sscanf(buf, "HTTP/%*s %d", &status) == 1 ? status : -1;
}

/* One request on its own connection: the status, or -errno of a failed connect. */
static int request(unsigned port)
{
    static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    int status = write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1 ? read_status(fd) : -1;
    close(fd);
    return status;
}

static void count(struct tally *t, int status, const char *stop)
{
    if (status == 200)
        t->ok++;
    else if (status == 429)
        t->throttled++;
    else if (exists(stop))
        t->late++;
    else
        t->failed++;
}

static void worker(int out, unsigned port, const char *stop)
{
    struct tally t = {0};
    while (!exists(stop))
        count(&t, request(port), stop);
    _exit(write(out, &t, sizeof(t)) == sizeof(t) ? 0 : 1);
}

int main(int argc, char **argv)
{
    int fds[2];
    struct tally sum = {0}, t;
    if (argc != 5 || pipe(fds) != 0)
        return fprintf(stderr, "usage: prefork PORT GO STOP WORKERS\n"), 2;
    unsigned port = (unsigned)atoi(argv[1]), workers = (unsigned)atoi(argv[4]);
    const char *stop = argv[3];
    while (!exists(argv[2]))
        usleep(5000);
    count(&sum, request(port), stop);
    for (unsigned i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid == 0)
            worker(fds[1], port, stop);
        if (pid < 0)
            return perror("fork"), 1;
    }
    close(fds[1]);
    while (read(fds[0], &t, sizeof(t)) == sizeof(t)) {
        sum.ok += t.ok, sum.throttled += t.throttled;
        sum.failed += t.failed, sum.late += t.late;
    }
    int status, bad = 0;
    while (wait(&status) > 0)
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    printf("prefork: ok %u throttled %u failed %u late %u\n", sum.ok, sum.throttled, sum.failed,
           sum.late);
    return bad || sum.failed ? 1 : 0;
}
