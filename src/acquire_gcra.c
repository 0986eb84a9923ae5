/*
 * acquire_gcra.c - the fast path, for the commonest buckets: a chain (a bucket, its parent,
 * ...) in which every bucket has one enforced GCRA rule, no server rule and no cool-down
 * in force. It makes the decision acquire.c's decide_general() would, in fewer steps.
 *
 * - The first attempt reads the clock BEFORE the loads. The window between a load and its
 *   CAS is then a few instructions, which is what matters under contention. GCRA allows
 *   it. Against a TAT later than our instant, an older instant only makes the test
 *   stricter, and TAT' = TAT + cost * I stays as it was. Against an idle bucket, it is the
 *   decision decide_general() makes when preempted between its clock read and its CAS:
 *   admitted at t, as rl_decision.at_ns reports. The margin covers the way to the server.
 * - A refusal uses an instant read after the loads, as decide_general() does. So does
 *   every attempt after a lost CAS race, which reloads the words and the cool-downs. So no
 *   decision rests on an instant older than one attempt. (A process preempted between
 *   attempts must not refuse, or stamp an admission, with its stale instant.)
 * - Every rule admits now or the request is refused (max_wait 0). There is no fixpoint and
 *   no sort: when all rules admit now, the tightest-first order is the chain's order.
 * - The admission is counted in the policy block, next to the word (shm_rule.admitted).
 *   The CAS has just taken that cache line, so an admission of one unit writes one line
 *   per bucket, not two. rl_bucket_info adds the blocks' counts to the record's.
 *
 * Commits and undos are decide_general()'s (C2 and U1, see acquire.c). There is one CAS
 * per bucket, child first. A lost race takes back the words already committed, if they
 * are still ours. An undo that finds its word moved on leaves its units counted
 * (under-admission, as in decide_general()). A process killed between two commits, or
 * before it counts, leaves valid words. Its units stay counted by the rules, and one
 * admission is missing from the statistics.
 *
 * Any case it does not handle is GCRA_DECLINED, with nothing of its own left committed,
 * and decide_general() decides: a wait, a rule switch, a cool-down, a cost above the
 * burst, a turn a TAT cannot record, a damaged table.
 */
#include "margin.h"
#include "rule.h"

struct gcra_step {
    rl_bucket *bucket;
    const struct policy_view *view;
    rl_atomic64 *word;
    rl_atomic64 *admitted; /* the block's admission counter, on the word's cache line */
    uint64_t seen;         /* the word as loaded, or as returned by a failed CAS */
    uint64_t mine;         /* the word we committed */
    uint64_t margin;       /* the margin in effect (margin.c), as loaded */
    uint64_t interval;     /* I' for that margin (rule_gcra.c) */
};

struct gcra_chain {
    struct gcra_step steps[RL_MAX_DEPTH];
    struct policy_view spare[RL_MAX_DEPTH]; /* views when a handle's cache is full */
    unsigned n;
    uint64_t now;
};

static bool words_distinct(const struct gcra_chain *c)
{
    /* Only a damaged table makes two buckets of a chain share a word; our own first CAS
     * would then fail the second for ever. decide_general() reports it. */
    for (unsigned i = 0; i < c->n; i++)
        for (unsigned j = i + 1; j < c->n; j++)
            if (c->steps[i].word == c->steps[j].word)
                return false;
    return true;
}

static bool chain_build(rl_bucket *b, struct gcra_chain *c)
{
    c->n = 0;
    for (rl_bucket *x = b; x; x = x->parent) {
        const struct policy_view *v;
        /* Relaxed: as in plan_build, a report racing this decision is ordered after it. */
        if (c->n == RL_MAX_DEPTH || rl__bucket_view_cached(x, &c->spare[c->n], &v) != 0 ||
            !v->lone_gcra || rl__load_relaxed(&x->rec->server) != 0)
            return false;
        c->steps[c->n++] = (struct gcra_step){.bucket = x,
                                              .view = v,
                                              .word = &v->block->rules[0].word,
                                              .admitted = &v->block->rules[0].admitted};
    }
    return c->n == 1 || words_distinct(c);
}

/* Load every word; false if a bucket is cooling down after a 429 (at c->now). */
static bool chain_load(struct gcra_chain *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        struct gcra_step *s = &c->steps[i];
        /* A7 as in plan_load: acquire pairs with the cool-down CAS of rl_report. */
        if (rl__load_acquire(&s->bucket->rec->cooldown_until) > c->now)
            return false;
        /* A5 as in plan_load: acquire pairs with C2 of whoever wrote the word last. */
        s->seen = rl__load_acquire(s->word);
        s->margin = rl__margin_effective(s->bucket->rec, s->view->margin_ns);
        s->interval = rl__gcra_run(&s->view->rules[0], s->margin).interval_ns;
    }
    return true;
}

/* The instant every rule admits `cost` units, RL_NEVER if one never will; 0 if a word is
 * frozen (a rule switch, which decide_general() helps finish). */
static uint64_t chain_earliest(const struct gcra_chain *c, uint32_t cost)
{
    uint64_t d = c->now;
    for (unsigned i = 0; i < c->n; i++) {
        const struct gcra_step *s = &c->steps[i];
        if (s->seen & RL_FROZEN)
            return 0;
        d = rl__max(d, rl__gcra_earliest_for(&s->view->rules[0], s->margin, s->seen, c->now, cost));
    }
    return d;
}

/* Every TAT records an admission at c->now (rl__gcra_fits_for). */
static bool chain_fits(const struct gcra_chain *c, uint32_t cost)
{
    for (unsigned i = 0; i < c->n; i++)
        if (!rl__gcra_fits_for(c->steps[i].seen, c->now, cost, c->steps[i].interval))
            return false;
    return true;
}

/* Commit every word at c->now; false if a CAS failed (the commits before it are undone). */
static bool chain_commit(struct gcra_chain *c, uint32_t cost)
{
    for (unsigned i = 0; i < c->n; i++) {
        struct gcra_step *s = &c->steps[i];
        s->mine = rl__gcra_tat_after(s->seen, c->now, cost, s->interval);
        /* C2 as in plan_commit: acq_rel, the linearization point of this rule. */
        if (rl__cas_acq_rel(s->word, &s->seen, s->mine))
            continue;
        for (unsigned j = 0; j < i; j++) {
            /* U1 as in rule_undo: restore the word only if it is still ours. */
            uint64_t mine = c->steps[j].mine;
            rl__cas_acq_rel(c->steps[j].word, &mine, c->steps[j].seen);
        }
        return false;
    }
    return true;
}

/* Units left now in the tightest bucket, with each word as committed or as seen. */
static uint64_t chain_remaining(const struct gcra_chain *c, bool committed)
{
    uint64_t least = UINT64_MAX;
    for (unsigned i = 0; i < c->n; i++) {
        const struct gcra_step *s = &c->steps[i];
        struct rule_ctx ctx;
        struct rl_rule_state st = {0};
        rl__rule_ctx(&ctx, s->bucket->table, s->view, 0);
        ctx.word = committed ? s->mine : s->seen;
        ctx.margin_ns = s->margin;
        rl__gcra_usage(&ctx, c->now, &st);
        least = st.remaining < least ? st.remaining : least;
    }
    return least;
}

static void chain_decision(struct rl_decision *out, const struct gcra_chain *c, uint64_t d,
                           bool admitted)
{
    if (out)
        *out = (struct rl_decision){.at_ns = rl__clock_abs(c->steps[0].bucket->table, c->now),
                                    .wait_ns = d - c->now,
                                    .remaining = chain_remaining(c, admitted)};
}

enum gcra_chain_result rl__acquire_gcra_chain(rl_bucket *b, uint32_t cost, uint64_t max_wait,
                                              struct rl_decision *out)
{
    struct gcra_chain c;
    if (!chain_build(b, &c))
        return GCRA_DECLINED;
    c.now = rl__clock_rel(b->table);
    if (!chain_load(&c))
        return GCRA_DECLINED;
    for (bool fresh = false;;) {
        uint64_t d = chain_earliest(&c, cost);
        if (d > c.now && !fresh) {
            /* Refuse or wait only on an instant read after the words: ours may be old (we
             * were preempted), and an old instant is strict, not exact. */
            c.now = rl__clock_rel(b->table);
            fresh = true;
            continue;
        }
        if (d == 0 || d == RL_NEVER || (d > c.now && max_wait) || !chain_fits(&c, cost))
            return GCRA_DECLINED;
        if (d > c.now) {
            rl__fetch_add_relaxed(&b->rec->counters.rejected, 1); /* relaxed: a statistic */
            chain_decision(out, &c, d, false);
            return GCRA_REFUSED;
        }
        if (chain_commit(&c, cost))
            break;
        /* Someone else decided meanwhile: decide again against the words (and cool-downs)
         * now in place, at an instant read after them. */
        if (!chain_load(&c))
            return GCRA_DECLINED;
        c.now = rl__clock_rel(b->table);
        fresh = true;
    }
    for (unsigned i = 0; i < c.n; i++)
        rl__count_admission(c.steps[i].bucket, c.steps[i].admitted, cost);
    chain_decision(out, &c, c.now, true);
    return GCRA_ADMITTED;
}
