/*
 * agent.c - ratelimit-agent's loop: for each global rule of the table, watch its lease
 * word and the bucket's demand; ask Redis for a new lease when it runs low; give back
 * what a lease did not use.
 *
 * Only this process talks to Redis, once per lease. Decisions read the lease word only.
 * The agent replaces the word by CAS (rl__lease_swap); the units it replaced can no longer
 * be used, so it gives them back to their grant (grant.c, step 4).
 *
 * The word lives in the bucket's current policy block, which a switch or a delete retires;
 * once the agent's section ended, the block may be reused by another bucket at the same
 * address. So every read and CAS of the word is a short section of its own that first
 * checks the block is still current (rl__lease_load, rl__lease_swap), never one held across
 * a Redis call; and a lease is known by its block's reference, generation included
 * (rl__lease_same), not by the word's address.
 *
 * Lease size: the bucket's demand (units admitted plus requests refused), averaged over a
 * lease's length, times 1.5, at most the rule's `lease`. A bucket without demand for two
 * lease lengths asks for nothing and gives its units back: an idle host holds none.
 *
 * Where Redis is: the config names it per global rule (global redis://...); --redis serves
 * the rules it names none for. One link per distinct address; a rule follows its address
 * when SIGHUP reads the config again (the new Redis grants nothing for its first W).
 *
 * Redis unreachable: the host uses what its lease holds, then refuses. With
 * on-global-failure local N/K (the config's statement, or the option) it grants itself leases
 * instead, at most N/K units in any span of Redis's window W, once W has passed since its first
 * failed call (by then every unit Redis granted before the outage is out of every vendor window).
 * When Redis answers again, the host stops, and reports what it granted itself: Redis counts those
 * units from then on, and the first such report makes it grant nothing for W, while hosts still cut
 * off finish theirs. Safe if every host is back within W of the first and the shares add
 * up to at most N; a host cut off alone for longer may add its share to a window.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "../stdfds.h"
#include "agent.h"

#define MAX_TRACKED  1024
#define RETRY_NS     50000000ULL  /* after a failed call, wait this long */
#define RESCAN_NS    500000000ULL /* look for new global buckets this often */
#define POLL_MIN_NS  1000000ULL
#define POLL_MAX_NS  50000000ULL
#define STATUS_EVERY 10  /* polls between status file writes */
#define LOCAL_MAX    256 /* self-granted leases remembered per bucket (fallback) */
#define MAX_LINKS    64  /* distinct Redis addresses */
/* A bucket without demand for this many lease lengths is idle: it asks for nothing. Two:
 * a host whose requests come less often than once a lease (in bursts, say) would otherwise
 * get each lease only after a refusal, and see it end before its next request. */
#define IDLE_LEASES 2
#define NO_LINK     UINT32_MAX

struct tracked {
    rl_bucket *b;
    struct lease_ref ref; /* the lease we last saw (a switch or a delete ends it) */
    uint32_t link;        /* its Redis: an index in agent.links, NO_LINK if none */
    char id[96];          /* the grant our lease word holds ("" if unknown) */
    char back_id[96];     /* units to give back to this grant ... */
    uint64_t back_units;  /* ... this many */
    uint64_t seen;        /* admitted units + refused requests at the last poll */
    uint64_t seen_at, demand_at;
    double rate;          /* demand, units per ns, averaged over a lease's length */
    uint64_t retry_at;    /* no call before this instant */
    uint64_t counted;     /* all hosts' units in Redis's window, at the last call */
    uint64_t mine;        /* this host's */
    uint64_t quiet_until; /* Redis said it grants nothing before this */
    uint64_t down_since;  /* the first failed call since the last success (0: none) */
    uint64_t local_at[LOCAL_MAX], local_units[LOCAL_MAX]; /* self-granted leases */
    unsigned nlocal;
};

struct agent {
    rl_table *t;
    struct redis_link links[MAX_LINKS];
    unsigned nlinks;
    struct rl_redis_url fallback; /* --redis: for global rules the config names no Redis */
    rl_config *cfg;               /* NULL without a config file */
    const char *config_path;      /* NULL: the default, if it exists */
    long option_share;            /* --on-global-failure: K, 0 for refuse, -1 if not given */
    uint64_t timeout_us;
    const char *host, *status_path;
    uint64_t test_delay_us; /* $RATELIMIT_AGENT_TEST_DELAY_US: see call() */
    uint64_t share_div;     /* on-global-failure local N/K: K (0: refuse) */
    struct tracked *tr;
    unsigned n;
    uint64_t grants, granted_units, returned_units;
};

static volatile sig_atomic_t stop, reload;
static bool restart; /* the table was replaced: exec ourselves again */

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload = 1;
    else
        stop = 1;
}

/* The link for address u (opened on first use); NO_LINK if there are too many. */
static uint32_t link_for(struct agent *a, const struct rl_redis_url *u)
{
    for (unsigned i = 0; i < a->nlinks; i++) {
        const struct rl_redis_url *v = &a->links[i].addr;
        if (!strcmp(v->shown, u->shown) && !strcmp(v->password, u->password))
            return i;
    }
    if (a->nlinks == MAX_LINKS)
        return NO_LINK;
    a->links[a->nlinks] = (struct redis_link){.addr = *u, .timeout_us = a->timeout_us};
    return a->nlinks++;
}

/* Which Redis holds bucket x's budget: the config's address for it, else --redis. */
static void resolve(struct agent *a, struct tracked *x)
{
    const char *name = rl_bucket_name(x->b);
    const struct rl_redis_url *u = a->cfg ? rl__config_global_url(a->cfg, name) : NULL;
    uint32_t k = link_for(a, u ? u : &a->fallback);
    if (k == x->link)
        return;
    if (k == NO_LINK)
        fprintf(stderr, "ratelimit-agent: bucket %s: more than %d Redis addresses: not served\n",
                name, MAX_LINKS);
    else
        fprintf(stderr, "ratelimit-agent: bucket %s: Redis %s%s\n", name, a->links[k].addr.shown,
                u ? "" : " (no address in the config: --redis)");
    x->link = k;
}

/* Say on stderr when a link's state changes: reachable, or why not. */
static void log_link(struct redis_link *l)
{
    char now[sizeof(l->logged)];
    snprintf(now, sizeof(now), "%s", l->ok ? "reachable" : l->error);
    if (strcmp(now, l->logged) == 0)
        return;
    snprintf(l->logged, sizeof(l->logged), "%s", now);
    fprintf(stderr, "ratelimit-agent: Redis %s: %s\n", l->addr.shown, now);
}

static int track(rl_bucket *b, void *arg)
{
    struct agent *a = arg;
    struct lease_ref ref;
    if (rl_bucket_is_template(b) || rl__lease_find(b, &ref) != 0)
        return 0;
    for (unsigned i = 0; i < a->n; i++)
        if (a->tr[i].b == b)
            return 0;
    if (a->n < MAX_TRACKED)
        a->tr[a->n++] = (struct tracked){.b = b, .ref = ref, .link = NO_LINK};
    return 0;
}

/* Forget the buckets deleted, or without a global rule now: their slots serve new ones (a
 * rescan finds a bucket again if it gets a global rule). Units they had still to give back
 * stay counted in Redis for W, as a dead host's do. */
static void prune(struct agent *a)
{
    unsigned k = 0;
    for (unsigned i = 0; i < a->n; i++) {
        struct lease_ref ref;
        if (rl__lease_find(a->tr[i].b, &ref) != RL_ENOENT)
            a->tr[k++] = a->tr[i];
    }
    a->n = k;
}

static uint64_t demand_count(const rl_bucket *b)
{
    struct rl_bucket_info info;
    if (rl_bucket_info(b, &info) != 0)
        return 0;
    return info.counters.admitted_units + info.counters.rejected;
}

/* Units wanted now: 0 if the bucket had no demand for a lease's length. */
static uint64_t wanted(struct tracked *x, const struct lease_ref *ref, uint64_t now)
{
    uint64_t lease_ns = rl__lease_ns(&ref->r), c = demand_count(x->b);
    if (x->seen_at && now > x->seen_at) {
        double dt = (double)(now - x->seen_at), alpha = dt < lease_ns ? dt / lease_ns : 1.0;
        double inst = (double)(c - x->seen) / dt;
        x->rate += alpha * (inst - x->rate);
        if (c != x->seen)
            x->demand_at = now;
    }
    x->seen = c;
    x->seen_at = now;
    if (!x->demand_at || now - x->demand_at > IDLE_LEASES * lease_ns)
        return 0;
    uint64_t want = (uint64_t)(x->rate * (double)lease_ns * 1.5) + 1;
    return want < ref->r.burst ? want : ref->r.burst;
}

/* Replace the lease word by `next`; the units it held go back to their grant. False if the
 * block is no longer current: `next` reached no word. */
static bool swap_in(struct tracked *x, const struct lease_ref *ref, uint64_t next, const char *id)
{
    uint64_t old;
    if (rl__lease_load(ref, &old) != 0)
        return false;
    while (!rl__lease_swap(ref, &old, next))
        if (old & RL_FROZEN)
            return false; /* a switch: the new block starts without a lease (units expire) */
    if (x->id[0] && rl__lease_left(old)) {
        snprintf(x->back_id, sizeof(x->back_id), "%s", x->id);
        x->back_units = rl__lease_left(old);
    }
    snprintf(x->id, sizeof(x->id), "%s", id);
    return true;
}

static uint64_t window_ns(const struct lease_ref *ref)
{
    return agent_window_us(ref) * 1000;
}

/* Units the host granted itself in the last W (older entries are dropped). */
static uint64_t local_sum(struct tracked *x, uint64_t now, uint64_t w)
{
    uint64_t sum = 0;
    unsigned k = 0;
    for (unsigned i = 0; i < x->nlocal; i++)
        if (x->local_at[i] + w > now) {
            x->local_at[k] = x->local_at[i];
            x->local_units[k] = x->local_units[i];
            sum += x->local_units[k++];
        }
    x->nlocal = k;
    return sum;
}

/* Redis unreachable for W (with drift): a lease from the host's own share. */
static void self_grant(struct agent *a, struct tracked *x, const struct lease_ref *ref,
                       uint64_t want, uint64_t now)
{
    uint64_t w = window_ns(ref);
    if (!a->share_div || !x->down_since || now - x->down_since < w + w / (1000000 / RHO_PPM) ||
        x->nlocal == LOCAL_MAX)
        return;
    uint64_t share = ref->r.limit / a->share_div; /* after the check: refuse is K = 0 */
    uint64_t used = local_sum(x, now, w), g = used < share ? share - used : 0;
    g = g < want ? g : want;
    if (!g)
        return;
    x->local_at[x->nlocal] = now;
    x->local_units[x->nlocal++] = g;
    swap_in(x, ref, rl__lease_word(g, now + rl__lease_ns(&ref->r)), "");
}

static void call(struct agent *a, struct tracked *x, const struct lease_ref *ref, uint64_t want)
{
    struct grant_reply rep;
    struct redis_link *link = &a->links[x->link];
    struct grant_req q = {.name = rl_bucket_name(x->b),
                          .host = a->host,
                          .limit = ref->r.limit,
                          .window_us = agent_window_us(ref),
                          .want = want,
                          .back_id = x->back_id,
                          .back_units = x->back_units};
    uint64_t sent = rl__clock_rel(a->t); /* before the send: grant.c step 1 */
    q.fallback_units = local_sum(x, sent, window_ns(ref));
    /* Tests slow the way to Redis and back by up to this much each, at random: the lease
     * then starts late and ends early, never later (grant.c, step 1). */
    if (a->test_delay_us)
        usleep((useconds_t)((uint64_t)random() % a->test_delay_us));
    int rc = agent_grant(link, &q, &rep);
    log_link(link);
    if (a->test_delay_us)
        usleep((useconds_t)((uint64_t)random() % a->test_delay_us));
    if (rc != 0) {
        x->retry_at = rl__clock_rel(a->t) + RETRY_NS;
        x->down_since = x->down_since ? x->down_since : sent;
        return;
    }
    x->down_since = 0;
    x->nlocal = 0;
    a->returned_units += x->back_units;
    x->back_id[0] = '\0';
    x->back_units = 0;
    x->counted = rep.counted;
    x->mine = rep.mine;
    x->quiet_until = sent + rep.quiet_us * 1000;
    if (rep.granted) {
        a->grants++;
        a->granted_units += rep.granted;
        /* After the round trip the block may be gone: swap_in checks. Units that reached no
         * word were never usable: they go back with the next call (grant.c, step 4). */
        if (!swap_in(x, ref, rl__lease_word(rep.granted, sent + rl__lease_ns(&ref->r)), rep.id)) {
            snprintf(x->back_id, sizeof(x->back_id), "%s", rep.id);
            x->back_units = rep.granted;
        }
    }
    if (rep.granted < want) {
        /* Quiet, or not enough room: ask again when Redis says more may be granted, plus up
         * to a poll at random. A host that asked again at every poll after a partial grant
         * would take every unit as it frees, and hosts waiting for the same room would ask
         * in the same order every time (their polls keep their phase): both starved the
         * hosts with less demand (tests/global, vendor.py). */
        uint64_t jitter = (uint64_t)random() % (rl__lease_ns(&ref->r) / 10 + 1);
        x->retry_at =
            sent + (rep.quiet_us > rep.room_us ? rep.quiet_us : rep.room_us) * 1000 + jitter;
    }
}

/* One bucket's turn. */
static void tend(struct agent *a, struct tracked *x)
{
    struct lease_ref ref;
    uint64_t w;
    if (x->link == NO_LINK || rl__lease_find(x->b, &ref) != 0)
        return;
    if (!rl__lease_same(&ref, &x->ref)) { /* a switch: a new block, a new (empty) word */
        x->ref = ref;
        x->id[0] = '\0';
    }
    uint64_t now = rl__clock_rel(a->t), want = wanted(x, &ref, now);
    if (rl__lease_load(&ref, &w) != 0)
        return; /* switched since: the next poll finds the new block */
    uint64_t until = rl__lease_until(w), left = now < until ? rl__lease_left(w) : 0;
    uint64_t lease_ns = rl__lease_ns(&ref.r);
    /* An ended lease's units stay counted in Redis until given back: give them back now,
     * not at the next grant (which, with the window full, would wait for them). */
    if (now >= until && x->id[0] && rl__lease_left(w) && !x->back_units)
        swap_in(x, &ref, 0, "");
    if (want && (left < (want + 3) / 4 || until < now + lease_ns / 4)) {
        if (now >= x->retry_at || (x->back_units && !x->down_since))
            call(a, x, &ref, want);
        if (x->down_since)
            self_grant(a, x, &ref, want, rl__clock_rel(a->t));
        return;
    }
    if (now < x->retry_at)
        return;
    if (!want && x->id[0] && rl__lease_left(w)) /* idle: give the units back */
        swap_in(x, &ref, 0, "");
    if (x->back_units)
        call(a, x, &ref, 0);
}

static void write_status(struct agent *a)
{
    if (!a->status_path)
        return;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", a->status_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    uint64_t now = rl__clock_rel(a->t), calls = 0;
    const struct redis_link *down = NULL; /* the first link whose last call failed */
    for (unsigned i = 0; i < a->nlinks; i++) {
        calls += a->links[i].calls;
        down = down || !a->links[i].error[0] ? down : &a->links[i];
    }
    fprintf(f,
            "redis %s calls %llu grants %llu granted %llu returned %llu share %llu error %s%s%s\n",
            down ? "down" : "ok", (unsigned long long)calls, (unsigned long long)a->grants,
            (unsigned long long)a->granted_units, (unsigned long long)a->returned_units,
            (unsigned long long)a->share_div, down ? down->addr.shown : "-", down ? ": " : "",
            down ? down->error : "");
    for (unsigned i = 0; i < a->n; i++) {
        struct tracked *x = &a->tr[i];
        struct lease_ref ref;
        uint64_t w;
        if (rl__lease_find(x->b, &ref) != 0)
            continue;
        if (rl__lease_load(&ref, &w) != 0)
            w = 0; /* switched since: the new block starts without a lease */
        uint64_t until = rl__lease_until(w);
        fprintf(f,
                "bucket %s limit %llu period_ns %llu lease %llu lease_ns %llu held_in_window %llu "
                "others_in_window %llu quiet_ns %llu redis_ok %d redis %s\n",
                rl_bucket_name(x->b), (unsigned long long)ref.r.limit,
                (unsigned long long)ref.r.period_ns,
                (unsigned long long)(now < until ? rl__lease_left(w) : 0),
                (unsigned long long)(until > now ? until - now : 0), (unsigned long long)x->mine,
                (unsigned long long)(x->counted > x->mine ? x->counted - x->mine : 0),
                (unsigned long long)(x->quiet_until > now ? x->quiet_until - now : 0),
                x->link != NO_LINK && !a->links[x->link].error[0],
                x->link != NO_LINK ? a->links[x->link].addr.shown : "-");
    }
    fclose(f);
    rename(tmp, a->status_path);
}

static uint64_t poll_ns(const struct agent *a)
{
    uint64_t p = POLL_MAX_NS;
    for (unsigned i = 0; i < a->n; i++) {
        struct lease_ref ref;
        if (rl__lease_find(a->tr[i].b, &ref) == 0 && rl__lease_ns(&ref.r) / 10 < p)
            p = rl__lease_ns(&ref.r) / 10;
    }
    return p < POLL_MIN_NS ? POLL_MIN_NS : p;
}

/* Load the config (--config, else $RATELIMIT_CONFIG, else /etc/ratelimit.conf if it exists)
 * into *out (NULL if there is none) and the on-failure policy it gives with the options;
 * 0, or -1 said. */
static int load_config(struct agent *a, rl_config **out, uint64_t *share)
{
    const char *path = rl_config_default_path(a->config_path), *env = getenv("RATELIMIT_CONFIG");
    char *errors = NULL;
    unsigned line;
    *out = NULL;
    /* Only the built-in default may be missing: a file someone named must be there. */
    if (!a->config_path && !(env && *env) && access(path, F_OK) != 0 && errno == ENOENT) {
        *share = a->option_share > 0 ? (uint64_t)a->option_share : 0;
        return 0;
    }
    int rc = rl_config_load(path, out, &errors);
    if (rc) {
        if (errors)
            fputs(errors, stderr);
        fprintf(stderr, "ratelimit-agent: config %s: %s\n", path, rl_errdetail());
        free(errors);
        return -1;
    }
    unsigned k = rl__config_global_share(*out, &line);
    if (line && a->option_share >= 0 && (uint64_t)a->option_share != k) {
        fprintf(stderr,
                "ratelimit-agent: --on-global-failure contradicts %s:%u "
                "(on-global-failure %s): give it in one place\n",
                path, line, k ? "local N/K" : "refuse");
        rl_config_free(*out);
        *out = NULL;
        return -1;
    }
    *share = line ? k : a->option_share > 0 ? (uint64_t)a->option_share : 0;
    return 0;
}

/* SIGHUP: read the config again; a bad one is reported and the old one kept. */
static void reload_config(struct agent *a)
{
    rl_config *c;
    uint64_t share;
    reload = 0;
    if (load_config(a, &c, &share) != 0) {
        fprintf(stderr, "ratelimit-agent: SIGHUP: the config is unchanged\n");
        return;
    }
    rl_config_free(a->cfg);
    a->cfg = c;
    a->share_div = share;
    fprintf(stderr, "ratelimit-agent: SIGHUP: config read again\n");
}

static int agent_run(struct agent *a, bool once)
{
    uint64_t scanned = 0;
    for (unsigned round = 0; !stop; round++) {
        uint64_t now = rl__clock_rel(a->t);
        if (rl_table_check(a->t) == RL_ESTALE) { /* resized, or deleted and made again */
            fprintf(stderr, "ratelimit-agent: %s; starting again on the file the path names\n",
                    rl_errdetail());
            restart = true;
            break;
        }
        if (reload)
            reload_config(a);
        if (!scanned || now - scanned > RESCAN_NS) {
            prune(a);
            rl_table_foreach(a->t, track, a);
            for (unsigned i = 0; i < a->n; i++)
                resolve(a, &a->tr[i]);
            scanned = now;
        }
        for (unsigned i = 0; i < a->n; i++)
            tend(a, &a->tr[i]);
        if (once || round % STATUS_EVERY == 0)
            write_status(a);
        if (once)
            break;
        uint64_t p = poll_ns(a);
        struct timespec ts = {(time_t)(p / 1000000000ULL), (long)(p % 1000000000ULL)};
        nanosleep(&ts, NULL);
    }
    for (unsigned i = 0; i < a->nlinks; i++)
        agent_link_close(&a->links[i]);
    return 0;
}

static const char usage[] =
    "Usage: ratelimit-agent [--config FILE] [--table PATH] [--redis URL] [--host NAME]\n"
    "                       [--status FILE] [--timeout MS] [--on-global-failure POLICY]\n"
    "                       [--once]\n"
    "Keep the leases of the table's global rules filled from Redis. One per host.\n"
    "  --config FILE  the config: its table, each global rule's Redis address and its\n"
    "                 on-global-failure (default $RATELIMIT_CONFIG, else\n"
    "                 /etc/ratelimit.conf if it exists); SIGHUP reads it again\n"
    "  --table PATH   the table (default: the config's, else $RATELIMIT_TABLE, else the\n"
    "                 build's default)\n"
    "  --redis URL    for global rules whose config names no Redis (and buckets defined\n"
    "                 outside the config): redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or\n"
    "                 unix:///PATH[?db=N] (default redis://127.0.0.1:6379/0)\n"
    "  --host NAME    this host's name in Redis (default: the host name)\n"
    "  --status FILE  write the leases and Redis's health there (default TABLE.agent)\n"
    "  --timeout MS   Redis connect and reply timeout (default 200)\n"
    "  --on-global-failure refuse|'local N/K'\n"
    "                 if the config has no on-global-failure statement (the two must not\n"
    "                 differ). Redis unreachable: once the leases end, refuse (default),\n"
    "                 or after Redis's window grant this host N/K of each global rule\n"
    "  --once         one pass, then exit\n";

/* "refuse" -> 0, "local N/K" -> K; -1 if neither. */
static long parse_share(const char *s)
{
    unsigned long k = 0;
    char extra;
    if (strcmp(s, "refuse") == 0)
        return 0;
    if (sscanf(s, "local N/%lu%c", &k, &extra) != 1 || k == 0 || k > 1000)
        return -1;
    return (long)k;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", 1, 0, 'c'}, {"table", 1, 0, 't'},
                                         {"redis", 1, 0, 'r'},  {"host", 1, 0, 'H'},
                                         {"status", 1, 0, 's'}, {"timeout", 1, 0, 'T'},
                                         {"once", 0, 0, 'o'},   {"on-global-failure", 1, 0, 'F'},
                                         {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    const char *table = NULL, *url = "redis://127.0.0.1:6379/0", *status = NULL;
    char host[256] = "", status_buf[4200];
    char *end = NULL;
    long timeout_ms = 200;
    bool once = false;
    struct agent a = {.option_share = -1};
    if (!standard_fds_open()) {
        fprintf(stderr, "ratelimit-agent: cannot open /dev/null: %s\n", strerror(errno));
        return 4;
    }
    rl_guard_install(); /* a table truncated under the agent: an error, not a SIGBUS */
    for (int c; (c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'c':
            a.config_path = optarg;
            break;
        case 't':
            table = optarg;
            break;
        case 'r':
            url = optarg;
            break;
        case 'H':
            snprintf(host, sizeof(host), "%s", optarg);
            break;
        case 's':
            status = optarg;
            break;
        case 'T':
            timeout_ms = strtol(optarg, &end, 10);
            timeout_ms = *end ? 0 : timeout_ms;
            break;
        case 'o':
            once = true;
            break;
        case 'F':
            if ((a.option_share = parse_share(optarg)) < 0) {
                fprintf(stderr,
                        "ratelimit-agent: --on-global-failure '%s': expected 'refuse' or "
                        "'local N/K' (K 1 to 1000), as in 'local N/3'\n",
                        optarg);
                return 3;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 3;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ratelimit-agent: unexpected '%s'\n%s", argv[optind], usage);
        return 3;
    }
    if (!host[0] && gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "host");
    if (strchr(host, ':') || timeout_ms <= 0 || timeout_ms > 60000) {
        fprintf(stderr, "ratelimit-agent: --host must not contain ':'; --timeout is 1..60000\n");
        return 3;
    }
    a.host = host;
    a.timeout_us = (uint64_t)timeout_ms * 1000;
    struct rl_parse_error pe = {0};
    if (rl__redis_url_parse(url, strlen(url), &a.fallback, &pe) != 0) {
        fprintf(stderr, "ratelimit-agent: --redis '%s', column %u: %s\n", url, pe.column,
                pe.message);
        return 3;
    }
    if (load_config(&a, &a.cfg, &a.share_div) != 0)
        return 3;
    const char *env = getenv("RATELIMIT_TABLE");
    if (!table)
        table = a.cfg && rl_config_table(a.cfg)->path ? rl_config_table(a.cfg)->path
                : env && *env                         ? env
                                                      : RL_TABLE_DEFAULT_PATH;
    const char *delay = getenv("RATELIMIT_AGENT_TEST_DELAY_US");
    a.test_delay_us = delay ? strtoull(delay, NULL, 10) : 0;
    srandom((unsigned)getpid());
    char lock[4200];
    snprintf(lock, sizeof(lock), "%s.agent.lock", table);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "ratelimit-agent: %s: %s\n", lock,
                errno == EWOULDBLOCK ? "another agent runs for this table" : strerror(errno));
        rl_config_free(a.cfg);
        return 4;
    }
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = table;
    o.flags = 0;
    int rc = rl_table_open(&o, &a.t);
    if (rc) {
        fprintf(stderr, "ratelimit-agent: %s: %s (%s)\n", table, rl_strerror(rc), rl_errdetail());
        rl_config_free(a.cfg);
        return 4;
    }
    snprintf(status_buf, sizeof(status_buf), "%s.agent", table);
    a.status_path = status ? status : status_buf;
    a.tr = calloc(MAX_TRACKED, sizeof(*a.tr));
    if (!a.tr) {
        rl_config_free(a.cfg);
        rl_table_close(a.t);
        return 4;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    agent_run(&a, once);
    free(a.tr);
    rl_config_free(a.cfg);
    rl_table_close(a.t);
    if (restart) {
        /* Its leases in the old file are lost (they expire in Redis); the lock file's
         * descriptor is close-on-exec, so the new image takes the lock again. */
        execv("/proc/self/exe", argv);
        fprintf(stderr, "ratelimit-agent: starting again: %s\n", strerror(errno));
        return 4;
    }
    return 0;
}
