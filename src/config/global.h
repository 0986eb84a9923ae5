/*
 * global.h - what a config says about global rules (README "Several hosts"): the Redis
 * address a global rule names and the file's on-global-failure statement. Only
 * ratelimit-agent reads them (through these internal functions); the table never holds
 * them, so a Redis password stays out of a file every worker can read.
 */
#ifndef RL_CONFIG_GLOBAL_H
#define RL_CONFIG_GLOBAL_H

#include <stdbool.h>
#include <stddef.h>

#include "ratelimit.h"

/* A Redis address: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or a unix socket,
 * unix://[[USER]:PASSWORD@]/PATH[?db=DB] (also redis+unix://). */
struct rl_redis_url {
    char host[256];     /* a name or an address (IPv6 without brackets); "" for a socket */
    char path[108];     /* a unix socket's path; "" for TCP */
    unsigned port;      /* 1..65535, 6379 unless given */
    unsigned db;        /* SELECT this; 0 unless given */
    char user[128];     /* AUTH USER PASSWORD; "" for AUTH PASSWORD (or no AUTH) */
    char password[256]; /* "" for no AUTH */
    char shown[800];    /* the address as written, with the password as "***": for messages */
};

/*
 * Parse the first `len` bytes of `s` as a Redis address. 0, or RL_EPARSE with e->column
 * (1-based, within s) and e->message set. Rejects TLS (rediss://) and Sentinel addresses
 * with a message that says why.
 */
int rl__redis_url_parse(const char *s, size_t len, struct rl_redis_url *out,
                        struct rl_parse_error *e);

/* The address the config gives bucket `name` (its own statement, else the template with the
 * longest prefix it matches); NULL if the rule names none. */
const struct rl_redis_url *rl__config_global_url(const rl_config *c, const char *name);

/* on-global-failure: 0 for refuse, else K of "local N/K". *line: the statement's line, 0 if
 * the file has none (then refuse). */
unsigned rl__config_global_share(const rl_config *c, unsigned *line);

#endif
