/*
 * fuzz_config.c - libFuzzer harness for the config parser and the rule-text parser.
 *
 * Checks, beyond "no crash, no sanitizer report": a parse either yields a config and no
 * error text, or RL_EPARSE, error text and no config; every error line has the form
 * "fuzz.conf:LINE:COL: message"; and every policy of a parsed config formats to text that
 * parses back to the same policy, and every Redis address a global rule names, as shown in
 * messages, parses back to the same address.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/global.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_errors(const char *errors)
{
    for (const char *line = errors; *line; line = strchr(line, '\n') + 1) {
        unsigned l = 0, c = 0;
        int used = 0;
        if (sscanf(line, "fuzz.conf:%u:%u: %n", &l, &c, &used) != 2 || used == 0 || l == 0 ||
            c == 0 || !strchr(line, '\n'))
            abort();
    }
}

static void check_round_trip(const struct rl_policy *p)
{
    char text[512];
    struct rl_policy again;
    if ((size_t)rl_policy_format(p, text, sizeof(text)) >= sizeof(text) ||
        rl_policy_parse(text, &again, NULL) != 0 || !rl__policy_same(p, &again))
        abort();
}

/* A global rule's Redis address: shown (the password starred) parses back to it. */
static void check_address(const rl_config *c, const char *name)
{
    const struct rl_redis_url *u = rl__config_global_url(c, name);
    struct rl_redis_url again;
    if (u && (rl__redis_url_parse(u->shown, strlen(u->shown), &again, NULL) != 0 ||
              strcmp(again.host, u->host) || strcmp(again.path, u->path) || again.port != u->port ||
              again.db != u->db || strcmp(again.user, u->user) || (u->port < 1 || u->port > 65535)))
        abort();
}

static void check_config(const rl_config *c)
{
    const struct rl_config_bucket *bs;
    const struct rl_route *routes;
    size_t n = rl_config_buckets(c, &bs);
    for (size_t i = 0; i < n; i++) {
        check_round_trip(&bs[i].policy);
        check_address(c, bs[i].name);
        bool parent_first = !bs[i].parent;
        for (size_t j = 0; j < i && !parent_first; j++)
            parent_first = strcmp(bs[j].name, bs[i].parent) == 0;
        if (!parent_first || (rl_name_check(bs[i].name) < 0 && !bs[i].is_template))
            abort();
    }
    n = rl_config_routes(c, &routes);
    for (size_t i = 0; i < n; i++)
        if (routes[i].port == 0 || routes[i].port > 65535 || routes[i].prefix_len > 128)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_config *c = NULL;
    char *errors = NULL;
    int rc = rl_config_parse((const char *)data, size, "fuzz.conf", &c, &errors);
    if (rc == 0 && c && !errors)
        check_config(c);
    else if (rc == RL_EPARSE && !c && errors)
        check_errors(errors);
    else if (rc != RL_ENOMEM)
        abort();
    rl_config_free(c);
    free(errors);

    char *text = strndup((const char *)data, size);
    struct rl_policy p;
    struct rl_parse_error e;
    if (text && rl_policy_parse(text, &p, &e) == 0)
        check_round_trip(&p);
    free(text);
    return 0;
}
