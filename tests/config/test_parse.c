/*
 * test_parse.c - the config file parser: every statement of the grammar, the defaults, and
 * one test per kind of problem, each reported as "file:line:col: message".
 */
#include <grp.h>
#include <sys/stat.h>

#include "config/global.h"
#include "fixture.h"

TestSuite(parse, .timeout = 30);

/* ------------------------------------------------------------ valid files */

static const char full[] = "# comment to end of line; blank lines ignored; one statement per line\n"
                           "table /dev/shm/ratelimit        # the shared table path\n"
                           "mode 0660\n"
                           "group 0\n"
                           "capacity 4096\n"
                           "\n"
                           "bucket foundry        200/60s\n"
                           "bucket ti             120/1m burst 20\n"
                           "bucket ti/reporting   30/1m parent ti\n"
                           "bucket acme           1000/1h, 100/1m\n"
                           "bucket foundry-try    200/60s dry-run\n"
                           "template tenant/*     200/60s parent acme\n"
                           "route api.foundry.example:443  foundry  wait 10s on-timeout pass\n"
                           "route 192.0.2.7:443 foundry\n"
                           "route [2001:db8::1]:443 ti on-timeout fail wait 0 count connections\n"
                           "route 10.0.0.0/8:8443 acme count requests\n"
                           "route [2001:db8::/32]:443 tenant/x\n"
                           "shim fail-closed\n"
                           "resolve-every 1m\n";

Test(parse, full_grammar_table_and_shim)
{
    rl_config *c = parse_ok(full);
    const struct rl_config_table *t = rl_config_table(c);
    cr_expect_str_eq(t->path, "/dev/shm/ratelimit");
    cr_expect_eq(t->mode, 0660);
    cr_expect_eq(t->group, 0);
    cr_expect_eq(t->capacity, 4096);
    cr_expect(rl_config_shim(c)->fail_closed);
    cr_expect_eq(rl_config_shim(c)->resolve_every_ns, 60 * NS_PER_SEC);
    rl_config_free(c);
}

Test(parse, full_grammar_buckets)
{
    static const struct {
        const char *name, *rules, *parent;
        bool is_template;
        unsigned line;
    } want[] = {
        {"foundry", "200/60s", NULL, false, 7},
        {"ti", "120/1m burst 20", NULL, false, 8},
        {"ti/reporting", "30/1m", "ti", false, 9},
        {"acme", "1000/1h, 100/1m", NULL, false, 10},
        {"foundry-try", "200/60s dry-run", NULL, false, 11},
        {"tenant/*", "200/60s", "acme", true, 12},
    };
    char a[256], b[256];
    const struct rl_config_bucket *bs;
    rl_config *c = parse_ok(full);
    cr_assert_eq(rl_config_buckets(c, &bs), sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_expect_str_eq(bs[i].name, want[i].name);
        cr_expect_str_eq(rules_of(&bs[i].policy, a, sizeof(a)),
                         canonical(want[i].rules, b, sizeof(b)));
        if (want[i].parent)
            cr_expect_str_eq(bs[i].parent, want[i].parent);
        else
            cr_expect_null(bs[i].parent, "%s has no parent", want[i].name);
        cr_expect_eq(bs[i].is_template, want[i].is_template);
        cr_expect_eq(bs[i].line, want[i].line, "%s: line", want[i].name);
    }
    rl_config_free(c);
}

Test(parse, full_grammar_routes)
{
    static const struct rl_route want[] = {
        {"api.foundry.example", 0, 443, "foundry", 10 * NS_PER_SEC, RL_ROUTE_PASS, 13,
         RL_COUNT_CONNECTIONS},
        {"192.0.2.7", 32, 443, "foundry", 30 * NS_PER_SEC, RL_ROUTE_FAIL, 14, RL_COUNT_CONNECTIONS},
        {"2001:db8::1", 128, 443, "ti", 0, RL_ROUTE_FAIL, 15, RL_COUNT_CONNECTIONS},
        {"10.0.0.0/8", 8, 8443, "acme", 30 * NS_PER_SEC, RL_ROUTE_FAIL, 16, RL_COUNT_REQUESTS},
        {"2001:db8::/32", 32, 443, "tenant/x", 30 * NS_PER_SEC, RL_ROUTE_FAIL, 17,
         RL_COUNT_CONNECTIONS},
    };
    const struct rl_route *r;
    rl_config *c = parse_ok(full);
    cr_assert_eq(rl_config_routes(c, &r), sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_expect_str_eq(r[i].dest, want[i].dest);
        cr_expect_eq(r[i].prefix_len, want[i].prefix_len, "%s: prefix", want[i].dest);
        cr_expect_eq(r[i].port, want[i].port, "%s: port", want[i].dest);
        cr_expect_str_eq(r[i].bucket, want[i].bucket);
        cr_expect_eq(r[i].max_wait_ns, want[i].max_wait_ns, "%s: wait", want[i].dest);
        cr_expect_eq(r[i].on_timeout, want[i].on_timeout, "%s: on-timeout", want[i].dest);
        cr_expect_eq(r[i].line, want[i].line, "%s: line", want[i].dest);
        cr_expect_eq(r[i].count, want[i].count, "%s: count", want[i].dest);
    }
    rl_config_free(c);
}

Test(parse, defaults)
{
    rl_config *c = parse_ok("bucket a 1/s\nroute a.example:443 a\n");
    const struct rl_config_table *t = rl_config_table(c);
    const struct rl_route *r;
    cr_expect_null(t->path, "no 'table': $RATELIMIT_TABLE or the default");
    cr_expect_eq(t->mode, 0600);
    cr_expect_eq(t->group, -1);
    cr_expect_eq(t->capacity, 1024);
    cr_expect_not(rl_config_shim(c)->fail_closed, "the shim fails open by default");
    cr_expect_eq(rl_config_shim(c)->resolve_every_ns, 300 * NS_PER_SEC);
    cr_assert_eq(rl_config_routes(c, &r), 1);
    cr_expect_eq(r[0].max_wait_ns, 30 * NS_PER_SEC);
    cr_expect_eq(r[0].on_timeout, RL_ROUTE_FAIL);
    cr_expect_eq(r[0].count, RL_COUNT_CONNECTIONS, "a route counts connections by default");
    rl_config_free(c);
}

Test(parse, empty_and_comment_only_files_are_valid)
{
    const struct rl_config_bucket *bs;
    rl_config *c = parse_ok("");
    cr_expect_eq(rl_config_buckets(c, &bs), 0);
    rl_config_free(c);
    c = parse_ok("# nothing\n\n   \t# indented comment\n");
    cr_expect_eq(rl_config_buckets(c, NULL), 0);
    rl_config_free(c);
}

Test(parse, blanks_tabs_crlf_and_a_missing_final_newline)
{
    const struct rl_config_bucket *bs;
    rl_config *c = parse_ok("\tbucket\ta\t10/1m burst 5\r\n  bucket b   1/s,\t2/1m  parent a#x");
    cr_assert_eq(rl_config_buckets(c, &bs), 2);
    cr_expect_eq(bs[0].policy.rules[0].burst, 5);
    cr_expect_eq(bs[1].policy.nrules, 2);
    cr_expect_str_eq(bs[1].parent, "a");
    cr_expect_eq(bs[1].line, 2);
    rl_config_free(c);
}

Test(parse, rule_text_options_reach_the_policy)
{
    const struct rl_config_bucket *bs;
    rl_config *c =
        parse_ok("bucket b 5/s\nbucket a 1000/1h fixed, 30/1m margin 50ms dry-run parent b\n");
    cr_assert_eq(rl_config_buckets(c, &bs), 2);
    cr_expect_eq(bs[1].policy.rules[0].kind, RL_FIXED);
    cr_expect_eq(bs[1].policy.margin_ns, 50000000ULL);
    cr_expect(bs[1].policy.flags & RL_POLICY_DRY_RUN);
    cr_expect_str_eq(bs[1].parent, "b");
    rl_config_free(c);
}

Test(parse, a_template_expire_in_either_order_with_parent)
{
    rl_config *c = parse_ok("bucket org 100/1m\n"
                            "template a/* 5/20ms expire 20ms\n"
                            "template b/* 10/1m burst 5 expire 1h parent org\n"
                            "template c/* 10/1m parent org expire 49d\n"
                            "template d/* 10/1m\n");
    const struct rl_config_bucket *bs;
    cr_assert_eq(rl_config_buckets(c, &bs), 5);
    cr_expect_eq(rl_config_bucket_expire(c, 0), 0, "a bucket has none");
    cr_expect_eq(rl_config_bucket_expire(c, 1), 20000000ULL);
    cr_expect_eq(rl_config_bucket_expire(c, 2), 3600ULL * 1000000000ULL);
    cr_expect_str_eq(bs[2].parent, "org");
    cr_expect_eq(bs[2].policy.rules[0].burst, 5);
    cr_expect_eq(rl_config_bucket_expire(c, 3), RL_EXPIRE_MAX_NS);
    cr_expect_str_eq(bs[3].parent, "org");
    cr_expect_eq(rl_config_bucket_expire(c, 4), 0, "no expire: never");
    cr_expect_eq(rl_config_bucket_expire(c, 5), 0, "out of range");
    rl_config_free(c);
}

Test(parse, bad_expire)
{
    static const struct {
        const char *text, *where, *needle;
    } cases[] = {
        {"bucket a 1/s expire 1h\n", "1:14", "'expire' is for templates"},
        {"template t/* 1/s expire\n", "1:24", "expected a duration after 'expire'"},
        {"template t/* 1/s expire 1h expire 2h\n", "1:28", "'expire' is given twice"},
        {"template t/* 1/s expire 1h parent p expire 2h\n", "1:37", "'expire' is given twice"},
        {"template t/* 1/s expire 0s\n", "1:25", "'0s' is out of range: expected 1ms to 49d"},
        {"template t/* 1/s expire 50d\n", "1:25", "'50d' is out of range: expected 1ms to 49d"},
        {"template t/* 1/s expire 1x\n", "1:26", "expected a duration unit"},
        {"template t/* 1/s expire soon\n", "1:25", ""},
        {"template t/* 1/s expire 1h burst 3\n", "1:18", "'expire DURATION' goes after the rules"},
        {"template t/* expire 1h\n", "1:14", "missing rules before 'expire'"},
        {"template t/* 1/s parent a parent b\n", "1:27", "'parent' is given twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].text, cases[i].where, cases[i].needle);
}

Test(parse, parents_come_before_children)
{
    const struct rl_config_bucket *bs;
    rl_config *c = parse_ok("bucket plan 600/1m burst 100\n"
                            "bucket plan/a 100/1m parent plan\n"
                            "bucket plan/a/x 10/1m parent plan/a\n"
                            "bucket plan/a/x/y 1/1m parent plan/a/x\n"
                            "template plan/t/* 5/1m parent plan/a\n");
    size_t n = rl_config_buckets(c, &bs);
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++) {
        bool seen = bs[i].parent == NULL;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(bs[j].name, bs[i].parent) == 0;
        cr_expect(seen, "%s comes before its parent", bs[i].name);
    }
    rl_config_free(c);
}

Test(parse, names_of_63_bytes_and_every_allowed_character)
{
    char text[256];
    const struct rl_config_bucket *bs;
    const char *name63 = "a23456789012345678901234567890123456789012345678901234567890123";
    snprintf(text, sizeof(text), "bucket %s 1/s\nbucket Az09._:@/- 1/s\ntemplate %.61s/* 1/s\n",
             name63, name63);
    rl_config *c = parse_ok(text);
    cr_assert_eq(rl_config_buckets(c, &bs), 3);
    cr_expect_eq(strlen(bs[0].name), 63);
    cr_expect_eq(strlen(bs[2].name), 63);
    rl_config_free(c);
}

Test(parse, group_by_name)
{
    struct group *g = getgrgid(0);
    char text[300];
    cr_assert_not_null(g, "gid 0 has a name");
    snprintf(text, sizeof(text), "group %s\n", g->gr_name);
    rl_config *c = parse_ok(text);
    cr_expect_eq(rl_config_table(c)->group, 0);
    rl_config_free(c);
}

Test(parse, routes_to_buckets_a_template_makes)
{
    const struct rl_route *r;
    rl_config *c = parse_ok("template org/pk/* 120/1m\nroute [::1]:8080 org/pk/acme\n");
    cr_assert_eq(rl_config_routes(c, &r), 1);
    cr_expect_str_eq(r[0].bucket, "org/pk/acme");
    cr_expect_str_eq(r[0].dest, "::1");
    cr_expect_eq(r[0].prefix_len, 128);
    rl_config_free(c);
}

Test(parse, null_errors_pointer_is_allowed)
{
    rl_config *c = (rl_config *)1;
    cr_expect_eq(rl_config_parse("bogus\n", 6, "t.conf", &c, NULL), RL_EPARSE);
    cr_expect_null(c);
    cr_expect(strstr(rl_errdetail(), "t.conf:1:1: unknown keyword 'bogus'") != NULL, "%s",
              rl_errdetail());
    cr_expect_eq(rl_config_parse("bucket a 1/s", 12, NULL, &c, NULL), 0);
    rl_config_free(c);
    rl_config_free(NULL);
}

/* ------------------------------------------------------------ problems */

Test(parse, unknown_keyword)
{
    expect_error("bucket a 1/s\n  buckets b 1/s\n", "2:3", "unknown keyword 'buckets'");
}

Test(parse, bad_duration_in_rules)
{
    expect_error("bucket a  200/60x\n", "1:17", "expected a duration unit");
}

Test(parse, bad_duration_in_statements)
{
    expect_error("resolve-every 5 m\n", "1:17", "expected 'resolve-every DURATION'");
    expect_error("resolve-every 5q\n", "1:16", "expected a duration unit");
    expect_error("resolve-every 0s\n", "1:15", "out of range");
    expect_error("resolve-every 2d\n", "1:15", "out of range");
    expect_error("resolve-every 5m5\n", "1:17", "unexpected '5' after the duration");
    expect_error("bucket a 1/s\nroute a.example:443 a wait 3w\n", "2:29",
                 "expected a duration unit");
    expect_error("bucket a 1/s\nroute a.example:443 a wait 2d\n", "2:28", "at most 1d");
}

Test(parse, zero_limit)
{
    expect_error("bucket a 0/1m\n", "1:10", "a limit of 0 admits nothing");
}

Test(parse, burst_beyond_any_sane_bound)
{
    expect_error("bucket a 10/1m burst 99999999999\n", "1:10", "burst 99999999999 is out of range");
    expect_error("bucket a 10/1m burst 0\n", "1:10", "burst 0 is out of range");
}

Test(parse, rule_errors_point_into_the_rule_text)
{
    /* The burst count is missing: rl_policy_parse says column 15 of "10/1m burst  x",
     * which starts at column 12 of the line. */
    expect_error("bucket  a  10/1m burst  x\n", "1:25", "expected a burst size");
    expect_error("bucket a 1/s, 2/s, 3/s, 4/s, 5/s\n", "1:30", "too many rules");
    expect_error("bucket a 300000/1m\n", "1:10", "sliding window keeps one entry per unit");
    expect_error("bucket b 1/s\nbucket a 10/1m dry-run margin 1s dry-run parent b\n", "2:34",
                 "duplicate 'dry-run': each option is given at most once");
    expect_error("template t/* 10/1m margin 1s margin 2s\n", "1:30", "duplicate 'margin'");
}

Test(parse, duplicate_buckets)
{
    expect_error("bucket a 1/s\nbucket b 1/s\nbucket a 2/s\n", "3:8",
                 "bucket 'a' is already defined at line 1");
    expect_error("template t/* 1/s\n template t/* 1/s\n", "2:11",
                 "template 't/*' is already defined at line 1");
    char *errors = parse_bad("bucket a 1/s\nbucket a 2/s parent a\nbucket b 1/s\nbucket a 3/s\n");
    cr_expect_str_eq(errors, "t.conf:2:8: bucket 'a' is already defined at line 1\n"
                             "t.conf:4:8: bucket 'a' is already defined at line 1\n");
    free(errors);
}

Test(parse, parent_cycles)
{
    expect_error("bucket a 1/s parent a\n", "1:21", "parent cycle: a -> a");
    expect_error("bucket a 1/s parent b\nbucket b 1/s parent a\n", "1:21",
                 "parent cycle: a -> b -> a");
    expect_error("bucket a 1/s parent c\nbucket b 1/s parent a\nbucket c 1/s parent b\n", "1:21",
                 "parent cycle: a -> c -> b -> a");
}

Test(parse, parent_defined_later)
{
    expect_error("bucket child 1/s parent plan\nbucket plan 10/s\n", "1:25",
                 "parent 'plan' is defined later, at line 2: define parents before");
}

Test(parse, unknown_parent)
{
    expect_error("bucket a 1/s\nbucket b 1/s parent nope\n", "2:21", "unknown parent 'nope'");
}

Test(parse, template_as_parent)
{
    expect_error("template t/* 1/s\nbucket b 1/s parent t/*\n", "2:21",
                 "'t/*' is a template pattern: name a bucket here");
}

Test(parse, chain_too_long)
{
    expect_error("bucket a 1/s\nbucket b 1/s parent a\nbucket c 1/s parent b\n"
                 "bucket d 1/s parent c\nbucket e 1/s parent d\n",
                 "5:21", "parent chain too long: e -> d -> c -> b -> a");
}

Test(parse, overlong_names)
{
    const char *name64 = "a234567890123456789012345678901234567890123456789012345678901234";
    char text[256];
    snprintf(text, sizeof(text), "bucket %s 1/s\n", name64);
    expect_error(text, "1:8", "is 64 bytes long: at most 63");
    snprintf(text, sizeof(text), "bucket a 1/s parent %s\n", name64);
    expect_error(text, "1:21", "is 64 bytes long: at most 63");
    snprintf(text, sizeof(text), "template %.62s/* 1/s\n", name64);
    expect_error(text, "1:10", "is 64 bytes long: at most 63");
}

Test(parse, bad_names)
{
    expect_error("bucket bad!name 1/s\n", "1:8", "has '!' at 4");
    expect_error("bucket /a 1/s\n", "1:8", "must not start or end with '/'");
    expect_error("bucket a//b 1/s\n", "1:8", "contain '//'");
    expect_error("bucket t/* 1/s\n", "1:8", "declare it with 'template'");
    expect_error("template tenant 1/s\n", "1:10", "must end in '/*'");
    expect_error("template a$/* 1/s\n", "1:10", "has '$' at 2");
}

Test(parse, routes_to_unknown_buckets)
{
    expect_error("bucket a 1/s\nroute a.example:443 b\n", "2:21", "route to unknown bucket 'b'");
    expect_error("template t/* 1/s\nroute a.example:443 u/x\n", "2:21",
                 "route to unknown bucket 'u/x'");
    expect_error("template t/* 1/s\nroute a.example:443 t/*\n", "2:21", "name a bucket here");
    expect_error("template org/pk/* 1/s\nroute a.example:443 org/acme\n", "2:21",
                 "route to unknown bucket 'org/acme'");
    expect_error("template org/* 1/s\nroute a.example:443 organic\n", "2:21",
                 "route to unknown bucket 'organic'");
    rl_config_free(parse_ok("template org/* 1/s\ntemplate org/pk/* 2/s\nroute a.example:1 "
                            "org/pk/acme\nroute b.example:1 org/zz/q\nroute c.example:1 org/q\n"));
}

Test(parse, bad_ports)
{
    expect_error("bucket a 1/s\nroute a.example:0 a\n", "2:17", "bad port '0'");
    expect_error("bucket a 1/s\nroute a.example:65536 a\n", "2:17", "bad port '65536'");
    expect_error("bucket a 1/s\nroute a.example:https a\n", "2:17", "bad port 'https'");
    expect_error("bucket a 1/s\nroute a.example: a\n", "2:17", "bad port ''");
    expect_error("bucket a 1/s\nroute a.example a\n", "2:16", "missing port");
    expect_error("bucket a 1/s\nroute [::1] a\n", "2:12", "missing port");
}

Test(parse, bad_cidr)
{
    expect_error("bucket a 1/s\nroute 10.0.0.1/8:443 a\n", "2:7",
                 "bits set beyond the prefix (the network is 10.0.0.0/8)");
    expect_error("bucket a 1/s\nroute 10.0.0.0/33:443 a\n", "2:16", "prefix length '33'");
    expect_error("bucket a 1/s\nroute 10.0.0.0/0:443 a\n", "2:16", "prefix length '0'");
    expect_error("bucket a 1/s\nroute 10.0.0.0/x:443 a\n", "2:16", "prefix length 'x'");
    expect_error("bucket a 1/s\nroute 10.0.0/8:443 a\n", "2:7", "bad IPv4 address '10.0.0'");
    expect_error("bucket a 1/s\nroute [2001:db8::1/32]:443 a\n", "2:8",
                 "the network is 2001:db8::/32");
    expect_error("bucket a 1/s\nroute [2001:db8::/129]:443 a\n", "2:19", "prefix length '129'");
    expect_error("bucket a 1/s\nroute [2001:zz::]:443 a\n", "2:8", "bad IPv6 address");
    expect_error("bucket a 1/s\nroute 2001:db8::1:443 a\n", "2:7", "goes in brackets");
    expect_error("bucket a 1/s\nroute [::1:443 a\n", "2:7", "expected ']'");
}

Test(parse, bad_host_names)
{
    expect_error("bucket a 1/s\nroute -a.example:443 a\n", "2:7", "bad host name");
    expect_error("bucket a 1/s\nroute a..example:443 a\n", "2:7", "bad host name");
    expect_error("bucket a 1/s\nroute a_b.example:443 a\n", "2:7", "bad host name");
    expect_error("bucket a 1/s\nroute :443 a\n", "2:7", "missing host");
}

Test(parse, route_options)
{
    expect_error("bucket a 1/s\nroute a.example:443 a wait 1s wait 2s\n", "2:31",
                 "duplicate 'wait'");
    expect_error("bucket a 1/s\nroute a.example:443 a on-timeout maybe\n", "2:34",
                 "expected 'fail' or 'pass'");
    expect_error("bucket a 1/s\nroute a.example:443 a wait\n", "2:27",
                 "missing argument: expected a duration");
    expect_error("bucket a 1/s\nroute a.example:443 a retry 3\n", "2:23",
                 "expected 'wait DURATION', 'on-timeout fail|pass' or 'count "
                 "connections|requests'");
    expect_error("bucket a 1/s\nroute a.example:443 a count bytes\n", "2:29",
                 "unexpected 'bytes': expected 'connections' or 'requests'");
    expect_error("bucket a 1/s\nroute a.example:443 a count\n", "2:28",
                 "missing argument: expected 'connections' or 'requests' after 'count'");
    expect_error("bucket a 1/s\nroute a.example:443 a count requests count connections\n", "2:38",
                 "duplicate 'count'");
    expect_error("bucket a 1/s\nroute a.example:443 a count pass\n", "2:29",
                 "expected 'connections' or 'requests'");
    expect_error("bucket a 1/s\nroute a.example:443 a on-timeout requests\n", "2:34",
                 "expected 'fail' or 'pass'");
    expect_error("bucket a 1/s\nroute a.example:443 a\nroute A.example:443 a\n", "3:7",
                 "route A.example:443 is already defined at line 2");
}

Test(parse, modes)
{
    expect_error("mode 0666\n", "1:6", "world-writable");
    expect_error("mode 0602\n", "1:6", "world-writable");
    expect_error("mode 0755\n", "1:6", "only read and write bits");
    expect_error("mode 0460\n", "1:6", "the owner needs read and write");
    expect_error("mode 0x60\n", "1:6", "expected an octal file mode");
    expect_error("mode 08\n", "1:6", "expected an octal file mode");
    expect_error("mode 00660\n", "1:6", "expected an octal file mode");
}

Test(parse, table_group_capacity_shim)
{
    expect_error("table dev/shm/x\n", "1:7", "must be absolute");
    expect_error("group no-such-group-for-ratelimit-tests\n", "1:7", "unknown group");
    expect_error("group 4294967295\n", "1:7", "bad group id");
    expect_error("capacity 0\n", "1:10", "bad capacity '0'");
    expect_error("capacity 16777217\n", "1:10", "bad capacity");
    expect_error("capacity -1\n", "1:10", "bad capacity");
    expect_error("shim fail-maybe\n", "1:6", "expected 'fail-open' or 'fail-closed'");
}

Test(parse, capacity_below_the_buckets_defined)
{
    expect_error("capacity 2\nbucket a 1/s\nbucket b 1/s\ntemplate c/* 1/s\n", "1:10",
                 "capacity 2 is less than the 3 buckets and templates");
}

Test(parse, missing_arguments)
{
    static const struct {
        const char *text, *where, *needle;
    } cases[] = {
        {"table\n", "1:6", "expected 'table PATH'"},
        {"mode\n", "1:5", "expected 'mode OCTAL'"},
        {"group\n", "1:6", "expected 'group NAME'"},
        {"capacity\n", "1:9", "expected 'capacity BUCKETS'"},
        {"bucket\n", "1:7", "expected 'bucket NAME RULES [parent NAME]'"},
        {"bucket a\n", "1:9", "expected 'bucket NAME RULES [parent NAME]'"},
        {"bucket a 1/s parent\n", "1:20", "expected a bucket name after 'parent'"},
        {"bucket b 1/s\nbucket a parent b\n", "2:10", "missing rules before 'parent'"},
        {"template t/*\n", "1:13",
         "expected 'template PREFIX/* RULES [expire DURATION] [parent NAME]'"},
        {"route\n", "1:6", "expected 'route HOST:PORT BUCKET"},
        {"route a.example:443\n", "1:20", "expected 'route HOST:PORT BUCKET"},
        {"shim\n", "1:5", "expected 'shim fail-open' or 'shim fail-closed'"},
        {"resolve-every\n", "1:14", "expected 'resolve-every DURATION'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].text, cases[i].where, cases[i].needle);
}

Test(parse, extra_arguments)
{
    expect_error("table /a /b\n", "1:10", "unexpected '/b': expected 'table PATH'");
    expect_error("capacity 5 buckets\n", "1:12", "unexpected 'buckets'");
}

Test(parse, duplicate_statements)
{
    static const char *once[] = {"table /a",   "mode 0600",      "group 0",
                                 "capacity 5", "shim fail-open", "resolve-every 1m"};
    for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
        char text[128], needle[64];
        snprintf(text, sizeof(text), "%s\n# again:\n  %s\n", once[i], once[i]);
        snprintf(needle, sizeof(needle), "duplicate '%.*s' statement: already given at line 1",
                 (int)strcspn(once[i], " "), once[i]);
        expect_error(text, "3:3", needle);
    }
}

Test(parse, control_characters_and_nul_bytes)
{
    static const char nul[] = "bucket a 1/s\nbucket b\0 1/s\n";
    rl_config *c = (rl_config *)1;
    char *errors = NULL;
    cr_assert_eq(rl_config_parse(nul, sizeof(nul) - 1, "t.conf", &c, &errors), RL_EPARSE);
    cr_expect_null(c);
    cr_expect_str_eq(errors, "t.conf:2:9: unexpected control character 0x00\n");
    free(errors);
    expect_error("bucket a\x01 1/s\n", "1:9", "unexpected control character 0x01");
    rl_config_free(parse_ok("bucket a 1/s # \x01 anything goes in a comment\n"));
}

Test(parse, too_many_words)
{
    char text[512] = "bucket a 1/s";
    for (int i = 0; i < 62; i++)
        strlcat(text, " x", sizeof(text));
    expect_error(text, "1:136", "too many words: at most 64");
}

/* Every problem of the file, in one pass, in line order, and no config. */
Test(parse, every_problem_in_one_pass)
{
    char *errors = parse_bad("bucket child 1/s parent plan\n" /* 1: defined later */
                             "tabel /x\n"                     /* 2: unknown keyword */
                             "bucket plan 0/1m\n"             /* 3: N = 0 */
                             "mode 0666\n"                    /* 4: world-writable */
                             "bucket plan 1/s\n"              /* 5: duplicate */
                             "route a.example:99999 nobody\n" /* 6: port, unknown bucket */
                             "bucket ok 1/s\n");
    cr_expect_str_eq(errors,
                     "t.conf:1:25: parent 'plan' is defined later, at line 3: define parents "
                     "before their children\n"
                     "t.conf:2:1: unknown keyword 'tabel': expected table, mode, group, "
                     "capacity, bucket, template, route, shim, resolve-every or "
                     "on-global-failure\n"
                     "t.conf:3:13: rule 1: a limit of 0 admits nothing\n"
                     "t.conf:4:6: mode 0666 makes the table world-writable: any local user "
                     "could change or wreck the budget; use 0660 and 'group'\n"
                     "t.conf:5:8: bucket 'plan' is already defined at line 3\n"
                     "t.conf:6:17: bad port '99999': expected a number from 1 to 65535\n");
    free(errors);
    cr_expect(strstr(rl_errdetail(), "t.conf:1:25:") != NULL, "%s", rl_errdetail());
    cr_expect(strstr(rl_errdetail(), "(6 problems in all)") != NULL, "%s", rl_errdetail());
}

/* ------------------------------------------------------------ scale */

#define MANY 200000

/* MANY buckets (every odd one the child of the one before), a template, and MANY routes:
 * route i goes to bucket i, every tenth to a name the template makes. Line of bucket i:
 * i + 3; line of route i: MANY + 3 + i. `extra` is appended. */
static char *many_text(const char *extra)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    fprintf(f, "capacity %u\ntemplate tenant/* 10/s\n", MANY + 1);
    for (unsigned i = 0; i < MANY; i++)
        i % 2 ? fprintf(f, "bucket b%u 10/s parent b%u\n", i, i - 1)
              : fprintf(f, "bucket b%u 10/s\n", i);
    for (unsigned i = 0; i < MANY; i++)
        i % 10 ? fprintf(f, "route h%u.example:%u b%u\n", i, 1 + i % 60000, i)
               : fprintf(f, "route h%u.example:%u tenant/t%u\n", i, 1 + i % 60000, i);
    fputs(extra, f);
    cr_assert_eq(fclose(f), 0);
    return text;
}

/* Bucket lookup, the duplicate checks and the route targets scale past quadratic: this
 * file takes minutes with a linear search per line. */
Test(parse, two_hundred_thousand_buckets_and_routes, .timeout = 120)
{
    const struct rl_config_bucket *b;
    const struct rl_route *r;
    char *text = many_text("");
    rl_config *c = parse_ok(text);
    free(text);
    cr_assert_eq(rl_config_buckets(c, &b), MANY + 1);
    cr_assert_eq(rl_config_routes(c, &r), MANY);
    cr_expect_str_eq(b[MANY].name, "b199999");
    cr_expect_str_eq(b[MANY].parent, "b199998");
    cr_expect_eq(b[MANY].line, MANY + 2);
    cr_expect_str_eq(r[MANY - 1].bucket, "b199999");
    cr_expect_str_eq(r[MANY - 1].dest, "h199999.example");
    cr_expect_eq(r[MANY - 1].line, 2 * MANY + 2);
    rl_config_free(c);
}

/* The same file with a duplicate bucket, a duplicate route (its host in other case) and a
 * route to an unknown bucket at the end: exactly those three, at their lines. The dropped
 * duplicate does not count against the capacity. */
Test(parse, two_hundred_thousand_buckets_and_routes_with_mistakes, .timeout = 120)
{
    char *text = many_text("bucket b123457 5/s\n"
                           "route H123.example:124 b7\n"
                           "route z.example:1 tenant\n");
    char *errors = parse_bad(text);
    free(text);
    cr_expect_str_eq(errors,
                     "t.conf:400003:8: bucket 'b123457' is already defined at line 123460\n"
                     "t.conf:400004:7: route H123.example:124 is already defined at line 200126\n"
                     "t.conf:400005:19: route to unknown bucket 'tenant': define it with 'bucket "
                     "tenant RULES' or a 'template' it matches\n");
    free(errors);
}

/* One parent cycle through MANY buckets, bucket i the child of bucket i + 1: every bucket
 * whose parent comes later is on the cycle, and each is reported once. */
Test(parse, a_parent_cycle_of_two_hundred_thousand_buckets, .timeout = 120)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    fprintf(f, "capacity %u\n", MANY);
    for (unsigned i = 0; i < MANY; i++)
        fprintf(f, "bucket b%u 10/s parent b%u\n", i, (i + 1) % MANY);
    cr_assert_eq(fclose(f), 0);
    char *errors = parse_bad(text);
    free(text);
    cr_expect_eq(count_lines(errors), MANY - 1);
    const char *first = "t.conf:2:23: parent cycle: b0 -> b1 -> b2 -> ";
    cr_expect(strncmp(errors, first, strlen(first)) == 0, "%.200s", errors);
    cr_expect(strstr(errors, "t.conf:200000:28: parent cycle: b199998 -> b199999 -> b0 -> ") !=
              NULL);
    free(errors);
}

/* ------------------------------------------------------------ files */

TestSuite(load, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30);

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(load, a_file_and_its_name_in_messages)
{
    rl_config *c = NULL;
    char *errors = NULL;
    write_file(g_path, "bucket a 1/s\n");
    cr_assert_eq(rl_config_load(g_path, &c, &errors), 0);
    cr_expect_null(errors);
    cr_expect_eq(rl_config_buckets(c, NULL), 1);
    rl_config_free(c);
    write_file(g_path, "bucket a 1/s\nbucket a 1/s\n");
    cr_assert_eq(rl_config_load(g_path, &c, &errors), RL_EPARSE);
    cr_expect_null(c);
    char want[512];
    snprintf(want, sizeof(want), "%s:2:8: bucket 'a' is already defined at line 1\n", g_path);
    cr_expect_str_eq(errors, want);
    free(errors);
}

Test(load, unreadable_files)
{
    rl_config *c = (rl_config *)1;
    char *errors = (char *)1;
    cr_expect_eq(rl_config_load(g_path, &c, &errors), RL_ESYS, "missing file");
    cr_expect_null(c);
    cr_expect_null(errors);
    cr_expect(strstr(rl_errdetail(), g_path) != NULL, "%s", rl_errdetail());
    cr_expect_eq(rl_config_load("/", &c, &errors), RL_ESYS, "a directory");
}

Test(load, oversized_files)
{
    rl_config *c = NULL;
    char *errors = NULL;
    write_file(g_path, "");
    cr_assert_eq(truncate(g_path, (16 << 20) + 1), 0);
    cr_expect_eq(rl_config_load(g_path, &c, &errors), RL_EPARSE);
    cr_expect_null(c);
    cr_assert_not_null(errors);
    cr_expect(strstr(errors, "is larger than 16 MiB") != NULL, "%s", errors);
    free(errors);
}

Test(load, default_path)
{
    rl_config *c = NULL;
    write_file(g_path, "bucket from-env 1/s\n");
    cr_expect_str_eq(rl_config_default_path("/x.conf"), "/x.conf");
    unsetenv("RATELIMIT_CONFIG");
    cr_expect_str_eq(rl_config_default_path(NULL), "/etc/ratelimit.conf");
    setenv("RATELIMIT_CONFIG", g_path, 1);
    cr_expect_str_eq(rl_config_default_path(NULL), g_path);
    const struct rl_config_bucket *bs;
    cr_assert_eq(rl_config_load(NULL, &c, NULL), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_config_buckets(c, &bs), 1);
    cr_expect_str_eq(bs[0].name, "from-env");
    rl_config_free(c);
}

/* ------------------------------------------------------------ global rules: Redis addresses */

Test(parse, global_addresses_are_kept_for_the_agent)
{
    rl_config *c = parse_ok("bucket foundry 200/60s global redis://10.0.0.5:6379/0 lease 10\n"
                            "bucket b 200/60s global redis://u:s%3Acr%40t@[::1]:7000/3, 10/1s\n"
                            "bucket c 100/1m global unix:///run/redis.sock?db=2\n"
                            "bucket d 100/1m global redis+unix://:pw@/tmp/r.sock margin 50ms\n"
                            "bucket e 100/1m global lease 5\n"
                            "template t/* 100/1m global redis://r1/1\n"
                            "template t/x/* 100/1m global redis://r2\n");
    char a[128], b[128];
    const struct rl_config_bucket *bs;
    cr_assert_eq(rl_config_buckets(c, &bs), 7);
    cr_expect_str_eq(rules_of(&bs[0].policy, a, sizeof(a)),
                     canonical("200/60s global lease 10", b, sizeof(b)));
    cr_expect_str_eq(rules_of(&bs[1].policy, a, sizeof(a)),
                     canonical("200/60s global, 10/1s", b, sizeof(b)));
    const struct rl_redis_url *u = rl__config_global_url(c, "foundry");
    cr_assert_not_null(u);
    cr_expect_str_eq(u->host, "10.0.0.5");
    cr_expect_eq(u->port, 6379);
    cr_expect_eq(u->db, 0);
    cr_expect_str_eq(u->password, "");
    u = rl__config_global_url(c, "b");
    cr_assert_not_null(u);
    cr_expect_str_eq(u->host, "::1");
    cr_expect_eq(u->port, 7000);
    cr_expect_eq(u->db, 3);
    cr_expect_str_eq(u->user, "u");
    cr_expect_str_eq(u->password, "s:cr@t");
    cr_expect_str_eq(u->shown, "redis://u:***@[::1]:7000/3", "no password in messages");
    u = rl__config_global_url(c, "c");
    cr_assert_not_null(u);
    cr_expect_str_eq(u->path, "/run/redis.sock");
    cr_expect_eq(u->db, 2);
    u = rl__config_global_url(c, "d");
    cr_assert_not_null(u);
    cr_expect_str_eq(u->path, "/tmp/r.sock");
    cr_expect_str_eq(u->password, "pw");
    cr_expect_null(rl__config_global_url(c, "e"), "no address: the agent's --redis");
    cr_expect_null(rl__config_global_url(c, "nosuch"));
    u = rl__config_global_url(c, "t/acme");
    cr_assert_not_null(u, "a tenant follows its template");
    cr_expect_str_eq(u->host, "r1");
    u = rl__config_global_url(c, "t/x/acme");
    cr_assert_not_null(u, "the longest template prefix");
    cr_expect_str_eq(u->host, "r2");
    unsigned line;
    cr_expect_eq(rl__config_global_share(c, &line), 0);
    cr_expect_eq(line, 0);
    rl_config_free(c);
}

Test(parse, on_global_failure)
{
    unsigned line;
    rl_config *c = parse_ok("bucket a 10/1s global\non-global-failure local N/3\n");
    cr_expect_eq(rl__config_global_share(c, &line), 3);
    cr_expect_eq(line, 2);
    rl_config_free(c);
    c = parse_ok("on-global-failure refuse\n");
    cr_expect_eq(rl__config_global_share(c, &line), 0);
    cr_expect_eq(line, 1);
    rl_config_free(c);
}

Test(parse, global_address_problems)
{
    static const struct {
        const char *text, *where, *needle;
    } cases[] = {
        {"bucket a 200/60s global rediss://h\n", "1:25", "TLS (rediss://) is not supported"},
        {"bucket a 200/60s global redis+sentinel://h\n", "1:25", "Sentinel addresses"},
        {"bucket a 200/60s global http://h\n", "1:25", "expected a Redis address"},
        {"bucket a 200/60s global redis:/h\n", "1:25", "expected a Redis address"},
        {"bucket a 200/60s global redis://\n", "1:33", "missing host"},
        {"bucket a 200/60s global redis://-h\n", "1:33", "bad host name"},
        {"bucket a 200/60s global redis://h:0\n", "1:35", "bad port"},
        {"bucket a 200/60s global redis://h:65536\n", "1:35", "bad port"},
        {"bucket a 200/60s global redis://h:\n", "1:35", "bad port"},
        {"bucket a 200/60s global redis://h:12x\n", "1:35", "bad port"},
        {"bucket a 200/60s global redis://h/x\n", "1:35", "bad database"},
        {"bucket a 200/60s global redis://h/99999999999\n", "1:35", "bad database"},
        {"bucket a 200/60s global redis://h?db=1\n", "1:34", "unexpected character"},
        {"bucket a 200/60s global redis://[::zz]\n", "1:34", "bad IPv6 address"},
        {"bucket a 200/60s global redis://[::1\n", "1:33", "bad IPv6 address"},
        {"bucket a 200/60s global redis://user@h\n", "1:33", "a user needs a password"},
        {"bucket a 200/60s global redis://u:@h\n", "1:35", "empty password"},
        {"bucket a 200/60s global redis://u:p%zz@h\n", "1:36", "bad %-escape"},
        {"bucket a 200/60s global redis://u:p%00@h\n", "1:36", "bad %-escape"},
        {"bucket a 200/60s global redis://u:p/q@h\n", "1:36", "'/' in the password"},
        {"bucket a 200/60s global unix://run/r.sock\n", "1:32", "absolute socket path"},
        {"bucket a 200/60s global unix:///r.sock?db=x\n", "1:43", "bad database"},
        {"bucket a 200/60s global unix:///r.sock?x=1\n", "1:40", "unexpected query"},
        {"bucket a 200/60s global lease 10 redis://h\n", "1:34", "right after 'global'"},
        {"bucket a 200/60s redis://h\n", "1:18", "right after 'global'"},
        {"bucket a 200/60s global redis://h, 10/1s global\n", "1:36", "at most one global rule"},
        {"on-global-failure\n", "1:18", "missing argument"},
        {"on-global-failure local\n", "1:24", "missing argument"},
        {"on-global-failure local N/0\n", "1:25", "bad share 'N/0'"},
        {"on-global-failure local N/1001\n", "1:25", "bad share"},
        {"on-global-failure local 3\n", "1:25", "bad share '3'"},
        {"on-global-failure local N/3 x\n", "1:29", "unexpected 'x'"},
        {"on-global-failure refuse now\n", "1:26", "unexpected 'now'"},
        {"on-global-failure maybe\n", "1:19", "unexpected 'maybe'"},
        {"on-global-failure refuse\non-global-failure refuse\n", "2:1",
         "duplicate 'on-global-failure'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].text, cases[i].where, cases[i].needle);
}

Test(parse, global_address_long_socket_path)
{
    char text[400], path[120];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    snprintf(text, sizeof(text), "bucket a 200/60s global unix:///%s\n", path);
    expect_error(text, "1:32", "socket path is too long");
}

Test(parse, rule_text_outside_a_config_takes_no_address)
{
    struct rl_policy p;
    struct rl_parse_error e = {0};
    cr_expect_eq(rl_policy_parse("200/60s global redis://10.0.0.5 lease 10", &p, &e), RL_EPARSE);
    cr_expect_eq(e.column, 16);
    cr_expect(strstr(e.message, "only in a config file") != NULL, "%s", e.message);
    cr_expect_eq(rl_policy_parse("200/60s global, 10/1s global", &p, &e), RL_EPARSE);
    cr_expect(strstr(e.message, "at most one global rule") != NULL, "%s", e.message);
}

Test(parse, redis_url_of_the_agent_option)
{
    struct rl_redis_url u;
    struct rl_parse_error e = {0};
    const char *s = "redis://127.0.0.1:6379/0";
    cr_expect_eq(rl__redis_url_parse(s, strlen(s), &u, &e), 0);
    cr_expect_str_eq(u.shown, "redis://127.0.0.1:6379/0");
    s = "redis://h";
    cr_expect_eq(rl__redis_url_parse(s, strlen(s), &u, &e), 0);
    cr_expect_eq(u.port, 6379);
    cr_expect_eq(u.db, 0);
    s = "redis://h/";
    cr_expect_eq(rl__redis_url_parse(s, strlen(s), &u, &e), 0);
    cr_expect_eq(rl__redis_url_parse("redis://h\0x", 11, &u, &e), RL_EPARSE);
    cr_expect_eq(e.column, 10);
}
