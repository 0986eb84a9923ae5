/*
 * route.c - the route statement of a config file: "route HOST:PORT BUCKET [wait DURATION]
 * [on-timeout fail|pass] [count connections|requests]". It reads the destination grammar (host
 * name, IPv4, [IPv6], an optional CIDR prefix length) and checks that every route names a bucket
 * the config defines or a template makes. Grammar in README "Config files".
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>

#include "config.h"

/* ------------------------------------------------------------------ routes */

static bool hostname_ok(const char *h)
{
    size_t len = strlen(h), label = 0;
    if (len == 0 || len > 253 || h[0] == '.' || h[len - 1] == '.')
        return false;
    for (const char *c = h; *c; c++) {
        if (*c == '.') {
            if (label == 0 || c[-1] == '-')
                return false;
            label = 0;
        } else if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", *c) ||
                   (*c == '-' && label == 0) || ++label > 63) {
            return false;
        }
    }
    return h[len - 1] != '-';
}

/* True if addr has any bit set beyond the first `prefix` bits; clears them. */
static bool host_bits(unsigned char *addr, unsigned bytes, unsigned prefix)
{
    bool set = false;
    for (unsigned i = 0; i < bytes; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;
        unsigned char mask = (unsigned char)(0xffU >> keep);
        set |= (addr[i] & mask) != 0;
        addr[i] &= (unsigned char)~mask;
    }
    return set;
}

/* An address or CIDR ("10.0.0.0/8", "2001:db8::/32") at column col; sets prefix_len. */
static bool address_ok(struct parser *p, char *host, int family, unsigned col, struct rl_route *r)
{
    const char *fam = family == AF_INET ? "IPv4" : "IPv6";
    unsigned bits = family == AF_INET ? 32 : 128;
    unsigned char addr[16];
    char *slash = strchr(host, '/');
    const char *err = NULL;
    r->prefix_len = bits;
    if (slash) {
        *slash = '\0';
        r->prefix_len = all_digits(slash + 1) ? (unsigned)strtonum(slash + 1, 1, bits, &err) : 0;
        if (r->prefix_len == 0) {
            rl__config_problem(p, col + (unsigned)(slash + 1 - host),
                               "bad CIDR: prefix length '%s' is not 1 to %u", slash + 1, bits);
            return false;
        }
    }
    if (inet_pton(family, host, addr) != 1) {
        rl__config_problem(p, col, "bad %s address '%s'", fam, host);
        return false;
    }
    if (slash && host_bits(addr, bits / 8, r->prefix_len)) {
        char net[INET6_ADDRSTRLEN];
        inet_ntop(family, addr, net, sizeof(net));
        rl__config_problem(p, col,
                           "bad CIDR: %s/%u has bits set beyond the prefix (the network is %s/%u)",
                           host, r->prefix_len, net, r->prefix_len);
        return false;
    }
    return true;
}

/* The host part of a destination (NUL-terminated in buf); at column col. */
static bool host_ok(struct parser *p, char *host, bool bracketed, unsigned col, struct rl_route *r)
{
    if (!(r->dest = strdup(host))) {
        p->oom = true;
        return false;
    }
    if (bracketed)
        return address_ok(p, host, AF_INET6, col, r);
    if (!*host) {
        rl__config_problem(p, col, "missing host: expected HOST:PORT, as in api.example.com:443");
        return false;
    }
    if (strchr(host, ':')) {
        rl__config_problem(p, col, "an IPv6 address goes in brackets, as in [2001:db8::1]:443");
        return false;
    }
    if (strchr(host, '/') || strspn(host, "0123456789.") == strlen(host))
        return address_ok(p, host, AF_INET, col, r);
    r->prefix_len = 0;
    if (!hostname_ok(host)) {
        rl__config_problem(
            p, col, "bad host name '%s': expected labels of letters, digits and '-' joined by '.'",
            host);
        return false;
    }
    return true;
}

static bool port_ok(struct parser *p, const char *port, unsigned col, struct rl_route *r)
{
    const char *err = NULL;
    r->port = all_digits(port) ? (unsigned)strtonum(port, 1, 65535, &err) : 0;
    if (r->port == 0)
        rl__config_problem(p, col, "bad port '%s': expected a number from 1 to 65535", port);
    return r->port != 0;
}

/* DEST:PORT, DEST one of: host name, IPv4, IPv4/len, [IPv6], [IPv6/len]. */
static bool dest_ok(struct parser *p, const struct word *w, struct rl_route *r)
{
    char buf[300], *host = buf, *colon;
    if (!word_copy(w, buf, sizeof(buf))) {
        rl__config_problem(p, w->col, "destination is %u bytes long: at most %zu", w->len,
                           sizeof(buf) - 1);
        return false;
    }
    bool bracketed = buf[0] == '[';
    if (bracketed) {
        char *close = strchr(buf, ']');
        if (!close) {
            rl__config_problem(p, w->col,
                               "expected ']' after the IPv6 address, as in [2001:db8::1]:443");
            return false;
        }
        *close = '\0';
        host++;
        colon = close + 1;
    } else {
        colon = strrchr(buf, ':');
    }
    if (!colon || *colon != ':') {
        rl__config_problem(p, colon ? w->col + (unsigned)(colon - buf) : after(w),
                           "missing port: expected HOST:PORT, as in api.example.com:443");
        return false;
    }
    *colon = '\0';
    bool ok = port_ok(p, colon + 1, w->col + (unsigned)(colon + 1 - buf), r);
    return host_ok(p, host, bracketed, w->col + (unsigned)(host - buf), r) && ok;
}

/* What an option expects, for "missing argument" and "unexpected" messages. */
static const char *option_values(const struct word *opt)
{
    if (word_is(opt, "wait"))
        return "a duration such as 30s";
    return word_is(opt, "count") ? "'connections' or 'requests'" : "'fail' or 'pass'";
}

static bool route_option(struct parser *p, const struct word *opt, const struct word *val,
                         struct rl_route *r)
{
    if (!val) {
        rl__config_problem(p, after(opt), "missing argument: expected %s after '%.*s'",
                           option_values(opt), WORD_ARG(opt));
        return false;
    }
    if (word_is(opt, "wait"))
        return rl__config_duration(p, val, 0, NS_PER_DAY, "a wait is at most 1d", &r->max_wait_ns);
    if (word_is(opt, "count") && (word_is(val, "connections") || word_is(val, "requests"))) {
        r->count = word_is(val, "requests") ? RL_COUNT_REQUESTS : RL_COUNT_CONNECTIONS;
        return true;
    }
    if (!word_is(opt, "count") && (word_is(val, "fail") || word_is(val, "pass"))) {
        r->on_timeout = word_is(val, "pass") ? RL_ROUTE_PASS : RL_ROUTE_FAIL;
        return true;
    }
    rl__config_problem(p, val->col, "unexpected '%.*s': expected %s", WORD_ARG(val),
                       option_values(opt));
    return false;
}

/* [wait DURATION] [on-timeout fail|pass] [count connections|requests], each at most once, in
 * any order. */
static bool route_options(struct parser *p, const struct line *l, struct rl_route *r)
{
    unsigned seen_wait = 0, seen_timeout = 0, seen_count = 0;
    for (unsigned i = 3; i < l->n; i += 2) {
        const struct word *opt = &l->w[i];
        unsigned *seen = word_is(opt, "wait")         ? &seen_wait
                         : word_is(opt, "on-timeout") ? &seen_timeout
                         : word_is(opt, "count")      ? &seen_count
                                                      : NULL;
        if (!seen) {
            rl__config_problem(
                p, opt->col,
                "unexpected '%.*s': expected 'wait DURATION', 'on-timeout fail|pass' or "
                "'count connections|requests'",
                WORD_ARG(opt));
            return false;
        }
        if (*seen) {
            rl__config_problem(p, opt->col, "duplicate '%.*s' (already at column %u)",
                               WORD_ARG(opt), *seen);
            return false;
        }
        *seen = opt->col;
        if (!route_option(p, opt, i + 1 < l->n ? &l->w[i + 1] : NULL, r))
            return false;
    }
    return true;
}

void rl__config_route_free(struct rl_route *r)
{
    free((void *)r->dest);
    free((void *)r->bucket);
}

/* Add a route whose destination is at column dest_col and bucket name at bucket_col. A
 * route defined twice is found once the whole file is read (drop_duplicate_routes). */
static void route_add(struct parser *p, struct rl_route *r, unsigned dest_col, unsigned bucket_col)
{
    rl_config *c = p->cfg;
    struct rl_route *arr = rl__config_room(p, c->routes, &p->rcap, c->nroutes, sizeof(*arr));
    struct route_meta *meta =
        arr ? rl__config_room(p, p->rmeta, &p->ccap, c->nroutes, sizeof(*meta)) : NULL;
    if (arr)
        c->routes = arr;
    if (!meta) {
        rl__config_route_free(r);
        return;
    }
    p->rmeta = meta;
    meta[c->nroutes] = (struct route_meta){dest_col, bucket_col};
    arr[c->nroutes++] = *r;
}

void rl__config_route(struct parser *p, const struct line *l)
{
    struct rl_route r = {
        .max_wait_ns = WAIT_DEFAULT_NS, .on_timeout = RL_ROUTE_FAIL, .line = p->line};
    if (l->n < 3) {
        rl__config_problem(
            p, after(&l->w[l->n - 1]),
            "missing argument: expected 'route HOST:PORT BUCKET [wait DURATION] [on-timeout "
            "fail|pass] [count connections|requests]', as in 'route api.example.com:443 foundry'");
        return;
    }
    bool ok = dest_ok(p, &l->w[1], &r);
    ok &= rl__config_name_ok(p, &l->w[2], false);
    ok &= route_options(p, l, &r);
    if (ok && (r.bucket = rl__config_dup_word(p, &l->w[2])))
        route_add(p, &r, l->w[1].col, l->w[2].col);
    else
        rl__config_route_free(&r);
}

/* Routes by destination (host names in any case), ties in file order. */
static int route_order(const void *a, const void *b)
{
    const struct rl_route *x = *(const struct rl_route *const *)a;
    const struct rl_route *y = *(const struct rl_route *const *)b;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    int c = strcasecmp(x->dest, y->dest);
    return c ? c : (x > y) - (x < y);
}

/* Report each destination routed again and drop that route: the first one stands. */
static void drop_duplicate_routes(struct parser *p)
{
    rl_config *c = p->cfg;
    const struct rl_route **by_dest = reallocarray(NULL, c->nroutes + 1, sizeof(*by_dest));
    size_t first = 0, kept = 0;
    if (!by_dest) {
        p->oom = true;
        return;
    }
    for (size_t i = 0; i < c->nroutes; i++)
        by_dest[i] = &c->routes[i];
    qsort(by_dest, c->nroutes, sizeof(*by_dest), route_order);
    for (size_t k = 1; k < c->nroutes; k++) {
        const struct rl_route *r = by_dest[k], *f = by_dest[first];
        if (r->port != f->port || strcasecmp(r->dest, f->dest) != 0) {
            first = k;
            continue;
        }
        rl__config_problem_at(p, r->line, p->rmeta[r - c->routes].dest_col,
                              "route %s:%u is already defined at line %u", r->dest, r->port,
                              f->line);
        p->rmeta[r - c->routes].dest_col = 0;
    }
    free(by_dest);
    for (size_t i = 0; i < c->nroutes; i++) {
        if (p->rmeta[i].dest_col == 0) {
            rl__config_route_free(&c->routes[i]);
            continue;
        }
        c->routes[kept] = c->routes[i];
        p->rmeta[kept++] = p->rmeta[i];
    }
    c->nroutes = kept;
}

/* A bucket a route may name: one of the config's buckets, or one a template makes: the
 * a template makes every name that starts with its pattern before the star, and goes on. */
static bool route_target_known(const struct parser *p, const char *name)
{
    char pattern[RL_NAME_MAX + 2];
    if (rl__config_bucket_named(p, name) != NONE)
        return true;
    for (size_t i = 0; name[i] && i + 2 < sizeof(pattern); i++) {
        if (name[i] != '/' || !name[i + 1])
            continue;
        memcpy(pattern, name, i + 1);
        memcpy(pattern + i + 1, "*", 2);
        size_t t = rl__config_bucket_named(p, pattern);
        if (t != NONE && p->cfg->buckets[t].is_template)
            return true;
    }
    return false;
}

void rl__config_check_routes(struct parser *p)
{
    drop_duplicate_routes(p);
    for (size_t i = 0; i < p->cfg->nroutes; i++) {
        const struct rl_route *r = &p->cfg->routes[i];
        if (!route_target_known(p, r->bucket))
            rl__config_problem_at(
                p, r->line, p->rmeta[i].bucket_col,
                "route to unknown bucket '%s': define it with 'bucket %s RULES' or a "
                "'template' it matches",
                r->bucket, r->bucket);
    }
}
