/*
 * routes.c - the route table: which TCP destinations draw from which bucket.
 *
 * A table is built from the config's routes when the shim starts, and built again whenever
 * host names are due for re-resolution (rl_config_shim()->resolve_every_ns). Host names are
 * resolved by the resolver thread (helper.c), never on a connect: the first table has the
 * address routes only, the first pass adds the host names' addresses. A published table is
 * never changed. Every connect reads the current one without locks: it enters an
 * RCU read-side critical section (urcu-bp, the flavour for libraries whose host program
 * never registers its threads), dereferences the table, copies out what it needs and leaves
 * before it sleeps for its turn. A refresher builds a whole new table, swaps it in, waits for
 * a grace period (every reader that could still see the old table has left it) and frees
 * the old one. Grace periods are process-local; nothing here is shared between processes.
 *
 * Until the first pass is done, a connect to the port of a host-name route waits for it, so
 * a short-lived process is limited from its first connect. No other connect ever waits for
 * DNS: a re-resolution runs while every connect matches against the table it replaces.
 *
 * The table file: a route table holds the rl_table its buckets come from. At most once a
 * second a connect checks that the table is still the file its path names
 * (rl_table_check); if it was deleted or replaced, the resolver thread opens the path again
 * (creating the table from the config if it is missing, as at start), builds a route table
 * on the new one and swaps it in. Connects that matched the old table hold a reference
 * (struct shim_tab.users) while they wait for their turn, and a connection counted by
 * requests holds one for its life (shim_match_hold); the old table is closed by
 * whoever drops the last reference after the swap's grace period, never while in use.
 *
 * Host names: a route matches the addresses of the last two successful resolutions, since
 * the connecting program resolved the name on its own, perhaps a little earlier, and
 * round-robin DNS rotates its answers. A failed re-resolution keeps the addresses known.
 *
 * The urcu-bp calls go through the library (no _LGPL_SOURCE): liburcu is LGPL, the
 * project MIT, so none of its code is inlined here.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <urcu-bp.h>

#include "../atomics.h"
#include "http.h"
#include "shim.h"

struct route {
    const struct rl_route *conf; /* the config's entry: lives as long as the process */
    rl_bucket *bucket;           /* NULL: not in the table (or no table) */
    struct shim_addr net;        /* address and CIDR routes; family 0 for a host name */
    unsigned bits;               /* prefix length in net.family */
    struct shim_addr *addrs;     /* host names: this resolution's addresses, then the last's */
    size_t nfresh, naddrs;
};

/* A table and the connects using it: users counts references, plus TAB_RETIRED once no
 * route table names it any more. Whoever brings it to exactly TAB_RETIRED closes it. */
struct shim_tab {
    rl_table *table; /* NULL: no table (unusable, or no routes to need one) */
    rl_atomic64 users;
};
#define TAB_RETIRED (1ULL << 62)

struct route_table {
    struct shim_tab *tab;
    size_t n;
    struct route r[];
};

/* RCU-protected: read with rcu_dereference inside rcu_read_lock, replaced with
 * rcu_xchg_pointer, freed only after synchronize_rcu. */
static struct route_table *current;

/* The rl_now_ns() instant from which the next caller asks for a refresh; UINT64_MAX: never
 * (no host names, no missing buckets). Claimed by CAS, so one caller asks per interval. */
static rl_atomic64 refresh_due_ns = UINT64_MAX;

/* Written once by shim_routes_init (inside shim.c's pthread_once, which orders it before
 * every later reader), read-only afterwards. */
static const rl_config *routes_config;
static uint64_t refresh_every_ns;
static const char *routes_config_path;
static bool has_host_names;

/* Only the resolver thread reads and writes it: no pass has reported yet. */
static bool first_report = true;

/* Non-zero once the first pass has published its table (or given up). Release-stored by
 * the resolver thread after the publication; acquire-loaded by shim_routes_wait_first, so
 * a connect that sees it also sees the table. */
static rl_atomic64 first_done;

/* The rl_now_ns() instant from which the next connect checks the table file; UINT64_MAX:
 * never (no table). Claimed by CAS, as refresh_due_ns. */
static rl_atomic64 check_due_ns = UINT64_MAX;
#define CHECK_EVERY_NS 1000000000ULL

/* Non-zero when the table file was found deleted or replaced: the next pass reopens it. */
static rl_atomic64 reopen_wanted;

/* ------------------------------------------------------------------ addresses */

static void addr_set(struct shim_addr *a, int family, const void *bytes)
{
    memset(a, 0, sizeof(*a));
    a->family = family;
    memcpy(a->addr, bytes, family == AF_INET ? 4 : 16);
}

/* An IPv6 address, or the IPv4 address it maps (::ffff:a.b.c.d). */
static void addr_set6(struct shim_addr *a, const struct in6_addr *in6)
{
    if (IN6_IS_ADDR_V4MAPPED(in6))
        addr_set(a, AF_INET, &in6->s6_addr[12]);
    else
        addr_set(a, AF_INET6, in6->s6_addr);
}

bool shim_dest_from(const struct sockaddr *sa, socklen_t len, struct shim_dest *out)
{
    sa_family_t family;
    if (!sa || len < (socklen_t)sizeof(family))
        return false;
    memcpy(&family, &sa->sa_family, sizeof(family));
    if (family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        addr_set(&out->ip, AF_INET, &in.sin_addr);
        out->port = ntohs(in.sin_port);
        return true;
    }
    if (family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        addr_set6(&out->ip, &in6.sin6_addr);
        out->port = ntohs(in6.sin6_port);
        return true;
    }
    return false;
}

static bool addr_equal(const struct shim_addr *a, const struct shim_addr *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* True if the first `bits` bits of a and net agree. */
static bool prefix_match(const unsigned char *a, const unsigned char *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, net, whole) != 0)
        return false;
    return rest == 0 || ((a[whole] ^ net[whole]) & (0xff00U >> rest)) == 0;
}

/* An address or CIDR route's network ("10.0.0.0/8", "::1"); a mapped IPv6 network becomes
 * the IPv4 one. False for a host name. */
static bool route_net(struct route *r)
{
    char buf[INET6_ADDRSTRLEN + 8];
    unsigned char bytes[16];
    snprintf(buf, sizeof(buf), "%s", r->conf->dest);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    r->bits = r->conf->prefix_len;
    if (inet_pton(AF_INET, buf, bytes) == 1) {
        addr_set(&r->net, AF_INET, bytes);
        return true;
    }
    if (inet_pton(AF_INET6, buf, bytes) != 1)
        return false;
    struct in6_addr in6;
    memcpy(&in6, bytes, sizeof(in6));
    addr_set6(&r->net, &in6);
    if (r->net.family == AF_INET)
        r->bits = r->bits > 96 ? r->bits - 96 : 0;
    return true;
}

/* ------------------------------------------------------------------ resolution */

/* Append a to the n addresses at list unless it is there already. */
static void addr_add(struct shim_addr *list, size_t *n, const struct shim_addr *a)
{
    for (size_t i = 0; i < *n; i++)
        if (addr_equal(&list[i], a))
            return;
    list[(*n)++] = *a;
}

/*
 * The distinct IPv4 and IPv6 addresses of host, in r->addrs (r->nfresh of them). Returns 0
 * or a getaddrinfo error. Runs in the resolver thread, whose own connects (to a DNS server)
 * pass straight through shim_admit.
 */
static int resolve(const char *host, struct route *r)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    size_t n = 0;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return rc;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    r->addrs = calloc(n + 1, sizeof(*r->addrs)); /* + 1: never a zero-size allocation */
    if (!r->addrs) {
        freeaddrinfo(res);
        return EAI_MEMORY;
    }
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct shim_dest d;
        if (shim_dest_from(ai->ai_addr, ai->ai_addrlen, &d))
            addr_add(r->addrs, &r->nfresh, &d.ip);
    }
    freeaddrinfo(res);
    r->naddrs = r->nfresh;
    return 0;
}

/* r (just resolved, or not: rc) keeps what `prev`, its predecessor, knew: on success the
 * previous resolution's addresses are added after the new ones, on failure r takes all of
 * prev's. False if out of memory. */
static bool merge_previous(struct route *r, int rc, const struct route *prev)
{
    size_t keep = rc == 0 ? prev->nfresh : prev->naddrs;
    struct shim_addr *a = realloc(r->addrs, (r->nfresh + keep + 1) * sizeof(*a));
    if (!a)
        return false;
    r->addrs = a;
    if (rc != 0)
        r->nfresh = 0;
    r->naddrs = r->nfresh;
    for (size_t i = 0; i < keep; i++)
        addr_add(r->addrs, &r->naddrs, &prev->addrs[i]);
    if (rc != 0)
        r->nfresh = prev->nfresh;
    return true;
}

/* ------------------------------------------------------------------ building */

static void tab_close(struct shim_tab *tab)
{
    rl_table_close(tab->table);
    free(tab);
}

/* A connect is done with the table (its wait is over). */
static void tab_put(struct shim_tab *tab)
{
    /* Acq_rel: this user's decisions happen before the close by whoever closes. */
    if (tab && rl__fetch_add_acq_rel(&tab->users, (uint64_t)-1) == TAB_RETIRED + 1)
        tab_close(tab);
}

/* No route table names tab any more (after a grace period): close it once unused. */
static void tab_retire(struct shim_tab *tab)
{
    /* Acq_rel: pairs with tab_put's. */
    if (tab && rl__fetch_add_acq_rel(&tab->users, TAB_RETIRED) == 0)
        tab_close(tab);
}

static void table_free(struct route_table *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        free(t->r[i].addrs);
    free(t);
}

/* A table of the config's routes with their networks, nothing resolved or looked up. */
static struct route_table *table_new(struct shim_tab *tab)
{
    const struct rl_route *conf;
    size_t n = rl_config_routes(routes_config, &conf);
    struct route_table *t = calloc(1, sizeof(*t) + n * sizeof(t->r[0]));
    if (!t)
        return NULL;
    t->tab = tab;
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        t->r[i].conf = &conf[i];
        if (conf[i].prefix_len != 0)
            route_net(&t->r[i]);
    }
    return t;
}

/* Resolve every host-name route of t; rcs[i] is route i's getaddrinfo result. */
static void resolve_all(struct route_table *t, int *rcs)
{
    for (size_t i = 0; i < t->n; i++)
        rcs[i] = t->r[i].conf->prefix_len == 0 ? resolve(t->r[i].conf->dest, &t->r[i]) : 0;
}

/* The route's bucket: the predecessor's if it is of the same table, or looked up again (it
 * may have been made since). */
static void find_bucket(rl_table *table, struct route *r, const struct route *prev, bool same)
{
    if (same && prev && prev->bucket)
        r->bucket = prev->bucket;
    else if (!table || rl_bucket_get(table, r->conf->bucket, &r->bucket) < 0)
        r->bucket = NULL;
}

/* Carry over from the current table what t cannot learn again: buckets found before,
 * addresses of earlier resolutions. False if out of memory. */
static bool inherit(struct route_table *t, const int *rcs)
{
    bool ok = true;
    /* Read side: a concurrent refresher may swap `current` out and free it once we leave. */
    rcu_read_lock();
    const struct route_table *old = rcu_dereference(current);
    for (size_t i = 0; i < t->n; i++) {
        const struct route *prev = old && i < old->n ? &old->r[i] : NULL;
        find_bucket(t->tab->table, &t->r[i], prev, old && old->tab == t->tab);
        if (prev && t->r[i].conf->prefix_len == 0)
            ok &= merge_previous(&t->r[i], rcs[i], prev);
    }
    rcu_read_unlock();
    return ok;
}

/* A complete new table, or NULL if out of memory. rcs: per route, its resolution result.
 * Host names are resolved only if `resolve`. */
static struct route_table *build(struct shim_tab *tab, int **rcs, bool resolve)
{
    struct route_table *t = table_new(tab);
    *rcs = t ? calloc(t->n + 1, sizeof(**rcs)) : NULL;
    if (!*rcs) {
        table_free(t);
        return NULL;
    }
    if (resolve)
        resolve_all(t, *rcs);
    if (!inherit(t, *rcs)) {
        table_free(t);
        free(*rcs);
        return NULL;
    }
    return t;
}

/* True if a refresh could change t: a host name to resolve again, a bucket to find. */
static bool needs_refresh(const struct route_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->r[i].conf->prefix_len == 0 || (t->tab->table && !t->r[i].bucket))
            return true;
    return false;
}

/* ------------------------------------------------------------------ publishing */

/* Say, once at start, which routes lack their bucket. */
static void report_buckets(const struct route_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct rl_route *c = t->r[i].conf;
        if (t->tab->table && !t->r[i].bucket)
            shim_say("%s:%u: route %s:%u: bucket '%s' is not in table %s; its connections "
                     "are handled as if the table were unusable",
                     routes_config_path, c->line, c->dest, c->port, c->bucket,
                     rl_table_path(t->tab->table));
    }
}

/* Say, after the first pass, which host names did not resolve. */
static void report_names(const struct route_table *t, const int *rcs)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct rl_route *c = t->r[i].conf;
        if (rcs[i] != 0)
            shim_say("%s:%u: route %s:%u: cannot resolve %s: %s; it matches nothing until it "
                     "resolves (retried every %llu s)",
                     routes_config_path, c->line, c->dest, c->port, c->dest, gai_strerror(rcs[i]),
                     (unsigned long long)(refresh_every_ns / 1000000000ULL));
    }
}

static bool any_host_name(const struct route_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->r[i].conf->prefix_len == 0)
            return true;
    return false;
}

void shim_routes_init(const rl_config *config, const char *config_path, rl_table *table)
{
    int *rcs;
    routes_config = config;
    routes_config_path = config_path;
    refresh_every_ns = rl_config_shim(config)->resolve_every_ns;
    struct shim_tab *tab = calloc(1, sizeof(*tab));
    if (tab)
        tab->table = table;
    struct route_table *t = tab ? build(tab, &rcs, false) : NULL;
    if (!t) {
        free(tab);
        rl_table_close(table);
        shim_say("%s: out of memory building the route table; connections pass unlimited",
                 config_path);
        return;
    }
    report_buckets(t);
    free(rcs);
    has_host_names = any_host_name(t);
    /* Publication: readers that rcu_dereference the pointer see the table fully built. */
    rcu_assign_pointer(current, t);
    bool check = table != NULL;
    if (!needs_refresh(t) && !check)
        return;
    /* Keep urcu-bp's registry and locks consistent across fork() without exec: a child
     * refreshes (synchronize_rcu) on its own, with only its forking thread left. */
    pthread_atfork(urcu_bp_before_fork, urcu_bp_after_fork_parent, urcu_bp_after_fork_child);
    /* Relaxed: published to other threads by shim.c's pthread_once; to refreshers and
     * checkers by the CAS that claims it. */
    if (check)
        rl__store_relaxed(&check_due_ns, rl_now_ns() + CHECK_EVERY_NS);
    if (!needs_refresh(t))
        return;
    rl__store_relaxed(&refresh_due_ns, rl_now_ns() + refresh_every_ns);
    if (has_host_names && !shim_helper_wake())
        shim_say("%s: cannot start the resolver thread; host-name routes match nothing",
                 config_path);
}

void shim_routes_wait_first(unsigned port)
{
    const struct rl_route *conf;
    if (!has_host_names || rl__load_acquire(&first_done))
        return;
    size_t n = rl_config_routes(routes_config, &conf);
    for (size_t i = 0; i < n; i++)
        if (conf[i].prefix_len == 0 && conf[i].port == port) {
            shim_helper_wait_pass();
            return;
        }
}

void shim_routes_refresh_if_due(void)
{
    /* Relaxed: a stale value only delays the check by one connect or sends us to the CAS,
     * which decides. */
    uint64_t due = rl__load_relaxed(&refresh_due_ns), now;
    if (due == UINT64_MAX || (now = rl_now_ns()) < due)
        return;
    /* The CAS claims this interval's refresh: exactly one caller moves `due` on and wakes
     * the resolver thread; everyone, that caller too, goes on with the current table. */
    if (rl__cas_acq_rel(&refresh_due_ns, &due, now + refresh_every_ns))
        shim_helper_wake();
}

void shim_routes_check_if_due(void)
{
    /* Relaxed, as in shim_routes_refresh_if_due: the CAS decides. */
    uint64_t due = rl__load_relaxed(&check_due_ns), now;
    if (due == UINT64_MAX || (now = rl_now_ns()) < due ||
        !rl__cas_acq_rel(&check_due_ns, &due, now + CHECK_EVERY_NS))
        return;
    /* Read side: the route table, hence its tab, stays valid while we stat its file. */
    rcu_read_lock();
    const struct route_table *t = rcu_dereference(current);
    bool stale = t && t->tab->table && rl_table_check(t->tab->table) == RL_ESTALE;
    rcu_read_unlock();
    if (!stale)
        return;
    /* Release: pairs with the CAS in shim_routes_refresh (one reopen per finding). */
    rl__store_release(&reopen_wanted, 1);
    shim_helper_wake();
}

/* The tab the next route table uses: the current one, or a new one on the file the path
 * now names if a connect found the table deleted or replaced. The resolver thread is the
 * only writer of `current`, so it reads it without a read side. */
static struct shim_tab *next_tab(bool *reopened)
{
    struct shim_tab *tab = rcu_dereference(current)->tab;
    uint64_t want = 1;
    *reopened = false;
    /* Acq_rel CAS: claims the request (pairs with the release store above). */
    if (!rl__cas_acq_rel(&reopen_wanted, &want, 0))
        return tab;
    struct shim_tab *fresh = calloc(1, sizeof(*fresh));
    if (!fresh || !(fresh->table = shim_table_reopen(rl_table_path(tab->table)))) {
        free(fresh);
        return tab; /* it said why; the old table stays, checked again in a second */
    }
    *reopened = true;
    return fresh;
}

void shim_routes_refresh(void)
{
    int *rcs;
    bool reopened;
    struct shim_tab *tab = next_tab(&reopened);
    struct route_table *t = build(tab, &rcs, true);
    if (!t) {
        if (reopened)
            tab_retire(tab);
        rl__store_release(&first_done, 1); /* out of memory: nobody waits any longer */
        return;
    }
    if (first_report)
        report_names(t, rcs);
    first_report = false;
    free(rcs);
    /* Exchange, not assign: the table taken out is exactly the one to free. The exchange
     * orders the new table's contents before its pointer (rcu_dereference pairs with it). */
    struct route_table *old = rcu_xchg_pointer(&current, t);
    /* Grace period: every reader that could still hold `old` has left its read side. */
    /* R: pairs with the acquire load in shim_routes_wait_first; the table is published. */
    rl__store_release(&first_done, 1);
    synchronize_rcu();
    if (reopened)
        tab_retire(old->tab); /* no route table names it; its waiters may still use it */
    table_free(old);
}

/* ------------------------------------------------------------------ matching */

/* How specifically r matches d: 0 not at all, else 1 + the prefix bits that matched. */
static unsigned score(const struct route *r, const struct shim_dest *d)
{
    if (r->conf->port != d->port)
        return 0;
    if (r->net.family)
        return r->net.family == d->ip.family && prefix_match(d->ip.addr, r->net.addr, r->bits)
                   ? 1 + r->bits
                   : 0;
    for (size_t i = 0; i < r->naddrs; i++)
        if (addr_equal(&r->addrs[i], &d->ip))
            return 1 + (d->ip.family == AF_INET ? 32 : 128);
    return 0;
}

bool shim_routes_match(const struct shim_dest *d, struct shim_match *out)
{
    const struct route *best = NULL;
    unsigned best_score = 0;
    /* Read side: the table stays valid until rcu_read_unlock; only the route's config entry
     * and bucket handle (both living as long as the process) are kept past it. */
    rcu_read_lock();
    const struct route_table *t = rcu_dereference(current);
    for (size_t i = 0; t && i < t->n; i++) {
        unsigned s = score(&t->r[i], d);
        if (s > best_score) {
            best = &t->r[i];
            best_score = s;
        }
    }
    if (best) {
        *out = (struct shim_match){best->conf, best->bucket, best->bucket ? t->tab : NULL};
        /* Relaxed: a reference taken inside the read side, so before any retirement. */
        if (out->tab)
            rl__fetch_add_relaxed(&out->tab->users, 1);
    }
    rcu_read_unlock();
    return best != NULL;
}

void shim_match_hold(const struct shim_match *m)
{
    /* Relaxed: m already holds a reference, so the table is not being retired. */
    if (m->tab)
        rl__fetch_add_relaxed(&m->tab->users, 1);
}

void shim_match_done(struct shim_match *m)
{
    tab_put(m->tab);
    m->tab = NULL;
}

bool shim_routes_match_host(const char *host, struct shim_match *out)
{
    const struct route *hit = NULL;
    /* Read side as in shim_routes_match. Routes written with a host name only: an address
     * route has no name to compare. The first in the file wins (the port is not known). */
    rcu_read_lock();
    const struct route_table *t = rcu_dereference(current);
    for (size_t i = 0; t && i < t->n && !hit; i++)
        if (t->r[i].net.family == 0 && t->r[i].conf->count == RL_COUNT_REQUESTS &&
            strcasecmp(t->r[i].conf->dest, host) == 0)
            hit = &t->r[i];
    if (hit) {
        *out = (struct shim_match){hit->conf, hit->bucket, hit->bucket ? t->tab : NULL};
        /* Relaxed: a reference taken inside the read side, as in shim_routes_match. */
        if (out->tab)
            rl__fetch_add_relaxed(&out->tab->users, 1);
    }
    rcu_read_unlock();
    return hit != NULL;
}
