/*
 * call.c - rl_call: take from the bucket, make the call, report the answer, and retry
 * after a 429.
 */
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <bsd/stdlib.h>

#include "internal.h"

static void sleep_for(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int rl_call(rl_bucket *b, uint32_t cost, uint64_t timeout_ns, unsigned max_attempts,
            int (*fn)(void *, struct rl_response *), void *arg, struct rl_response *resp)
{
    if (!b || !fn || !resp || max_attempts == 0 || resp->size < RL_RESPONSE_SIZE_V1)
        return rl__fail(RL_EINVAL, "rl_call needs a bucket, a callback, a response from "
                                   "RL_RESPONSE_INIT and attempts");
    size_t size = resp->size < sizeof(*resp) ? resp->size : sizeof(*resp);
    for (unsigned attempt = 1;; attempt++) {
        struct rl_feedback fb;
        struct rl_decision d;
        int rc = rl_acquire(b, cost, timeout_ns, &d);
        if (rc < 0)
            return rc;
        memset(&resp->status, 0, size - offsetof(struct rl_response, status)); /* keeps size */
        if ((rc = fn(arg, resp)) < 0)
            return rc;
        if (size >= offsetof(struct rl_response, decided_ns) + sizeof(resp->decided_ns))
            resp->decided_ns = d.dry_run_rejected ? 0 : d.at_ns;
        if ((rc = rl_report(b, resp, &fb)) < 0)
            return rc;
        if (resp->status != 429)
            return 0;
        if (attempt == max_attempts)
            return rl__fail(RL_ELIMITED, "bucket '%s': still 429 after %u attempts", b->name,
                            max_attempts);
        /* The pool waits out the cool-down in rl_acquire; up to 1 s of jitter on top keeps
         * the retries of many callers from landing together when it ends. */
        sleep_for((uint64_t)arc4random_uniform(1000) * 1000000ULL);
    }
}
