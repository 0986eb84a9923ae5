/*
 * peer_redis.c - the same GCRA decision made by Redis, the usual way to share a budget:
 * a Lua script per decision (EVALSHA through hiredis) that reads the server's clock, the
 * TAT, and updates it with the counters. The bench starts Debian's redis-server itself, on
 * a Unix socket in a temporary directory, and stops it by its pid at the end, on an error
 * exit and on SIGINT/SIGTERM/SIGHUP. Without hiredis at build time (HAVE_HIREDIS unset) the peer
 * reports why it cannot run.
 */
#include "bench.h"

#ifdef HAVE_HIREDIS

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define START_TRIES 500 /* 10 ms apart */

/* Times in microseconds: Lua numbers are doubles, exact to 2^53. */
static const char gcra_script[] = "local t = redis.call('TIME')\n"
                                  "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                                  "local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or 0)\n"
                                  "local base = math.max(tat, now)\n"
                                  "if base - now > tonumber(ARGV[1]) then\n"
                                  "  redis.call('HINCRBY', KEYS[1], 'rejected', 1)\n"
                                  "  return 0\n"
                                  "end\n"
                                  "redis.call('HSET', KEYS[1], 'tat', base + tonumber(ARGV[2]))\n"
                                  "redis.call('HINCRBY', KEYS[1], 'admitted', 1)\n"
                                  "redis.call('HINCRBY', KEYS[1], 'admitted_units', 1)\n"
                                  "return 1\n";

struct redis_peer {
    redisContext *c;
    char sha[48], allowance[24], interval[24];
};

/* The running server, for the exit and signal handlers (only the starting process acts). */
static pid_t server_pid, owner_pid;
static char server_dir[64], server_sock[96];

/* At exit, on a signal, or when done. Async-signal-safe. */
static void server_stop(void)
{
    if (server_pid <= 0 || getpid() != owner_pid)
        return;
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    server_pid = 0;
    unlink(server_sock);
    rmdir(server_dir);
}

static void server_exec(void)
{
    int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", server_sock,
           "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--daemonize", "no",
           "--dir", server_dir, (char *)NULL);
    _exit(127);
}

static bool server_start(const char **why)
{
    snprintf(server_dir, sizeof(server_dir), "/tmp/rl-bench-redis-XXXXXX");
    if (!mkdtemp(server_dir)) {
        *why = "cannot make a temporary directory";
        return false;
    }
    snprintf(server_sock, sizeof(server_sock), "%s/redis.sock", server_dir);
    on_exit_or_signal(server_stop);
    fflush(NULL);
    owner_pid = getpid();
    server_pid = fork();
    if (server_pid == 0)
        server_exec();
    if (server_pid > 0)
        return true;
    *why = "cannot fork";
    rmdir(server_dir);
    return false;
}

static redisContext *server_connect(const char **why)
{
    for (int i = 0; i < START_TRIES; i++) {
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
            server_pid = 0;
            rmdir(server_dir);
            *why = "redis-server did not start (is Debian's redis-server installed?)";
            return NULL;
        }
        redisContext *c = redisConnectUnix(server_sock);
        if (c && !c->err)
            return c;
        redisFree(c);
        usleep(10000);
    }
    *why = "redis-server did not accept connections within 5 s";
    server_stop();
    return NULL;
}

static bool script_load(struct redis_peer *r)
{
    redisReply *reply = redisCommand(r->c, "SCRIPT LOAD %s", gcra_script);
    bool ok = reply && reply->type == REDIS_REPLY_STRING && reply->len < sizeof(r->sha);
    if (ok)
        memcpy(r->sha, reply->str, reply->len + 1);
    freeReplyObject(reply);
    return ok;
}

struct redis_peer *redis_peer_start(uint64_t interval_us, uint64_t burst, const char **why)
{
    struct redis_peer *r = calloc(1, sizeof(*r));
    if (!r || !server_start(why) || !(r->c = server_connect(why))) {
        free(r);
        return NULL;
    }
    if (!script_load(r)) {
        *why = "SCRIPT LOAD failed";
        redis_peer_stop(r);
        return NULL;
    }
    snprintf(r->allowance, sizeof(r->allowance), "%llu",
             (unsigned long long)((burst - 1) * interval_us));
    snprintf(r->interval, sizeof(r->interval), "%llu", (unsigned long long)interval_us);
    return r;
}

int redis_peer_decide(struct redis_peer *r)
{
    redisReply *reply =
        redisCommand(r->c, "EVALSHA %s 1 bench:gcra %s %s", r->sha, r->allowance, r->interval);
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        die("redis", r->c->err ? r->c->errstr : "EVALSHA did not return an integer");
    int rc = reply->integer ? 0 : RL_ELIMITED;
    freeReplyObject(reply);
    return rc;
}

void redis_peer_stop(struct redis_peer *r)
{
    if (!r)
        return;
    redisFree(r->c);
    free(r);
    server_stop();
}

#else /* !HAVE_HIREDIS */

struct redis_peer *redis_peer_start(uint64_t interval_us, uint64_t burst, const char **why)
{
    *why = "built without hiredis (tools/bench installs libhiredis-dev and rebuilds)";
    return NULL;
}

int redis_peer_decide(struct redis_peer *r)
{
    return RL_EINVAL;
}

void redis_peer_stop(struct redis_peer *r)
{
}

#endif
