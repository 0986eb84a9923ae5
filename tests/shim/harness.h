/*
 * harness.h - the shim tests' side that is not preloaded (driver.c): loopback listeners,
 * config files, running the client under LD_PRELOAD and reading the table afterwards.
 */
#ifndef SHIM_HARNESS_H
#define SHIM_HARNESS_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Print "FAIL: ..." (and the client's stderr, if any) and exit 1. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A TCP listener on a loopback address that accepts and closes connections, counting them. */
struct listener {
    int fd;
    unsigned port;
    atomic_uint accepted;
    pthread_t thread;
};
/* Listen on ip (e.g. "127.0.0.1") at port (0: any free port). */
void listener_start(struct listener *l, const char *ip, unsigned port);

/* A bound UDP socket on 127.0.0.1 at port (so datagrams sent there are received). */
int udp_bind(unsigned port);
/* A listening Unix stream socket at path that accepts connections in a thread. */
void unix_listen(const char *path);

/* The test's files: a config file, a table under /dev/shm, the client's stderr. */
struct env {
    const char *shim, *client, *fake;
    char config[PATH_MAX];
    char table[PATH_MAX];
    char errfile[PATH_MAX];
    char scratch[PATH_MAX]; /* a free path for the case's own use (Unix socket, hosts file) */
    char logsock[108];      /* the syslog socket the client is given (RATELIMIT_SYSLOG_SOCKET) */
    int logfd;
};
void env_init(struct env *e, const char *name, char **argv);
/* Write the config: "table <e->table>\n" then the printf-formatted text. */
void write_config(const struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Run the client (argv, NULL-terminated, argv[0] the role) under LD_PRELOAD=shim (and the
 * fake resolver if `fake`), with RATELIMIT_CONFIG=config, RATELIMIT_SYSLOG_SOCKET=logsock and
 * `extra` ("NAME=VALUE" or NULL).
 * Its stdout is the test's, its stderr goes to e->errfile. Fails the test if it runs longer
 * than 90 s or does not exit 0.
 */
void run_client(const struct env *e, bool fake, const char *extra, const char *const *argv);

/* The syslog lines received so far (each datagram one line), and whether one has `needle`. */
unsigned log_lines(const struct env *e);
bool log_has(const struct env *e, const char *needle);

/* The client's stderr: its line count, and whether it contains `needle`. */
unsigned err_lines(const struct env *e);
bool err_has(const struct env *e, const char *needle);
/* stderr is exactly one line, "ratelimit-preload: ...", containing both needles (NULL: any). */
void expect_one_line(const struct env *e, const char *needle1, const char *needle2);

/* Counters of a bucket in the test's table. */
struct counts {
    uint64_t admitted, rejected, waited;
};
struct counts bucket_counts(const struct env *e, const char *bucket);
void expect_counts(const struct env *e, const char *bucket, uint64_t admitted, uint64_t rejected);

/* "%u" of a number, in a static ring of buffers (for building argv). */
const char *num(unsigned n);

#endif /* SHIM_HARNESS_H */
