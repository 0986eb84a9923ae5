/*
 * global.c - the config's words for global rules (README "Several hosts"):
 *   bucket NAME N/T global ADDRESS [lease K] ...   the Redis that holds the budget
 *   on-global-failure refuse | local N/K            what hosts do while Redis is unreachable
 * and the Redis address grammar, which ratelimit-agent's --redis also uses.
 *
 * The rule parser (policy.c) takes no address: rule text also comes from the command line
 * and the library, where no agent would read it. So the config checks the address after
 * 'global', keeps it, and hands rl_policy_parse the rule text with the address blanked out
 * (columns stay the file's).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

struct global_entry {
    char *name; /* a bucket, or a template pattern */
    struct rl_redis_url url;
};

struct rl_config_globals {
    struct global_entry *v;
    size_t n, cap;
    unsigned share, share_line; /* on-global-failure: K of local N/K (0: refuse), its line */
};

/* ------------------------------------------------------------------ addresses */

struct url_cursor {
    const char *s, *p, *end;
    struct rl_parse_error *e;
};

static int url_fail(struct url_cursor *c, const char *at, const char *msg)
{
    if (c->e) {
        c->e->column = (unsigned)(at - c->s) + 1;
        snprintf(c->e->message, sizeof(c->e->message), "%s", msg);
    }
    return RL_EPARSE;
}

static bool starts(const struct url_cursor *c, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(c->end - c->p) >= n && memcmp(c->p, prefix, n) == 0;
}

static int hex(char ch)
{
    return isdigit((unsigned char)ch)         ? ch - '0'
           : isxdigit((unsigned char)ch) != 0 ? (tolower((unsigned char)ch) - 'a' + 10)
                                              : -1;
}

/* Copy [from, to) into out, decoding %XX; a byte that must be encoded is an error. */
static int decode(struct url_cursor *c, const char *from, const char *to, char *out, size_t size,
                  const char *what)
{
    size_t n = 0;
    for (const char *q = from; q < to; q++) {
        int ch = (unsigned char)*q;
        if (ch == '%') {
            int hi = to - q > 2 ? hex(q[1]) : -1, lo = hi >= 0 ? hex(q[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return url_fail(c, q, "bad %-escape: expected %XX with two hex digits, not %00");
            ch = hi * 16 + lo;
            q += 2;
        } else if (ch == ':' || ch == '/' || ch == '?') {
            char msg[120];
            snprintf(msg, sizeof(msg), "'%c' in the %s: write it as %%%02X", ch, what, ch);
            return url_fail(c, q, msg);
        }
        if (n + 1 >= size)
            return url_fail(c, from, "user or password is too long (at most 255 bytes)");
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return 0;
}

/* [[USER]:PASSWORD@] */
static int userinfo(struct url_cursor *c, struct rl_redis_url *u)
{
    const char *at = memchr(c->p, '@', (size_t)(c->end - c->p));
    if (!at)
        return 0;
    const char *colon = memchr(c->p, ':', (size_t)(at - c->p));
    if (!colon)
        return url_fail(c, c->p,
                        "a user needs a password: write USER:PASSWORD@ (or :PASSWORD@ for the "
                        "default user)");
    if (decode(c, c->p, colon, u->user, sizeof(u->user), "user") < 0 ||
        decode(c, colon + 1, at, u->password, sizeof(u->password), "password") < 0)
        return RL_EPARSE;
    if (!u->password[0])
        return url_fail(c, colon + 1, "empty password: leave out ':@' for no AUTH");
    c->p = at + 1;
    return 0;
}

/* Digits up to the next '/' or the end, as a number in [min, max]. */
static int number(struct url_cursor *c, const char *stop, long long min, long long max,
                  const char *msg, unsigned *out)
{
    const char *start = c->p;
    long long v = 0;
    while (c->p < c->end && !strchr(stop, *c->p)) {
        if (!isdigit((unsigned char)*c->p) || (v = v * 10 + (*c->p - '0')) > max)
            return url_fail(c, start, msg);
        c->p++;
    }
    if (c->p == start || v < min)
        return url_fail(c, start, msg);
    *out = (unsigned)v;
    return 0;
}

static int tcp_address(struct url_cursor *c, struct rl_redis_url *u)
{
    const char *h = c->p;
    if (h < c->end && *h == '[') {
        const char *close = memchr(h, ']', (size_t)(c->end - h));
        struct in6_addr a6;
        size_t n = close ? (size_t)(close - h - 1) : 0;
        if (!close || n == 0 || n >= sizeof(u->host))
            return url_fail(c, h, "bad IPv6 address: expected [ADDRESS], as in [::1]");
        memcpy(u->host, h + 1, n);
        if (inet_pton(AF_INET6, u->host, &a6) != 1)
            return url_fail(c, h + 1, "bad IPv6 address");
        c->p = close + 1;
    } else {
        while (c->p < c->end && (isalnum((unsigned char)*c->p) || *c->p == '-' || *c->p == '.'))
            c->p++;
        size_t n = (size_t)(c->p - h);
        if (n == 0)
            return url_fail(c, h, "missing host: expected redis://HOST[:PORT][/DB]");
        if (n > 253 || *h == '-' || *h == '.')
            return url_fail(c, h, "bad host name (letters, digits, '-' and '.', at most 253)");
        memcpy(u->host, h, n);
    }
    if (c->p < c->end && *c->p == ':') {
        c->p++;
        if (number(c, "/", 1, 65535, "bad port: expected 1 to 65535", &u->port) < 0)
            return RL_EPARSE;
    }
    if (c->p < c->end && *c->p != '/')
        return url_fail(c, c->p, "unexpected character after the host: expected ':PORT' or '/DB'");
    if (c->p < c->end && ++c->p < c->end &&
        number(c, "", 0, INT_MAX, "bad database: expected a number, as in /0", &u->db) < 0)
        return RL_EPARSE;
    return 0;
}

static int unix_address(struct url_cursor *c, struct rl_redis_url *u)
{
    const char *path = c->p, *q = memchr(path, '?', (size_t)(c->end - path));
    const char *end = q ? q : c->end;
    if (path == end || *path != '/')
        return url_fail(c, path, "expected an absolute socket path, as in unix:///run/redis.sock");
    if ((size_t)(end - path) >= sizeof(u->path))
        return url_fail(c, path, "socket path is too long (at most 107 bytes)");
    memcpy(u->path, path, (size_t)(end - path));
    if (!q)
        return 0;
    c->p = q + 1;
    if (!starts(c, "db="))
        return url_fail(c, c->p, "unexpected query: the only one is ?db=N");
    c->p += 3;
    return number(c, "", 0, INT_MAX, "bad database: expected a number, as in ?db=0", &u->db);
}

/* The user as it must be written: %XX for a byte that is not a plain one. */
static void encode(const char *s, char *out, size_t size)
{
    static const char plain[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~";
    size_t n = 0;
    for (; *s && n + 4 < size; s++)
        n += (size_t)(strchr(plain, *s) ? snprintf(out + n, size - n, "%c", *s)
                                        : snprintf(out + n, size - n, "%%%02X", (unsigned char)*s));
    out[n] = '\0';
}

static void shown(struct rl_redis_url *u, const char *scheme)
{
    char auth[400] = "", user[3 * sizeof(u->user) + 1];
    encode(u->user, user, sizeof(user));
    if (u->password[0])
        snprintf(auth, sizeof(auth), "%s:***@", user);
    if (u->path[0])
        snprintf(u->shown, sizeof(u->shown), "%s%s%s?db=%u", scheme, auth, u->path, u->db);
    else
        snprintf(u->shown, sizeof(u->shown), "redis://%s%s%s%s:%u/%u", auth,
                 strchr(u->host, ':') ? "[" : "", u->host, strchr(u->host, ':') ? "]" : "", u->port,
                 u->db);
}

int rl__redis_url_parse(const char *s, size_t len, struct rl_redis_url *u, struct rl_parse_error *e)
{
    struct url_cursor c = {s, s, s + len, e};
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (memchr(s, '\0', len))
        return url_fail(&c, memchr(s, '\0', len), "NUL byte in the address");
    const char *scheme = starts(&c, "redis://")        ? "redis://"
                         : starts(&c, "unix://")       ? "unix://"
                         : starts(&c, "redis+unix://") ? "redis+unix://"
                                                       : NULL;
    if (!scheme && starts(&c, "rediss://"))
        return url_fail(&c, s,
                        "TLS (rediss://) is not supported: the agent's hiredis has no TLS; "
                        "use a unix socket or a local TLS tunnel");
    if (!scheme && (starts(&c, "redis+sentinel://") || starts(&c, "sentinel://")))
        return url_fail(&c, s,
                        "Sentinel addresses are not supported: give the current master's "
                        "address (README, Several hosts)");
    if (!scheme)
        return url_fail(&c, s,
                        "expected a Redis address: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
                        "or unix:///PATH[?db=N]");
    c.p += strlen(scheme);
    int rc = userinfo(&c, u);
    if (rc == 0)
        rc = scheme[0] == 'r' && scheme[5] == ':' ? tcp_address(&c, u) : unix_address(&c, u);
    if (rc == 0)
        shown(u, scheme);
    return rc;
}

/* ------------------------------------------------------------------ the config's words */

static bool blank_or_comma(char ch)
{
    return ch == ' ' || ch == '\t' || ch == ',' || ch == '\0';
}

/* A word that is an address: a scheme ([A-Za-z0-9+.-]) and a ':'. */
static bool is_address(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    return n > 0 && s[n] == ':';
}

bool rl__config_global_addr(struct parser *p, char *text, unsigned col, struct rl_redis_url *out)
{
    bool ok = true, found = false;
    for (char *g = text; (g = strstr(g, "global")) != NULL; g += 6) {
        if ((g > text && !blank_or_comma(g[-1])) || (g[6] != ' ' && g[6] != '\t'))
            continue;
        char *a = g + 6;
        a += strspn(a, " \t");
        if (!is_address(a))
            continue;
        size_t len = strcspn(a, " \t,");
        struct rl_redis_url u;
        struct rl_parse_error e = {0};
        if (rl__redis_url_parse(a, len, &u, &e) < 0) {
            rl__config_problem(p, col + (unsigned)(a - text) + e.column - 1, "%s", e.message);
            ok = false;
        } else if (!found) {
            *out = u;
            found = true;
        }
        memset(a, ' ', len);
    }
    return ok;
}

static struct rl_config_globals *globals(struct parser *p)
{
    if (!p->cfg->globals && !(p->cfg->globals = calloc(1, sizeof(*p->cfg->globals))))
        p->oom = true;
    return p->cfg->globals;
}

void rl__config_global_add(struct parser *p, const struct word *name, const struct rl_redis_url *u)
{
    struct rl_config_globals *g = globals(p);
    struct global_entry *v = g ? rl__config_room(p, g->v, &g->cap, g->n, sizeof(*v)) : NULL;
    if (!v)
        return;
    g->v = v;
    v[g->n] = (struct global_entry){rl__config_dup_word(p, name), *u};
    g->n += v[g->n].name != NULL;
}

void rl__config_on_global_failure(struct parser *p, const struct line *l)
{
    static const char usage[] = "'on-global-failure refuse' or 'on-global-failure local N/K', "
                                "as in 'local N/3' for three hosts";
    const struct word *w = l->n > 1 ? &l->w[1] : NULL;
    long long k = 0;
    char buf[16];
    if (!w || (word_is(w, "local") && l->n == 2)) {
        rl__config_problem(p, after(&l->w[l->n - 1]), "missing argument: expected %s", usage);
        return;
    }
    unsigned want = word_is(w, "refuse") ? 2 : word_is(w, "local") ? 3 : 1;
    if (l->n != want) {
        const struct word *bad = &l->w[want < l->n ? want : 1];
        rl__config_problem(p, bad->col, "unexpected '%.*s': expected %s", WORD_ARG(bad), usage);
        return;
    }
    const struct word *s = want == 3 ? &l->w[2] : NULL;
    if (s && (!word_copy(s, buf, sizeof(buf)) || strncmp(buf, "N/", 2) != 0 ||
              !all_digits(buf + 2) || (k = atoll(buf + 2)) < 1 || k > 1000)) {
        rl__config_problem(p, s->col,
                           "bad share '%.*s': expected N/K with K the number of hosts, 1 to "
                           "1000, as in N/3",
                           WORD_ARG(s));
        return;
    }
    struct rl_config_globals *g = globals(p);
    if (g) {
        g->share = (unsigned)k;
        g->share_line = p->line;
    }
}

void rl__config_globals_free(struct rl_config_globals *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].name);
    free(g->v);
    free(g);
}

/* ------------------------------------------------------------------ the agent's view */

const struct rl_redis_url *rl__config_global_url(const rl_config *c, const char *name)
{
    const struct rl_config_globals *g = c->globals;
    const struct global_entry *best = NULL;
    size_t best_len = 0, n = strlen(name);
    for (size_t i = 0; g && i < g->n; i++) {
        const char *e = g->v[i].name;
        size_t len = strlen(e);
        if (strcmp(e, name) == 0)
            return &g->v[i].url;
        bool pattern = len > 2 && strcmp(e + len - 2, "/*") == 0;
        if (pattern && n > len - 1 && strncmp(name, e, len - 1) == 0 && len > best_len) {
            best = &g->v[i];
            best_len = len;
        }
    }
    return best ? &best->url : NULL;
}

unsigned rl__config_global_share(const rl_config *c, unsigned *line)
{
    *line = c->globals ? c->globals->share_line : 0;
    return c->globals ? c->globals->share : 0;
}
