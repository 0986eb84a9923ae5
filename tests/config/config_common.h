/*
 * config_common.h - helpers shared by the config tests (tests/config).
 *
 * Tests that need a table get their own path, /dev/shm/rl-config-<pid>-<suite>-<test>, set
 * up by cfg_setup and removed by cfg_teardown: Criterion runs tests in parallel processes.
 */
#ifndef CONFIG_COMMON_H
#define CONFIG_COMMON_H

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "ratelimit.h"

/* This test's table path (valid after cfg_setup). */
static char g_path[256];

static inline void cfg_setup(void)
{
    snprintf(g_path, sizeof(g_path), "/dev/shm/rl-config-%ld-%s-%s", (long)getpid(),
             criterion_current_suite->name, criterion_current_test->name);
    unlink(g_path);
}

static inline void cfg_teardown(void)
{
    unlink(g_path);
}

/* Parse `text` (named "t.conf" in messages); asserts it is valid. */
static inline rl_config *parse_ok(const char *text)
{
    rl_config *c = NULL;
    char *errors = NULL;
    int rc = rl_config_parse(text, strlen(text), "t.conf", &c, &errors);
    cr_assert_eq(rc, 0, "parse: %s\n%s", rl_err_name(rc), errors ? errors : "(no errors)");
    cr_assert_null(errors);
    cr_assert_not_null(c);
    return c;
}

/* Parse `text`, which must be invalid; returns the error lines (caller frees). */
static inline char *parse_bad(const char *text)
{
    rl_config *c = (rl_config *)1;
    char *errors = NULL;
    int rc = rl_config_parse(text, strlen(text), "t.conf", &c, &errors);
    cr_assert_eq(rc, RL_EPARSE, "parse: got %s, expected RL_EPARSE", rl_err_name(rc));
    cr_assert_null(c, "an invalid file yields no config");
    cr_assert_not_null(errors);
    return errors;
}

static inline unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The text must be invalid with exactly one problem, at "t.conf:<where>: ", whose message
 * contains `needle`. */
static inline void expect_error(const char *text, const char *where, const char *needle)
{
    char prefix[64];
    char *errors = parse_bad(text);
    snprintf(prefix, sizeof(prefix), "t.conf:%s: ", where);
    cr_expect_eq(count_lines(errors), 1, "expected one problem for:\n%s\ngot:\n%s", text, errors);
    cr_expect(strncmp(errors, prefix, strlen(prefix)) == 0, "expected '%s...' for:\n%s\ngot: %s",
              prefix, text, errors);
    cr_expect(strstr(errors, needle) != NULL, "expected '%s' in: %s", needle, errors);
    free(errors);
}

/* The canonical text of a policy, for comparing rules. */
static inline const char *rules_of(const struct rl_policy *p, char *buf, size_t len)
{
    rl_policy_format(p, buf, len);
    return buf;
}

/* The canonical text of rule text. */
static inline const char *canonical(const char *rules, char *buf, size_t len)
{
    struct rl_policy p;
    struct rl_parse_error e = {0};
    cr_assert_eq(rl_policy_parse(rules, &p, &e), 0, "'%s': %s", rules, e.message);
    return rules_of(&p, buf, len);
}

/* Open (creating) the table at g_path. */
static inline rl_table *table_at(uint32_t capacity, uint32_t arena_kib)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t = NULL;
    o.path = g_path;
    o.capacity = capacity;
    o.arena_kib = arena_kib;
    int rc = rl_table_open(&o, &t);
    cr_assert_eq(rc, 0, "rl_table_open(%s): %s (%s)", g_path, rl_err_name(rc), rl_errdetail());
    return t;
}

/* Notes from rl_config_apply, one per line. */
struct notes {
    char text[16384];
};

static inline void note_add(void *arg, const char *line)
{
    struct notes *n = arg;
    strlcat(n->text, line, sizeof(n->text));
    strlcat(n->text, "\n", sizeof(n->text));
}

/* Apply; asserts success; returns the notes. */
static inline struct notes *apply_ok(const rl_config *c, rl_table *t)
{
    struct notes *n = calloc(1, sizeof(*n));
    cr_assert_not_null(n);
    int rc = rl_config_apply(c, t, note_add, n);
    cr_assert_eq(rc, 0, "apply: %s (%s)\nnotes:\n%s", rl_err_name(rc), rl_errdetail(), n->text);
    return n;
}

struct found {
    const char *name;
    rl_bucket *bucket;
};

static inline int find_cb(rl_bucket *b, void *arg)
{
    struct found *f = arg;
    if (strcmp(rl_bucket_name(b), f->name) != 0)
        return 0;
    f->bucket = b;
    return 1;
}

/* The bucket or template named `name` in the table (templates cannot be looked up by name),
 * or NULL. */
static inline rl_bucket *find(rl_table *t, const char *name)
{
    struct found f = {name, NULL};
    rl_table_foreach(t, find_cb, &f);
    return f.bucket;
}

/* The table holds `name` with rules `rules` (rule text), parent `parent` (NULL: none), and
 * is a template or not. */
static inline void expect_bucket(rl_table *t, const char *name, const char *rules,
                                 const char *parent, bool is_template)
{
    char want[256], have[256];
    struct rl_bucket_info info;
    rl_bucket *b = find(t, name);
    cr_assert_not_null(b, "no bucket '%s' in the table", name);
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    cr_expect_str_eq(rules_of(&info.policy, have, sizeof(have)),
                     canonical(rules, want, sizeof(want)), "rules of %s", name);
    cr_expect_str_eq(info.parent, parent ? parent : "", "parent of %s", name);
    cr_expect_eq(rl_bucket_is_template(b), is_template, "%s: template or not", name);
}

static inline int count_cb(rl_bucket *b, void *arg)
{
    (void)b;
    (*(unsigned *)arg)++;
    return 0;
}

/* Buckets and templates in the table. */
static inline unsigned bucket_count(rl_table *t)
{
    unsigned n = 0;
    rl_table_foreach(t, count_cb, &n);
    return n;
}

#endif /* CONFIG_COMMON_H */
