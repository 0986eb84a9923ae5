/*
 * agent.h - ratelimit-agent: one per host, it keeps the leases of the table's global
 * rules filled from Redis (README "Several hosts"). Decisions never wait on it.
 */
#ifndef RL_AGENT_H
#define RL_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "config/global.h"
#include "rule.h"

#define RHO_PPM 1000 /* the most any clock drifts against real time (grant.c) */

struct redisContext;

/* A connection to Redis; c is NULL while down. */
struct redis_link {
    struct rl_redis_url addr;
    struct redisContext *c;
    uint64_t timeout_us; /* connect and reply timeout */
    char run_id[41];     /* the server's, from INFO server */
    char sha[41];        /* the script's, from SCRIPT LOAD */
    bool ok;             /* the last call succeeded */
    uint64_t calls;      /* script calls made */
    char error[400];     /* why the last call failed */
    char logged[400];    /* the last state written to stderr (agent.c) */
};

struct grant_req {
    const char *name, *host;
    uint64_t limit, window_us, want;
    const char *back_id; /* the grant the units given back came from ("" if none) */
    uint64_t back_units;
    uint64_t fallback_units; /* granted by the host itself within W (agent.c, fallback) */
};

struct grant_reply {
    uint64_t granted;
    char id[96];
    uint64_t counted;  /* units all hosts held in the window before this grant */
    uint64_t quiet_us; /* Redis grants nothing for this long (a restart, a new server) */
    uint64_t mine;     /* of those, this host's, with this grant */
    uint64_t room_us;  /* less granted than wanted: the oldest grant leaves then */
};

uint64_t agent_window_us(const struct lease_ref *ref);
/* One script call: 0, or -1 with l->error set (the link is dropped; the next call
 * reconnects). */
int agent_grant(struct redis_link *l, const struct grant_req *q, struct grant_reply *out);
void agent_link_close(struct redis_link *l);

#endif /* RL_AGENT_H */
