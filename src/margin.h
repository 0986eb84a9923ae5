/*
 * margin.h - the margin a decision uses: the configured one, or wider if the pool learned
 * that the server counts later than we do (margin.c).
 */
#ifndef RL_MARGIN_H
#define RL_MARGIN_H

#include "internal.h"

#pragma GCC visibility push(hidden)

#define RL_MARGIN_LEARNED_BITS 26
#define RL_MARGIN_DELAY_BITS   24
#define RL_MARGIN_STEPS_BITS   14

static inline uint64_t rl__margin_learned_us(uint64_t w)
{
    return w & ((1ULL << RL_MARGIN_LEARNED_BITS) - 1);
}

/* The margin for a decision: max(configured, learned). M1: relaxed, the word orders
 * nothing. A stale value decides as the pool did a moment before; either value is at
 * least the configured margin. */
static inline uint64_t rl__margin_effective(const struct shm_bucket *rec, uint64_t configured_ns)
{
    uint64_t learned = rl__margin_learned_us(rl__load_relaxed(&rec->margin)) * 1000;
    return learned > configured_ns ? learned : configured_ns;
}

/* A response reported for bucket b (view v) at `now` (relative ns). decided: the relative
 * instant its request was admitted (0: unknown). again: a 429 of the event whose first 429
 * set last_429 (feedback.c), which it left as it was. Returns true if the margin widened. */
bool rl__margin_report(const rl_bucket *b, const struct policy_view *v, int status,
                       uint64_t decided, uint64_t now, bool again);

/* The margin state of bucket b (view v) at `now`, for rl_bucket_info. */
void rl__margin_read(const rl_bucket *b, const struct policy_view *v, struct rl_margin_state *out);

#pragma GCC visibility pop

#endif /* RL_MARGIN_H */
