/* tests/feedback/fixture.h - one table per test (Criterion runs each test in its own
 * process, so the pid names it), and the helpers the feedback and update tests share. */
#ifndef FEEDBACK_FIXTURE_H
#define FEEDBACK_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "ratelimit.h"

static char path[96];
static rl_table *table;

static inline void open_table(void)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    snprintf(path, sizeof(path), "/dev/shm/rl-test-%s-%ld", FIXTURE_NAME, (long)getpid());
    unlink(path);
    o.path = path;
    cr_assert_eq(rl_table_open(&o, &table), 0, "%s", rl_errdetail());
}

static inline void close_table(void)
{
    rl_table_close(table);
    unlink(path);
}

static inline struct rl_policy policy(const char *text)
{
    struct rl_policy p;
    cr_assert_eq(rl_policy_parse(text, &p, NULL), 0, "%s", text);
    return p;
}

static inline rl_bucket *bucket(const char *name, const char *rules, const char *parent)
{
    struct rl_policy p = policy(rules);
    rl_bucket *b;
    cr_assert_eq(rl_bucket_define(table, name, &p, parent, &b), 0, "%s", rl_errdetail());
    return b;
}

/* Take units one by one until refused: how many the bucket admits now. */
static inline unsigned drain(rl_bucket *b)
{
    unsigned n = 0;
    while (n < 100000 && rl_try_acquire(b, 1, NULL) == 0)
        n++;
    return n;
}

#endif
