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
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "ratelimit.h"

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

/* The table deleted under a running program: within about a second the shim opens the
 * path again (making the table from the config) and the connects draw on the new table's
 * budget, exactly: its bucket admits N, no more. */
static void case_replace(struct env *e)
{
    struct listener l;
    listener_start(&l, "127.0.0.1", 0);
    write_config(
        e, "bucket web 3/1h burst 3 margin 0\nroute 127.0.0.1:%u web wait 0s on-timeout fail\n",
        l.port);
    run_client(e, false, NULL, ARGV("replace", num(l.port), "3", e->table));
    struct counts c = bucket_counts(e, "web");
    if (c.admitted != 3 || c.rejected < 1)
        fail("the new table's bucket admitted %llu and refused %llu, expected 3 and at least 1",
             (unsigned long long)c.admitted, (unsigned long long)c.rejected);
    if (!err_has(e, "was deleted or replaced: routes now use the file the path names"))
        fail("the shim did not say it reopened the table");
    /* The listener accepts in its own thread: give it up to 10 s to take the last ones. */
    for (int i = 0; i < 1000 && atomic_load(&l.accepted) < 6; i++)
        usleep(10000);
    if (atomic_load(&l.accepted) != 6)
        fail("the server accepted %u connections, expected 6", atomic_load(&l.accepted));
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

/* A library loaded with RTLD_DEEPBIND (PHP's extensions) connects through the shim too; a
 * library's own connect() keeps winning inside it (client.c role_deepbind checks). */
static void case_deepbind(struct env *e)
{
    struct listener l;
    char helper[PATH_MAX], own[PATH_MAX];
    const char *slash = strrchr(e->fake, '/');
    int dir = slash ? (int)(slash - e->fake) : 1;
    snprintf(helper, sizeof(helper), "%.*s/libdl_helper.so", dir, slash ? e->fake : ".");
    snprintf(own, sizeof(own), "%.*s/libdl_own.so", dir, slash ? e->fake : ".");
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket deep 2/60s\nroute 127.0.0.1:%u deep wait 0s\n", l.port);
    run_client(e, false, NULL, ARGV("deepbind", helper, own, num(l.port), "4"));
    expect_counts(e, "deep", 2, 2);
    if (err_lines(e) != 0)
        fail("the shim wrote to stderr");
}

/*
 * A host that closed fd 2: the shim's lines (here: a route that does not resolve) go to
 * syslog, never to whatever file holds fd 2 now. First the host's own file is on fd 2; then
 * nothing is, so the table may be opened there. The table stays intact and the paced
 * connects (wait 30s) complete. With stderr left open, the line goes there.
 */
static void case_closed2(struct env *e)
{
    struct listener l;
    listener_start(&l, "127.0.0.1", 0);
    write_config(e,
                 "bucket paced 1/100ms burst 1\nroute 127.0.0.1:%u paced wait 30s\n"
                 "route nosuch.test:%u paced\n",
                 l.port, l.port + 1);
    run_client(e, true, NULL, ARGV("closed2", num(l.port), "3", e->scratch));
    run_client(e, true, NULL, ARGV("closed2", num(l.port), "3", "-"));
    expect_counts(e, "paced", 6, 0);
    if (err_lines(e) != 0)
        fail("the shim wrote to the stderr the client had closed");
    if (log_lines(e) != 2 || !log_has(e, "<12>") || !log_has(e, " ratelimit-shim[") ||
        !log_has(e, "cannot resolve nosuch.test"))
        fail("syslog did not get one 'cannot resolve' line per run");
    run_client(e, true, NULL, ARGV("closed2", num(l.port), "1", "keep"));
    expect_one_line(e, "route nosuch.test:", "cannot resolve nosuch.test");
    if (log_lines(e) != 2)
        fail("a line went to syslog though stderr was open");
}

/* connect() and sendto(MSG_FASTOPEN) with addresses the kernel cannot read: EFAULT, as
 * without the shim; nothing is taken for them. */
static void case_badaddr(struct env *e)
{
    struct listener l;
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket b 100/1s\nroute 127.0.0.1:%u b\n", l.port);
    run_client(e, false, NULL, ARGV("badaddr", num(l.port)));
    expect_counts(e, "b", 2, 0);
    if (err_lines(e) != 0 || log_lines(e) != 0)
        fail("the shim reported something");
}

/* A resolver that hangs holds up no connect (see client.c role_dnshang). */
static void case_dnshang(struct env *e)
{
    struct listener routed, other;
    listener_start(&routed, "127.0.0.2", 0);
    listener_start(&other, "127.0.0.1", 0);
    FILE *f = fopen(e->scratch, "w");
    if (!f || fputs("127.0.0.2\n", f) < 0 || fclose(f) != 0)
        fail("cannot write %s", e->scratch);
    write_config(e, "resolve-every 1s\nbucket dyn 1000/1s\nroute api.test:%u dyn\n", routed.port);
    run_client(e, true, NULL, ARGV("dnshang", num(routed.port), num(other.port), e->scratch));
    if (err_lines(e) != 0)
        fail("the shim wrote to stderr");
}

/* Make e->table a table, owned by uid with the given mode. */
static void make_table(const struct env *e, long uid, unsigned mode)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    o.path = e->table;
    o.flags = RL_OPEN_CREATE;
    if (rl_table_open(&o, &t) != 0)
        fail("create %s: %s", e->table, rl_errdetail());
    rl_table_close(t);
    if ((uid >= 0 && chown(e->table, (uid_t)uid, (gid_t)-1) != 0) || chmod(e->table, mode) != 0)
        fail("chown/chmod %s: %s", e->table, strerror(errno));
}

/* The bucket is not in the table: the shim did not apply its config there. */
static void expect_untouched(const struct env *e)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    rl_bucket *b;
    o.path = e->table;
    o.flags = RL_OPEN_READONLY;
    if (rl_table_open(&o, &t) != 0)
        fail("open %s: %s", e->table, rl_errdetail());
    if (rl_bucket_lookup(t, "b", &b) == 0)
        fail("the shim defined its bucket in a table it should not use");
    rl_table_close(t);
}

/*
 * A table someone else put at the path (issue 13 item 17): writable by everyone, or owned
 * by another user. The shim refuses it with one line naming the path, the owner and what
 * to do, then fails open. As root, also: a table this process cannot open.
 */
static void case_squat(struct env *e)
{
    struct listener l;
    char uid_line[64];
    listener_start(&l, "127.0.0.1", 0);
    write_config(e, "bucket b 1/60s\nroute 127.0.0.1:%u b wait 0s\n", l.port);
    const char *const *pass = ARGV("script", act("tcp4", num(l.port), "ok", 3));
    make_table(e, -1, 0666);
    run_client(e, false, NULL, pass);
    snprintf(uid_line, sizeof(uid_line), "owned by uid %ld (mode 0666)", (long)geteuid());
    expect_one_line(e, e->table, uid_line);
    expect_one_line(e, "world-writable", "RATELIMIT_TABLE");
    if (chmod(e->table, 0600) != 0) /* else the library refuses to read it too */
        fail("chmod %s: %s", e->table, strerror(errno));
    expect_untouched(e);
    if (geteuid() != 0)
        return;
    unlink(e->table);
    make_table(e, 65534, 0644);
    run_client(e, false, NULL, pass);
    expect_one_line(e, "it is owned by uid 65534 (mode 0644)", "(fail-open)");
    expect_one_line(e, e->table, "remove it if nobody should have made it");
    expect_untouched(e);
    unlink(e->table);
    make_table(e, 0, 0600);
    run_client(e, false, "SHIM_TEST_SETUID=65534", pass);
    expect_one_line(e, "it is owned by uid 0 (mode 0600): remove it", "(fail-open)");
    expect_untouched(e);
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
    {"deepbind", case_deepbind},
    {"closed2", case_closed2},
    {"badaddr", case_badaddr},
    {"dnshang", case_dnshang},
    {"squat", case_squat},
    {"replace", case_replace},
};

int main(int argc, char **argv)
{
    static struct env e; /* static: harness.c's atexit cleanup reads it after main returns */
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
