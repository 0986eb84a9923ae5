/*
 * parse.c - the config file: parse and check every statement, report every problem in one
 * pass as "file:line:col: message", and hold the result. Grammar in README "Config files";
 * the route statement is in route.c.
 *
 * One statement per line, words separated by blanks, '#' starts a comment. Everything a
 * statement can get wrong on its own is checked as it is read; what needs the whole file
 * (parents, the buckets routes name, capacity) is checked at the end. Columns are bytes,
 * 1-based.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "../guard.h"
#include "../internal.h"
#include "config.h"

#define CONFIG_DEFAULT_PATH "/etc/ratelimit.conf"
#define CONFIG_MAX_BYTES    (16U << 20)
#define CAPACITY_DEFAULT    1024
#define CAPACITY_MAX        (1U << 24)
#define RESOLVE_DEFAULT_NS  (300ULL * NS_PER_SEC)

/* ------------------------------------------------------------------ problems and memory */

/* Make room for element n of an array; returns the array (maybe moved), NULL if out of
 * memory (the old array stays valid). */
void *rl__config_room(struct parser *p, void *arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *a = reallocarray(arr, ncap, size);
    if (!a) {
        p->oom = true;
        return NULL;
    }
    *cap = ncap;
    return a;
}

static void vproblem(struct parser *p, unsigned line, unsigned col, const char *fmt, va_list ap)
{
    char *msg;
    struct problem *arr;
    if (vasprintf(&msg, fmt, ap) < 0) {
        p->oom = true;
        return;
    }
    if (!(arr = rl__config_room(p, p->problems, &p->pcap, p->nproblems, sizeof(*arr)))) {
        free(msg);
        return;
    }
    p->problems = arr;
    arr[p->nproblems] = (struct problem){line, col, p->nproblems, msg};
    p->nproblems++;
}

/* Report a problem at a column of the current line. */
void rl__config_problem(struct parser *p, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(p, p->line, col, fmt, ap);
    va_end(ap);
}

void rl__config_problem_at(struct parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(p, line, col, fmt, ap);
    va_end(ap);
}

char *rl__config_dup_word(struct parser *p, const struct word *w)
{
    char *s = strndup(w->s, w->len);
    p->oom |= s == NULL;
    return s;
}

/* ------------------------------------------------------------------ words */

/* A whole word holding a number in [min, max]. */
static bool word_number(const struct word *w, long long min, long long max, long long *out)
{
    char buf[24];
    const char *err = NULL;
    if (!word_copy(w, buf, sizeof(buf)) || !all_digits(buf))
        return false;
    *out = strtonum(buf, min, max, &err);
    return err == NULL;
}

/* Exactly `n` arguments; else report what is missing or extra. */
static bool want_args(struct parser *p, const struct line *l, unsigned n, const char *usage)
{
    if (l->n < n + 1)
        rl__config_problem(p, after(&l->w[l->n - 1]), "missing argument: expected %s", usage);
    else if (l->n > n + 1)
        rl__config_problem(p, l->w[n + 1].col, "unexpected '%.*s': expected %s",
                           WORD_ARG(&l->w[n + 1]), usage);
    return l->n == n + 1;
}

/* A DURATION word within [min, max]. */
bool rl__config_duration(struct parser *p, const struct word *w, uint64_t min, uint64_t max,
                         const char *range, uint64_t *ns)
{
    struct rl_parse_error e = {0};
    const char *end;
    if (rl_parse_duration(w->s, &end, ns, &e) < 0) {
        rl__config_problem(p, w->col + e.column - 1, "%s", e.message);
        return false;
    }
    if (end != w->s + w->len) {
        rl__config_problem(p, w->col + (unsigned)(end - w->s),
                           "unexpected '%.*s' after the duration", (int)(w->s + w->len - end), end);
        return false;
    }
    if (*ns < min || *ns > max) {
        rl__config_problem(p, w->col, "'%.*s' is out of range: %s", WORD_ARG(w), range);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ buckets */

/* A valid bucket name; `defining` if the statement defines it (else it refers to one). */
bool rl__config_name_ok(struct parser *p, const struct word *w, bool defining)
{
    char name[RL_NAME_MAX + 1];
    if (w->len > RL_NAME_MAX) {
        rl__config_problem(p, w->col, "bucket name '%.20s...' is %u bytes long: at most %d", w->s,
                           w->len, RL_NAME_MAX);
        return false;
    }
    word_copy(w, name, sizeof(name));
    if (w->len > 2 && strcmp(name + w->len - 2, "/*") == 0) {
        rl__config_problem(p, w->col, "'%s' is a template pattern: %s", name,
                           defining ? "declare it with 'template', not 'bucket'"
                                    : "name a bucket here");
        return false;
    }
    if (rl_name_check(name) < 0) {
        rl__config_problem(p, w->col, "%s", rl_errdetail());
        return false;
    }
    return true;
}

/* A template pattern: a valid name, a slash and a star ("tenant/" "*"). */
static bool pattern_ok(struct parser *p, const struct word *w)
{
    char prefix[RL_NAME_MAX + 1];
    if (w->len > RL_NAME_MAX) {
        rl__config_problem(p, w->col, "template pattern '%.20s...' is %u bytes long: at most %d",
                           w->s, w->len, RL_NAME_MAX);
        return false;
    }
    if (w->len < 3 || memcmp(w->s + w->len - 2, "/*", 2) != 0) {
        rl__config_problem(p, w->col, "template pattern '%.*s' must end in '/*', as in 'tenant/*'",
                           WORD_ARG(w));
        return false;
    }
    word_copy(w, prefix, sizeof(prefix));
    prefix[w->len - 2] = '\0';
    if (rl_name_check(prefix) < 0) {
        rl__config_problem(p, w->col, "template pattern '%.*s': %s", WORD_ARG(w), rl_errdetail());
        return false;
    }
    return true;
}

/* Parse rule text spanning words first..last; the error column becomes a file column. */
static bool rules_ok(struct parser *p, const struct word *first, const struct word *last,
                     struct rl_policy *out, struct rl_redis_url *url)
{
    struct rl_parse_error e = {0};
    char *text = strndup(first->s, (size_t)(last->s + last->len - first->s));
    if (!text) {
        p->oom = true;
        return false;
    }
    url->shown[0] = '\0';
    bool addr_ok = rl__config_global_addr(p, text, first->col, url);
    int rc = rl_policy_parse(text, out, &e);
    free(text);
    if (rc < 0)
        rl__config_problem(p, first->col + (e.column ? e.column - 1 : 0), "%s", e.message);
    return rc == 0 && addr_ok;
}

/* A bucket or template statement, split into its parts. */
struct def {
    const struct word *name, *parent, *expire; /* the words after 'parent' and 'expire' */
    unsigned first, last;                      /* the words of the rule text */
};

/* The option the word names ('parent' or 'expire'): its slot in d, or NULL. */
static const struct word **def_option(struct def *d, const struct word *w)
{
    return word_is(w, "parent") ? &d->parent : word_is(w, "expire") ? &d->expire : NULL;
}

/* The options after the rules, in any order: "parent NAME", "expire DURATION". */
static bool def_options(struct parser *p, const struct line *l, struct def *d)
{
    const struct word **slot;
    for (; d->last > d->first && (slot = def_option(d, &l->w[d->last - 1])); d->last -= 2) {
        const struct word *kw = &l->w[d->last - 1];
        if (*slot) {
            rl__config_problem(p, (*slot)[-1].col, "'%.*s' is given twice: once is enough",
                               WORD_ARG(kw));
            return false;
        }
        *slot = &l->w[d->last];
    }
    for (unsigned i = d->first; i <= d->last; i++)
        if (word_is(&l->w[i], "expire")) {
            rl__config_problem(p, l->w[i].col,
                               "'expire DURATION' goes after the rules, as in 'template "
                               "tenant/* 200/60s expire 1h'");
            return false;
        }
    return true;
}

static bool def_split(struct parser *p, const struct line *l, bool is_template, struct def *d)
{
    const char *usage = is_template ? "'template PREFIX/* RULES [expire DURATION] [parent NAME]', "
                                      "as in 'template tenant/* 200/60s'"
                                    : "'bucket NAME RULES [parent NAME]', as in 'bucket foundry "
                                      "200/60s'";
    const struct word *end = &l->w[l->n - 1];
    if (l->n < 3) {
        rl__config_problem(p, after(end), "missing argument: expected %s", usage);
        return false;
    }
    *d = (struct def){&l->w[1], NULL, NULL, 2, l->n - 1};
    if (def_option(d, end)) {
        rl__config_problem(p, after(end), "missing argument: expected %s after '%.*s'",
                           word_is(end, "parent") ? "a bucket name" : "a duration", WORD_ARG(end));
        return false;
    }
    if (!def_options(p, l, d))
        return false;
    if (d->last < d->first) {
        rl__config_problem(p, l->w[2].col, "missing rules before '%.*s': expected %s",
                           WORD_ARG(&l->w[2]), usage);
        return false;
    }
    return true;
}

/* The statement's expiry: 0 if none, else checked (templates only). */
static bool def_expire(struct parser *p, const struct def *d, bool is_template, uint64_t *ns)
{
    *ns = 0;
    if (!d->expire)
        return true;
    if (!is_template) {
        rl__config_problem(p, d->expire[-1].col,
                           "'expire' is for templates: the buckets made from a template expire "
                           "when idle, a bucket the file names stays");
        return false;
    }
    return rl__config_duration(p, d->expire, 1000000, RL_EXPIRE_MAX_NS, "expected 1ms to 49d", ns);
}

static void bucket_add(struct parser *p, const struct def *d, const struct rl_policy *pol,
                       bool is_template, uint64_t expire_ns)
{
    rl_config *c = p->cfg;
    struct rl_config_bucket *arr =
        rl__config_room(p, c->buckets, &p->bcap, c->nbuckets, sizeof(*arr));
    if (!arr)
        return;
    c->buckets = arr;
    struct bucket_meta *meta = rl__config_room(p, p->bmeta, &p->mcap, c->nbuckets, sizeof(*meta));
    if (!meta)
        return;
    p->bmeta = meta;
    struct rl_config_bucket *b = &arr[c->nbuckets];
    *b = (struct rl_config_bucket){rl__config_dup_word(p, d->name), NULL, *pol, is_template,
                                   p->line};
    if (d->parent)
        b->parent = rl__config_dup_word(p, d->parent);
    meta[c->nbuckets] =
        (struct bucket_meta){d->name->col, d->parent ? d->parent->col : 0, NONE, false, expire_ns};
    c->nbuckets++;
}

static void parse_def(struct parser *p, const struct line *l, bool is_template)
{
    struct def d;
    struct rl_policy pol = {0};
    struct rl_redis_url url;
    uint64_t expire_ns;
    if (!def_split(p, l, is_template, &d))
        return;
    bool ok = is_template ? pattern_ok(p, d.name) : rl__config_name_ok(p, d.name, true);
    /* A bucket with bad rules is still added: its name then resolves parents and routes
     * that refer to it, so one mistake is reported once. A name defined twice is found
     * once the whole file is read (drop_duplicates). */
    rules_ok(p, &l->w[d.first], &l->w[d.last], &pol, &url);
    if (d.parent && !rl__config_name_ok(p, d.parent, false))
        ok = false;
    def_expire(p, &d, is_template, &expire_ns); /* a bad one is reported; the rest stands */
    if (!ok)
        return;
    bucket_add(p, &d, &pol, is_template, expire_ns);
    if (url.shown[0])
        rl__config_global_add(p, d.name, &url);
}

static void parse_bucket(struct parser *p, const struct line *l)
{
    parse_def(p, l, false);
}

static void parse_template(struct parser *p, const struct line *l)
{
    parse_def(p, l, true);
}

/* ------------------------------------------------------------------ table and shim */

static void parse_table(struct parser *p, const struct line *l)
{
    if (!want_args(p, l, 1, "'table PATH', as in 'table /dev/shm/ratelimit'"))
        return;
    const struct word *w = &l->w[1];
    if (w->s[0] != '/' || w->len >= PATH_MAX)
        rl__config_problem(
            p, w->col,
            "table path must be absolute and shorter than %d bytes, as in /dev/shm/ratelimit",
            PATH_MAX);
    else
        p->cfg->table.path = rl__config_dup_word(p, w);
}

static void parse_mode(struct parser *p, const struct line *l)
{
    if (!want_args(p, l, 1, "'mode OCTAL', as in 'mode 0660'"))
        return;
    const struct word *w = &l->w[1];
    unsigned mode = 0;
    bool octal = w->len <= 4;
    for (unsigned i = 0; i < w->len; i++) {
        octal &= w->s[i] >= '0' && w->s[i] <= '7';
        mode = mode * 8 + (unsigned)(w->s[i] - '0');
    }
    if (!octal)
        rl__config_problem(p, w->col, "bad mode '%.*s': expected an octal file mode such as 0660",
                           WORD_ARG(w));
    else if (mode & 0002)
        rl__config_problem(
            p, w->col,
            "mode %04o makes the table world-writable: any local user could change or wreck "
            "the budget; use 0660 and 'group'",
            mode);
    else if (mode & ~0666U)
        rl__config_problem(p, w->col,
                           "mode %04o: a table has only read and write bits (at most 0664)", mode);
    else if ((mode & 0600) != 0600)
        rl__config_problem(p, w->col, "mode %04o: the owner needs read and write (0600)", mode);
    else
        p->cfg->table.mode = mode;
}

/* The gid of a group name; -1 if there is no such group. */
static long group_id(struct parser *p, const char *name)
{
    for (size_t size = 1024; size <= (1U << 20); size *= 2) {
        struct group gr, *found = NULL;
        char *buf = malloc(size);
        if (!buf) {
            p->oom = true;
            return -1;
        }
        int rc = getgrnam_r(name, &gr, buf, size, &found);
        long gid = found ? (long)gr.gr_gid : -1;
        free(buf);
        if (rc != ERANGE)
            return gid;
    }
    return -1;
}

static void parse_group(struct parser *p, const struct line *l)
{
    if (!want_args(p, l, 1, "'group NAME' or 'group GID', as in 'group www-data'"))
        return;
    const struct word *w = &l->w[1];
    char name[256];
    long long gid = -1;
    if (!word_copy(w, name, sizeof(name)))
        rl__config_problem(p, w->col, "group name is %u bytes long: at most 255", w->len);
    else if (all_digits(name) && !word_number(w, 0, UINT32_MAX - 1, &gid))
        rl__config_problem(p, w->col, "bad group id '%s': expected 0 to %u", name, UINT32_MAX - 1);
    else if (gid < 0 && (gid = group_id(p, name)) < 0)
        rl__config_problem(p, w->col, "unknown group '%s' (not in the group database)", name);
    else
        p->cfg->table.group = (long)gid;
}

static void parse_capacity(struct parser *p, const struct line *l)
{
    long long n;
    if (!want_args(p, l, 1, "'capacity BUCKETS', as in 'capacity 4096'"))
        return;
    if (!word_number(&l->w[1], 1, CAPACITY_MAX, &n)) {
        rl__config_problem(p, l->w[1].col,
                           "bad capacity '%.*s': expected a number of buckets from 1 to %u",
                           WORD_ARG(&l->w[1]), CAPACITY_MAX);
        return;
    }
    p->cfg->table.capacity = (uint32_t)n;
    p->capacity_line = p->line;
    p->capacity_col = l->w[1].col;
}

static void parse_shim(struct parser *p, const struct line *l)
{
    if (!want_args(p, l, 1, "'shim fail-open' or 'shim fail-closed'"))
        return;
    if (word_is(&l->w[1], "fail-open") || word_is(&l->w[1], "fail-closed"))
        p->cfg->shim.fail_closed = word_is(&l->w[1], "fail-closed");
    else
        rl__config_problem(p, l->w[1].col,
                           "unexpected '%.*s': expected 'fail-open' or 'fail-closed'",
                           WORD_ARG(&l->w[1]));
}

static void parse_resolve_every(struct parser *p, const struct line *l)
{
    if (want_args(p, l, 1, "'resolve-every DURATION', as in 'resolve-every 5m'"))
        rl__config_duration(p, &l->w[1], NS_PER_SEC, NS_PER_DAY, "expected 1s to 1d",
                            &p->cfg->shim.resolve_every_ns);
}

/* ------------------------------------------------------------------ lines */

static const struct keyword {
    const char *word;
    bool once; /* at most one such statement per file */
    void (*parse)(struct parser *p, const struct line *l);
} keywords[NKEYWORDS] = {
    {"table", true, parse_table},
    {"mode", true, parse_mode},
    {"group", true, parse_group},
    {"capacity", true, parse_capacity},
    {"bucket", false, parse_bucket},
    {"template", false, parse_template},
    {"route", false, rl__config_route},
    {"shim", true, parse_shim},
    {"resolve-every", true, parse_resolve_every},
    {"on-global-failure", true, rl__config_on_global_failure},
};

static void statement(struct parser *p, const struct line *l)
{
    for (size_t i = 0; i < NKEYWORDS; i++) {
        if (!word_is(&l->w[0], keywords[i].word))
            continue;
        if (keywords[i].once && p->first_line[i]) {
            rl__config_problem(p, l->w[0].col, "duplicate '%s' statement: already given at line %u",
                               keywords[i].word, p->first_line[i]);
            return;
        }
        p->first_line[i] = p->line;
        keywords[i].parse(p, l);
        return;
    }
    rl__config_problem(
        p, l->w[0].col,
        "unknown keyword '%.*s': expected table, mode, group, capacity, bucket, template, "
        "route, shim, resolve-every or on-global-failure",
        WORD_ARG(&l->w[0]));
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Split a NUL-terminated statement into words; false (reported) if there are too many. */
static bool split_words(struct parser *p, const char *s, struct line *l)
{
    const char *q = s;
    l->n = 0;
    for (;;) {
        while (blank(*q))
            q++;
        if (!*q)
            return true;
        if (l->n == MAX_WORDS) {
            rl__config_problem(p, (unsigned)(q - s) + 1,
                               "too many words: at most %d in a statement", MAX_WORDS);
            return false;
        }
        struct word *w = &l->w[l->n++];
        w->s = q;
        w->col = (unsigned)(q - s) + 1;
        while (*q && !blank(*q))
            q++;
        w->len = (unsigned)(q - w->s);
    }
}

/* One line [s, e) of the writable copy of the text. */
static void parse_line(struct parser *p, char *s, char *e)
{
    struct line l;
    char *hash = memchr(s, '#', (size_t)(e - s));
    if (hash)
        e = hash;
    for (const char *c = s; c < e; c++) {
        unsigned char ch = (unsigned char)*c;
        if ((ch < 0x20 && !blank(*c)) || ch == 0x7f) {
            rl__config_problem(p, (unsigned)(c - s) + 1, "unexpected control character 0x%02x", ch);
            return;
        }
    }
    *e = '\0';
    if (split_words(p, s, &l) && l.n > 0)
        statement(p, &l);
}

static void parse_text(struct parser *p, char *text, size_t len)
{
    char *s = text, *end = text + len;
    for (p->line = 1; s < end; p->line++) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *e = nl ? nl : end;
        parse_line(p, s, e);
        s = e + 1;
    }
}

/* ------------------------------------------------------------------ whole-file checks */

/* Buckets by name, ties in file order. */
static int bucket_order(const void *a, const void *b)
{
    const struct rl_config_bucket *x = *(const struct rl_config_bucket *const *)a;
    const struct rl_config_bucket *y = *(const struct rl_config_bucket *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x > y) - (x < y);
}

/* Sort pointers to the buckets by name into p->by_name; false if out of memory. */
static bool index_buckets(struct parser *p)
{
    const rl_config *c = p->cfg;
    free(p->by_name);
    if (!(p->by_name = reallocarray(NULL, c->nbuckets + 1, sizeof(*p->by_name)))) {
        p->oom = true;
        return false;
    }
    for (size_t i = 0; i < c->nbuckets; i++)
        p->by_name[i] = &c->buckets[i];
    qsort(p->by_name, c->nbuckets, sizeof(*p->by_name), bucket_order);
    return true;
}

/* Report each name defined again and drop that definition: the first one stands. Then
 * p->by_name indexes the buckets left. */
static void drop_duplicates(struct parser *p)
{
    rl_config *c = p->cfg;
    size_t first = 0, kept = 0, dropped = 0;
    if (!index_buckets(p))
        return;
    for (size_t k = 1; k < c->nbuckets; k++) {
        const struct rl_config_bucket *b = p->by_name[k], *f = p->by_name[first];
        if (strcmp(b->name, f->name) != 0) {
            first = k;
            continue;
        }
        rl__config_problem_at(p, b->line, p->bmeta[b - c->buckets].name_col,
                              "%s '%s' is already defined at line %u",
                              b->is_template ? "template" : "bucket", b->name, f->line);
        p->bmeta[b - c->buckets].name_col = 0;
        dropped++;
    }
    for (size_t i = 0; i < c->nbuckets && dropped; i++) {
        if (p->bmeta[i].name_col == 0) {
            free((void *)c->buckets[i].name);
            free((void *)c->buckets[i].parent);
            continue;
        }
        c->buckets[kept] = c->buckets[i];
        p->bmeta[kept++] = p->bmeta[i];
    }
    if (dropped) {
        c->nbuckets = kept;
        index_buckets(p);
    }
}

static int name_order(const void *key, const void *b)
{
    return strcmp(key, (*(const struct rl_config_bucket *const *)b)->name);
}

size_t rl__config_bucket_named(const struct parser *p, const char *name)
{
    const struct rl_config_bucket *const *found =
        bsearch(name, p->by_name, p->cfg->nbuckets, sizeof(*p->by_name), name_order);
    return found ? (size_t)(*found - p->cfg->buckets) : NONE;
}

/* "a -> b -> c": the chain from bucket i, at most `max` names, stopping at a repeat of i. */
static void chain_text(const struct parser *p, size_t i, unsigned max, char *buf, size_t size)
{
    size_t k = i;
    buf[0] = '\0';
    for (unsigned n = 0; k != NONE && n < max; n++, k = p->bmeta[k].parent) {
        if (n)
            strlcat(buf, " -> ", size);
        if (strlcat(buf, p->cfg->buckets[k].name, size) >= size)
            return; /* full: a long cycle is shown in part */
        if (n && k == i)
            return;
    }
}

/* Mark the buckets on a parent cycle. A walk stops at a bucket an earlier walk reached,
 * so each bucket is walked once: O(n). */
static void mark_cycles(struct parser *p)
{
    size_t n = p->cfg->nbuckets, k;
    size_t *walk = calloc(n + 1, sizeof(*walk)); /* per bucket: 1 + the walk that reached it */
    if (!walk) {
        p->oom = true;
        return;
    }
    for (size_t s = 0; s < n; s++) {
        for (k = s; k != NONE && !walk[k]; k = p->bmeta[k].parent)
            walk[k] = s + 1;
        if (k == NONE || walk[k] != s + 1)
            continue; /* no cycle, or one an earlier walk found */
        for (; !p->bmeta[k].on_cycle; k = p->bmeta[k].parent)
            p->bmeta[k].on_cycle = true;
    }
    free(walk);
}

/* Buckets in i's chain through parents defined before their children (i included). */
static unsigned chain_depth(const struct parser *p, size_t i)
{
    unsigned depth = 1;
    for (size_t k = i; p->bmeta[k].parent < k && depth <= RL_MAX_DEPTH; k = p->bmeta[k].parent)
        depth++;
    return depth;
}

static void check_parent(struct parser *p, size_t i)
{
    const struct rl_config_bucket *b = &p->cfg->buckets[i];
    size_t j = p->bmeta[i].parent;
    unsigned col = p->bmeta[i].parent_col;
    char chain[512];
    if (j == NONE) {
        rl__config_problem_at(
            p, b->line, col,
            "unknown parent '%s': define it with 'bucket %s RULES' before this line", b->parent,
            b->parent);
    } else if (j >= i && p->bmeta[i].on_cycle) {
        chain_text(p, i, (unsigned)p->cfg->nbuckets + 1, chain, sizeof(chain));
        rl__config_problem_at(p, b->line, col, "parent cycle: %s", chain);
    } else if (j >= i) {
        rl__config_problem_at(
            p, b->line, col,
            "parent '%s' is defined later, at line %u: define parents before their children",
            b->parent, p->cfg->buckets[j].line);
    } else if (chain_depth(p, i) > RL_MAX_DEPTH) {
        chain_text(p, i, RL_MAX_DEPTH + 1, chain, sizeof(chain));
        rl__config_problem_at(p, b->line, col,
                              "parent chain too long: %s: a chain holds at most %d buckets", chain,
                              RL_MAX_DEPTH);
    }
}

static void check_parents(struct parser *p)
{
    for (size_t i = 0; i < p->cfg->nbuckets; i++)
        if (p->cfg->buckets[i].parent)
            p->bmeta[i].parent = rl__config_bucket_named(p, p->cfg->buckets[i].parent);
    mark_cycles(p);
    for (size_t i = 0; i < p->cfg->nbuckets; i++)
        if (p->cfg->buckets[i].parent)
            check_parent(p, i);
}

static void check_capacity(struct parser *p)
{
    const rl_config *c = p->cfg;
    if (c->nbuckets <= c->table.capacity)
        return;
    if (p->capacity_line)
        rl__config_problem_at(
            p, p->capacity_line, p->capacity_col,
            "capacity %u is less than the %zu buckets and templates the file defines",
            c->table.capacity, c->nbuckets);
    else
        rl__config_problem_at(
            p, c->buckets[c->table.capacity].line, 1,
            "more than %u buckets and templates (the default capacity): add 'capacity N'",
            c->table.capacity);
}

/* ------------------------------------------------------------------ results */

static int problem_order(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The problems as "file:line:col: message" lines; NULL if out of memory. */
static char *problems_text(struct parser *p)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    qsort(p->problems, p->nproblems, sizeof(*p->problems), problem_order);
    for (size_t i = 0; i < p->nproblems; i++)
        fprintf(f, "%s:%u:%u: %s\n", p->name, p->problems[i].line, p->problems[i].col,
                p->problems[i].msg);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void rl_config_free(rl_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        free((void *)c->buckets[i].name);
        free((void *)c->buckets[i].parent);
    }
    for (size_t i = 0; i < c->nroutes; i++)
        rl__config_route_free(&c->routes[i]);
    rl__config_globals_free(c->globals);
    free(c->expire_ns);
    free(c->buckets);
    free(c->routes);
    free((void *)c->table.path);
    free(c);
}

static int parse_result(struct parser *p, rl_config **out, char **errors)
{
    int err = 0;
    char *text = p->nproblems && !p->oom ? problems_text(p) : NULL;
    if (p->oom || (p->nproblems && !text)) {
        err = rl__fail(RL_ENOMEM, "out of memory parsing config %s", p->name);
    } else if (p->nproblems) {
        err = rl__fail(RL_EPARSE, "%.*s (%zu problems in all)", (int)strcspn(text, "\n"), text,
                       p->nproblems);
        if (errors)
            *errors = text;
        else
            free(text);
    } else if (!(p->cfg->expire_ns = calloc(p->cfg->nbuckets + 1, sizeof(uint64_t)))) {
        err = rl__fail(RL_ENOMEM, "out of memory parsing config %s", p->name);
    } else {
        for (size_t i = 0; i < p->cfg->nbuckets; i++)
            p->cfg->expire_ns[i] = p->bmeta[i].expire_ns;
        *out = p->cfg;
        p->cfg = NULL;
    }
    for (size_t i = 0; i < p->nproblems; i++)
        free(p->problems[i].msg);
    free(p->problems);
    free(p->bmeta);
    free(p->rmeta);
    free(p->by_name);
    rl_config_free(p->cfg);
    return err;
}

int rl_config_parse(const char *text, size_t len, const char *name, rl_config **out, char **errors)
{
    struct parser p = {.name = name ? name : "config"};
    if (errors)
        *errors = NULL;
    if (!out || (!text && len))
        return rl__fail(RL_EINVAL, "rl_config_parse: bad arguments");
    *out = NULL;
    char *copy = malloc(len + 1);
    if (!copy || !(p.cfg = calloc(1, sizeof(*p.cfg)))) {
        free(copy);
        return rl__fail(RL_ENOMEM, "out of memory parsing config %s", p.name);
    }
    if (len)
        memcpy(copy, text, len);
    p.cfg->table = (struct rl_config_table){NULL, 0600, -1, CAPACITY_DEFAULT};
    p.cfg->shim = (struct rl_config_shim){false, RESOLVE_DEFAULT_NS};
    parse_text(&p, copy, len);
    free(copy);
    /* The whole-file checks need every name; out of memory, the result is RL_ENOMEM. */
    if (!p.oom)
        drop_duplicates(&p);
    if (!p.oom) {
        check_parents(&p);
        rl__config_check_routes(&p);
        check_capacity(&p);
    }
    return parse_result(&p, out, errors);
}

/* ------------------------------------------------------------------ files */

const char *rl_config_default_path(const char *path)
{
    if (path)
        return path;
    /* secure_getenv: the preload shim also runs in set-id programs. */
    const char *env = secure_getenv("RATELIMIT_CONFIG");
    return env && *env ? env : CONFIG_DEFAULT_PATH;
}

/* Read all of fd, at most CONFIG_MAX_BYTES. */
static int read_all(int fd, const char *path, char **text, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return rl__fail(RL_ENOMEM, "out of memory reading config %s", path);
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            int e = errno;
            *text = buf;
            *len = n;
            return got == 0 ? 0 : rl__fail(RL_ESYS, "cannot read config %s: %s", path, strerror(e));
        }
        if ((n += (size_t)got) > CONFIG_MAX_BYTES) {
            *text = buf;
            return rl__fail(RL_EPARSE, "config %s is larger than %u MiB", path,
                            CONFIG_MAX_BYTES >> 20);
        }
        if (n == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
        }
    }
}

int rl_config_load(const char *path, rl_config **out, char **errors)
{
    char *text = NULL;
    size_t len = 0;
    if (errors)
        *errors = NULL;
    if (!out)
        return rl__fail(RL_EINVAL, "rl_config_load: bad arguments");
    *out = NULL;
    path = rl_config_default_path(path);
    int fd = rl__fd_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return rl__fail(RL_ESYS, "cannot open config %s: %s", path, strerror(errno));
    int err = read_all(fd, path, &text, &len);
    close(fd);
    if (err == RL_EPARSE && errors && asprintf(errors, "%s:1:1: %s\n", path, rl_errdetail()) < 0)
        *errors = NULL;
    if (!err)
        err = rl_config_parse(text, len, path, out, errors);
    free(text);
    return err;
}

/* ------------------------------------------------------------------ accessors */

const struct rl_config_table *rl_config_table(const rl_config *c)
{
    return &c->table;
}

size_t rl_config_buckets(const rl_config *c, const struct rl_config_bucket **out)
{
    if (out)
        *out = c->buckets;
    return c->nbuckets;
}

uint64_t rl_config_bucket_expire(const rl_config *c, size_t i)
{
    return i < c->nbuckets ? c->expire_ns[i] : 0;
}

size_t rl_config_routes(const rl_config *c, const struct rl_route **out)
{
    if (out)
        *out = c->routes;
    return c->nroutes;
}

const struct rl_config_shim *rl_config_shim(const rl_config *c)
{
    return &c->shim;
}
