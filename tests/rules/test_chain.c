/*
 * test_chain.c - buckets with parents: all-or-nothing decisions across the chain, depth
 * limit, unknown parents, redefinition.
 */
#include <pthread.h>

#include "fixture.h"

static rl_table *T;

static void chain_init(void)
{
    fixture_setup();
    T = NULL;
}

static void chain_fini(void)
{
    rl_table_close(T);
    T = NULL;
    fixture_teardown();
}

TestSuite(chain, .init = chain_init, .fini = chain_fini, .timeout = 50);

static rl_table *table(void)
{
    if (!T)
        T = table_create(64);
    return T;
}

static int try_cost(rl_bucket *b, uint32_t cost, struct rl_decision *d)
{
    int rc = rl_try_acquire(b, cost, d);
    cr_assert(rc == 0 || rc == RL_ELIMITED, "try_acquire(%s, %u): %s (%s)", rl_bucket_name(b), cost,
              rl_err_name(rc), rl_errdetail());
    return rc;
}

/* ------------------------------------------------------------ all or nothing */

Test(chain, child_and_parent_all_or_nothing)
{
    rl_bucket *plan = define(table(), "plan", "3/1h", NULL);
    rl_bucket *ep = define(table(), "plan/ep", "2/1h", "plan");
    rl_bucket *ep2 = define(table(), "plan/ep2", "5/1h", "plan");
    struct rl_decision d;

    cr_expect_eq(rl_bucket_parent(ep), plan);
    cr_expect_null(rl_bucket_parent(plan));

    cr_assert_eq(try_cost(ep, 1, &d), 0);
    cr_assert_eq(try_cost(ep, 1, &d), 0);
    cr_expect_eq(used_of(ep, 0), 2);
    cr_expect_eq(used_of(plan, 0), 2, "a child's admission is taken from the parent too");
    cr_expect_eq(d.remaining, 0, "the tightest rule of the chain (the child's) is exhausted");

    /* The child refuses: nothing is taken from the parent. */
    cr_expect_eq(try_cost(ep, 1, &d), RL_ELIMITED);
    cr_expect_eq(used_of(ep, 0), 2);
    cr_expect_eq(used_of(plan, 0), 2, "a request the child refused took from the parent");

    /* The parent has 1 left: ep2 gets it, then the parent refuses and ep2 keeps its 4. */
    cr_assert_eq(try_cost(ep2, 1, &d), 0);
    cr_expect_eq(used_of(plan, 0), 3);
    cr_expect_eq(try_cost(ep2, 1, &d), RL_ELIMITED);
    cr_expect_gt(d.wait_ns, NS_PER_H / 2, "the parent's wait is reported");
    cr_expect_eq(used_of(ep2, 0), 1, "a request the parent refused took from the child");
    cr_expect_eq(used_of(plan, 0), 3);

    /* The parent itself is exhausted too. */
    cr_expect_eq(try_cost(plan, 1, &d), RL_ELIMITED);

    struct rl_bucket_info pi = info_of(plan), ei = info_of(ep), e2 = info_of(ep2);
    cr_expect_eq(pi.counters.admitted, 3, "admissions through children are counted");
    cr_expect_eq(pi.counters.rejected, 1, "refusals are counted on the requested bucket only");
    cr_expect_eq(ei.counters.admitted, 2);
    cr_expect_eq(ei.counters.rejected, 1);
    cr_expect_eq(e2.counters.admitted, 1);
    cr_expect_eq(e2.counters.rejected, 1);
    cr_expect_str_eq(ei.parent, "plan");
    cr_expect_str_eq(pi.parent, "");
}

Test(chain, costs_are_all_or_nothing)
{
    rl_bucket *parent = define(table(), "p", "5/1h", NULL);
    rl_bucket *child = define(table(), "c", "10/1h", "p");
    struct rl_decision d;
    cr_assert_eq(try_cost(child, 3, &d), 0);
    cr_expect_eq(try_cost(child, 3, &d), RL_ELIMITED, "the parent has only 2 left");
    cr_expect_eq(d.remaining, 2);
    cr_expect_eq(used_of(child, 0), 3, "the child gave back nothing it did not take");
    cr_expect_eq(used_of(parent, 0), 3);
    cr_assert_eq(try_cost(child, 2, &d), 0);
    cr_expect_eq(used_of(child, 0), 5);
    cr_expect_eq(used_of(parent, 0), 5);
    /* More than the parent can ever admit. */
    cr_expect_eq(rl_try_acquire(child, 6, &d), RL_ECOST);
    cr_expect_eq(rl_acquire(child, 6, NS_PER_SEC, &d), RL_ECOST);
    cr_expect_eq(used_of(child, 0), 5);
}

Test(chain, mixed_kinds_and_several_rules)
{
    rl_bucket *top = define(table(), "top", "100/366d fixed, 10/1h burst 10 margin 0", NULL);
    rl_bucket *mid = define(table(), "top/mid", "6/1h", "top");
    rl_bucket *leaf =
        define(table(), "top/mid/leaf", "4/1h burst 4, 8/366d fixed margin 0", "top/mid");
    struct rl_decision d;
    cr_expect_eq(admit_run(leaf, 10), 4, "the leaf's GCRA rule limits to 4");
    cr_expect_eq(admit_run(mid, 10), 2, "mid has 6, 4 of them used through the leaf");
    cr_expect_eq(try_cost(leaf, 1, &d), RL_ELIMITED);
    struct rl_bucket_info t = info_of(top), m = info_of(mid), l = info_of(leaf);
    cr_expect_eq(t.rules[0].used, 6);
    cr_expect_eq(t.rules[1].used, 6);
    cr_expect_eq(m.rules[0].used, 6);
    cr_expect_eq(l.rules[0].used, 4);
    cr_expect_eq(l.rules[1].used, 4, "refusals took nothing from the leaf's fixed rule");
    cr_expect_eq(t.counters.admitted, 6);
    cr_expect_eq(t.counters.admitted_units, 6);
}

Test(chain, reset_is_per_bucket)
{
    rl_bucket *parent = define(table(), "p", "4/1h", NULL);
    rl_bucket *child = define(table(), "c", "2/1h", "p");
    cr_expect_eq(admit_run(child, 5), 2);
    cr_assert_eq(rl_bucket_reset(child), 0);
    cr_expect_eq(used_of(child, 0), 0);
    cr_expect_eq(used_of(parent, 0), 2, "resetting the child must not reset the parent");
    cr_expect_eq(admit_run(child, 5), 2);
    cr_expect_eq(used_of(parent, 0), 4);
    cr_assert_eq(rl_bucket_reset(child), 0);
    cr_expect_eq(admit_run(child, 5), 0, "the parent is exhausted");
    cr_assert_eq(rl_bucket_reset(parent), 0);
    cr_expect_eq(admit_run(child, 5), 2);
    cr_expect_eq(info_of(parent).counters.resets, 1);
    cr_expect_eq(info_of(child).counters.resets, 2);
}

Test(chain, dry_run_parent_does_not_enforce)
{
    rl_bucket *parent = define(table(), "p", "1/1h dry-run", NULL);
    rl_bucket *child = define(table(), "c", "3/1h", "p");
    struct rl_decision d;
    cr_assert_eq(try_cost(child, 1, &d), 0);
    cr_expect_not(d.dry_run_rejected);
    cr_assert_eq(try_cost(child, 1, &d), 0);
    cr_expect(d.dry_run_rejected, "the parent would have refused");
    cr_assert_eq(try_cost(child, 1, &d), 0);
    cr_expect_eq(try_cost(child, 1, &d), RL_ELIMITED, "the child still enforces");
    cr_expect_eq(info_of(parent).counters.dry_run_rejected, 2, "requests 2 and 3");
    cr_expect_eq(info_of(parent).counters.admitted, 3);
    cr_expect_eq(info_of(child).counters.dry_run_rejected, 0);

    /* A dry-run child under an enforcing parent: the parent enforces. */
    rl_bucket *strict = define(table(), "strict", "2/1h", NULL);
    rl_bucket *dry = define(table(), "strict/dry", "1/1h dry-run", "strict");
    cr_expect_eq(admit_run(dry, 5), 2);
    cr_expect_eq(info_of(dry).counters.dry_run_rejected, 1);
    cr_expect_eq(used_of(strict, 0), 2);
}

struct hammer {
    rl_bucket *b;
    unsigned admitted;
};

static void *hammer_run(void *p)
{
    struct hammer *h = p;
    for (unsigned i = 0; i < 3000; i++) {
        int rc = rl_try_acquire(h->b, 1 + i % 2, NULL);
        if (rc == 0)
            h->admitted += 1 + i % 2;
        else if (rc != RL_ELIMITED)
            h->admitted += 1000000; /* makes the test fail */
    }
    return NULL;
}

Test(chain, contention_never_over_admits)
{
    /* Four threads on two children of one parent: the parent's limit holds exactly, the
     * children's too, and every admitted unit is counted in each bucket's window. */
    rl_bucket *parent = define(table(), "p", "60/1h, 50/1h burst 50 margin 0", NULL);
    rl_bucket *a = define(table(), "a", "40/1h", "p");
    rl_bucket *b = define(table(), "b", "40/1h", "p");
    struct hammer h[4] = {{a, 0}, {b, 0}, {a, 0}, {b, 0}};
    pthread_t th[4];
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    for (unsigned i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    unsigned on_a = h[0].admitted + h[2].admitted, on_b = h[1].admitted + h[3].admitted;
    cr_expect_leq(on_a, 40);
    cr_expect_leq(on_b, 40);
    cr_expect_leq(on_a + on_b, 50, "the parent's GCRA admitted %u of 50", on_a + on_b);
    cr_expect_geq(on_a + on_b, 1);
    struct rl_bucket_info pi = info_of(parent), ai = info_of(a), bi = info_of(b);
    cr_expect_eq(pi.counters.admitted_units, on_a + on_b);
    cr_expect_eq(ai.counters.admitted_units, on_a);
    cr_expect_eq(bi.counters.admitted_units, on_b);
    /* Lost races may leave units counted (under-admission), never fewer than admitted. */
    cr_expect_geq(ai.rules[0].used, on_a);
    cr_expect_geq(bi.rules[0].used, on_b);
    cr_expect_geq(pi.rules[0].used, on_a + on_b);
    cr_expect_geq(pi.rules[1].used, on_a + on_b);
}

/* ------------------------------------------------------------ definitions */

Test(chain, depth_limit)
{
    define(table(), "l1", "10/1h", NULL);
    define(table(), "l1/l2", "10/1h", "l1");
    define(table(), "l1/l2/l3", "10/1h", "l1/l2");
    rl_bucket *l4 = define(table(), "l1/l2/l3/l4", "10/1h", "l1/l2/l3");
    cr_expect_eq(define_rc(table(), "l1/l2/l3/l4/l5", "10/1h", "l1/l2/l3/l4"), RL_ECYCLE);
    cr_expect(strstr(rl_errdetail(), "at most 4"), "%s", rl_errdetail());
    rl_bucket *x;
    cr_expect_eq(rl_bucket_lookup(table(), "l1/l2/l3/l4/l5", &x), RL_ENOENT);
    unsigned depth = 0;
    for (rl_bucket *b = l4; b; b = rl_bucket_parent(b))
        depth++;
    cr_expect_eq(depth, RL_MAX_DEPTH);
    cr_expect_eq(admit_run(l4, 20), 10);
    cr_expect_eq(used_of(l4, 0), 10);
    struct rl_table_info i;
    rl_table_info(table(), &i);
    cr_expect_eq(i.buckets, 4);
}

Test(chain, unknown_parent)
{
    cr_expect_eq(define_rc(table(), "orphan", "10/1h", "nobody"), RL_ENOENT);
    cr_expect(strstr(rl_errdetail(), "nobody"), "%s", rl_errdetail());
    rl_bucket *x;
    cr_expect_eq(rl_bucket_lookup(table(), "orphan", &x), RL_ENOENT, "nothing was created");
    int rc = define_rc(table(), "orphan", "10/1h", "bad//name");
    cr_expect(rc == RL_ENOENT || rc == RL_ENAME, "%s", rl_err_name(rc));
    cr_expect_eq(define_rc(table(), "orphan", "10/1h", ""), RL_ENOENT);
    struct rl_table_info i;
    rl_table_info(table(), &i);
    cr_expect_eq(i.buckets, 0);
}

Test(chain, define_twice)
{
    rl_bucket *a = define(table(), "tenant/acme", "200/60s", NULL);
    cr_expect_eq(define(table(), "tenant/acme", "200/60s", NULL), a, "same policy, same handle");
    cr_expect_eq(define(table(), "tenant/acme", "200/1m", NULL), a, "same policy, other text");
    cr_expect_eq(define(table(), "tenant/acme", "200/60000ms margin 20ms", NULL), a);

    cr_expect_eq(define_rc(table(), "tenant/acme", "201/60s", NULL), RL_EEXIST);
    cr_expect(strstr(rl_errdetail(), "tenant/acme"), "%s", rl_errdetail());
    cr_expect_eq(define_rc(table(), "tenant/acme", "200/61s", NULL), RL_EEXIST);
    cr_expect_eq(define_rc(table(), "tenant/acme", "200/60s fixed", NULL), RL_EEXIST);
    cr_expect_eq(define_rc(table(), "tenant/acme", "200/60s burst 200", NULL), RL_EEXIST);
    cr_expect_eq(define_rc(table(), "tenant/acme", "200/60s margin 0", NULL), RL_EEXIST);
    cr_expect_eq(define_rc(table(), "tenant/acme", "200/60s dry-run", NULL), RL_EEXIST);
    cr_expect_eq(define_rc(table(), "tenant/acme", "200/60s, 10/1s", NULL), RL_EEXIST);

    rl_bucket *g = define(table(), "g", "10/1s burst 5", NULL);
    cr_expect_eq(define(table(), "g", "10/1s burst 5", NULL), g);
    cr_expect_eq(define_rc(table(), "g", "10/1s burst 6", NULL), RL_EEXIST);

    /* Parents must match too. */
    define(table(), "p1", "10/1h", NULL);
    define(table(), "p2", "10/1h", NULL);
    rl_bucket *c = define(table(), "c", "5/1h", "p1");
    cr_expect_eq(define(table(), "c", "5/1h", "p1"), c);
    cr_expect_eq(define_rc(table(), "c", "5/1h", "p2"), RL_EEXIST);
    cr_expect_eq(define_rc(table(), "c", "5/1h", NULL), RL_EEXIST);
    cr_expect_eq(define_rc(table(), "tenant/acme", "200/60s", "p1"), RL_EEXIST);

    struct rl_table_info i;
    rl_table_info(table(), &i);
    cr_expect_eq(i.buckets, 5, "redefinitions created nothing");

    /* Another attachment finds the same bucket: it shares the state. */
    rl_table *other = table_create(64);
    rl_bucket *a2 = define(other, "tenant/acme", "200/60s", NULL);
    cr_assert_eq(rl_try_acquire(a2, 7, NULL), 0);
    cr_expect_eq(used_of(a, 0), 7);
    rl_table_close(other);
}

Test(chain, define_argument_errors)
{
    struct rl_policy p = policy_of("1/1h");
    rl_bucket *b;
    cr_expect_eq(rl_bucket_define(table(), "bad name", &p, NULL, &b), RL_ENAME);
    cr_expect_eq(rl_bucket_define(table(), "", &p, NULL, &b), RL_ENAME);
    cr_expect_eq(rl_bucket_define(table(), NULL, &p, NULL, &b), RL_ENAME);
    cr_expect_eq(rl_bucket_define(table(), "ok", NULL, NULL, &b), RL_EPARSE);
    struct rl_policy bad = p;
    bad.rules[0].limit = 0;
    cr_expect_eq(rl_bucket_define(table(), "ok", &bad, NULL, &b), RL_EPARSE);
    cr_expect(strstr(rl_errdetail(), "ok"), "%s", rl_errdetail());
    bad = p;
    bad.nrules = 9;
    cr_expect_eq(rl_bucket_define(table(), "ok", &bad, NULL, &b), RL_EPARSE);
    cr_expect_eq(rl_bucket_lookup(table(), "ok", &b), RL_ENOENT);
    cr_expect_eq(rl_bucket_lookup(table(), "bad name", &b), RL_ENAME);
    /* `out` may be NULL. */
    cr_expect_eq(rl_bucket_define(table(), "ok", &p, NULL, NULL), 0);
    cr_expect_eq(rl_bucket_lookup(table(), "ok", &b), 0);
    cr_expect_str_eq(rl_bucket_name(b), "ok");
}
