/*
 * worker.c - one worker process of a simulated host: it asks bucket NAME of table PATH for
 * one unit RATE times a second, on an absolute schedule, for MS milliseconds.
 * Without PORT it writes the instant of every admission (rl_decision.at_ns, CLOCK_MONOTONIC
 * ns) to LOG, one a line, at the end. With PORT, each admission is a real HTTP/1.1 GET to
 * 127.0.0.1:PORT (the mock vendor) on one kept-alive connection, and LOG gets, as it goes,
 * "DECIDED_NS ANSWERED_NS STATUS" per request (a SIGKILL loses no line of an answered one).
 * Usage: global_worker PATH NAME RATE MS LOG [PORT]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"

/* A connection to the vendor, 2 s timeouts; -1 on failure. */
static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {2, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One GET on *fd (dialled if -1); the status, or -1 (the connection is closed). */
static int get(int *fd, int port)
{
    static const char req[] = "GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[4096];
    size_t n = 0;
    if (*fd < 0 && (*fd = dial(port)) < 0)
        return -1;
    if (write(*fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
        goto fail;
    for (;;) { /* headers, then Content-Length bytes of body */
        ssize_t got = read(*fd, buf + n, sizeof(buf) - 1 - n);
        if (got <= 0)
            goto fail;
        n += (size_t)got;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "Content-Length:");
        int status = 0;
        if (!end || !cl || sscanf(buf, "HTTP/1.1 %d", &status) != 1)
            continue;
        if (n >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
            return status;
    }
fail:
    close(*fd);
    *fd = -1;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: global_worker PATH NAME RATE MS LOG [PORT]\n");
        return 3;
    }
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = argv[1];
    o.flags = 0;
    rl_table *t;
    rl_bucket *b;
    if (rl_table_open(&o, &t) || rl_bucket_lookup(t, argv[2], &b)) {
        fprintf(stderr, "global_worker: %s %s: %s\n", argv[1], argv[2], rl_errdetail());
        return 4;
    }
    double rate = atof(argv[3]);
    int port = argc == 7 ? atoi(argv[6]) : 0, fd = -1;
    uint64_t step = (uint64_t)(1e9 / rate), ms = strtoull(argv[4], NULL, 10);
    uint64_t n = ms * 1000000 / step, *at = calloc(n + 1, sizeof(*at)), admitted = 0;
    FILE *log = fopen(argv[5], "w");
    if (!at || !log)
        return 4;
    setvbuf(log, NULL, _IOLBF, 0);
    uint64_t start = rl_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t due = start + i * step;
        struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
            ;
        struct rl_decision d;
        int rc = rl_try_acquire(b, 1, &d);
        if (rc == 0 && port) {
            int status = get(&fd, port);
            fprintf(log, "%llu %llu %d\n", (unsigned long long)d.at_ns,
                    (unsigned long long)rl_now_ns(), status);
        } else if (rc == 0) {
            at[admitted++] = d.at_ns;
        } else if (rc != RL_ELIMITED) {
            fprintf(stderr, "global_worker: %s\n", rl_strerror(rc));
            return 4;
        }
    }
    for (uint64_t i = 0; i < admitted; i++)
        fprintf(log, "%llu\n", (unsigned long long)at[i]);
    fclose(log);
    free(at);
    if (fd >= 0)
        close(fd);
    rl_table_close(t);
    return 0;
}
