/* Live rule switches (src/update.c) and templates. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#include "fixture.h"

static void update(rl_bucket *b, const char *rules)
{
    struct rl_policy p = policy_of(rules);
    cr_assert_eq(rl_bucket_update(b, &p), 0, "%s", rl_errdetail());
}

TestSuite(update, .init = fixture_open, .fini = fixture_close);

Test(update, usage_carries_over_for_every_kind)
{
    const char *kinds[][3] = {
        {"10/1h margin 0", "25/1h margin 0", "5/1h margin 0"},
        {"10/1h burst 10 margin 0", "25/1h burst 25 margin 0", "5/1h burst 5 margin 0"},
        {"10/1h fixed margin 0", "25/1h fixed margin 0", "5/1h fixed margin 0"}};
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof(name), "kind%d", k);
        rl_bucket *b = define(g_table, name, kinds[k][0], NULL);
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
    rl_bucket *b = define(g_table, "acme", "1000/1h, 100/1m margin 0", NULL);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(rl_try_acquire(b, 1, NULL), 0);
    update(b, "1000/1h fixed, 50/1m burst 50 margin 0");
    cr_assert_eq(drain(b), 10, "the minute rule carries the 40 units used");
    update(b, "30/1h margin 0");
    cr_assert_eq(drain(b), 0, "an hour rule carries at least the 50 used");
}

Test(update, same_policy_is_a_no_op)
{
    rl_bucket *b = define(g_table, "same", "10/1m", NULL);
    cr_assert_eq(drain(b), 10);
    uint64_t before = rl__load_acquire(&b->rec->policy_off);
    update(b, "10/1m");
    cr_assert_eq(rl__load_acquire(&b->rec->policy_off), before);
    cr_assert_eq(drain(b), 0);
}

Test(update, errors)
{
    rl_bucket *b = define(g_table, "err", "10/1m", NULL);
    struct rl_policy bad = policy_of("10/1m");
    bad.rules[0].limit = 0;
    cr_assert_eq(rl_bucket_update(b, &bad), RL_EPARSE);
    cr_assert_eq(rl_bucket_update(b, NULL), RL_EPARSE);
}

/* A switch whose switcher died after publishing the new block (S2) is finished by others. */
Test(update, an_abandoned_switch_is_finished_by_the_next_one)
{
    rl_bucket *b = define(g_table, "abandoned", "10/1h margin 0", NULL);
    cr_assert_eq(drain(b), 10);
    struct rl_policy loose = policy_of("20/1h margin 0");
    uint64_t off, zero = 0;
    struct policy_view old;
    cr_assert_eq(rl__bucket_view(b, &old), 0);
    cr_assert_eq(rl__block_create(g_table, &loose, 0, RL_UNINIT, b->no + 1, &off), 0);
    ((struct shm_policy *)(g_table->arena + rl__ref_off(off)))->carry_at = rl__clock_rel(g_table);
    cr_assert(rl__cas_acq_rel(&old.block->next_off, &zero, off)); /* S2 done; S3-S5 never ran */
    cr_assert_eq(rl_try_acquire(b, 1, NULL), RL_ELIMITED, "the old rules still hold");
    update(b, "30/1h margin 0"); /* finishes the abandoned switch, then its own */
    cr_assert_eq(drain(b), 20, "10 used carry through both switches");
}

struct adm_log {
    atomic_uint n;
    atomic_uint done; /* set by the parent after its last switch */
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
 * usage restarts its window at each switch, so flips are spaced beyond the window (a
 * sleep only ever lasts longer on a busy machine). The deciders stop when the parent is
 * done (or after 30 s). After a quiet window the last rules admit their whole limit. */
Test(update, switching_under_load_never_over_admits, .timeout = 60)
{
    rl_bucket *b = define(g_table, "flip", "20/200ms margin 0", NULL);
    struct adm_log *log = shared_alloc(sizeof(*log));
    uint64_t stop = rl_now_ns() + 30 * NS_PER_SEC;
    for (int i = 0; i < 8; i++)
        if (fork() == 0) {
            struct rl_decision d;
            while (!atomic_load(&log->done) && rl_now_ns() < stop)
                if (rl_try_acquire(b, 1, &d) == 0) {
                    unsigned k = atomic_fetch_add(&log->n, 1);
                    if (k < 20000)
                        log->at[k] = d.at_ns;
                }
            _exit(0);
        }
    for (int flips = 0; flips < 8; flips++) {
        update(b, flips % 2 ? "20/200ms margin 0" : "10/200ms margin 0");
        usleep(250000);
    }
    atomic_store(&log->done, 1);
    while (wait(NULL) > 0)
        ;
    unsigned n = log->n < 20000 ? log->n : 20000;
    qsort(log->at, n, sizeof(log->at[0]), cmp_u64);
    unsigned most = most_in_window(log->at, n, 200000000ULL);
    cr_assert(most <= 20, "%u admitted within 200 ms; the looser rule allows 20", most);
    usleep(250000); /* a whole window without admissions */
    cr_assert_eq(admit_run(b, 20), 20, "the last rules (20/200ms) admit 20 after a quiet window");
}

Test(update, templates_make_buckets_on_first_use)
{
    struct rl_policy p = policy_of("3/1h margin 0");
    rl_bucket *a, *again, *deep;
    define(g_table, "plan", "5/1h margin 0", NULL);
    cr_assert_eq(rl_template_define(g_table, "tenant/*", &p, "plan"), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_template_define(g_table, "tenant/*", &p, "plan"), 0, "idempotent");
    cr_assert_eq(rl_bucket_get(g_table, "tenant/acme", &a), 0, "%s", rl_errdetail());
    cr_assert_not(rl_bucket_is_template(a));
    cr_assert_str_eq(rl_bucket_name(rl_bucket_parent(a)), "plan");
    cr_assert_eq(drain(a), 3);
    cr_assert_eq(rl_bucket_get(g_table, "tenant/acme", &again), 0);
    cr_assert_eq(again, a, "the same bucket, not a second one");
    struct rl_policy q = policy_of("1/1h margin 0");
    cr_assert_eq(rl_template_define(g_table, "tenant/big/*", &q, NULL), 0);
    cr_assert_eq(rl_bucket_get(g_table, "tenant/big/x", &deep), 0);
    cr_assert_eq(drain(deep), 1, "the longest matching template wins");
    cr_assert_eq(rl_bucket_get(g_table, "other/x", &a), RL_ENOENT);
    cr_assert_eq(rl_template_define(g_table, "tenant", &p, NULL), RL_ENAME);
    cr_assert_eq(rl_template_define(g_table, "/*", &p, NULL), RL_ENAME);
    cr_assert_eq(rl_template_define(g_table, "a b/*", &p, NULL), RL_ENAME);
    cr_assert_eq(rl_bucket_lookup(g_table, "tenant/*", &a), 0, "a template is found by pattern");
    cr_assert(rl_bucket_is_template(a));
    cr_assert_eq(rl_try_acquire(a, 1, NULL), RL_EINVAL, "a template admits nothing itself");
}

Test(update, concurrent_first_use_makes_one_bucket)
{
    struct rl_policy p = policy_of("50/1h margin 0");
    cr_assert_eq(rl_template_define(g_table, "org/*", &p, NULL), 0);
    for (int i = 0; i < 8; i++)
        if (fork() == 0) {
            rl_bucket *b;
            int bad = 0;
            for (int k = 0; k < 50; k++) {
                char name[32];
                snprintf(name, sizeof(name), "org/%d", k);
                bad |= rl_bucket_get(g_table, name, &b) != 0 || rl_try_acquire(b, 1, NULL) != 0;
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
        cr_assert_eq(rl_bucket_lookup(g_table, name, &b), 0);
        cr_assert_eq(rl_bucket_info(b, &info), 0);
        cr_assert_eq(info.rules[0].used, 8, "%s: one bucket shared by all 8 processes", name);
    }
}
