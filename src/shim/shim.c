/*
 * shim.c - the preload shim's decision: load the config and the table once per process (on
 * the first TCP/IP connect, not in a constructor), then take one unit from the route's
 * bucket before each connect to a routed destination, waiting for the turn.
 *
 *   connect to ...                          the shim
 *   not AF_INET/AF_INET6, not SOCK_STREAM   the real call, untouched
 *   a socket already connecting/connected   the real call, nothing taken
 *   no route                                the real call, nothing taken
 *   a route, turn within its wait           the real call, after waiting for the turn
 *   a route, no turn within its wait        on-timeout fail: ETIMEDOUT; pass: the real call
 *   a route, table or bucket unusable       fail-open: the real call; fail-closed: EACCES
 *   a route with `count requests`           the real call, nothing taken: each request
 *                                           written on the connection takes one (http.c)
 *   anything, config unusable               fail-open: the real call; fail-closed: EACCES
 *
 * Fail-closed comes from RATELIMIT_FAIL_CLOSED=1 (0 forces fail-open), else from the
 * config's `shim fail-closed`; a config that cannot be loaded says nothing, so without the
 * variable that case is fail-open.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../atomics.h"
#include "../internal.h"
#include "http.h"
#include "shim.h"

/* Written only by init(); pthread_once orders those writes before every reader. */
static struct {
    rl_config *config; /* NULL: the config could not be loaded */
    rl_table *table;   /* NULL: no table (unusable, or no routes to need one) */
    bool fail_closed;
} shim;

static pthread_once_t shim_once = PTHREAD_ONCE_INIT;

/*
 * Set while this thread runs the shim's own code, and for good in the resolver thread.
 * Connects made by what the shim calls (NSS modules, getaddrinfo's DNS queries) and by a
 * signal handler that interrupts the wait pass straight through. initial-exec: a preloaded
 * object lives in the static TLS block, so reading it never allocates.
 */
static _Thread_local bool inside __attribute__((tls_model("initial-exec")));

/* Non-zero once a bucket error has been reported (one line per process). */
static rl_atomic64 warned;

/* The largest config the shim reads (the library's own limit is larger). */
#define CONFIG_MAX_BYTES (4U << 20)

void shim_thread_is_ours(void)
{
    inside = true;
}

/* ------------------------------------------------------------------ init */

/* RATELIMIT_FAIL_CLOSED=1 or 0 overrides the config's `shim` line. */
static bool fail_closed(const rl_config *config)
{
    const char *env = secure_getenv("RATELIMIT_FAIL_CLOSED");
    if (env && (strcmp(env, "1") == 0 || strcmp(env, "0") == 0))
        return env[0] == '1';
    return config && rl_config_shim(config)->fail_closed;
}

/* What happens to connections now: for every connect (all) or those on routes. */
static const char *fate(bool all)
{
    if (shim.fail_closed)
        return all ? "every TCP connection fails with EACCES (fail-closed)"
                   : "connections on its routes fail with EACCES (fail-closed)";
    return all ? "connections pass unlimited (fail-open)"
               : "connections on its routes pass unlimited (fail-open)";
}

/* One line for an unusable config: its first problem, and how many more there are. */
static void report_config(int rc, char *errors)
{
    if (rc != RL_EPARSE || !errors || !*errors) {
        shim_say("%s; %s", rc == RL_ESYS && errors ? errors : rl_errdetail(), fate(true));
        return;
    }
    size_t more = 0;
    char *nl = strchr(errors, '\n');
    for (const char *c = nl; c && *c; c++)
        more += *c == '\n' && c[1] != '\0';
    if (nl)
        *nl = '\0';
    if (more)
        shim_say("%s (and %zu more problem%s); %s", errors, more, more > 1 ? "s" : "", fate(true));
    else
        shim_say("%s; %s", errors, fate(true));
}

/* All of fd (at most CONFIG_MAX_BYTES) in *text, malloc'd; 0 or an errno (EFBIG: too big). */
static int read_all(int fd, char **text, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = NULL;
    for (ssize_t got = 1; got != 0;) {
        if (n == cap || !buf) {
            char *bigger = n < CONFIG_MAX_BYTES ? realloc(buf, cap = buf ? cap * 2 : cap) : NULL;
            if (!bigger) {
                free(buf);
                return n < CONFIG_MAX_BYTES ? ENOMEM : EFBIG;
            }
            buf = bigger;
        }
        if ((got = read(fd, buf + n, cap - n)) < 0 && errno != EINTR) {
            int err = errno;
            free(buf);
            return err;
        }
        n += got > 0 ? (size_t)got : 0;
    }
    *text = buf;
    *len = n;
    return 0;
}

/* rl_config_load, but the file is read on an fd above 2 (see say.c). *errors: the parse
 * errors, or for RL_ESYS the one line saying why the file cannot be read. */
static int load_file(const char *path, rl_config **out, char **errors)
{
    char *text = NULL;
    size_t len = 0;
    *errors = NULL;
    int fd = shim_fd_high(open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
    int err = fd < 0 ? errno : read_all(fd, &text, &len);
    if (fd >= 0)
        close(fd);
    if (err) {
        if (asprintf(errors, "cannot %s config %s: %s", fd < 0 ? "open" : "read", path,
                     err == EFBIG ? "larger than 4 MiB" : strerror(err)) < 0)
            *errors = NULL;
        return RL_ESYS;
    }
    int rc = rl_config_parse(text, len, path, out, errors);
    free(text);
    return rc;
}

static void load_config(const char *path)
{
    char *errors = NULL;
    int rc = load_file(path, &shim.config, &errors);
    shim.fail_closed = fail_closed(rc == 0 ? shim.config : NULL);
    if (rc != 0) {
        shim.config = NULL;
        report_config(rc, errors);
    }
    free(errors);
}

/* The table the config names, as rl_table_open will find it. */
static const char *table_path(void)
{
    const char *path = rl_config_table(shim.config)->path, *env;
    if (path)
        return path;
    env = getenv("RATELIMIT_TABLE"); /* as rl_table_open reads it */
    return env && *env ? env : RL_TABLE_DEFAULT_PATH;
}

/* What to do about a table that is not ours. */
#define TABLE_ADVICE                                                                               \
    "remove it if nobody should have made it, or name a table in a directory only trusted "        \
    "users can write (config `table PATH`, or RATELIMIT_TABLE)"

/* For a table that exists but cannot be opened: "; it is owned by uid N (mode 0NNN): " and
 * the advice. "" if there is no file to see (a missing directory, say). rl_table_open
 * refuses a table owned by neither root nor our euid, or writable by everyone: anyone can
 * create the default path in /dev/shm first, and this line says who did and what to do. */
static const char *owner_hint(const char *path, char *buf, size_t len)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return "";
    snprintf(buf, len, "; it is owned by uid %ld (mode 0%03o): %s", (long)st.st_uid,
             (unsigned)(st.st_mode & 07777), TABLE_ADVICE);
    return buf;
}

/* Open (or create) the config's table and bring its buckets in line with the config. */
static void open_table(const char *path)
{
    char hint[320];
    if (rl_config_open_table(shim.config, RL_OPEN_CREATE, &shim.table) != 0) {
        shim.table = NULL;
        shim_say("%s: table %s: %s%s; %s", path, table_path(), rl_errdetail(),
                 owner_hint(table_path(), hint, sizeof(hint)), fate(false));
        return;
    }
    if (rl_config_apply(shim.config, shim.table, NULL, NULL) != 0)
        shim_say("%s: cannot apply it to table %s: %s; routes use the buckets the table has", path,
                 rl_table_path(shim.table), rl_errdetail());
    rl__table_note_shim(shim.table); /* ratelimitctl shows that shimmed processes attach */
}

/* RATELIMIT_DEBUG (any value): one line saying what this process got. */
static void say_debug(const char *path)
{
    if (!secure_getenv("RATELIMIT_DEBUG"))
        return;
    if (!shim.config) {
        shim_say("debug: pid %ld: no usable config (%s)", (long)getpid(), path);
        return;
    }
    shim_say("debug: pid %ld: config %s, table %s, %zu route%s", (long)getpid(), path,
             shim.table ? rl_table_path(shim.table) : "(none)", rl_config_routes(shim.config, NULL),
             rl_config_routes(shim.config, NULL) == 1 ? "" : "s");
}

rl_table *shim_table_reopen(const char *old_path)
{
    rl_table *t;
    if (rl_config_open_table(shim.config, RL_OPEN_CREATE, &t) != 0) {
        shim_say("table %s was deleted or replaced, and cannot be opened again: %s; routes go "
                 "on with the old table (a budget of its own)",
                 old_path, rl_errdetail());
        return NULL;
    }
    if (rl_config_apply(shim.config, t, NULL, NULL) != 0)
        shim_say("cannot apply the config to table %s: %s; routes use the buckets the table has",
                 rl_table_path(t), rl_errdetail());
    shim_say("table %s was deleted or replaced: routes now use the file the path names", old_path);
    return t;
}

static void init(void)
{
    const char *path = rl_config_default_path(NULL);
    rl_guard_install(); /* a table truncated under the program: errors, not a SIGBUS */
    load_config(path);
    if (!shim.config) {
        say_debug(path);
        return;
    }
    if (rl_config_routes(shim.config, NULL) > 0)
        open_table(path);
    say_debug(path);
    shim_routes_init(shim.config, path, shim.table);
}

/* ------------------------------------------------------------------ decisions */

/* True for a TCP socket that is not yet connecting: a connect() on it opens a connection. A
 * non-blocking program calling connect() again to learn the outcome opens none. */
static bool opens_connection(int fd)
{
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
        return false;
    struct tcp_info info;
    len = sizeof(info);
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_state == TCP_CLOSE;
}

/* A route whose bucket cannot be used: the table is missing, or the bucket failed. */
static int unusable(void)
{
    return shim.fail_closed ? EACCES : 0;
}

static void warn_once(const struct shim_match *m, int rc)
{
    /* Relaxed: only the count matters (one line per process), nothing is published. */
    if (rl__fetch_add_relaxed(&warned, 1) == 0)
        shim_say("bucket '%s' (route %s:%u): %s: %s; %s", m->route->bucket, m->route->dest,
                 m->route->port, rl_err_name(rc), rl_errdetail(), fate(false));
}

/* Take n units from the route's bucket, waiting up to the route's wait for the turn. A
 * signal during the wait runs its handler and the wait goes on (rl_acquire restarts its
 * sleep on EINTR). The wait is cancellable as the caller's connect would be: rl_acquire
 * holds nothing while it sleeps, and a cancelled waiter only forfeits its turn. */
static void match_cancelled(void *m)
{
    shim_match_done(m); /* a cancelled waiter lets go of its table too */
}

/* n units for a connect or a request (m is the caller's; see take). *decided: the
 * admission instant, 0 unless the units were admitted (see shim_take_units). */
static int turn(const struct shim_match *m, unsigned n, int cancel, uint64_t *decided)
{
    struct rl_decision d;
    pthread_setcancelstate(cancel, NULL);
    int rc = rl_acquire(m->bucket, n, m->route->max_wait_ns, &d);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    *decided = rc == 0 && !d.dry_run_rejected ? d.at_ns : 0;
    if (rc == 0)
        return 0;
    if (rc == RL_ETIMEDOUT)
        return m->route->on_timeout == RL_ROUTE_PASS ? 0 : ETIMEDOUT;
    warn_once(m, rc);
    return unusable();
}

/* One unit for a connect: a waiter cancelled meanwhile lets go of m's table. */
static int take(struct shim_match *m, int cancel)
{
    int rc;
    uint64_t decided;
    pthread_cleanup_push(match_cancelled, m);
    rc = turn(m, 1, cancel, &decided);
    pthread_cleanup_pop(0);
    return rc;
}

static int decide(int fd, const struct shim_dest *d, int cancel)
{
    struct shim_match m;
    pthread_once(&shim_once, init);
    if (!shim.config)
        return shim.fail_closed && opens_connection(fd) ? EACCES : 0;
    shim_routes_refresh_if_due();
    shim_routes_check_if_due();
    shim_routes_wait_first(d->port);
    if (!shim_routes_match(d, &m)) {
        if (shim_fd_http(fd) && opens_connection(fd))
            shim_fd_forget(fd); /* the number of a socket closed unseen (fclose) */
        return 0;
    }
    int err = 0;
    if (opens_connection(fd)) {
        if (!m.bucket) {
            err = unusable();
        } else if (m.route->count != RL_COUNT_REQUESTS || !shim_fd_attach(fd, shim_http_new(&m))) {
            /* Counted by requests: the connect takes nothing, its requests do (the state
             * holds the table too). Without room for that state, a connection is counted. */
            shim_fd_forget(fd);
            err = take(&m, cancel);
        }
    }
    shim_match_done(&m);
    return err;
}

int shim_admit(int fd, const struct sockaddr *sa, socklen_t len)
{
    struct shim_dest d;
    int cancel, saved = errno;
    if (inside || !shim_dest_from(sa, len, &d))
        return 0;
    /* No cancellation inside the shim but during the wait for the turn: a thread cancelled
     * in synchronize_rcu (holding urcu-bp's locks) would wedge the others. A cancel that
     * arrives meanwhile acts at the real connect, a cancellation point. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    inside = true;
    int err = decide(fd, &d, cancel);
    inside = false;
    pthread_setcancelstate(cancel, NULL);
    errno = saved;
    return err;
}

int shim_take_units(const struct shim_match *m, unsigned n, uint64_t *decided_ns)
{
    int cancel, saved = errno;
    *decided_ns = 0;
    if (inside)
        return 0;
    if (!m->bucket)
        return unusable();
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    inside = true;
    int err = turn(m, n, cancel, decided_ns);
    inside = false;
    pthread_setcancelstate(cancel, NULL);
    errno = saved;
    return err;
}

void shim_report(const struct shim_match *m, const struct rl_response *r)
{
    int saved = errno;
    if (m->bucket && !inside) {
        inside = true;
        rl_report(m->bucket, r, NULL);
        inside = false;
    }
    errno = saved;
}
