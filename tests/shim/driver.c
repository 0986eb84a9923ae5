/*
 * driver.c - the shim tests: `driver CASE SHIM CLIENT FAKE_RESOLVER`. Each case listens on
 * loopback, writes a config (its table under /dev/shm, named with the pid), runs the client
 * (client.c) under LD_PRELOAD, then checks the client's verdict, its stderr (the shim's
 * lines) and the buckets' counters in the table.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static char action[16][PATH_MAX + 64];
static unsigned nactions;

/* "KIND:TARGET:EXPECT[:xN]" for the script role, kept until the next case. */
static const char *act(const char *kind, const char *target, const char *expect, unsigned n)
{
    char *a = action[nactions++ % 16];
    snprintf(a, sizeof(action[0]), "%s:%s:%s:x%u", kind, target, expect, n);
    return a;
}

static void write_text(const struct env *e, const char *text)
{
    FILE *f = fopen(e->config, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fail("cannot write %s", e->config);
}

/* Unix and UDP sockets, and TCP to a destination without a route, pass untouched; the
 * route's bucket sees only the TCP connects to its destination, IPv4-mapped ones too. */
static void case_passthrough(struct env *e)
{
    struct listener routed, other;
    listener_start(&routed, "127.0.0.1", 0);
    listener_start(&other, "127.0.0.1", 0);
    udp_bind(routed.port);
    unix_listen(e->scratch);
    write_config(e, "bucket tight 1/60s\nroute 127.0.0.1:%u tight wait 0s\n", routed.port);
    const char *r = num(routed.port), *o = num(other.port);
    run_client(e, false, NULL,
               ARGV("script", act("unix", e->scratch, "ok", 20), act("udp", r, "ok", 20),
                    act("tcp4", o, "ok", 200), act("tcp4", r, "ok", 1),
                    act("tcp4", r, "ETIMEDOUT", 1), act("tcp6m", r, "ETIMEDOUT", 1)));
    expect_counts(e, "tight", 1, 2);
    if (err_lines(e) != 0)
        fail("the shim wrote to stderr");
}

/* Blocking connects wait for their turn: never more than the bucket allows. */
static void case_limit(struct env *e)
{
    struct listener l;
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket five 5/1s\nroute 127.0.0.1:%u five\n", l.port);
    run_client(e, false, NULL, ARGV("limit", num(l.port), "12", "5", "1000"));
    expect_counts(e, "five", 12, 0);
    if (bucket_counts(e, "five").waited < 2)
        fail("the connects did not wait for their turns");
}

/* No turn within the route's wait: on-timeout fail gives ETIMEDOUT, pass lets it through. */
static void case_timeout(struct env *e)
{
    struct listener f, p;
    listener_start(&f, "127.0.0.1", 0);
    listener_start(&p, "127.0.0.1", 0);
    write_config(e,
                 "bucket tf 1/10s\nbucket tp 1/10s\n"
                 "route 127.0.0.1:%u tf wait 100ms on-timeout fail\n"
                 "route 127.0.0.1:%u tp wait 100ms on-timeout pass\n",
                 f.port, p.port);
    run_client(e, false, NULL,
               ARGV("script", act("tcp4", num(f.port), "ok", 1),
                    act("tcp4", num(f.port), "ETIMEDOUT", 2), act("tcp4", num(p.port), "ok", 3)));
    expect_counts(e, "tf", 1, 2);
    expect_counts(e, "tp", 1, 2);
}

/* Non-blocking sockets wait for their turn too; asking connect() again costs nothing. */
static void case_nonblock(struct env *e)
{
    struct listener l;
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket one 1/500ms\nroute 127.0.0.1:%u one\n", l.port);
    run_client(e, false, NULL, ARGV("nonblock", num(l.port), "500"));
    expect_counts(e, "one", 2, 0);
}

/* Signals during the wait run their handler; the connect still waits and completes. */
static void case_eintr(struct env *e)
{
    struct listener l;
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket two 2/400ms\nroute 127.0.0.1:%u two\n", l.port);
    run_client(e, false, NULL, ARGV("eintr", num(l.port), "6", "2", "400"));
    expect_counts(e, "two", 6, 0);
}

/* sendto(MSG_FASTOPEN) opens a connection: it takes a unit like connect. */
static void case_fastopen(struct env *e)
{
    struct listener l;
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket tfo 1/10s\nroute 127.0.0.1:%u tfo wait 0s\n", l.port);
    run_client(
        e, false, NULL,
        ARGV("script", act("tfo", num(l.port), "ok", 1), act("tfo", num(l.port), "ETIMEDOUT", 1)));
    expect_counts(e, "tfo", 1, 1);
}

/* A broken or missing config: one line on stderr naming the file, then everything passes. */
static void case_failopen(struct env *e)
{
    struct listener l;
    char missing[PATH_MAX + 32], line[PATH_MAX + 8];
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket broken 5/1x\nroute 127.0.0.1:%u foundry\n", l.port);
    run_client(e, false, NULL, ARGV("script", act("tcp4", num(l.port), "ok", 20)));
    snprintf(line, sizeof(line), "%s:3:", e->config);
    expect_one_line(e, line, "(and 1 more problem); connections pass unlimited (fail-open)");
    snprintf(missing, sizeof(missing), "RATELIMIT_CONFIG=%s.missing", e->config);
    run_client(e, false, missing, ARGV("script", act("tcp4", num(l.port), "ok", 5)));
    expect_one_line(e, missing + strlen("RATELIMIT_CONFIG="), "(fail-open)");
}

/* Fail-closed: from the config when the table is unusable (routed connects fail with
 * EACCES), from RATELIMIT_FAIL_CLOSED=1 when the config is (every TCP connect fails);
 * RATELIMIT_FAIL_CLOSED=0 overrides the config. Unix and UDP sockets always pass. */
static void case_failclosed(struct env *e)
{
    struct listener routed, other;
    char text[512];
    listener_start(&routed, "127.0.0.1", 0);
    listener_start(&other, "127.0.0.1", 0);
    unix_listen(e->scratch);
    const char *r = num(routed.port), *o = num(other.port);
    snprintf(text, sizeof(text),
             "table /dev/shm/rl-shim-no-such-dir/t\nshim fail-closed\nbucket b 5/1s\n"
             "route 127.0.0.1:%s b\n",
             r);
    write_text(e, text);
    run_client(e, false, NULL,
               ARGV("script", act("tcp4", r, "EACCES", 3), act("tcp4", o, "ok", 3),
                    act("unix", e->scratch, "ok", 1), act("udp", r, "ok", 1)));
    expect_one_line(e, "/dev/shm/rl-shim-no-such-dir/t", "fail with EACCES (fail-closed)");
    run_client(e, false, "RATELIMIT_FAIL_CLOSED=0", ARGV("script", act("tcp4", r, "ok", 3)));
    expect_one_line(e, "/dev/shm/rl-shim-no-such-dir/t", "(fail-open)");
    write_text(e, "bucket b 5/1s junk\n");
    run_client(e, false, "RATELIMIT_FAIL_CLOSED=1",
               ARGV("script", act("tcp4", r, "EACCES", 2), act("tcp4", o, "EACCES", 2),
                    act("unix", e->scratch, "ok", 1), act("udp", r, "ok", 1)));
    expect_one_line(e, ":1:", "every TCP connection fails with EACCES (fail-closed)");
}

/* Host names are re-resolved while threads connect (see client.c role_refresh). */
static void case_refresh(struct env *e)
{
    struct listener two, three, lh;
    char extra[PATH_MAX + 32];
    listener_start(&two, "127.0.0.2", 0);
    listener_start(&three, "127.0.0.3", two.port);
    listener_start(&lh, "127.0.0.1", 0);
    FILE *f = fopen(e->scratch, "w");
    if (!f || fputs("127.0.0.2\n", f) < 0 || fclose(f) != 0)
        fail("cannot write %s", e->scratch);
    write_config(e,
                 "resolve-every 1s\nbucket dyn 100000/1s burst 100000\n"
                 "bucket lh 100000/1s burst 100000\nroute api.test:%u dyn\n"
                 "route localhost:%u lh\n",
                 two.port, lh.port);
    snprintf(extra, sizeof(extra), "FAKE_RESOLVER_FILE=%s", e->scratch);
    run_client(e, true, extra, ARGV("refresh", num(two.port), num(lh.port), e->scratch));
    if (err_lines(e) != 0)
        fail("the shim wrote to stderr");
}

/* fork() without exec while threads connect and host names are refreshed. */
static void case_fork(struct env *e)
{
    struct listener lh;
    listener_start(&lh, "127.0.0.1", 0);
    write_config(e, "resolve-every 1s\nbucket lh 100000/1s burst 100000\nroute localhost:%u lh\n",
                 lh.port);
    run_client(e, false, NULL, ARGV("fork", num(lh.port)));
    if (err_lines(e) != 0)
        fail("the shim wrote to stderr");
}

/* A library loaded with dlopen() connects through the shim like the program itself. */
static void case_dlopen(struct env *e)
{
    struct listener l;
    char helper[PATH_MAX];
    const char *slash = strrchr(e->fake, '/');
    snprintf(helper, sizeof(helper), "%.*s/libdl_helper.so", slash ? (int)(slash - e->fake) : 1,
             slash ? e->fake : ".");
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket dl 2/60s\nroute 127.0.0.1:%u dl wait 0s\n", l.port);
    run_client(e, false, NULL, ARGV("dlopen", helper, num(l.port), "4"));
    expect_counts(e, "dl", 2, 2);
    if (err_lines(e) != 0)
        fail("the shim wrote to stderr");
}

static const struct {
    const char *name;
    void (*run)(struct env *e);
} cases[] = {
    {"passthrough", case_passthrough},
    {"limit", case_limit},
    {"timeout", case_timeout},
    {"nonblock", case_nonblock},
    {"eintr", case_eintr},
    {"fastopen", case_fastopen},
    {"failopen", case_failopen},
    {"failclosed", case_failclosed},
    {"refresh", case_refresh},
    {"fork", case_fork},
    {"dlopen", case_dlopen},
};

int main(int argc, char **argv)
{
    struct env e;
    if (argc != 5) {
        fprintf(stderr, "usage: driver CASE SHIM CLIENT FAKE_RESOLVER\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (strcmp(argv[1], cases[i].name) != 0)
            continue;
        env_init(&e, argv[1], argv);
        cases[i].run(&e);
        printf("ok %s\n", argv[1]);
        return 0;
    }
    fprintf(stderr, "driver: unknown case %s\n", argv[1]);
    return 2;
}
