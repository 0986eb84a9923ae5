/*
 * test_reuse.c - arena space a rule switch leaves is reused: a table whose config is switched
 * back and forth stays usable in a bounded arena, and a reused block never answers for the
 * block it replaced (its reference carries a new generation).
 */
#include "fixture.h"

TestSuite(reuse, .init = fixture_setup, .fini = fixture_teardown, .timeout = 120);

static const char config_a[] = "bucket x 10/1m\n"
                               "bucket y 5/1s, 100/1h\n"
                               "bucket z 50/1m sliding\n"
                               "template t/* 7/1m\n";
static const char config_b[] = "bucket x 20/1m burst 5\n"
                               "bucket y 6/1s, 90/1h fixed\n"
                               "bucket z 60/1m sliding\n"
                               "template t/* 8/1m, 70/1h\n";

static uint64_t arena_used(rl_table *t)
{
    struct rl_table_info i;
    cr_assert_eq(rl_table_info(t, &i), 0);
    return i.arena_used;
}

/* Each bucket's blocks under config a and under config b, with their head lines. */
static uint64_t both_blocks(void)
{
    const char *rules[][2] = {{"10/1m", "20/1m burst 5"},
                              {"5/1s, 100/1h", "6/1s, 90/1h fixed"},
                              {"50/1m sliding", "60/1m sliding"},
                              {"7/1m", "8/1m, 70/1h"}};
    uint64_t sum = 0;
    for (unsigned k = 0; k < 4; k++)
        for (unsigned c = 0; c < 2; c++) {
            struct rl_policy p = policy_of(rules[k][c]);
            sum += rl__policy_bytes(&p);
        }
    return sum;
}

static void apply_quiet(const rl_config *c, rl_table *t, unsigned round)
{
    int rc = rl_config_apply(c, t, NULL, NULL);
    cr_assert_eq(rc, 0, "apply %u: %s (%s)", round, rl_err_name(rc), rl_errdetail());
}

/* Before: the 990th switch found the arena full, and the table could never be updated
 * again. Now every block a switch leaves is reused by a later switch of its size. The arena
 * then holds one block of each config per bucket (both_blocks), and not one byte more. */
Test(reuse, alternating_applies_keep_the_arena_bounded)
{
    rl_table *t = table_at(16, 64);
    rl_config *a = parse_ok(config_a), *b = parse_ok(config_b);
    uint64_t bound = both_blocks();
    for (unsigned round = 0; round < 3; round++)
        apply_quiet(round % 2 ? b : a, t, round);
    cr_expect_eq(arena_used(t), bound, "one block of each config per bucket");
    for (unsigned round = 3; round <= 100000; round++) {
        apply_quiet(round % 2 ? b : a, t, round);
        if (arena_used(t) != bound)
            cr_assert_fail("round %u: arena_used %" PRIu64 ", bound %" PRIu64, round, arena_used(t),
                           bound);
    }
    rl_bucket *x;
    cr_assert_eq(rl_bucket_lookup(t, "x", &x), 0);
    cr_expect_eq(drain(x), 10, "config a's rules, the full budget");
    rl_config_free(a);
    rl_config_free(b);
    rl_table_close(t);
}

/* A handle caches the view of its bucket's block. The block, retired and reused for other
 * rules at the same offset, gets a new generation: the handle sees the new rules. */
Test(reuse, a_cached_view_never_answers_for_a_reused_block)
{
    rl_table *t = table_at(16, 64);
    rl_bucket *x = define(t, "x", "3/1h margin 0", NULL);
    cr_assert_eq(drain(x), 3);
    uint64_t first = atomic_load(&x->rec->policy_off);
    cr_assert_eq(rl_bucket_update(x, &(struct rl_policy){0}), RL_EPARSE);
    struct rl_policy wide = policy_of("1000/1h margin 0"), narrow = policy_of("2/1h margin 0");
    cr_assert_eq(rl_bucket_update(x, &wide), 0);
    cr_assert_eq(rl_bucket_update(x, &narrow), 0, "%s", rl_errdetail());
    uint64_t now = atomic_load(&x->rec->policy_off);
    cr_expect_eq(rl__ref_off(now), rl__ref_off(first), "the first block was reused");
    cr_expect_neq(rl__ref_gen(now), rl__ref_gen(first), "under a new generation");
    struct rl_bucket_info i = info_of(x);
    cr_expect_eq(i.policy.rules[0].limit, 2, "the new rules, not the cached ones");
    cr_expect_eq(rl_try_acquire(x, 1, NULL), RL_ELIMITED, "3 used carry into 2/1h");
    rl_table_close(t);
}

/* A stale reference (the old generation) to a reused block is taken for damage. */
Test(reuse, a_stale_reference_is_refused)
{
    rl_table *t = table_at(16, 64);
    rl_bucket *x = define(t, "x", "3/1h margin 0", NULL);
    uint64_t first = atomic_load(&x->rec->policy_off);
    struct rl_policy wide = policy_of("1000/1h margin 0"), narrow = policy_of("2/1h margin 0");
    cr_assert_eq(rl_bucket_update(x, &wide), 0);
    cr_assert_eq(rl_bucket_update(x, &narrow), 0);
    uint64_t now = atomic_load(&x->rec->policy_off);
    cr_assert_eq(rl__ref_off(now), rl__ref_off(first));
    atomic_store(&x->rec->policy_off, first);
    cr_expect_eq(rl_try_acquire(x, 1, NULL), RL_ECORRUPT);
    atomic_store(&x->rec->policy_off, now);
    cr_expect_eq(rl_try_acquire(x, 1, NULL), 0);
    rl_table_close(t);
}

/* A damaged free-list head naming a live block: the block's state says it is in use, so the
 * allocator never hands it out again (it takes a block from the arena's end instead). */
Test(reuse, a_damaged_free_list_never_hands_out_a_live_block)
{
    rl_table *t = table_at(16, 64);
    rl_bucket *live = define(t, "live", "3/1h margin 0", NULL);
    cr_assert_eq(drain(live), 3);
    uint64_t ref = atomic_load(&live->rec->policy_off);
    struct rl_policy p = policy_of("3/1h margin 0");
    unsigned lines = (unsigned)(rl__policy_bytes(&p) / RL_ALIGN);
    uint64_t line = (rl__ref_off(ref) - sizeof(struct shm_block_head)) / RL_ALIGN + 1;
    atomic_store(&t->hdr->free_head[lines], (1ULL << 31) | line);
    rl_bucket *other = define(t, "other", "3/1h margin 0", NULL);
    cr_expect_neq(rl__ref_off(atomic_load(&other->rec->policy_off)), rl__ref_off(ref));
    cr_expect_eq(drain(other), 3, "its own budget");
    cr_expect_eq(rl_try_acquire(live, 1, NULL), RL_ELIMITED, "the live bucket kept its usage");
    rl_table_close(t);
}
