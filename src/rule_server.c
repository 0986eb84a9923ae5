/*
 * rule_server.c - the server rule: the budget the vendor says is left until its reset,
 * when that is less than ours (feedback.c records it on a report).
 *
 * Its word lives in the bucket record (shm_bucket.server), not in a policy block:
 *   remaining:20  units the server still allows
 *   until:44      end of that budget, relative, in ticks of RL_TICK_NS
 * Deciders treat it as one more rule of the bucket. Each admission before `until` takes
 * units from `remaining`. Once `until` has passed the rule admits anything and takes
 * nothing. Word 0 means "never reported" (acquire.c then leaves the rule out).
 */
#include "rule.h"

#define SERVER_MAX ((1ULL << 20) - 1)
#define TICK_MASK  ((1ULL << 44) - 1)

uint64_t rl__server_word(uint64_t remaining, uint64_t until_ns)
{
    remaining = remaining < SERVER_MAX ? remaining : SERVER_MAX;
    return remaining << 44 | ((until_ns + RL_TICK_NS - 1) / RL_TICK_NS & TICK_MASK);
}

uint64_t rl__server_until(uint64_t word)
{
    return (word & TICK_MASK) * RL_TICK_NS;
}

uint64_t rl__server_left(uint64_t word)
{
    return word >> 44;
}

enum rule_result rl__server_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                     uint64_t *earliest)
{
    uint64_t until = rl__server_until(c->word);
    *earliest = now >= until || rl__server_left(c->word) >= cost ? now : until;
    return RULE_OK;
}

uint64_t rl__server_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    return d >= rl__server_until(c->word) ? c->word : c->word - ((uint64_t)cost << 44);
}

void rl__server_reset(const struct rule_ctx *c)
{
    /* Relaxed: a decider racing the reset may still see the old budget once, as if it had
     * decided a moment earlier. */
    rl__store_relaxed(c->state, 0);
}

uint64_t rl__server_remaining(const struct rule_ctx *c, uint64_t now)
{
    return now >= rl__server_until(c->word) ? UINT64_MAX : rl__server_left(c->word);
}
