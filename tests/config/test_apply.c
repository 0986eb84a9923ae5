/*
 * test_apply.c - applying configs to live tables: creation, live rule switches, no-op
 * re-application, templates and the buckets they made, and every refusal (parent change,
 * capacity, arena, read-only), each of which must leave the table as it was.
 */
#include <sys/stat.h>

#include "fixture.h"

TestSuite(apply, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30);

static struct rl_table_info table_info(rl_table *t)
{
    struct rl_table_info i;
    cr_assert_eq(rl_table_info(t, &i), 0);
    return i;
}

/* Apply `text` to t; asserts success; returns the notes (caller frees). */
static struct notes *apply_text(rl_table *t, const char *text)
{
    rl_config *c = parse_ok(text);
    struct notes *n = apply_ok(c, t);
    rl_config_free(c);
    return n;
}

/* Apply `text` to t, which must fail with `code` and change nothing. */
static void expect_refused(rl_table *t, const char *text, int code, const char *needle)
{
    struct rl_table_info before = table_info(t);
    struct notes n = {""};
    rl_config *c = parse_ok(text);
    int rc = rl_config_apply(c, t, note_add, &n);
    rl_config_free(c);
    cr_expect_eq(rc, code, "apply: got %s, expected %s (%s)", rl_err_name(rc), rl_err_name(code),
                 rl_errdetail());
    cr_expect(strstr(rl_errdetail(), needle) != NULL, "detail '%s' lacks '%s'", rl_errdetail(),
              needle);
    cr_expect_str_eq(n.text, "", "a refused config reports no action");
    struct rl_table_info after = table_info(t);
    cr_expect_eq(after.buckets, before.buckets, "no bucket was created");
    cr_expect_eq(after.arena_used, before.arena_used, "no policy block was allocated");
}

static const char plan[] = "bucket foundry 200/60s\n"
                           "bucket ti 120/1m burst 20\n"
                           "bucket ti/reporting 30/1m parent ti\n"
                           "bucket acme 1000/1h, 100/1m\n"
                           "bucket foundry-try 200/60s dry-run\n"
                           "template tenant/* 200/60s parent acme\n";

Test(apply, creates_buckets_and_templates_parents_first)
{
    rl_table *t = table_at(64, 0);
    struct notes *n = apply_text(t, plan);
    cr_expect_str_eq(n->text, "created foundry 200/1m\n"
                              "created ti 120/1m burst 20\n"
                              "created ti/reporting 30/1m parent ti\n"
                              "created acme 1000/1h, 100/1m\n"
                              "created foundry-try 200/1m dry-run\n"
                              "created template tenant/* 200/1m parent acme\n");
    expect_bucket(t, "foundry", "200/60s", NULL, false);
    expect_bucket(t, "ti", "120/1m burst 20", NULL, false);
    expect_bucket(t, "ti/reporting", "30/1m", "ti", false);
    expect_bucket(t, "acme", "1000/1h, 100/1m", NULL, false);
    expect_bucket(t, "foundry-try", "200/60s dry-run", NULL, false);
    expect_bucket(t, "tenant/*", "200/60s", "acme", true);
    cr_expect_eq(foreach_count(t), 6);
    free(n);
    rl_table_close(t);
}

Test(apply, applying_twice_is_a_no_op)
{
    rl_table *t = table_at(64, 0);
    free(apply_text(t, plan));
    struct rl_table_info before = table_info(t);
    struct notes *n = apply_text(t, plan);
    cr_expect_str_eq(n->text, "unchanged: all of it (this config was applied and the table has "
                              "not changed since)\n");
    struct rl_table_info after = table_info(t);
    cr_expect_eq(after.buckets, before.buckets);
    cr_expect_eq(after.arena_used, before.arena_used);
    free(n);
    rl_table_close(t);
}

Test(apply, changed_rules_switch_live_and_keep_usage)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *a;
    struct rl_bucket_info info;
    free(apply_text(t, "bucket a 10/1m\nbucket b 5/1m\n"));
    cr_assert_eq(rl_bucket_lookup(t, "a", &a), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(rl_try_acquire(a, 1, NULL), 0);
    struct notes *n = apply_text(t, "bucket a 20/1m burst 5\nbucket b 5/1m\n");
    cr_expect_str_eq(n->text, "updated a: 10/1m -> 20/1m burst 5\nunchanged b\n");
    expect_bucket(t, "a", "20/1m burst 5", NULL, false);
    cr_assert_eq(rl_bucket_info(a, &info), 0, "the cached handle stays valid");
    cr_expect_geq(info.rules[0].used, 4, "the 4 units taken carry over");
    free(n);
    rl_table_close(t);
}

Test(apply, a_parent_change_is_refused_and_nothing_changes)
{
    rl_table *t = table_at(16, 0);
    free(apply_text(t, "bucket p 1/s\nbucket q 1/s\nbucket c 1/s parent p\n"));
    expect_refused(t, "bucket p 1/s\nbucket q 1/s\nbucket new 1/s\nbucket c 2/s parent q\n",
                   RL_EEXIST, "bucket 'c' has parent p");
    expect_refused(t, "bucket p 2/s\nbucket c 1/s\n", RL_EEXIST, "the config (line 2) says (none)");
    expect_bucket(t, "p", "1/s", NULL, false);
    expect_bucket(t, "c", "1/s", "p", false);
    cr_expect_null(find(t, "new"));
    rl_table_close(t);
}

Test(apply, too_little_capacity_changes_nothing)
{
    rl_table *t = table_at(3, 0);
    free(apply_text(t, "bucket x 1/s\n"));
    expect_refused(t, "bucket x 1/s\nbucket a 1/s\nbucket b 1/s\nbucket c 1/s\n", RL_EFULL,
                   "has room for 2 more buckets, the config adds 3");
    free(apply_text(t, "bucket x 1/s\nbucket a 1/s\nbucket b 1/s\n"));
    cr_expect_eq(foreach_count(t), 3);
    rl_table_close(t);
}

Test(apply, too_little_arena_changes_nothing)
{
    rl_table *t = table_at(16, 64); /* 64 KiB: a 10000-unit sliding log needs 80000 bytes */
    free(apply_text(t, "bucket small 10/1m\n"));
    expect_refused(t, "bucket small 10/1m\nbucket fits 1/s\nbucket big 10000/1h\n", RL_EFULL,
                   "the config needs 80448 arena bytes");
    expect_refused(t, "bucket small 10000/1h\n", RL_EFULL, "arena bytes");
    expect_bucket(t, "small", "10/1m", NULL, false);
    rl_table_close(t);
}

Test(apply, buckets_not_in_the_config_are_kept_and_reported)
{
    rl_table *t = table_at(16, 0);
    struct rl_policy p;
    cr_assert_eq(rl_policy_parse("5/1m", &p, NULL), 0);
    cr_assert_eq(rl_bucket_define(t, "old/bucket", &p, NULL, NULL), 0);
    cr_assert_eq(rl_template_define(t, "old/*", &p, NULL), 0);
    struct notes *n = apply_text(t, "bucket a 1/s\n");
    cr_expect_str_eq(n->text, "created a 1/1s\n"
                              "kept old/bucket: not in the config\n"
                              "kept template old/*: not in the config\n");
    expect_bucket(t, "old/bucket", "5/1m", NULL, false);
    free(n);
    rl_table_close(t);
}

Test(apply, buckets_made_from_a_template_follow_its_new_rules)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *x, *y, *odd;
    struct rl_policy p;
    free(apply_text(t, "bucket acme 1000/1h\n"
                       "template tenant/* 200/60s parent acme\n"
                       "bucket tenant/vip 1000/1m parent acme\n"));
    cr_assert_eq(rl_bucket_get(t, "tenant/x", &x), 0, "%s", rl_errdetail());
    expect_bucket(t, "tenant/x", "200/60s", "acme", false);
    /* Made by hand under the template's prefix, with another parent: not a follower. */
    cr_assert_eq(rl_policy_parse("7/1m", &p, NULL), 0);
    cr_assert_eq(rl_bucket_define(t, "tenant/odd", &p, NULL, &odd), 0);
    struct notes *n = apply_text(t, "bucket acme 1000/1h\n"
                                    "template tenant/* 100/60s parent acme\n"
                                    "bucket tenant/vip 1000/1m parent acme\n");
    cr_expect_str_eq(n->text, "unchanged acme\n"
                              "updated template tenant/*: 200/1m -> 100/1m\n"
                              "unchanged tenant/vip\n"
                              "updated tenant/x (made from tenant/*): 200/1m -> 100/1m\n"
                              "kept tenant/odd: not in the config\n");
    expect_bucket(t, "tenant/*", "100/60s", "acme", true);
    expect_bucket(t, "tenant/x", "100/60s", "acme", false);
    expect_bucket(t, "tenant/vip", "1000/1m", "acme", false);
    expect_bucket(t, "tenant/odd", "7/1m", NULL, false);
    cr_assert_eq(rl_bucket_get(t, "tenant/y", &y), 0);
    expect_bucket(t, "tenant/y", "100/60s", "acme", false);
    free(n);
    rl_table_close(t);
}

Test(apply, followers_take_the_template_with_the_longest_prefix)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *b;
    free(apply_text(t, "template org/* 10/1m\ntemplate org/eu/* 20/1m\n"));
    cr_assert_eq(rl_bucket_get(t, "org/eu/acme", &b), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_get(t, "org/us", &b), 0, "%s", rl_errdetail());
    expect_bucket(t, "org/eu/acme", "20/1m", NULL, false);
    struct notes *n = apply_text(t, "template org/eu/* 25/1m\ntemplate org/* 15/1m\n");
    cr_expect_str_eq(n->text, "updated template org/eu/*: 20/1m -> 25/1m\n"
                              "updated template org/*: 10/1m -> 15/1m\n"
                              "updated org/eu/acme (made from org/eu/*): 20/1m -> 25/1m\n"
                              "updated org/us (made from org/*): 10/1m -> 15/1m\n");
    expect_bucket(t, "org/eu/acme", "25/1m", NULL, false);
    expect_bucket(t, "org/us", "15/1m", NULL, false);
    free(n);
    rl_table_close(t);
}

Test(apply, new_children_of_existing_parents)
{
    rl_table *t = table_at(16, 0);
    free(apply_text(t, "bucket plan 600/1m burst 100\n"));
    struct notes *n = apply_text(t, "bucket plan 600/1m burst 100\n"
                                    "bucket plan/events 100/1m parent plan\n");
    cr_expect_str_eq(n->text, "unchanged plan\ncreated plan/events 100/1m parent plan\n");
    expect_bucket(t, "plan/events", "100/1m", "plan", false);
    free(n);
    rl_table_close(t);
}

Test(apply, read_only_tables_are_refused)
{
    rl_table *w = table_at(16, 0), *r;
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = g_path;
    o.flags = RL_OPEN_READONLY;
    cr_assert_eq(rl_table_open(&o, &r), 0, "%s", rl_errdetail());
    expect_refused(r, "bucket a 1/s\n", RL_EPERM, "read-only");
    rl_table_close(r);
    rl_table_close(w);
}

Test(apply, notes_are_optional)
{
    rl_table *t = table_at(16, 0);
    rl_config *c = parse_ok("bucket a 1/s\n");
    cr_expect_eq(rl_config_apply(c, t, NULL, NULL), 0);
    cr_expect_eq(rl_config_apply(c, t, NULL, NULL), 0);
    expect_bucket(t, "a", "1/s", NULL, false);
    rl_config_free(c);
    rl_table_close(t);
}

Test(apply, open_table_uses_path_mode_group_and_capacity)
{
    char text[512];
    struct stat st;
    rl_table *t;
    struct rl_table_info info;
    snprintf(text, sizeof(text), "table %s\nmode 0640\ngroup %ld\ncapacity 77\n", g_path,
             (long)getgid());
    rl_config *c = parse_ok(text);
    cr_assert_eq(rl_config_open_table(c, 0, &t), RL_ENOENT, "no RL_OPEN_CREATE: %s",
                 rl_errdetail());
    cr_assert_eq(rl_config_open_table(c, RL_OPEN_CREATE, &t), 0, "%s", rl_errdetail());
    cr_assert_eq(stat(g_path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640);
    cr_expect_eq(st.st_gid, getgid());
    cr_assert_eq(rl_table_info(t, &info), 0);
    cr_expect_eq(info.capacity, 77);
    cr_expect_str_eq(rl_table_path(t), g_path);
    rl_table_close(t);
    rl_config_free(c);
}

Test(apply, open_table_without_a_path_uses_the_environment)
{
    rl_table *t;
    rl_config *c = parse_ok("capacity 9\n");
    setenv("RATELIMIT_TABLE", g_path, 1);
    cr_assert_eq(rl_config_open_table(c, RL_OPEN_CREATE, &t), 0, "%s", rl_errdetail());
    cr_expect_str_eq(rl_table_path(t), g_path);
    rl_table_close(t);
    rl_config_free(c);
}

Test(apply, a_longer_template_the_config_lacks_keeps_its_tenants)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *b;
    struct rl_policy p;
    cr_assert_eq(rl_policy_parse("20/1m", &p, NULL), 0);
    free(apply_text(t, "template org/* 10/1m\n"));
    cr_assert_eq(rl_template_define(t, "org/eu/*", &p, NULL), 0);
    cr_assert_eq(rl_bucket_get(t, "org/eu/acme", &b), 0, "%s", rl_errdetail());
    struct notes *n = apply_text(t, "template org/* 15/1m\n");
    cr_expect_str_eq(n->text, "updated template org/*: 10/1m -> 15/1m\n"
                              "kept template org/eu/*: not in the config\n"
                              "kept org/eu/acme: not in the config\n");
    expect_bucket(t, "org/eu/acme", "20/1m", NULL, false);
    free(n);
    rl_table_close(t);
}

/* A note callback that defines bucket b (as another process would) once a is created. */
struct racer {
    struct notes notes;
    rl_table *t;
    const char *rules, *parent;
};

static void define_b_meanwhile(void *arg, const char *line)
{
    struct racer *r = arg;
    note_add(&r->notes, line);
    if (strcmp(line, "created a 10/1s") == 0)
        cr_assert_eq(define_rc(r->t, "b", r->rules, r->parent), 0);
}

Test(apply, a_bucket_created_meanwhile_is_switched_to_the_config)
{
    rl_table *t = table_at(64, 0);
    struct racer r = {.t = t, .rules = "5/1s"};
    rl_config *c = parse_ok("bucket a 10/1s\nbucket b 20/1s\n");
    int rc = rl_config_apply(c, t, define_b_meanwhile, &r);
    rl_config_free(c);
    cr_assert_eq(rc, 0, "apply: %s (%s)", rl_err_name(rc), rl_errdetail());
    cr_expect_str_eq(r.notes.text,
                     "created a 10/1s\nupdated b (created meanwhile by another process): 20/1s\n");
    expect_bucket(t, "b", "20/1s", NULL, false);
}

Test(apply, a_bucket_created_meanwhile_with_another_parent_is_refused)
{
    rl_table *t = table_at(64, 0);
    struct racer r = {.t = t, .rules = "20/1s", .parent = "a"};
    rl_config *c = parse_ok("bucket a 10/1s\nbucket b 20/1s\n");
    int rc = rl_config_apply(c, t, define_b_meanwhile, &r);
    rl_config_free(c);
    cr_expect_eq(rc, RL_EEXIST, "apply: %s (%s)", rl_err_name(rc), rl_errdetail());
    cr_expect(strstr(rl_errdetail(), "bucket 'b' was created in") != NULL, "%s", rl_errdetail());
}
