/*
 * feedback.c - what the vendor answered, shared by the whole pool through the table.
 *
 * Cool-down (shm_bucket.cooldown_until/_start): after a 429, no process admits anything
 * from the bucket (or its children) before cooldown_until. Both words only grow, by CAS,
 * so concurrent reports keep the latest pause. Deciders read cooldown_until like a rule
 * (acquire.c); waiters whose reserved turn falls inside a cool-down give the turn up and
 * take a new one after it, keeping their order (see rl_acquire).
 *
 * Server rule (shm_bucket.server, see rule_server.c): the budget the server says is left
 * until its reset, when that is less than ours.
 */
#include <string.h>

#include <bsd/stdlib.h>

#include "margin.h"
#include "rule.h"

#define HOUR_NS 3600000000000ULL

/* Raise a grow-only word to at least v. F1: acq_rel CAS, pairs with deciders' acquire
 * loads (A7, A8). */
static void raise_to(rl_atomic64 *word, uint64_t v)
{
    uint64_t cur = rl__load_acquire(word);
    while (cur < v && !rl__cas_acq_rel(word, &cur, v))
        ;
}

/* Full-jitter exponential backoff: uniform in [0, min(cap, 1 s * 2^n)). */
static uint64_t backoff_pause(unsigned n, uint64_t cap)
{
    uint64_t ceiling = n >= 30 ? cap : (1000000000ULL << n);
    ceiling = ceiling < cap ? ceiling : cap;
    uint64_t ms = ceiling / 1000000ULL;
    return ms ? (uint64_t)arc4random_uniform((uint32_t)(ms > UINT32_MAX ? UINT32_MAX : ms)) *
                    1000000ULL
              : 0;
}

/* reset_ns: until the instant the reset names; known_ns: how long its state is known to
 * last (a whole-second reset may come up to 1 s earlier, see rl__header_reset). */
struct parsed {
    uint64_t retry_ns, reset_ns, known_ns, remaining;
    bool has_retry, has_reset, has_remaining;
};

static void parse_response(const struct rl_response *r, struct parsed *p, unsigned *ignored)
{
    uint64_t limit, window;
    memset(p, 0, sizeof(*p));
    if (r->retry_after && !(p->has_retry = rl__header_retry_after(r->retry_after, &p->retry_ns)))
        *ignored |= RL_IGNORED_RETRY_AFTER;
    if (r->reset && !(p->has_reset = rl__header_reset(r->reset, &p->reset_ns, &p->known_ns)))
        *ignored |= RL_IGNORED_RESET;
    if (r->remaining && !(p->has_remaining = rl__header_uint(r->remaining, &p->remaining)))
        *ignored |= RL_IGNORED_REMAINING;
    if (r->limit && !rl__header_uint(r->limit, &limit))
        *ignored |= RL_IGNORED_LIMIT;
    if (r->ratelimit_policy && !rl__header_policy(r->ratelimit_policy, &limit, &window))
        *ignored |= RL_IGNORED_RATELIMIT;
    if (r->ratelimit) {
        uint64_t rem, reset, known;
        if (rl__header_ratelimit(r->ratelimit, &rem, &reset, &known)) {
            p->remaining = p->has_remaining && p->remaining < rem ? p->remaining : rem;
            p->reset_ns = p->has_reset && p->reset_ns > reset ? p->reset_ns : reset;
            p->known_ns = p->has_reset && p->known_ns > known ? p->known_ns : known;
            p->has_remaining = p->has_reset = true;
        } else {
            *ignored |= RL_IGNORED_RATELIMIT;
        }
    }
}

/* The pause a 429 asks for. `again`: the request was decided before the pause in force
 * began, so it was sent before the pool knew of that 429: the same event. Without a
 * header it then leaves the count and the pause as they are (returns what is left of it). */
static uint64_t pause_for_429(struct shm_bucket *rec, const struct parsed *p, uint64_t cap,
                              bool again, uint64_t now, unsigned *backoff)
{
    if (p->has_retry)
        return p->retry_ns < cap ? p->retry_ns : cap;
    if (p->has_reset && (!p->has_remaining || p->remaining == 0))
        return p->reset_ns < cap ? p->reset_ns : cap;
    /* A shared count, saturating (CAS: widened_at shares the word); the pause itself is
     * published by the cool-down CAS. */
    uint64_t cur = rl__load_relaxed(&rec->backoff);
    if (again) {
        *backoff = (unsigned)(cur & RL_BACKOFF_MASK);
        uint64_t until = rl__load_acquire(&rec->cooldown_until); /* pairs with F1 */
        return until > now ? until - now : 0;
    }
    while ((cur & RL_BACKOFF_MASK) < RL_BACKOFF_MASK &&
           !rl__cas_acq_rel(&rec->backoff, &cur, cur + 1))
        ;
    *backoff = (unsigned)(cur & RL_BACKOFF_MASK) + 1;
    return backoff_pause(*backoff - 1, cap);
}

/* Units the bucket's own rules admit now, the least of them (not its parents', nor the
 * server rule's): the view reconciliation compares. 0 if the bucket is damaged. */
static uint64_t local_remaining(const rl_bucket *b)
{
    struct policy_view v;
    if (rl__bucket_view(b, &v) < 0)
        return 0;
    uint64_t now = rl__clock_rel(b->table), least = UINT64_MAX;
    for (uint32_t i = 0; i < v.nrules; i++) {
        struct rule_ctx c;
        rl__rule_ctx_load(&c, b->table, &v, i);
        uint64_t left = rl__rule_remaining(&c, now);
        least = left < least ? left : least;
    }
    return least;
}

/* The server's remaining budget holds for as long as it is known to: until its reset, less
 * the reset's rounding (a whole-second reset may come up to 1 s earlier). On a 429 with
 * Retry-After, until the retry instant if that comes first: a rolling window's reset says
 * when the whole budget is back, not when the next unit is. */
static bool reconcile(rl_bucket *b, const struct parsed *p, int status, uint64_t now, uint64_t cap)
{
    if (!p->has_remaining || !p->has_reset || p->remaining >= local_remaining(b))
        return false;
    uint64_t lasts = rl__min(p->known_ns, cap);
    if (status == 429 && p->has_retry)
        lasts = rl__min(lasts, p->retry_ns);
    if (lasts == 0)
        return false;
    uint64_t until = now + lasts;
    uint64_t want = rl__server_word(p->remaining, until);
    uint64_t cur = rl__load_acquire(&b->rec->server);
    /* Replace an older view unless it is both stricter and lasts as long. F2: acq_rel CAS.
     * A decider's commit (C2) racing with it makes one of the two CASes fail and retry. So
     * no admission is counted against a view that was replaced under it. */
    while (!(rl__server_until(cur) >= rl__server_until(want) &&
             rl__server_left(cur) <= rl__server_left(want)) &&
           !rl__cas_acq_rel(&b->rec->server, &cur, want))
        ;
    return true;
}

int rl_report(rl_bucket *b, const struct rl_response *response, struct rl_feedback *out)
{
    struct rl_feedback fb = {0};
    struct rl_response copy = {0}, *r = &copy;
    struct parsed p;
    if (!b || !response || response->size < RL_RESPONSE_SIZE_V1)
        return rl__fail(RL_EINVAL, "rl_report needs a bucket and a response from "
                                   "RL_RESPONSE_INIT (its size field is too small)");
    /* A newer caller's fields beyond ours are ignored. */
    memcpy(&copy, response, response->size < sizeof(copy) ? response->size : sizeof(copy));
    if (r->status < 100 || r->status > 599)
        return rl__fail(RL_EINVAL, "rl_report: HTTP status %d is not in 100..599", r->status);
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    if (b->is_template)
        return rl__fail(RL_EINVAL, "'%s' is a template: report for a bucket made from it", b->name);
    /* Everything below runs in a section: the block's rules are read (reclaim.c), and a
     * resize waits for the section or its report fails here, so none is lost in the old
     * file after the copy. */
    struct rl_section s;
    rl__section_enter(b->table, &s);
    int err = rl__table_moved(b->table);
    if (!err && !rl__bucket_live(b)) /* deleted, or its record reused: never the new one's */
        err = rl__fail(RL_ENOENT, "bucket '%s' was deleted: look it up again", b->name);
    if (err) {
        rl__section_exit(&s);
        return err;
    }
    struct shm_bucket *rec = b->rec;
    uint64_t cap = r->max_cooldown_ns ? r->max_cooldown_ns : HOUR_NS;
    uint64_t now = rl__clock_rel(b->table);
    uint64_t epoch = b->table->epoch_ns; /* the copy checked at attach */
    uint64_t decided = r->decided_ns > epoch ? r->decided_ns - epoch : 0;
    bool again = false;
    parse_response(r, &p, &fb.ignored);
    if (r->status == 429 || (r->status == 503 && p.has_retry)) {
        /* Decided before the latest 429 was reported: in flight when it came, the same
         * event. Relaxed: a stale (older) instant only counts the 429 as a new event, as
         * one without a decision instant is. */
        again = decided && decided < rl__load_relaxed(&rec->last_429);
        fb.cooldown_ns = pause_for_429(rec, &p, cap, again, now, &fb.backoff);
        rl__fetch_add_relaxed(&rec->counters.reported_429, 1); /* relaxed: a statistic */
        if (!again) /* the same event's pause began at its first 429 */
            raise_to(&rec->last_429, now);
        raise_to(&rec->cooldown_until, now + fb.cooldown_ns);
    } else if (r->status < 400) {
        /* Relaxed: only the count, read by reports; widened_at is kept (M3). */
        uint64_t cur = rl__load_relaxed(&rec->backoff);
        while ((cur & RL_BACKOFF_MASK) &&
               !rl__cas_acq_rel(&rec->backoff, &cur, cur & ~RL_BACKOFF_MASK))
            ;
    }
    struct policy_view v;
    fb.tightened = reconcile(b, &p, r->status, now, cap);
    if (rl__bucket_view(b, &v) == 0)
        fb.widened = rl__margin_report(b, &v, r->status, decided, now, again);
    rl__section_exit(&s);
    if (out)
        *out = fb;
    return 0;
}

void rl__feedback_read(const rl_bucket *b, uint64_t now, struct rl_feedback_state *out)
{
    const struct shm_bucket *rec = b->rec;
    uint64_t until = rl__load_acquire(&rec->cooldown_until),
             last = rl__load_relaxed(&rec->last_429);
    uint64_t server = rl__load_acquire(&rec->server);
    memset(out, 0, sizeof(*out));
    out->cooldown_ns = until > now ? until - now : 0;
    out->last_429_ns = last ? rl__clock_abs(b->table, last) : 0;
    out->backoff = (unsigned)(rl__load_relaxed(&rec->backoff) & RL_BACKOFF_MASK);
    if (server && rl__server_until(server) > now) {
        out->server_remaining = rl__server_left(server);
        out->server_reset_ns = rl__server_until(server) - now;
    }
}
