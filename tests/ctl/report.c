/*
 * report - tell a bucket of $RATELIMIT_TABLE what the vendor answered (rl_report), so the
 * ctl tests can see ratelimitctl show a cool-down or a tightened bucket:
 *     report BUCKET STATUS [RETRY-AFTER [REMAINING RESET]]     ("" leaves a header out)
 */
#include <stdio.h>
#include <stdlib.h>

#include "ratelimit.h"

static const char *header(int argc, char **argv, int i)
{
    return i < argc && *argv[i] ? argv[i] : NULL;
}

int main(int argc, char **argv)
{
    struct rl_response r = RL_RESPONSE_INIT;
    rl_table *t;
    rl_bucket *b;
    if (argc < 3 || argc > 6) {
        fputs("usage: report BUCKET STATUS [RETRY-AFTER [REMAINING RESET]]\n", stderr);
        return 2;
    }
    r.status = atoi(argv[2]);
    r.retry_after = header(argc, argv, 3);
    r.remaining = header(argc, argv, 4);
    r.reset = header(argc, argv, 5);
    if (rl_table_open(NULL, &t) < 0 || rl_bucket_lookup(t, argv[1], &b) < 0 ||
        rl_report(b, &r, NULL) < 0) {
        fprintf(stderr, "report: %s\n", rl_errdetail());
        return 1;
    }
    rl_table_close(t);
    return 0;
}
