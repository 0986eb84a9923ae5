/*
 * test_lease.c - the global rule's lease (rule_lease.c): a decision admits only units the
 * agent put in the lease, only before the lease's end, and takes them by CAS with the
 * bucket's other rules; a refill replaces the whole word; reset drops the lease.
 *
 * Deterministic: leases last an hour, or have already ended.
 */
#include <pthread.h>
#include <time.h>

#include "fixture.h"
#include "rule.h"

static rl_table *T;

static void lease_fini(void)
{
    rl_table_close(T);
    T = NULL;
    fixture_teardown();
}

TestSuite(lease, .init = fixture_setup, .fini = lease_fini, .timeout = 30);

static rl_bucket *bucket(const char *name, const char *policy, const char *parent)
{
    if (!T)
        T = table_create(16);
    return define(T, name, policy, parent);
}

static struct lease_ref ref_of(rl_bucket *b)
{
    struct lease_ref ref;
    cr_assert_eq(rl__lease_find(b, &ref), 0);
    return ref;
}

/* Put a lease of `units` ending `for_ns` after now (0: already ended) in b's word. */
static void grant(rl_bucket *b, uint64_t units, uint64_t for_ns)
{
    struct lease_ref ref = ref_of(b);
    uint64_t now = rl__clock_rel(T), old = rl__load_acquire(ref.word);
    uint64_t until = for_ns ? now + for_ns : (now > RL_TICK_NS ? now - RL_TICK_NS : 0);
    cr_assert(rl__lease_swap(&ref, &old, rl__lease_word(units, until)));
}

static int try1(rl_bucket *b, uint32_t cost)
{
    struct rl_decision d;
    int rc = rl_try_acquire(b, cost, &d);
    cr_assert(rc == 0 || rc == RL_ELIMITED, "%s (%s)", rl_err_name(rc), rl_errdetail());
    return rc;
}

Test(lease, parse_format_and_limits)
{
    struct rl_policy p = policy_of("200/60s global lease 10");
    cr_assert_eq(p.rules[0].kind, RL_GLOBAL);
    cr_assert_eq(p.rules[0].burst, 10);
    char text[128];
    rl_policy_format(&p, text, sizeof(text));
    cr_assert_str_eq(text, "200/1m global lease 10");
    p = policy_of("200/60s global");
    cr_assert_eq(p.rules[0].burst, 20, "default lease: N/10");
    p = policy_of("5/1s global");
    cr_assert_eq(p.rules[0].burst, 1);
    struct rl_parse_error e;
    cr_assert_eq(rl_policy_parse("200/60s global lease 201", &p, &e), RL_EPARSE);
    cr_assert(strstr(e.message, "lease 201 is out of range"), "%s", e.message);
    cr_assert_eq(rl_policy_parse("200/500ms global", &p, &e), RL_EPARSE);
    cr_assert(strstr(e.message, "at least 1s"), "%s", e.message);
    cr_assert_eq(rl_policy_parse("200/60s global lease", &p, &e), RL_EPARSE);
}

Test(lease, no_lease_admits_nothing)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    struct rl_decision d;
    cr_assert_eq(rl_try_acquire(b, 1, &d), RL_ELIMITED);
    cr_assert_eq(d.wait_ns, NS_PER_H / RL_LEASE_PARTS, "retry after a lease's length");
}

Test(lease, admits_exactly_the_leased_units)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    grant(b, 7, NS_PER_H);
    for (unsigned i = 0; i < 7; i++)
        cr_assert_eq(try1(b, 1), 0, "unit %u of 7", i + 1);
    cr_assert_eq(try1(b, 1), RL_ELIMITED);
    grant(b, 5, NS_PER_H);
    cr_assert_eq(try1(b, 3), 0);
    cr_assert_eq(try1(b, 3), RL_ELIMITED, "2 left, cost 3");
    cr_assert_eq(try1(b, 2), 0);
    struct lease_ref ref = ref_of(b);
    cr_assert_eq(rl__lease_left(rl__load_acquire(ref.word)), 0);
}

Test(lease, an_ended_lease_admits_nothing)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    grant(b, 40, 0);
    cr_assert_eq(try1(b, 1), RL_ELIMITED);
    struct lease_ref ref = ref_of(b);
    cr_assert_eq(rl__lease_left(rl__load_acquire(ref.word)), 40, "nothing taken");
}

Test(lease, committed_with_the_other_rules)
{
    rl_bucket *p = bucket("p", "3/1h", NULL);
    rl_bucket *b = bucket("g", "200/1h global lease 50, 100/1h", "p");
    grant(b, 10, NS_PER_H);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(try1(b, 1), 0);
    cr_assert_eq(try1(b, 1), RL_ELIMITED, "the parent's 3/1h");
    struct lease_ref ref = ref_of(b);
    cr_assert_eq(rl__lease_left(rl__load_acquire(ref.word)), 7, "a refused request takes none");
    rl_bucket_reset(p);
    cr_assert_eq(try1(b, 1), 0);
}

Test(lease, dry_run_admits_without_a_lease)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50 dry-run", NULL);
    cr_assert_eq(try1(b, 1), 0);
    struct rl_bucket_info info;
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    cr_assert_eq(info.counters.dry_run_rejected, 1);
}

Test(lease, reset_drops_the_lease)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    grant(b, 9, NS_PER_H);
    cr_assert_eq(rl_bucket_reset(b), 0);
    cr_assert_eq(try1(b, 1), RL_ELIMITED, "a reset creates no units");
}

Test(lease, info_shows_the_lease)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    grant(b, 9, NS_PER_H);
    cr_assert_eq(try1(b, 2), 0);
    struct rl_bucket_info info;
    cr_assert_eq(rl_bucket_info(b, &info), 0);
    cr_assert_eq(info.rules[0].remaining, 7);
    cr_assert_eq(info.rules[0].rule.kind, RL_GLOBAL);
}

Test(lease, a_switch_starts_without_a_lease)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    grant(b, 9, NS_PER_H);
    struct rl_policy p = policy_of("300/1h global lease 50");
    cr_assert_eq(rl_bucket_update(b, &p), 0, "%s", rl_errdetail());
    cr_assert_eq(try1(b, 1), RL_ELIMITED, "the old lease's units are not carried");
    grant(b, 1, NS_PER_H);
    cr_assert_eq(try1(b, 1), 0);
}

static void *grant_later(void *arg)
{
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    grant(arg, 1, NS_PER_H);
    return NULL;
}

Test(lease, a_blocking_acquire_waits_for_the_agent)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    struct rl_decision d;
    uint64_t before = rl_now_ns();
    cr_assert_eq(rl_acquire(b, 1, 30 * NS_PER_MS, &d), RL_ETIMEDOUT);
    cr_assert_geq(rl_now_ns() - before, 30 * NS_PER_MS, "it waited, in pauses, to its deadline");
    pthread_t th;
    pthread_create(&th, NULL, grant_later, b);
    uint64_t start = rl_now_ns();
    cr_assert_eq(rl_acquire(b, 1, NS_PER_H, &d), 0, "admitted once the lease came");
    uint64_t took = rl_now_ns() - start;
    pthread_join(th, NULL);
    /* Pauses for the lease are a wait, not refusals: one timed out, one waited. */
    struct rl_counters c = info_of(b).counters;
    cr_expect_eq(c.rejected, 1, "rejected %" PRIu64 ": one per acquire that timed out", c.rejected);
    cr_expect_eq(c.waited, 1, "the acquire that got the lease waited");
    cr_expect(c.waited_ns > 0 && c.waited_ns <= took, "waited %" PRIu64 " ns of %" PRIu64,
              c.waited_ns, took);
    cr_assert_eq(try1(b, 1), RL_ELIMITED, "it took the one unit");
}

/* The agent found X's lease; before it read the word, X was deleted and its block reused
 * by Y, at the same address. The agent's reads and writes through X's lease refuse: it
 * never takes Y's word for X's, and never writes it. */
Test(lease, a_lease_whose_block_was_reused_by_another_bucket_is_refused)
{
    rl_bucket *x = bucket("x", "200/1h global lease 50", NULL);
    grant(x, 9, NS_PER_H);
    struct lease_ref rx = ref_of(x);
    cr_assert_eq(rl_bucket_delete(x), 0, "%s", rl_errdetail());
    rl_bucket *y = bucket("y", "200/1h global lease 50", NULL);
    grant(y, 5, NS_PER_H);
    struct lease_ref ry = ref_of(y);
    cr_assert_eq(ry.word, rx.word, "y was given x's block");
    uint64_t w = 12345, yw = rl__load_acquire(ry.word);
    cr_expect_eq(rl__lease_load(&rx, &w), RL_ENOENT, "x's lease is gone, not y's");
    cr_expect_eq(w, 12345, "nothing read");
    uint64_t expected = yw; /* even with y's exact word as the expected value */
    cr_expect_not(rl__lease_swap(&rx, &expected, rl__lease_word(40, rl__clock_rel(T) + NS_PER_H)));
    cr_expect(expected & RL_FROZEN, "the swap says the block is no longer x's");
    cr_expect_eq(rl__load_acquire(ry.word), yw, "y's word untouched");
    cr_expect_not(rl__lease_same(&rx, &ry), "the same address, another lease");
    cr_expect_eq(rl__lease_find(x, &rx), RL_ENOENT, "x is deleted");
    cr_expect_eq(drain(y), 5, "y's own lease, whole");
}

/* A bucket switched away from its block and back into it (reused, a new generation): the
 * word's address is the one the agent saw, but the lease is not. */
Test(lease, a_reused_block_is_another_lease)
{
    rl_bucket *b = bucket("g", "200/1h global lease 50", NULL);
    struct lease_ref first = ref_of(b);
    struct rl_policy wide = policy_of("300/1h global lease 50"),
                     back = policy_of("200/1h global lease 50");
    cr_assert_eq(rl_bucket_update(b, &wide), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_update(b, &back), 0, "%s", rl_errdetail());
    struct lease_ref now = ref_of(b);
    cr_assert_eq(now.word, first.word, "the first block was reused");
    cr_expect_not(rl__lease_same(&first, &now), "a new generation: another lease");
    uint64_t w;
    cr_expect_eq(rl__lease_load(&first, &w), RL_ENOENT);
    cr_expect_eq(rl__lease_load(&now, &w), 0);
    cr_expect_eq(w, 0, "the new block starts without a lease");
    cr_expect(rl__lease_same(&now, &now));
}
