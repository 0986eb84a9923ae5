/*
 * acquire.c - one decision over a bucket's chain: every rule of the bucket and of its
 * ancestors, all or nothing.
 *
 * 0. Plan: the chain's validated policy snapshots (cached in each handle), and each bucket's
 *    server rule when the vendor reported a smaller budget (feedback.c).
 * 1. Load every rule's state word (acquire: pairs with the commit CAS C2 of the decision
 *    that wrote it, so a sliding head's log entries it depends on are visible), and each
 *    bucket's cool-down. A frozen word means the bucket is switching rules: finish the
 *    switch (update.c) and plan again.
 * 2. Read the clock AFTER the loads: every decision whose result we loaded read its clock
 *    before its CAS, so our instant is not earlier than any committed immediate admission.
 * 3. Find the decision instant d: the least instant >= now, and past every cool-down, that
 *    every enforced rule admits (a fixpoint: a fixed window may push d to its next window,
 *    which the others accept; plan_instant says why it ends).
 * 4. Too far (try: d > now; blocking: d - now > timeout; or a turn a rule's word cannot
 *    record, rl__rule_fits): return, nothing was written.
 * 5. Commit each rule with one CAS (C2), tightest rule first. If a CAS fails, someone else
 *    decided meanwhile. Take back the rules we committed (undo) and start over. An undo
 *    restores a word only if nobody changed it since (U1), so it never gives back more
 *    than we took. If the word moved on, our units stay counted: under-admission, never
 *    over-admission. Committing the tightest rule first makes that rare, since the rules
 *    left have slack.
 * 6. Finalize (write the sliding logs) and count. rl_acquire sleeps until d if it is in the
 *    future; rl_reserve returns d to a caller that waits its own way.
 *
 * A process killed anywhere leaves only committed words, each a valid state. Its request's
 * units stay counted, and nobody waits on it. Every retry follows another process's
 * successful CAS, so the loop is lock-free. Every rule operation goes through rule.h.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "margin.h"
#include "rule.h"

#define CHAIN_RULES     (RL_MAX_DEPTH * (RL_MAX_RULES + 1)) /* + each bucket's server rule */
#define FIXPOINT_ROUNDS 4096 /* window starts one decision may try (plan_instant) */
#define STALE_LIMIT     64
#define REPAIR_AFTER    8
#define MOVED_WAIT_NS   10000000ULL /* a resized table's refusal: look again in 10 ms */
#define LATE_RETAKES    2           /* fresh turns one rl_acquire takes for late wake-ups */

struct plan_step {
    struct rule_ctx ctx;            /* ctx.state: the state word */
    const struct policy_view *view; /* the rule's block (NULL: server rule) */
    rl_bucket *bucket;
    bool dry_run;   /* the rule's bucket is in dry-run: count its refusals, never enforce */
    bool skip;      /* dry-run rule that would refuse: not committed */
    uint64_t tight; /* earliest instant at `now`: sort key, tightest first */
    uint64_t mine;  /* the word we committed */
};

struct chain_plan {
    struct plan_step steps[CHAIN_RULES];
    struct policy_view spare[RL_MAX_DEPTH]; /* views when a handle's cache is full */
    unsigned n;
    uint32_t cost;
    uint64_t now, d;
    uint64_t cooldown; /* latest cool-down end of the chain's buckets */
    bool dry_rejected;
};

static void plan_add(struct chain_plan *pl, rl_bucket *x, const struct policy_view *v,
                     uint32_t rule)
{
    struct plan_step *s = &pl->steps[pl->n++];
    s->bucket = x;
    s->dry_run = v->flags & RL_POLICY_DRY_RUN;
    if (rule < v->nrules) {
        rl__rule_ctx(&s->ctx, x->table, v, rule);
        s->ctx.margin_ns = rl__margin_effective(x->rec, v->margin_ns);
        s->view = v;
    } else { /* the bucket's server rule */
        rl__rule_ctx_server(&s->ctx, x, v);
        s->view = NULL;
    }
}

/* Every step has its own state word. Only a damaged table can break this (two buckets of
 * a chain naming overlapping policy blocks); a shared word would make every commit fail
 * against our own first CAS, for ever. */
static bool plan_distinct(const struct chain_plan *pl)
{
    for (unsigned i = 0; i < pl->n; i++)
        for (unsigned j = i + 1; j < pl->n; j++)
            if (pl->steps[i].ctx.state == pl->steps[j].ctx.state)
                return false;
    return true;
}

static int plan_build(rl_bucket *b, struct chain_plan *pl)
{
    pl->n = 0;
    unsigned depth = 0;
    for (rl_bucket *x = b; x; x = x->parent) {
        const struct policy_view *v;
        int err = rl__bucket_view_cached(x, &pl->spare[depth++], &v);
        if (err)
            return err;
        for (uint32_t i = 0; i < v->nrules; i++)
            plan_add(pl, x, v, i);
        /* Relaxed: 0 means "never reported"; a report racing this decision is ordered
         * after it, as if it had arrived a moment later. */
        if (rl__load_relaxed(&x->rec->server) != 0)
            plan_add(pl, x, v, v->nrules);
    }
    return plan_distinct(pl) ? 0
                             : rl__fail(RL_ECORRUPT,
                                        "bucket '%s' shares state with its "
                                        "parent chain: the table is damaged",
                                        b->name);
}

/* Load every word; false if one is frozen (a policy switch: finish it and rebuild). */
static bool plan_load(struct chain_plan *pl, bool repair)
{
    pl->cooldown = 0;
    for (unsigned i = 0; i < pl->n; i++) {
        struct plan_step *s = &pl->steps[i];
        /* A5: acquire pairs with C2 of whoever wrote the word last. */
        s->ctx.word = rl__load_acquire(s->ctx.state);
        s->ctx.repair = repair;
        s->skip = false;
        if (s->view && (s->ctx.word & RL_FROZEN)) {
            rl__switch_help(s->bucket, s->view);
            return false;
        }
        /* A7: acquire pairs with the cool-down CAS of rl_report. */
        pl->cooldown = rl__max(pl->cooldown, rl__load_acquire(&s->bucket->rec->cooldown_until));
    }
    return true;
}

static void rule_undo(struct plan_step *s)
{
    /* U1: restore the word only if it is still ours. For a sliding head this also means no
     * one claimed units after ours, so no one helped our (unwritten) log entries either. */
    uint64_t mine = s->mine;
    rl__cas_acq_rel(s->ctx.state, &mine, s->ctx.word);
}

/* What planning found, if not an instant. */
enum plan_result {
    PLAN_OK,
    PLAN_STALE, /* a rule's state is outdated: reload and start over */
    PLAN_NEVER, /* a rule can never admit the cost */
    PLAN_FAR,   /* no turn within max_wait, or none that the rules' words can record */
};

/*
 * Step 3: the least instant >= now that every enforced rule admits, and not later than
 * now + max_wait (PLAN_FAR if there is none).
 *
 * A GCRA or sliding rule admits every instant from its earliest on, and a cool-down ends
 * once. Only a fixed window can refuse a later instant: its dead zone, or a full window.
 * So each round either finds every rule admitting d (the fixpoint: the least such
 * instant, since d only moves to instants no rule admits before), or moves d to the start
 * of a later window of some fixed rule. d rises strictly, so the rounds end: at the
 * fixpoint, past max_wait, or after FIXPOINT_ROUNDS window starts. That cap bounds one
 * decision's work. Windows whose free parts meet that rarely are refused, never admitted.
 */
static enum plan_result plan_instant(struct chain_plan *pl, uint64_t max_wait)
{
    uint64_t d = rl__max(pl->now, pl->cooldown);
    pl->dry_rejected = false;
    for (unsigned i = 0; i < pl->n; i++) {
        struct plan_step *s = &pl->steps[i];
        if (rl__rule_earliest(&s->ctx, pl->now, pl->cost, &s->tight) != RULE_OK)
            return PLAN_STALE;
        if (s->tight == RL_NEVER)
            return PLAN_NEVER;
        if (!s->dry_run)
            d = rl__max(d, s->tight);
    }
    for (unsigned round = 0; d > pl->now; round++) {
        bool moved = false;
        if (d - pl->now > max_wait || round == FIXPOINT_ROUNDS)
            break;
        for (unsigned i = 0; i < pl->n; i++) {
            uint64_t e;
            if (pl->steps[i].dry_run)
                continue;
            if (rl__rule_earliest(&pl->steps[i].ctx, d, pl->cost, &e) != RULE_OK)
                return PLAN_STALE;
            moved |= e > d;
            d = rl__max(d, e);
        }
        if (!moved) {
            pl->d = d;
            return PLAN_OK;
        }
    }
    pl->d = d;
    return d == pl->now ? PLAN_OK : PLAN_FAR;
}

/* Every rule's word records a turn at d (rl__rule_fits). A dry-run rule that cannot is
 * left alone, as if it refused. */
static enum plan_result plan_fits(struct chain_plan *pl)
{
    for (unsigned i = 0; i < pl->n; i++) {
        struct plan_step *s = &pl->steps[i];
        if (s->skip || rl__rule_fits(&s->ctx, pl->now, pl->d, pl->cost))
            continue;
        if (!s->dry_run)
            return PLAN_FAR;
        s->skip = true;
        pl->dry_rejected = true;
    }
    return PLAN_OK;
}

/* Dry-run rules that would refuse at d are counted and left alone. */
static enum plan_result plan_dry_run(struct chain_plan *pl)
{
    pl->dry_rejected = false;
    for (unsigned i = 0; i < pl->n; i++) {
        struct plan_step *s = &pl->steps[i];
        uint64_t e;
        if (!s->dry_run)
            continue;
        if (rl__rule_earliest(&s->ctx, pl->d, pl->cost, &e) != RULE_OK)
            return PLAN_STALE;
        s->skip = e > pl->d;
        pl->dry_rejected |= s->skip;
    }
    return PLAN_OK;
}

static void plan_sort(struct chain_plan *pl)
{
    for (unsigned i = 1; i < pl->n; i++) /* insertion sort of at most 16, tightest first */
        for (unsigned j = i; j > 0 && pl->steps[j].tight > pl->steps[j - 1].tight; j--) {
            struct plan_step tmp = pl->steps[j];
            pl->steps[j] = pl->steps[j - 1];
            pl->steps[j - 1] = tmp;
        }
}

/* Step 5. Returns false if a CAS failed (after undoing what was committed). */
static bool plan_commit(struct chain_plan *pl)
{
    for (unsigned i = 0; i < pl->n; i++) {
        struct plan_step *s = &pl->steps[i];
        if (s->skip)
            continue;
        s->mine = rl__rule_next_word(&s->ctx, pl->d, pl->cost);
        uint64_t expected = s->ctx.word;
        if (s->ctx.kind == RULE_SERVER && s->mine == expected) {
            s->skip = true; /* an expired server rule: nothing to take */
            continue;
        }
        /* C2: acq_rel. Release: a sliding head publishes the log entries we read and the
         * helping we did; acquire: nothing extra. The linearization point of this rule. */
        if (!rl__cas_acq_rel(s->ctx.state, &expected, s->mine)) {
            while (i-- > 0)
                if (!pl->steps[i].skip)
                    rule_undo(&pl->steps[i]);
            return false;
        }
    }
    return true;
}

static void plan_finalize(struct chain_plan *pl)
{
    for (unsigned i = 0; i < pl->n; i++) {
        struct plan_step *s = &pl->steps[i];
        if (!s->skip)
            rl__rule_finalize(&s->ctx, s->ctx.word, s->mine);
    }
}

/* Units available now in the tightest rule (reporting only). */
static uint64_t plan_remaining(struct chain_plan *pl, bool committed)
{
    uint64_t least = UINT64_MAX;
    for (unsigned i = 0; i < pl->n; i++) {
        struct plan_step *s = &pl->steps[i];
        struct rule_ctx c = s->ctx;
        if (s->dry_run)
            continue;
        if (committed && !s->skip)
            c.word = s->mine;
        uint64_t left = rl__rule_remaining(&c, pl->now);
        least = left < least ? left : least;
    }
    return least;
}

static void count_admitted(rl_bucket *b, struct chain_plan *pl)
{
    /* Relaxed: statistics; they order nothing. */
    for (rl_bucket *x = b; x; x = x->parent)
        rl__count_admission(x, &x->rec->counters.admitted, pl->cost);
    if (pl->d > pl->now) {
        rl__fetch_add_relaxed(&b->rec->counters.waited, 1);
        rl__fetch_add_relaxed(&b->rec->counters.waited_ns, pl->d - pl->now);
    }
    for (rl_bucket *x = b; x; x = x->parent) /* once per request and bucket, not per rule */
        for (unsigned i = 0; i < pl->n; i++)
            if (pl->steps[i].bucket == x && pl->steps[i].skip && pl->steps[i].dry_run) {
                rl__fetch_add_relaxed(&x->rec->counters.dry_run_rejected, 1);
                break;
            }
}

/* A voided turn was not an admission after all (its units stay counted by the rules). */
static void uncount_admitted(rl_bucket *b, uint32_t cost)
{
    /* Relaxed: statistics; adding the two's complement subtracts. */
    for (rl_bucket *x = b; x; x = x->parent) {
        rl__fetch_add_relaxed(&x->rec->counters.admitted, (uint64_t)-1);
        rl__fetch_add_relaxed(&x->rec->counters.extra_units, -(uint64_t)(cost - 1));
    }
}

/* Sleep until relative instant rel, but never past `cap`, an absolute CLOCK_MONOTONIC
 * instant this process derived from its own clock reading and the caller's timeout. The
 * instant comes from shared words: the cap keeps a damaged one from stretching the sleep. */
static void sleep_until(const rl_table *t, uint64_t rel, uint64_t cap)
{
    uint64_t abs = rl__clock_abs(t, rel);
    abs = abs < cap ? abs : cap;
    struct timespec ts = {(time_t)(abs / 1000000000ULL), (long)(abs % 1000000000ULL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void fill_decision(struct rl_decision *out, struct chain_plan *pl, const rl_table *t,
                          bool admitted)
{
    if (!out)
        return;
    out->at_ns = rl__clock_abs(t, admitted ? pl->d : pl->now);
    out->wait_ns = admitted ? 0 : pl->d == RL_NEVER ? UINT64_MAX : pl->d - pl->now;
    out->remaining = plan_remaining(pl, admitted);
    out->dry_run_rejected = pl->dry_rejected;
}

/* Steps 1-5; returns 0 admitted at pl->d, RL_ELIMITED when d - now > max_wait. */
static int decide_general(rl_bucket *b, struct chain_plan *pl, uint64_t max_wait)
{
    for (unsigned stale = 0;;) {
        if (!plan_load(pl, stale > REPAIR_AFTER)) {
            /* The policy switched: decide under the new one. A switch that cannot finish
             * (a damaged successor block) counts as stale, so the loop stays bounded. */
            int err = plan_build(b, pl);
            if (err)
                return err;
            if (++stale > STALE_LIMIT)
                return rl__fail(RL_ECORRUPT,
                                "bucket '%s': its policy switch is damaged (reset repairs it)",
                                b->name);
            continue;
        }
        pl->now = rl__clock_rel(b->table);
        enum plan_result rc = plan_instant(pl, max_wait);
        if (rc == PLAN_OK)
            rc = plan_dry_run(pl);
        if (rc == PLAN_OK)
            rc = plan_fits(pl);
        if (rc == PLAN_NEVER)
            return rl__fail(RL_ECOST, "cost %u exceeds what bucket '%s' can ever admit", pl->cost,
                            b->name);
        if (rc == PLAN_STALE) {
            if (++stale > STALE_LIMIT)
                return rl__fail(RL_ECORRUPT, "bucket '%s': sliding-window state is damaged",
                                b->name);
            continue;
        }
        if (rc == PLAN_FAR && pl->d - pl->now <= max_wait)
            return rl__fail(RL_ELIMITED, "bucket '%s': no turn its rules agree on and can record",
                            b->name);
        if (rc == PLAN_FAR || pl->d - pl->now > max_wait)
            return RL_ELIMITED;
        plan_sort(pl);
        if (plan_commit(pl))
            return 0;
    }
}

static int request_check(const rl_bucket *b, uint32_t cost)
{
    if (!b || cost == 0)
        return rl__fail(RL_EINVAL, "a request needs a bucket and a cost of at least 1");
    if (b->table->read_only)
        return rl__fail(RL_EPERM, "table %s is open read-only", b->table->path);
    if (b->is_template)
        return rl__fail(RL_EINVAL, "'%s' is a template: take from a bucket made from it", b->name);
    return 0;
}

/* A reserved turn: its instant (relative ns, 0: now, no sleep), how late a waiter may wake
 * for it and still send (0: no limit), and the latest CLOCK_MONOTONIC instant a sleep for
 * it may end: this process's clock read after the decision, plus the decision's max_wait.
 * The turn is at most max_wait after the decision's own clock reading, an earlier one, so
 * the cap never ends a sleep before the turn; and a damaged shared word cannot stretch
 * the sleep past it. */
struct turn {
    uint64_t at, late, cap;
};

/* Half the least margin in effect of the chain's enforced rules: a waiter that wakes later
 * than that after its instant has left less than half the margin for the way to the
 * server. 0 (no limit) if a margin is 0: the rules then cover no delay at all. */
static uint64_t plan_late_limit(const struct chain_plan *pl)
{
    uint64_t least = UINT64_MAX;
    for (unsigned i = 0; i < pl->n; i++)
        if (pl->steps[i].view && !pl->steps[i].dry_run)
            least = rl__min(least, pl->steps[i].ctx.margin_ns);
    return least == UINT64_MAX ? 0 : least / 2;
}

/* The general path of acquire(), out of line: its plan is large, the fast path is small. */
__attribute__((noinline)) static int acquire_general(rl_bucket *b, uint32_t cost, uint64_t max_wait,
                                                     struct rl_decision *out, struct turn *turn)
{
    struct chain_plan pl;
    pl.cost = cost;
    int rc = plan_build(b, &pl);
    if (rc == 0)
        rc = decide_general(b, &pl, max_wait);
    if (rc == RL_ELIMITED) {
        rl__fetch_add_relaxed(&b->rec->counters.rejected, 1); /* relaxed: a statistic */
        fill_decision(out, &pl, b->table, false);
        return rc;
    }
    if (rc < 0)
        return rc;
    plan_finalize(&pl);
    count_admitted(b, &pl);
    fill_decision(out, &pl, b->table, true);
    turn->at = pl.d > pl.now ? pl.d : 0;
    turn->late = turn->at ? plan_late_limit(&pl) : 0;
    turn->cap = turn->at ? rl__sat_add(rl__clock_mono(), max_wait) : 0;
    return 0;
}

/* A checked request: 0 (admitted at turn->at: the caller sleeps until then), RL_ELIMITED,
 * or an error. This is the reservation both rl_acquire and rl_reserve make. */
static int acquire_checked(rl_bucket *b, uint32_t cost, uint64_t max_wait, struct rl_decision *out,
                           struct turn *turn)
{
    struct rl_section s;
    *turn = (struct turn){0, 0, 0};
    int rc = rl__guard_check(b->table);
    if (rc)
        return rc;
    /* The decision reads policy blocks: inside a section (reclaim.c). Sleeps are not. */
    rl__section_enter(b->table, &s);
    switch (rl__table_moved(b->table) ? GCRA_MOVED
                                      : rl__acquire_gcra_chain(b, cost, max_wait, out)) {
    case GCRA_MOVED: /* resized away: refuse, as a full budget does (never an error a
                      * fail-open caller would wave through); the detail says why */
        rc = RL_ELIMITED;
        rl__fetch_add_relaxed(&b->rec->counters.rejected, 1); /* relaxed: a statistic */
        if (out)
            *out = (struct rl_decision){.at_ns = rl_now_ns(), .wait_ns = MOVED_WAIT_NS};
        break;
    case GCRA_ADMITTED:
        break;
    case GCRA_REFUSED:
        rc = RL_ELIMITED;
        break;
    default: /* GCRA_DECLINED */
        rc = acquire_general(b, cost, max_wait, out, turn);
    }
    rl__section_exit(&s);
    /* A truncation during the decision made it on zeros: it does not stand (guard.c). */
    int lost = rl__guard_check(b->table);
    return lost ? lost : rc;
}

int rl_try_acquire(rl_bucket *b, uint32_t cost, struct rl_decision *out)
{
    struct turn turn;
    int rc = request_check(b, cost);
    return rc ? rc : acquire_checked(b, cost, 0, out, &turn);
}

/*
 * If a cool-down that began at or before our reserved instant d still covered d when we
 * woke, the vendor told the pool to stop before our turn came: the turn is void (its units
 * stay counted: under-admission). Resume after the cool-down, as far behind its end as d
 * was behind its start, so the waiters come back in their reserved order, spread out.
 * Returns that instant, or 0 if the turn stands.
 */
static uint64_t turn_voided_until(const rl_bucket *b, uint64_t d)
{
    uint64_t resume = 0;
    for (const rl_bucket *x = b; x; x = x->parent) {
        /* A8: acquire pairs with the CAS of rl_report (start is raised before until). */
        uint64_t until = rl__load_acquire(&x->rec->cooldown_until);
        uint64_t start = rl__load_acquire(&x->rec->last_429);
        if (start <= d && d < until)
            resume = rl__max(resume, until + (d - start));
    }
    return resume;
}

/* A chain with a global rule gets units only from the agent: sleep a pause (or to the
 * deadline) and try again. False when there is no global rule or no time left. */
static bool lease_wait(const rl_bucket *b, uint64_t deadline, uint64_t cap, uint64_t *timeout_ns)
{
    uint64_t pause = rl__lease_pause(b), now = rl__clock_rel(b->table);
    if (!pause || now >= deadline)
        return false;
    uint64_t woke = deadline - now > pause ? now + pause : deadline;
    sleep_until(b->table, woke, cap);
    *timeout_ns = deadline - woke;
    return true;
}

/*
 * A waiter that woke more than turn->late after its instant has less than half the
 * margin left for the way to the server: sent now, the server may count it in a window
 * the rules already filled. Take a fresh turn, within what is left of the timeout, and
 * leave the late one unused (its units stay counted: under-admission, as for a turn a
 * killed process never used). True: *turn is the fresh turn (out filled). False: no limit,
 * not late, or no fresh turn in time: the late turn stands (out as it was).
 */
static bool retake_late(rl_bucket *b, uint32_t cost, uint64_t deadline, struct rl_decision *out,
                        struct turn *turn)
{
    uint64_t now = rl__clock_rel(b->table);
    if (!turn->late || now <= rl__sat_add(turn->at, turn->late) || now >= deadline)
        return false;
    struct rl_decision held = out ? *out : (struct rl_decision){0};
    struct turn fresh;
    int rc = acquire_checked(b, cost, deadline - now, out, &fresh);
    if (rc) {
        if (rc == RL_ELIMITED) /* relaxed: a statistic; the late turn is no refusal */
            rl__fetch_add_relaxed(&b->rec->counters.rejected, (uint64_t)-1);
        if (out)
            *out = held;
        return false;
    }
    uncount_admitted(b, cost);
    *turn = fresh;
    return true;
}

int rl_acquire(rl_bucket *b, uint32_t cost, uint64_t timeout_ns, struct rl_decision *out)
{
    int err = request_check(b, cost);
    if (err)
        return err;
    /* The deadline, from this process's clock reading: absolute for the sleeps' cap,
     * relative to compare with the shared words' instants. */
    uint64_t cap = rl__sat_add(rl__clock_mono(), timeout_ns), start = rl__clock_rel(b->table);
    uint64_t deadline = rl__sat_add(start, timeout_ns), resume;
    struct turn turn;
    unsigned retakes = 0;
    bool paused = false;
    for (;;) {
        int rc = acquire_checked(b, cost, timeout_ns, out, &turn);
        if (rc == RL_ELIMITED && lease_wait(b, deadline, cap, &timeout_ns)) {
            /* A pause for the lease is part of one wait: take back the refusal it counted.
             * Relaxed: a statistic; adding the two's complement subtracts. */
            rl__fetch_add_relaxed(&b->rec->counters.rejected, (uint64_t)-1);
            paused = true;
            continue;
        }
        if (rc == 0 && paused) {
            /* The pauses' time, and the wait itself if the decision did not count one. */
            if (!turn.at)
                rl__fetch_add_relaxed(&b->rec->counters.waited, 1);
            rl__fetch_add_relaxed(&b->rec->counters.waited_ns, rl__clock_rel(b->table) - start);
        }
        if (rc < 0)
            return rc == RL_ELIMITED ? RL_ETIMEDOUT : rc;
        if (!turn.at)
            return 0;
        sleep_until(b->table, turn.at, turn.cap);
        while (!(resume = turn_voided_until(b, turn.at))) {
            if (retakes == LATE_RETAKES || !retake_late(b, cost, deadline, out, &turn))
                return 0;
            retakes++;
            if (!turn.at)
                return 0;
            sleep_until(b->table, turn.at, turn.cap);
        }
        uncount_admitted(b, cost);
        if (resume >= deadline)
            return rl__fail(RL_ETIMEDOUT, "bucket '%s': cooling down after a 429", b->name);
        sleep_until(b->table, resume, cap);
        uint64_t now = rl__clock_rel(b->table);
        timeout_ns = deadline > now ? deadline - now : 0;
    }
}

/* The chain's late limit under its rules now (plan_late_limit); 0 if none, or if the rules
 * cannot be read (the admission then stands: it was made under valid rules). */
static uint64_t chain_late_limit(rl_bucket *b, uint32_t cost)
{
    struct chain_plan pl;
    struct rl_section s;
    uint64_t limit = 0;
    if (rl__guard_check(b->table))
        return 0;
    pl.cost = cost;
    rl__section_enter(b->table, &s); /* plan_build reads policy blocks */
    if (plan_build(b, &pl) == 0)
        limit = plan_late_limit(&pl);
    rl__section_exit(&s);
    return rl__guard_check(b->table) ? 0 : limit;
}

int rl_acquire_recheck(rl_bucket *b, uint32_t cost, uint64_t timeout_ns, struct rl_decision *d)
{
    int err = request_check(b, cost);
    if (err)
        return err;
    if (!d || d->wait_ns) /* a refusal has a wait; an admission none */
        return rl__fail(RL_EINVAL, "rl_acquire_recheck needs an admission's decision");
    uint64_t limit = chain_late_limit(b, cost);
    if (!limit || rl_now_ns() <= rl__sat_add(d->at_ns, limit))
        return 0;
    /* One reservation, no lease pauses and no cool-down loops: whatever cannot be had by
     * a plain turn within the timeout leaves the stale admission standing at once. */
    struct rl_decision fresh;
    struct turn turn;
    int rc = acquire_checked(b, cost, timeout_ns, &fresh, &turn);
    if (rc) {
        /* The stale admission stands, and is no refusal. Relaxed: a statistic; adding the
         * two's complement subtracts. */
        if (rc == RL_ELIMITED)
            rl__fetch_add_relaxed(&b->rec->counters.rejected, (uint64_t)-1);
        return 0;
    }
    if (turn.at) {
        sleep_until(b->table, turn.at, turn.cap);
        if (turn_voided_until(b, turn.at)) {
            /* A 429 came while it slept: the fresh turn is void, the stale one stands. */
            uncount_admitted(b, cost);
            return 0;
        }
    }
    uncount_admitted(b, cost); /* the stale turn goes unused: its units stay counted */
    *d = fresh;
    return 1;
}

int rl_reserve(rl_bucket *b, uint32_t cost, uint64_t timeout_ns, struct rl_decision *out)
{
    struct turn turn;
    int rc = request_check(b, cost);
    if (rc == 0)
        rc = acquire_checked(b, cost, timeout_ns, out, &turn);
    return rc == RL_ELIMITED ? RL_ETIMEDOUT : rc;
}

int rl_reserve_check(rl_bucket *b, uint32_t cost, uint64_t at_ns, uint64_t *resume_ns)
{
    if (!b || cost == 0 || !resume_ns)
        return rl__fail(RL_EINVAL, "rl_reserve_check needs a bucket, the turn's cost and "
                                   "resume_ns");
    uint64_t epoch = b->table->epoch_ns; /* the copy checked at attach */
    uint64_t resume = at_ns > epoch ? turn_voided_until(b, at_ns - epoch) : 0;
    *resume_ns = resume ? resume + epoch : 0;
    if (!resume)
        return 0;
    uncount_admitted(b, cost);
    return RL_ELIMITED;
}
