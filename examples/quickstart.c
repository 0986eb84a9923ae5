/* The README's quick start, compiled by the build so it stays true. */
#include <stdio.h>
#include <ratelimit.h>

int main(void)
{
    rl_table *table;
    rl_bucket *foundry;
    struct rl_policy policy;
    rl_policy_parse("200/60s", &policy, NULL); /* at most 200 in any rolling 60 s */
    if (rl_table_open(NULL, &table) < 0 ||     /* $RATELIMIT_TABLE or /dev/shm/ratelimit */
        rl_bucket_define(table, "foundry", &policy, NULL, &foundry) < 0)
        return fprintf(stderr, "ratelimit: %s\n", rl_errdetail()), 1;
    if (rl_acquire(foundry, 1, 5000000000ULL, NULL) == 0) /* wait up to 5 s for our turn */
        puts("admitted: send the request now");
    rl_table_close(table);
    return 0;
}
