/*
 * test_digest.c - the table remembers the config last applied: applying it again returns
 * at once, until a define, template define or update changes the table; tenants and resets
 * leave it; an apply that fails or dies midway leaves no claim.
 */
#include <sys/wait.h>

#include "fixture.h"

TestSuite(digest, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30);

#define APPLIED (1ULL << 63)

static const char fast[] =
    "unchanged: all of it (this config was applied and the table has not changed since)\n";

static const char plan[] = "bucket acme 1000/1h\n"
                           "template tenant/* 200/60s parent acme\n"
                           "bucket ti 120/1m burst 20\n";

static const char plan_full[] = "unchanged acme\n"
                                "unchanged template tenant/*\n"
                                "unchanged ti\n";

static uint64_t digest_of(rl_table *t)
{
    struct rl_table_info i;
    cr_assert_eq(rl_table_info(t, &i), 0);
    return i.applied_digest;
}

/* Apply `text`, whatever the notes. */
static void apply_quiet(rl_table *t, const char *text)
{
    rl_config *c = parse_ok(text);
    free(apply_ok(c, t));
    rl_config_free(c);
}

/* Apply `text`; the notes must be `want`. */
static void apply_expect(rl_table *t, const char *text, const char *want)
{
    rl_config *c = parse_ok(text);
    struct notes *n = apply_ok(c, t);
    cr_expect_str_eq(n->text, want);
    free(n);
    rl_config_free(c);
}

static struct rl_policy policy(const char *text)
{
    struct rl_policy p;
    cr_assert_eq(rl_policy_parse(text, &p, NULL), 0);
    return p;
}

Test(digest, a_new_table_knows_no_config_and_an_apply_sets_it)
{
    rl_table *t = table_at(16, 0);
    cr_expect_eq(digest_of(t), 0);
    apply_quiet(t, plan);
    cr_expect(digest_of(t) & APPLIED, "digest %#llx", (unsigned long long)digest_of(t));
    rl_table_close(t);
}

Test(digest, the_same_config_again_takes_the_fast_path_and_changes_nothing)
{
    rl_table *t = table_at(16, 0);
    struct rl_table_info before, after;
    rl_config *c = parse_ok(plan);
    free(apply_ok(c, t));
    uint64_t d = digest_of(t);
    cr_assert_eq(rl_table_info(t, &before), 0);
    apply_expect(t, plan, fast);
    cr_assert_eq(rl_table_info(t, &after), 0);
    cr_expect_eq(after.buckets, before.buckets);
    cr_expect_eq(after.arena_used, before.arena_used);
    cr_expect_eq(after.applied_digest, d, "the fast path leaves the word as it was");
    rl_config_free(c);
    rl_table_close(t);
}

Test(digest, comments_spacing_order_and_routes_do_not_change_the_digest)
{
    rl_table *t = table_at(16, 0);
    apply_expect(t, plan,
                 "created acme 1000/1h\n"
                 "created template tenant/* 200/1m parent acme\n"
                 "created ti 120/1m burst 20\n");
    apply_expect(t,
                 "# the same buckets, another file\n"
                 "bucket ti   120/1m burst 20   # moved up\n"
                 "bucket acme 1000/1h\n"
                 "template tenant/* 200/1m parent acme\n"
                 "route 192.0.2.7:443 ti\n",
                 fast);
    rl_table_close(t);
}

Test(digest, another_config_does_the_full_work)
{
    rl_table *t = table_at(16, 0);
    apply_quiet(t, plan);
    uint64_t d = digest_of(t);
    apply_expect(t, "bucket acme 1000/1h\n",
                 "unchanged acme\n"
                 "kept template tenant/*: not in the config\n"
                 "kept ti: not in the config\n");
    cr_expect(digest_of(t) & APPLIED);
    cr_expect_neq(digest_of(t), d);
    rl_table_close(t);
}

Test(digest, a_define_between_two_applies_makes_the_second_do_the_full_work)
{
    rl_table *t = table_at(16, 0);
    struct rl_policy p = policy("5/1m");
    apply_quiet(t, plan);
    cr_assert_eq(rl_bucket_define(t, "tenant/hand", &p, NULL, NULL), 0);
    cr_expect_eq(digest_of(t) & APPLIED, 0, "a define forgets the config");
    char want[512];
    snprintf(want, sizeof(want), "%skept tenant/hand: not in the config\n", plan_full);
    apply_expect(t, plan, want);
    cr_expect(digest_of(t) & APPLIED, "the full apply sets it again");
    apply_expect(t, plan, fast);
    rl_table_close(t);
}

Test(digest, an_update_or_a_template_define_makes_the_next_apply_do_the_full_work)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *b;
    struct rl_policy p = policy("7/1m");
    apply_quiet(t, plan);
    cr_assert_eq(rl_bucket_lookup(t, "ti", &b), 0);
    cr_assert_eq(rl_bucket_update(b, &p), 0);
    cr_expect_eq(digest_of(t) & APPLIED, 0, "an update forgets the config");
    apply_expect(t, plan,
                 "unchanged acme\n"
                 "unchanged template tenant/*\n"
                 "updated ti: 7/1m -> 120/1m burst 20\n");
    cr_assert_eq(rl_template_define(t, "other/*", &p, NULL), 0);
    cr_expect_eq(digest_of(t) & APPLIED, 0, "a template define forgets the config");
    char want[512];
    snprintf(want, sizeof(want), "%skept template other/*: not in the config\n", plan_full);
    apply_expect(t, plan, want);
    rl_table_close(t);
}

Test(digest, tenants_resets_and_defines_of_what_exists_leave_it)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *x, *acme;
    struct rl_policy p = policy("1000/1h");
    apply_quiet(t, plan);
    uint64_t d = digest_of(t);
    cr_assert_eq(rl_bucket_get(t, "tenant/x", &x), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_define(t, "acme", &p, NULL, &acme), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_try_acquire(acme, 1, NULL), 0);
    cr_assert_eq(rl_bucket_reset(acme), 0);
    cr_expect_eq(digest_of(t), d);
    apply_expect(t, plan, fast);
    rl_table_close(t);
}

Test(digest, a_failed_apply_leaves_no_claim)
{
    rl_table *t = table_at(16, 0);
    apply_quiet(t, plan);
    rl_config *bad = parse_ok("bucket acme 1000/1h\nbucket ti 120/1m burst 20 parent acme\n");
    cr_assert_neq(rl_config_apply(bad, t, NULL, NULL), 0, "a parent change is refused");
    cr_expect_eq(digest_of(t) & APPLIED, 0);
    apply_expect(t, plan, plan_full);
    rl_config_free(bad);
    rl_table_close(t);
}

/* Note callback of an apply killed midway: the process dies after its first change. */
static void die(void *arg, const char *line)
{
    (void)arg;
    (void)line;
    _exit(0);
}

Test(digest, an_apply_killed_midway_leaves_no_claim)
{
    rl_table *t = table_at(16, 0);
    apply_quiet(t, plan);
    rl_config *next = parse_ok("bucket acme 2000/1h\n"
                               "template tenant/* 200/60s parent acme\n"
                               "bucket ti 240/1m burst 20\n");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        rl_config_apply(next, t, die, NULL); /* exits after updating acme */
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect_eq(digest_of(t) & APPLIED, 0, "digest %#llx", (unsigned long long)digest_of(t));
    apply_expect(t, plan,
                 "updated acme: 2000/1h -> 1000/1h\n"
                 "unchanged template tenant/*\n"
                 "unchanged ti\n");
    rl_config_free(next);
    rl_table_close(t);
}

/* Note callback standing for another process: on the first note, while the apply runs,
 * it switches `acme` through an attachment of its own. */
static void meddle(void *arg, const char *line)
{
    rl_bucket **acme = arg;
    struct rl_policy p = policy("3/1m");
    (void)line;
    if (*acme)
        cr_assert_eq(rl_bucket_update(*acme, &p), 0);
    *acme = NULL;
}

Test(digest, a_change_during_an_apply_keeps_it_from_claiming_the_config)
{
    rl_table *t = table_at(16, 0), *other = table_at(16, 0);
    rl_bucket *ti, *acme;
    struct rl_policy p = policy("9/1m");
    rl_config *c = parse_ok(plan);
    free(apply_ok(c, t));
    cr_assert_eq(rl_bucket_lookup(t, "ti", &ti), 0);
    cr_assert_eq(rl_bucket_update(ti, &p), 0);
    cr_assert_eq(rl_bucket_lookup(other, "acme", &acme), 0);
    cr_assert_eq(rl_config_apply(c, t, meddle, &acme), 0, "%s", rl_errdetail());
    cr_expect_null(acme, "the change was made during the apply");
    cr_expect_eq(digest_of(t) & APPLIED, 0, "digest %#llx", (unsigned long long)digest_of(t));
    apply_expect(t, plan,
                 "updated acme: 3/1m -> 1000/1h\n"
                 "unchanged template tenant/*\n"
                 "unchanged ti\n");
    cr_expect(digest_of(t) & APPLIED);
    rl_config_free(c);
    rl_table_close(other);
    rl_table_close(t);
}
