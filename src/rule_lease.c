/*
 * rule_lease.c - the global rule (RL_GLOBAL): N per rolling T for all hosts together.
 *
 * The budget is held in Redis. This host decides only from a lease: units that the host's
 * agent (tools/agent) took from Redis, usable until an instant. The lease is the rule's
 * state word in the policy block, so a decision treats it like any rule: loaded, checked,
 * committed by CAS with the others. A decision never talks to Redis.
 *
 * Word (bit 63 is RL_FROZEN, as for every block rule):
 *   left:19   units of the lease not yet used
 *   until:44  end of the lease, relative, in ticks of RL_TICK_NS (rounded down)
 * Word 0: no lease. Past `until` the rule admits nothing, whatever `left` says.
 * Decisions only take units (left - cost, same until). The agent replaces the whole word
 * by CAS (rl__lease_swap) when Redis grants a new lease; the units it replaced are never
 * used, so it may give them back to Redis. Why a lease can never over-admit across hosts:
 * tools/agent/grant.c.
 */
#include "rule.h"

#define TICK_MASK ((1ULL << 44) - 1)

uint64_t rl__lease_ns(const struct rule_params *r)
{
    return r->period_ns / RL_LEASE_PARTS;
}

uint64_t rl__lease_word(uint64_t left, uint64_t until_ns)
{
    left = left < RL_LEASE_MAX ? left : RL_LEASE_MAX;
    return left << 44 | (until_ns / RL_TICK_NS & TICK_MASK);
}

uint64_t rl__lease_until(uint64_t word)
{
    return (word & TICK_MASK) * RL_TICK_NS;
}

uint64_t rl__lease_left(uint64_t word)
{
    return (word & ~RL_FROZEN) >> 44;
}

/* Units usable at `at`. */
static uint64_t usable(uint64_t word, uint64_t at)
{
    return at < rl__lease_until(word) ? rl__lease_left(word) : 0;
}

enum rule_result rl__lease_earliest(const struct rule_ctx *c, uint64_t now, uint32_t cost,
                                    uint64_t *earliest)
{
    /* No later instant is known to have units: only the agent brings more, within a
     * lease's length if Redis has them. That instant is the hint; fits() refuses it. */
    *earliest = usable(c->word, now) >= cost ? now : now + rl__lease_ns(&c->r);
    return RULE_OK;
}

bool rl__lease_fits(const struct rule_ctx *c, uint64_t now, uint64_t d, uint32_t cost)
{
    (void)now;
    return usable(c->word, d) >= cost;
}

uint64_t rl__lease_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    (void)d;
    return c->word - ((uint64_t)cost << 44);
}

void rl__lease_reset(const struct rule_ctx *c)
{
    /* A reset drops the lease: it never creates units Redis did not grant. Z1: acq_rel
     * CAS, a state word like C2's; a frozen word stays as it is. */
    uint64_t v = rl__load_acquire(c->state);
    while (!(v & RL_FROZEN) && !rl__cas_acq_rel(c->state, &v, 0))
        ;
}

void rl__lease_usage(const struct rule_ctx *c, uint64_t now, struct rl_rule_state *out)
{
    out->used = 0; /* the hosts' usage is counted in Redis, not here */
    out->remaining = usable(c->word, now);
    uint64_t until = rl__lease_until(c->word);
    out->next_free_ns = out->remaining ? 0 : until > now ? until - now : 0;
}

uint64_t rl__lease_carry(const struct rule_ctx *c, uint64_t units, uint64_t at, uint64_t *excess)
{
    (void)c, (void)units, (void)at;
    *excess = 0;
    return 0; /* a new block starts without a lease; the old one's units just expire */
}

/* Inside a section: 0 if the lease's block is its bucket's current one. X2: then it cannot
 * be reused before the section ends, and the word is this bucket's. A resized table's
 * words were copied: a lease swapped into them would be lost, and the units it replaced
 * still usable in the new file (RL_ESTALE). */
static int lease_current(const struct lease_ref *ref)
{
    int err = rl__table_moved(ref->table);
    if (err)
        return err;
    if (rl__load_seq_cst(&ref->rec->policy_off) != ref->block)
        return rl__fail(RL_ENOENT, "bucket '%.*s' switched blocks: find its lease again",
                        RL_NAME_MAX, ref->rec->name);
    return 0;
}

int rl__lease_load(const struct lease_ref *ref, uint64_t *word)
{
    struct rl_section s;
    rl__section_enter(ref->table, &s);
    int err = lease_current(ref);
    if (!err) /* A5: pairs with C2 (the units decisions took), Q1 and Z1 */
        *word = rl__load_acquire(ref->word);
    rl__section_exit(&s);
    return err;
}

bool rl__lease_swap(const struct lease_ref *ref, uint64_t *expected, uint64_t next)
{
    struct rl_section s;
    bool swapped = false;
    if (*expected & RL_FROZEN)
        return false; /* the bucket is switching: the agent finds the new block */
    rl__section_enter(ref->table, &s);
    if (lease_current(ref) != 0)
        *expected |= RL_FROZEN;
    else /* Q1: acq_rel CAS, a state word like C2's: pairs with A5 of the decisions that
          * use the new lease, and with C2 of those that used the old one. */
        swapped = rl__cas_acq_rel(ref->word, expected, next);
    rl__section_exit(&s);
    return swapped;
}

bool rl__lease_same(const struct lease_ref *a, const struct lease_ref *b)
{
    /* Not the word's address: a reused block has the same one, under a new generation. */
    return a->rec == b->rec && a->block == b->block;
}

/* The lease of the viewed block, if it has a global rule. */
static int lease_of(const rl_bucket *b, const struct policy_view *v, struct lease_ref *out)
{
    for (uint32_t i = 0; i < v->nrules; i++) {
        if (v->rules[i].kind != RL_GLOBAL)
            continue;
        *out = (struct lease_ref){.word = &v->block->rules[i].word,
                                  .r = v->rules[i],
                                  .margin_ns = v->margin_ns,
                                  .table = b->table,
                                  .rec = b->rec,
                                  .block = v->off};
        return 0;
    }
    return RL_ENOENT;
}

int rl__lease_find(const rl_bucket *b, struct lease_ref *out)
{
    struct policy_view v;
    struct rl_section s;
    rl__section_enter(b->table, &s);
    int err = rl__bucket_view(b, &v);
    if (err == 0)
        err = lease_of(b, &v, out);
    rl__section_exit(&s);
    return err;
}

uint64_t rl__lease_pause(const rl_bucket *b)
{
    uint64_t pause = 0;
    for (const rl_bucket *x = b; x; x = x->parent) {
        struct lease_ref ref;
        if (rl__lease_find(x, &ref) != 0)
            continue;
        uint64_t p = rl__lease_ns(&ref.r) / 10; /* the agent looks this often, or more */
        p = p < RL_LEASE_PAUSE_MAX_NS ? p : RL_LEASE_PAUSE_MAX_NS;
        pause = pause && pause < p ? pause : p;
    }
    return pause;
}
