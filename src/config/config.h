/*
 * config.h - what the config parser's files share. parse.c reads the file's statements and
 * checks the whole file; route.c reads route statements (the destination grammar) and
 * checks the routes. apply.c uses the public API only.
 */
#ifndef RL_CONFIG_CONFIG_H
#define RL_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "global.h"
#include "ratelimit.h"

#define MAX_WORDS       64
#define NKEYWORDS       10
#define NS_PER_SEC      1000000000ULL
#define NS_PER_DAY      (86400ULL * NS_PER_SEC)
#define WAIT_DEFAULT_NS (30ULL * NS_PER_SEC)
#define NONE            SIZE_MAX

/* printf arguments for a word, at most 60 bytes of it: "%.*s". */
#define WORD_ARG(w) (int)((w)->len > 60 ? 60 : (w)->len), (w)->s

struct rl_config {
    struct rl_config_table table;
    struct rl_config_shim shim;
    struct rl_config_bucket *buckets;
    size_t nbuckets;
    uint64_t *expire_ns; /* per bucket: a template's expiry, 0 if none (set once parsed) */
    struct rl_route *routes;
    size_t nroutes;
    struct rl_config_globals *globals; /* global.c: Redis addresses, on-global-failure */
};

struct word {
    const char *s;
    unsigned len, col;
};

struct line {
    struct word w[MAX_WORDS];
    unsigned n;
};

struct problem {
    unsigned line, col;
    size_t seq;
    char *msg;
};

/* What the parser knows about a bucket beyond the public struct. */
struct bucket_meta {
    unsigned name_col; /* 0 once dropped as a duplicate */
    unsigned parent_col;
    size_t parent;      /* index of the parent bucket, NONE if unknown */
    bool on_cycle;      /* following parents comes back here */
    uint64_t expire_ns; /* the template's expiry, 0 if none */
};

/* What the parser knows about a route beyond the public struct. */
struct route_meta {
    unsigned dest_col; /* 0 once dropped as a duplicate */
    unsigned bucket_col;
};

struct parser {
    const char *name;
    rl_config *cfg;
    unsigned line;
    bool oom;
    unsigned first_line[NKEYWORDS]; /* per keyword: the line of its first statement */
    unsigned capacity_line, capacity_col;
    struct bucket_meta *bmeta; /* per bucket */
    struct route_meta *rmeta;  /* per route */
    /* The buckets sorted by name, once the whole file is read (rl__config_bucket_named). */
    struct rl_config_bucket **by_name;
    size_t bcap, mcap, rcap, ccap;
    struct problem *problems;
    size_t nproblems, pcap;
};

static inline bool word_is(const struct word *w, const char *s)
{
    return w->len == strlen(s) && memcmp(w->s, s, w->len) == 0;
}

/* The column just after a word: where a missing argument should have been. */
static inline unsigned after(const struct word *w)
{
    return w->col + w->len;
}

static inline bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* Copy a word into buf (NUL-terminated); false if it does not fit. */
static inline bool word_copy(const struct word *w, char *buf, size_t size)
{
    if (w->len >= size)
        return false;
    memcpy(buf, w->s, w->len);
    buf[w->len] = '\0';
    return true;
}

/* parse.c: problems, memory and the words every statement uses. */
void *rl__config_room(struct parser *p, void *arr, size_t *cap, size_t n, size_t size);
void rl__config_problem(struct parser *p, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rl__config_problem_at(struct parser *p, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
char *rl__config_dup_word(struct parser *p, const struct word *w);
bool rl__config_duration(struct parser *p, const struct word *w, uint64_t min, uint64_t max,
                         const char *range, uint64_t *ns);
bool rl__config_name_ok(struct parser *p, const struct word *w, bool defining);
/* The index of the bucket or template with this name, NONE if none; O(log n). Valid once
 * the whole file is read. */
size_t rl__config_bucket_named(const struct parser *p, const char *name);

/* route.c: the route statement, its check against the buckets, and freeing one route. */
void rl__config_route(struct parser *p, const struct line *l);
void rl__config_check_routes(struct parser *p);
void rl__config_route_free(struct rl_route *r);

/* global.c: the Redis address after 'global' in rule text (checked, kept in *out, blanked
 * out of text; out->shown is "" if none; false if reported), a bucket's address, the
 * on-global-failure statement, and freeing what they keep. */
bool rl__config_global_addr(struct parser *p, char *text, unsigned col, struct rl_redis_url *out);
void rl__config_global_add(struct parser *p, const struct word *name, const struct rl_redis_url *u);
void rl__config_on_global_failure(struct parser *p, const struct line *l);
void rl__config_globals_free(struct rl_config_globals *g);

#endif
