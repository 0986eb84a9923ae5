/*
 * test_examples.c - every shipped example config (examples/conf, *.conf) loads, applies to
 * a fresh table, and yields exactly the buckets its vendor page calls for; applying it
 * again changes nothing.
 */
#include <glob.h>

#include "config/global.h"
#include "fixture.h"

TestSuite(examples, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30);

struct want {
    const char *name, *rules, *parent;
    bool is_template;
};

struct example {
    const char *file;
    const struct want *buckets;
    size_t n;
};

#define EXAMPLE(file, list)                                                                        \
    {                                                                                              \
        file, list, sizeof(list) / sizeof(list[0])                                                 \
    }

/* Foundry: 200 per rolling 60 s, one bucket for the whole organization. */
static const struct want foundry[] = {
    {"foundry", "200/60s", NULL, false},
};

/* Thought Industries: two plans (token buckets) and four endpoint categories each. */
static const struct want thought_industries[] = {
    {"ti/standard", "120/1m burst 20", NULL, false},
    {"ti/standard/events", "100/1m", "ti/standard", false},
    {"ti/standard/users", "60/1m", "ti/standard", false},
    {"ti/standard/courses", "60/1m", "ti/standard", false},
    {"ti/standard/reporting", "30/1m", "ti/standard", false},
    {"ti/enterprise", "600/1m burst 100", NULL, false},
    {"ti/enterprise/events", "100/1m", "ti/enterprise", false},
    {"ti/enterprise/users", "60/1m", "ti/enterprise", false},
    {"ti/enterprise/courses", "60/1m", "ti/enterprise", false},
    {"ti/enterprise/reporting", "30/1m", "ti/enterprise", false},
};

/* Hourly plans with a per-minute burst allowance, and three endpoint limits. */
static const struct want hourly_plans[] = {
    {"hourly/professional", "1000/1h, 100/1m", NULL, false},
    {"hourly/professional/export", "10/1h", "hourly/professional", false},
    {"hourly/professional/bulk", "20/1h", "hourly/professional", false},
    {"hourly/professional/search", "100/1h", "hourly/professional", false},
    {"hourly/enterprise", "10000/1h, 500/1m", NULL, false},
    {"hourly/enterprise/export", "10/1h", "hourly/enterprise", false},
    {"hourly/enterprise/bulk", "20/1h", "hourly/enterprise", false},
    {"hourly/enterprise/search", "100/1h", "hourly/enterprise", false},
};

/* Foil: one bucket per organization and key type, made on first use. */
static const struct want foil[] = {
    {"foil/pk/*", "120/1m", NULL, true},
    {"foil/sk/*", "600/1m", NULL, true},
};

/* Data Innovations: three tiers, GET and POST each a token bucket. */
static const struct want data_innovations[] = {
    {"data-innovations/tier-one/get", "1/60s burst 1", NULL, false},
    {"data-innovations/tier-one/post", "1/17s burst 1", NULL, false},
    {"data-innovations/tier-two/get", "1/4s burst 1", NULL, false},
    {"data-innovations/tier-two/post", "1/4s burst 1", NULL, false},
    {"data-innovations/tier-three/get", "4/1s burst 4", NULL, false},
    {"data-innovations/tier-three/post", "1/1s burst 4", NULL, false},
};

/* Foundry from several hosts: one global rule, its Redis and the hosts' local share. */
static const struct want foundry_several_hosts[] = {
    {"foundry", "200/60s global lease 10", NULL, false},
};

static const struct example examples[] = {
    EXAMPLE("foundry.conf", foundry),
    EXAMPLE("thought-industries.conf", thought_industries),
    EXAMPLE("hourly-plans.conf", hourly_plans),
    EXAMPLE("foil.conf", foil),
    EXAMPLE("data-innovations.conf", data_innovations),
    EXAMPLE("foundry-several-hosts.conf", foundry_several_hosts),
};

#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

static rl_config *load(const char *file)
{
    char path[512];
    rl_config *c = NULL;
    char *errors = NULL;
    snprintf(path, sizeof(path), "%s/%s", EXAMPLES_DIR, file);
    int rc = rl_config_load(path, &c, &errors);
    cr_assert_eq(rc, 0, "%s: %s (%s)\n%s", path, rl_err_name(rc), rl_errdetail(),
                 errors ? errors : "");
    return c;
}

/* Load, apply to a fresh table, check the table holds exactly the expected buckets. */
static void check_example(const struct example *ex)
{
    rl_config *c = load(ex->file);
    rl_table *t = table_at(rl_config_table(c)->capacity, 0);
    free(apply_ok(c, t));
    for (size_t i = 0; i < ex->n; i++)
        expect_bucket(t, ex->buckets[i].name, ex->buckets[i].rules, ex->buckets[i].parent,
                      ex->buckets[i].is_template);
    cr_expect_eq(foreach_count(t), ex->n, "%s: exactly the expected buckets", ex->file);
    struct rl_table_info before, after;
    rl_table_info(t, &before);
    struct notes *n = apply_ok(c, t);
    rl_table_info(t, &after);
    cr_expect_eq(after.arena_used, before.arena_used, "%s: applied twice", ex->file);
    cr_expect_eq(strstr(n->text, "created") || strstr(n->text, "updated"), NULL,
                 "%s applied twice: %s", ex->file, n->text);
    free(n);
    rl_table_close(t);
    rl_config_free(c);
    unlink(g_path);
}

Test(examples, every_shipped_file_is_checked)
{
    glob_t g;
    cr_assert_eq(glob(EXAMPLES_DIR "/*.conf", 0, NULL, &g), 0, "no examples in %s", EXAMPLES_DIR);
    cr_expect_eq(g.gl_pathc, NEXAMPLES, "every example has expectations here");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *base = strrchr(g.gl_pathv[i], '/') + 1;
        bool known = false;
        for (size_t j = 0; j < NEXAMPLES; j++)
            known |= strcmp(base, examples[j].file) == 0;
        cr_expect(known, "%s has no expectations in test_examples.c", base);
    }
    globfree(&g);
}

Test(examples, foundry)
{
    check_example(&examples[0]);
}

Test(examples, thought_industries)
{
    check_example(&examples[1]);
}

Test(examples, hourly_plans)
{
    check_example(&examples[2]);
}

Test(examples, foil)
{
    check_example(&examples[3]);
}

Test(examples, data_innovations)
{
    check_example(&examples[4]);
}

/* Foil's templates make one bucket per organization and key type on first use. */
Test(examples, foil_buckets_per_organization)
{
    rl_config *c = load("foil.conf");
    rl_table *t = table_at(64, 0);
    rl_bucket *pk, *sk, *again;
    free(apply_ok(c, t));
    cr_assert_eq(rl_bucket_get(t, "foil/pk/org_1:eu", &pk), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_get(t, "foil/sk/org_1:eu", &sk), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_get(t, "foil/pk/org_1:eu", &again), 0);
    cr_expect_eq(again, pk, "one bucket per organization and key type");
    expect_bucket(t, "foil/pk/org_1:eu", "120/1m", NULL, false);
    expect_bucket(t, "foil/sk/org_1:eu", "600/1m", NULL, false);
    rl_table_close(t);
    rl_config_free(c);
}

/* The Data Innovations page: with 1 per 4 s and burst 1, two requests within 3 s are never
 * both admitted. */
Test(examples, data_innovations_tier_two_spacing)
{
    rl_config *c = load("data-innovations.conf");
    rl_table *t = table_at(64, 0);
    rl_bucket *get;
    struct rl_decision d;
    free(apply_ok(c, t));
    cr_assert_eq(rl_bucket_lookup(t, "data-innovations/tier-two/get", &get), 0);
    cr_expect_eq(rl_try_acquire(get, 1, &d), 0, "%s", rl_errdetail());
    cr_expect_eq(rl_try_acquire(get, 1, &d), RL_ELIMITED);
    cr_expect_gt(d.wait_ns, 3000000000ULL, "the next one waits out the 4 s interval");
    rl_table_close(t);
    rl_config_free(c);
}

Test(examples, foundry_several_hosts)
{
    check_example(&examples[5]);
}

/* The agent reads the Redis address and the local share from the file. */
Test(examples, foundry_several_hosts_redis)
{
    rl_config *c = load("foundry-several-hosts.conf");
    const struct rl_redis_url *u = rl__config_global_url(c, "foundry");
    unsigned line;
    cr_assert_not_null(u);
    cr_expect_str_eq(u->shown, "redis://10.0.0.5:6379/0");
    cr_expect_eq(rl__config_global_share(c, &line), 3);
    rl_config_free(c);
}
