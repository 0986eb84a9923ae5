/*
 * grant.c - the agent's Redis client: one atomic Lua script grants lease units of a global
 * rule, on Redis's clock, and takes back units a host will never use. It is loaded once
 * per connection (SCRIPT LOAD) and called by its digest (EVALSHA): one round trip a lease.
 *
 * Why no vendor window ever sees more than N units, whatever the hosts do
 * ------------------------------------------------------------------------
 * Names. N per rolling T: the global rule. L = T / RL_LEASE_PARTS: a lease's length.
 * m: the bucket's margin, the most by which the delays from a decision to the vendor's
 * count differ. rho = RHO_PPM / 1e6: the most by which any clock (a host's CLOCK_MONOTONIC,
 * Redis's TIME) runs fast or slow against real time.
 *
 * 1. A lease is usable only inside its grant's validity. The agent reads its clock (s)
 *    BEFORE it sends the script, and sets the lease's end to s + L, rounded down. The
 *    script runs at real time t_g, after the send. A decision admits from the lease only
 *    at host instants < s + L, i.e. before real time t_g + L / (1 - rho); and not before
 *    t_g, as the units reach the table only with the reply.
 * 2. A vendor window [w, w + T) counts requests decided in a span of T + m of real time
 *    (the margin). Those units come from grants made in a real span of at most
 *    S = T + m + L / (1 - rho) (step 1).
 * 3. The script caps grants in Redis time: it grants g at Redis time r only if the units
 *    granted in (r - W, r] plus g stay within N, with W = S * (1 + rho), so W of Redis time
 *    covers any S of real time. Any span of length W then holds at most N units: take its
 *    last grant r*; the span lies inside (r* - W, r*], which was checked at r*.
 * 4. Units given back (RETURN) were removed from the host's lease word by CAS before the
 *    script is called (rl__lease_swap), so no decision can use them: the grant they came
 *    from counts only what may have been used.
 * Hence every vendor window sees at most N units. The price is utilization: at full demand
 * at most T / W of N is used per window (95% for L = T/20 and a small margin).
 *
 * Clock assumptions and the worst case.
 * - Redis's TIME is a wall clock. The script never lets it go back: it keeps the latest
 *   instant it used and takes the later of the two (a clock stepped back makes time stand
 *   still, and grants stay counted longer: safe). A clock stepped FORWARD by J forgets the
 *   grants of the last J: up to N more units in one window. Run Redis's host with a
 *   slewing clock (chrony without makestep after boot). Hosts' clocks may step at will:
 *   leases use CLOCK_MONOTONIC.
 * - Drift within RHO_PPM (1000 ppm; NTP keeps clocks within 500).
 * - A reply delayed past s + L brings a dead lease: its units stay counted until W passes.
 * Crashes. A host, an agent or a worker killed at any point loses at most its lease: the
 *   units stay counted in Redis for W and expire. Nothing waits on the dead party.
 * Redis restarted without its data, or another server (a failover, a different node):
 *   the script keeps the server's run id in the bucket's epoch key. A missing key or
 *   another run id means grants may have been forgotten: it grants nothing for W.
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

/*
 * KEYS[1] {rl:NAME}:g  hash: grant id -> units it still counts
 * KEYS[2] {rl:NAME}:t  sorted set: grant id scored by its Redis time (us)
 * KEYS[3] {rl:NAME}:e  hash: run (the server's run id), quiet (us: grant nothing before),
 *                      last (us: the latest instant used), next (the last grant id)
 * ARGV: N, W (us), units wanted, run id, grant id to take back from, units to take back,
 *       host name, units the host granted itself while Redis was unreachable (they count
 *       from now on, and the first such report after a while makes Redis quiet for W)
 * Returns {granted, grant id, units counted in the window before this grant, quiet (us
 * left), units this host holds in the window, us until the oldest grant leaves the window
 * (when fewer units than wanted were granted; at least 1 ms)}. The hash tag {rl:NAME} keeps one
 * bucket's keys in one Cluster slot.
 */
static const char script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local n, w, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local last = tonumber(redis.call('HGET', KEYS[3], 'last') or '0')\n"
    "if now < last then now = last end\n"
    "redis.call('HSET', KEYS[3], 'last', now)\n"
    "if redis.call('HGET', KEYS[3], 'run') ~= ARGV[4] then\n"
    "  redis.call('HSET', KEYS[3], 'run', ARGV[4], 'quiet', now + w)\n"
    "end\n"
    "local quiet = tonumber(redis.call('HGET', KEYS[3], 'quiet'))\n"
    "local fb = tonumber(ARGV[8])\n"
    "if fb > 0 then\n"
    "  local fid = ARGV[7] .. ':f' .. redis.call('HINCRBY', KEYS[3], 'next', 1)\n"
    "  redis.call('ZADD', KEYS[2], now, fid)\n"
    "  redis.call('HSET', KEYS[1], fid, fb)\n"
    "  if quiet < now then quiet = now + w; redis.call('HSET', KEYS[3], 'quiet', quiet) end\n"
    "end\n"
    "local back = tonumber(ARGV[6])\n"
    "if back > 0 then\n"
    "  local u = tonumber(redis.call('HGET', KEYS[1], ARGV[5]) or '0')\n"
    "  if u > 0 then redis.call('HSET', KEYS[1], ARGV[5], math.max(0, u - back)) end\n"
    "end\n"
    "local old = string.format('(%d', now - w)\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', old)) do\n"
    "  redis.call('HDEL', KEYS[1], id)\n"
    "end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', old)\n"
    "local sum, mine = 0, 0\n"
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
    "  local u = tonumber(redis.call('HGET', KEYS[1], id) or '0')\n"
    "  sum = sum + u\n"
    "  if string.find(id, ARGV[7] .. ':', 1, true) == 1 then mine = mine + u end\n"
    "end\n"
    "local g, id = 0, ''\n"
    "if now >= quiet and want > 0 then g = math.min(want, n - sum) end\n"
    "if g > 0 then\n"
    "  id = ARGV[7] .. ':' .. redis.call('HINCRBY', KEYS[3], 'next', 1)\n"
    "  redis.call('ZADD', KEYS[2], now, id)\n"
    "  redis.call('HSET', KEYS[1], id, g)\n"
    "  mine = mine + g\n"
    "else g = 0 end\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(2 * w / 1000))\n"
    "redis.call('PEXPIRE', KEYS[2], math.ceil(2 * w / 1000))\n"
    "local room = 0\n"
    "if g < want then\n"
    "  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
    "  if first[2] then room = math.max(1000, tonumber(first[2]) + w - now) end\n"
    "end\n"
    "return {g, id, sum, math.max(0, quiet - now), mine, room}\n";

/* Redis's window W for rule r (us), step 3 above. */
uint64_t agent_window_us(const struct lease_ref *ref)
{
    uint64_t lease = ref->r.period_ns / RL_LEASE_PARTS;
    uint64_t s = ref->r.period_ns + ref->margin_ns + lease + lease / (1000000 / RHO_PPM - 1) + 1;
    s += s / (1000000 / RHO_PPM);
    return s / 1000 + 1;
}

/* Close the link; l->error says why (set it before, or give `why` and the context's error). */
static void drop(struct redis_link *l, const char *why)
{
    if (l->c) {
        if (why)
            snprintf(l->error, sizeof(l->error), "%s: %s", why,
                     l->c->errstr[0] ? l->c->errstr : "connection lost");
        redisFree(l->c);
    }
    l->c = NULL;
    l->ok = false;
}

/* A command's reply, or NULL with l->error set and the link dropped. */
static redisReply *command(struct redis_link *l, int type, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(l->c, argc, argv, NULL);
    if (r && r->type == type)
        return r;
    if (r && r->type == REDIS_REPLY_ERROR)
        snprintf(l->error, sizeof(l->error), "%s: %s", argv[0], r->str);
    else if (r)
        snprintf(l->error, sizeof(l->error), "%s: unexpected reply type %d", argv[0], r->type);
    freeReplyObject(r);
    drop(l, r ? NULL : argv[0]);
    return NULL;
}

/* AUTH, SELECT, INFO server (the run id; a Sentinel is refused), SCRIPT LOAD. */
static bool prepare(struct redis_link *l)
{
    const struct rl_redis_url *u = &l->addr;
    char db[16];
    const char *auth[] = {"AUTH", u->user, u->password};
    const char *sel[] = {"SELECT", db}, *info[] = {"INFO", "server"};
    const char *load[] = {"SCRIPT", "LOAD", script};
    snprintf(db, sizeof(db), "%u", u->db);
    redisReply *r;
    if (u->password[0]) {
        if (!u->user[0]) /* AUTH PASSWORD: the default user (before Redis 6, the only one) */
            auth[1] = u->password;
        if (!(r = command(l, REDIS_REPLY_STATUS, u->user[0] ? 3 : 2, auth)))
            return false;
        freeReplyObject(r);
    }
    if (!(r = command(l, REDIS_REPLY_STRING, 2, info)))
        return false;
    const char *run = strstr(r->str, "run_id:");
    bool sentinel = strstr(r->str, "redis_mode:sentinel") != NULL;
    if (run)
        sscanf(run + 7, "%40[0-9a-f]", l->run_id);
    freeReplyObject(r);
    if (sentinel || !run) {
        snprintf(l->error, sizeof(l->error),
                 sentinel ? "this is a Redis Sentinel: the agent does not ask Sentinel for the "
                            "master; give the master's address"
                          : "INFO server has no run_id: not a Redis server?");
        drop(l, NULL);
        return false;
    }
    if (u->db && !(r = command(l, REDIS_REPLY_STATUS, 2, sel)))
        return false;
    if (u->db)
        freeReplyObject(r);
    if (!(r = command(l, REDIS_REPLY_STRING, 3, load)))
        return false;
    bool loaded = r->len == 40;
    if (loaded)
        memcpy(l->sha, r->str, 41);
    freeReplyObject(r);
    if (!loaded) {
        snprintf(l->error, sizeof(l->error), "SCRIPT LOAD: not a script digest");
        drop(l, NULL);
    }
    return loaded;
}

static bool connect_link(struct redis_link *l)
{
    struct timeval tv = {(time_t)(l->timeout_us / 1000000), (suseconds_t)(l->timeout_us % 1000000)};
    l->c = l->addr.path[0] ? redisConnectUnixWithTimeout(l->addr.path, tv)
                           : redisConnectWithTimeout(l->addr.host, (int)l->addr.port, tv);
    if (!l->c || l->c->err) {
        if (l->c)
            drop(l, "connect");
        else
            snprintf(l->error, sizeof(l->error), "connect: out of memory");
        return false;
    }
    redisSetTimeout(l->c, tv);
    if (!prepare(l))
        return false;
    l->ok = true;
    return true;
}

/* A script error. Cluster redirections are not followed: the error says which node owns
 * the bucket's slot. */
static void script_error(struct redis_link *l, const struct grant_req *q, const char *err)
{
    if (strncmp(err, "MOVED ", 6) == 0 || strncmp(err, "ASK ", 4) == 0)
        snprintf(l->error, sizeof(l->error),
                 "Redis Cluster redirects bucket %s (%s): the agent does not follow "
                 "redirections; give it the node that owns the slot",
                 q->name, err);
    else if (strncmp(err, "READONLY", 8) == 0)
        snprintf(l->error, sizeof(l->error), "a read-only replica (%s): give the master", err);
    else
        snprintf(l->error, sizeof(l->error), "script: %s", err);
}

int agent_grant(struct redis_link *l, const struct grant_req *q, struct grant_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (!l->c && !connect_link(l))
        return -1;
    char keys[3][RL_NAME_MAX + 16];
    for (int i = 0; i < 3; i++)
        snprintf(keys[i], sizeof(keys[i]), "{rl:%s}:%c", q->name, "gte"[i]);
    char n[24], w[24], want[24], back[24], fb[24];
    snprintf(n, sizeof(n), "%" PRIu64, q->limit);
    snprintf(w, sizeof(w), "%" PRIu64, q->window_us);
    snprintf(want, sizeof(want), "%" PRIu64, q->want);
    snprintf(back, sizeof(back), "%" PRIu64, q->back_units);
    snprintf(fb, sizeof(fb), "%" PRIu64, q->fallback_units);
    const char *argv[] = {"EVALSHA", l->sha, "3",       keys[0],    keys[1], keys[2], n,
                          w,         want,   l->run_id, q->back_id, back,    q->host, fb};
    redisReply *r = redisCommandArgv(l->c, 14, argv, NULL);
    l->calls++;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 6) {
        bool answered = r != NULL;
        if (r && r->type == REDIS_REPLY_ERROR)
            script_error(l, q, r->str);
        else if (r)
            snprintf(l->error, sizeof(l->error), "EVALSHA: unexpected reply");
        freeReplyObject(r);
        drop(l, answered ? NULL
                         : "EVALSHA"); /* NOSCRIPT (a flushed cache) too: reconnecting reloads it */
        return -1;
    }
    out->granted = (uint64_t)r->element[0]->integer;
    snprintf(out->id, sizeof(out->id), "%s", r->element[1]->str ? r->element[1]->str : "");
    out->counted = (uint64_t)r->element[2]->integer;
    out->quiet_us = (uint64_t)r->element[3]->integer;
    out->mine = (uint64_t)r->element[4]->integer;
    out->room_us = (uint64_t)r->element[5]->integer;
    freeReplyObject(r);
    l->ok = true;
    l->error[0] = '\0';
    return 0;
}

void agent_link_close(struct redis_link *l)
{
    if (l->c)
        redisFree(l->c);
    l->c = NULL;
}
