/* Live rule switches (src/update.c) and templates. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define FIXTURE_NAME "update"
#include "fixture.h"

static void update(rl_bucket *b, const char *rules)
{
    struct rl_policy p = policy(rules);
    cr_assert_eq(rl_bucket_update(b, &p), 0, "%s", rl_errdetail());
}

TestSuite(update, .init = open_table, .fini = close_table);

Test(update, usage_carries_over_for_every_kind)
{
    const char *kinds[][3] = {
        {"10/1h margin 0", "25/1h margin 0", "5/1h margin 0"},
        {"10/1h burst 10 margin 0", "25/1h burst 25 margin 0", "5/1h burst 5 margin 0"},
        {"10/1h fixed margin 0", "25/1h fixed margin 0", "5/1h fixed margin 0"}};
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof(name), "kind%d", k);
        rl_bucket *b = bucket(name, kinds[k][0], NULL);
        cr_assert_eq(drain(b), 10, "%s", kinds[k][0]);
        update(b, kinds[k][1]);
        cr_assert_eq(drain(b), 15, "%s: the 10 used stay counted", kinds[k][1]);
        update(b, kinds[k][2]);
        cr_assert_eq(drain(b), 0, "%s: stricter rules admit nothing more", kinds[k][2]);
        struct rl_bucket_info info;
        cr_assert_eq(rl_bucket_info(b, &info), 0);
        cr_assert_eq(info.policy.rules[0].limit, 5);
    }
}

Test(update, across_kinds_and_rule_counts)
{
    rl_bucket *b = bucket("acme", "1000/1h, 100/1m margin 0", NULL);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(rl_try_acquire(b, 1, NULL), 0);
    update(b, "1000/1h fixed, 50/1m burst 50 margin 0");
    cr_assert_eq(drain(b), 10, "the minute rule carries the 40 units used");
    update(b, "30/1h margin 0");
    cr_assert_eq(drain(b), 0, "an hour rule carries at least the 50 used");
}

Test(update, same_policy_is_a_no_op)
{
    rl_bucket *b = bucket("same", "10/1m", NULL);
    cr_assert_eq(drain(b), 10);
    uint64_t before = rl__load_acquire(&b->rec->policy_off);
    update(b, "10/1m");
    cr_assert_eq(rl__load_acquire(&b->rec->policy_off), before);
    cr_assert_eq(drain(b), 0);
}

Test(update, errors)
{
    rl_bucket *b = bucket("err", "10/1m", NULL);
    struct rl_policy bad = policy("10/1m");
    bad.rules[0].limit = 0;
    cr_assert_eq(rl_bucket_update(b, &bad), RL_EPARSE);
    cr_assert_eq(rl_bucket_update(b, NULL), RL_EPARSE);
}

/* A switch whose switcher died after publishing the new block (S2) is finished by others. */
Test(update, an_abandoned_switch_is_finished_by_the_next_one)
{
    rl_bucket *b = bucket("abandoned", "10/1h margin 0", NULL);
    cr_assert_eq(drain(b), 10);
    struct rl_policy loose = policy("20/1h margin 0");
    uint64_t off, zero = 0;
    struct policy_view old;
    cr_assert_eq(rl__bucket_view(b, &old), 0);
    cr_assert_eq(rl__block_create(table, &loose, RL_UNINIT, &off), 0);
    ((struct shm_policy *)(table->arena + off))->carry_at = rl__clock_rel(table);
    cr_assert(rl__cas_acq_rel(&old.block->next_off, &zero, off)); /* S2 done; S3-S5 never ran */
    cr_assert_eq(rl_try_acquire(b, 1, NULL), RL_ELIMITED, "the old rules still hold");
    update(b, "30/1h margin 0"); /* finishes the abandoned switch, then its own */
    cr_assert_eq(drain(b), 20, "10 used carry through both switches");
}

struct adm_log {
    atomic_uint n;
    uint64_t at[20000];
};

static unsigned most_in_window(uint64_t *at, unsigned n, uint64_t period)
{
    unsigned best = 0;
    for (unsigned i = 0, j = 0; i < n; i++) {
        while (at[i] - at[j] >= period)
            j++;
        best = i - j + 1 > best ? i - j + 1 : best;
    }
    return best;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Deciders hammer a bucket while its rules flip between 20 and 10 per 200 ms. Carried
 * usage restarts its window at each switch, so flips are spaced beyond the window. */
Test(update, switching_under_load_never_over_admits, .timeout = 60)
{
    rl_bucket *b = bucket("flip", "20/200ms margin 0", NULL);
    struct adm_log *log =
        mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t stop = rl_now_ns() + 2000000000ULL;
    for (int i = 0; i < 8; i++)
        if (fork() == 0) {
            struct rl_decision d;
            while (rl_now_ns() < stop)
                if (rl_try_acquire(b, 1, &d) == 0) {
                    unsigned k = atomic_fetch_add(&log->n, 1);
                    if (k < 20000)
                        log->at[k] = d.at_ns;
                }
            _exit(0);
        }
    for (int flips = 0; rl_now_ns() < stop; flips++) {
        update(b, flips % 2 ? "20/200ms margin 0" : "10/200ms margin 0");
        usleep(250000);
    }
    while (wait(NULL) > 0)
        ;
    unsigned n = log->n < 20000 ? log->n : 20000;
    qsort(log->at, n, sizeof(log->at[0]), cmp_u64);
    cr_assert(n > 40, "the bucket kept admitting (%u)", n);
    unsigned most = most_in_window(log->at, n, 200000000ULL);
    cr_assert(most <= 20, "%u admitted within 200 ms; the looser rule allows 20", most);
}

Test(update, templates_make_buckets_on_first_use)
{
    struct rl_policy p = policy("3/1h margin 0");
    rl_bucket *a, *again, *deep;
    bucket("plan", "5/1h margin 0", NULL);
    cr_assert_eq(rl_template_define(table, "tenant/*", &p, "plan"), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_template_define(table, "tenant/*", &p, "plan"), 0, "idempotent");
    cr_assert_eq(rl_bucket_get(table, "tenant/acme", &a), 0, "%s", rl_errdetail());
    cr_assert_not(rl_bucket_is_template(a));
    cr_assert_str_eq(rl_bucket_name(rl_bucket_parent(a)), "plan");
    cr_assert_eq(drain(a), 3);
    cr_assert_eq(rl_bucket_get(table, "tenant/acme", &again), 0);
    cr_assert_eq(again, a, "the same bucket, not a second one");
    struct rl_policy q = policy("1/1h margin 0");
    cr_assert_eq(rl_template_define(table, "tenant/big/*", &q, NULL), 0);
    cr_assert_eq(rl_bucket_get(table, "tenant/big/x", &deep), 0);
    cr_assert_eq(drain(deep), 1, "the longest matching template wins");
    cr_assert_eq(rl_bucket_get(table, "other/x", &a), RL_ENOENT);
    cr_assert_eq(rl_template_define(table, "tenant", &p, NULL), RL_ENAME);
    cr_assert_eq(rl_template_define(table, "/*", &p, NULL), RL_ENAME);
    cr_assert_eq(rl_template_define(table, "a b/*", &p, NULL), RL_ENAME);
    cr_assert_eq(rl_bucket_lookup(table, "tenant/*", &a), 0, "a template is found by pattern");
    cr_assert(rl_bucket_is_template(a));
    cr_assert_eq(rl_try_acquire(a, 1, NULL), RL_EINVAL, "a template admits nothing itself");
}

Test(update, concurrent_first_use_makes_one_bucket)
{
    struct rl_policy p = policy("50/1h margin 0");
    cr_assert_eq(rl_template_define(table, "org/*", &p, NULL), 0);
    for (int i = 0; i < 8; i++)
        if (fork() == 0) {
            rl_bucket *b;
            int bad = 0;
            for (int k = 0; k < 50; k++) {
                char name[32];
                snprintf(name, sizeof(name), "org/%d", k);
                bad |= rl_bucket_get(table, name, &b) != 0 || rl_try_acquire(b, 1, NULL) != 0;
            }
            _exit(bad);
        }
    int status, failed = 0;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    cr_assert_eq(failed, 0);
    for (int k = 0; k < 50; k++) {
        char name[32];
        rl_bucket *b;
        struct rl_bucket_info info;
        snprintf(name, sizeof(name), "org/%d", k);
        cr_assert_eq(rl_bucket_lookup(table, name, &b), 0);
        cr_assert_eq(rl_bucket_info(b, &info), 0);
        cr_assert_eq(info.rules[0].used, 8, "%s: one bucket shared by all 8 processes", name);
    }
}
