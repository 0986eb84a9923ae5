/*
 * prop - multi-process property tests and the crash test.
 *
 *   prop property [SCENARIO...]  16 forked workers hammer shared buckets for a bounded time
 *                                (deadline and iteration cap); every admission is logged
 *                                and afterwards checked EXACTLY against every rule of every
 *                                bucket it drew from
 *   prop crash                   workers hammer buckets (try and blocking, plus resets, rule
 *                                switches, config applies and
 *                                new definitions in a separate playground) while the parent
 *                                SIGKILLs and SIGSTOPs them at random instants and respawns
 *                                them; afterwards the table must be valid, no bucket wedged,
 *                                and the log must show no over-admission
 *   prop reuse                   workers switch buckets' rules back and forth (so blocks are
 *                                reused under stalled deciders) while the parent SIGKILLs
 *                                them; the log must show no over-admission, and the limbo
 *                                must drain once they are gone (see run_reuse)
 * Options: --seconds S (property, per scenario; reuse), --crash-seconds S, --crash-rounds N.
 * Exit status 0: every scenario passed. One summary line per scenario starts PASS or FAIL.
 *
 * The log: a MAP_SHARED|MAP_ANONYMOUS array, slots taken with fetch_add. A worker logs an
 * admission only after the call returned, with its own clock before the call and after
 * the return, so a killed worker's admission may be missing (under-admission, allowed),
 * never invented. Every check below is an upper bound, so it holds for any subset.
 *
 * The checks are the servers' view of the rules (margin only ever makes them stricter):
 *   sliding  no half-open window [a, a + T + margin) holds more than N units
 *   GCRA     replaying the admissions in instant order through an exact GCRA
 *            (I = ceil(T/N); cost c at t conforms iff max(TAT,t) - t <= (B - c)*I - margin)
 *            finds every admission conforming
 *   fixed    at most N units per window [kT, (k+1)T) of wall-clock time, where wall =
 *            at_ns + header.wall_offset_ns; with a margin, nothing admitted in a window's
 *            last min(margin, T/2) (it would reach the server in the next window)
 * A bucket is checked over its own admissions and those of all its descendants. Every
 * admission's at_ns must lie in [caller's clock before the call, caller's clock after it].
 * Utilization (admitted units / (N * duration / T) per rule) is printed, never asserted: it
 * depends on how busy the machine is. bench/ measures it (bench accuracy).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>

#include "rule.h"
#include "ratelimit.h"
#include "shm_format.h"

#define MS            UINT64_C(1000000)
#define SEC           UINT64_C(1000000000)
#define LOG_MAX       (1U << 20)
#define PROP_WORKERS  16
#define CRASH_WORKERS 12
#define ITER_MAX      50000000ULL /* per worker: a second bound besides the deadline */
#define F_BLOCKING    1
#define WORKER_PROBE  0xffffffffU /* log entries made by the parent's post-crash probe */
#define NEW_NAMES     48

/* ------------------------------------------------------------------ shared log */

struct entry {
    uint64_t at, before, after;
    uint32_t worker;
    uint16_t target;
    uint8_t cost;
    uint8_t flags;
    _Atomic uint32_t valid; /* release-stored last: a worker killed mid-write leaves 0 */
    uint32_t timeout_ms;
};

struct shared {
    _Atomic uint64_t next;
    _Atomic uint64_t overflow;
    _Atomic uint64_t errors;
    _Atomic uint64_t calls, rejected, timedout, bad_wait, resets, updates, applies, defines, stalls;
    uint64_t start_ns, deadline_ns;
    char errmsg[512];
    struct entry log[];
};

static size_t shared_bytes(void)
{
    return sizeof(struct shared) + (size_t)LOG_MAX * sizeof(struct entry);
}

static struct shared *shared_new(void)
{
    void *p = mmap(NULL, shared_bytes(), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        perror("prop: mmap");
        exit(2);
    }
    return p;
}

static void werr(struct shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void werr(struct shared *sh, const char *fmt, ...)
{
    if (atomic_fetch_add(&sh->errors, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(sh->errmsg, sizeof(sh->errmsg), fmt, ap);
        va_end(ap);
    }
}

static void log_admission(struct shared *sh, uint32_t worker, unsigned target, uint32_t cost,
                          bool blocking, uint64_t timeout, const struct rl_decision *d,
                          uint64_t before, uint64_t after)
{
    uint64_t i = atomic_fetch_add_explicit(&sh->next, 1, memory_order_relaxed);
    if (i >= LOG_MAX) {
        atomic_fetch_add_explicit(&sh->overflow, 1, memory_order_relaxed);
        return;
    }
    struct entry *e = &sh->log[i];
    e->at = d->at_ns;
    e->before = before;
    e->after = after;
    e->worker = worker;
    e->target = (uint16_t)target;
    e->cost = (uint8_t)cost;
    e->flags = blocking ? F_BLOCKING : 0;
    e->timeout_ms = (uint32_t)(timeout / MS);
    atomic_store_explicit(&e->valid, 1, memory_order_release);
}

/* ------------------------------------------------------------------ helpers */

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void sleep_until_ns(uint64_t abs)
{
    struct timespec ts = {(time_t)(abs / SEC), (long)(abs % SEC)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static uint32_t rnd(uint32_t n)
{
    return n ? arc4random_uniform(n) : 0;
}

/*
 * Fault injection. prop is linked with -Wl,--wrap for the functions below (see
 * meson.build), so a worker can stall for 1-12 ms at the two places where a slow process
 * matters most:
 *  - in *_next_word and rl__gcra_tat_after (the GCRA fast path, acquire_gcra.c): after the
 *    decision read its state and clock, before its CAS (and, for the second and later
 *    rules of a chain, after the first rules' CASes: the undo path);
 *  - in rl__sliding_finalize: after the sliding head's CAS, before the log writes. The unit is
 *    admitted but its log entry unwritten; a few laps on, the claimer of unit k+N must help
 *    it, and the stalled writer's late writes must not land on a newer lap.
 * Killing a worker while it is stalled there leaves the entries unwritten for good.
 */
uint64_t __real_rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
uint64_t __real_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
uint64_t __real_rl__fixed_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
uint64_t __real_rl__sliding_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void __real_rl__sliding_finalize(const struct rule_ctx *c, uint64_t old_word, uint64_t new_word);
uint64_t __wrap_rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
uint64_t __wrap_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns);
uint64_t __wrap_rl__fixed_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
uint64_t __wrap_rl__sliding_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost);
void __wrap_rl__sliding_finalize(const struct rule_ctx *c, uint64_t old_word, uint64_t new_word);

static unsigned inject_per_mille; /* 0 in the parent: never stalls */
static uint64_t injected;

static void maybe_stall(void)
{
    if (inject_per_mille && arc4random_uniform(1000) < inject_per_mille) {
        injected++;
        sleep_ns(MS + arc4random_uniform(11 * MS));
    }
}

uint64_t __wrap_rl__gcra_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    maybe_stall();
    return __real_rl__gcra_next_word(c, d, cost);
}

uint64_t __wrap_rl__gcra_tat_after(uint64_t tat, uint64_t d, uint32_t cost, uint64_t interval_ns)
{
    maybe_stall();
    return __real_rl__gcra_tat_after(tat, d, cost, interval_ns);
}

uint64_t __wrap_rl__fixed_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    maybe_stall();
    return __real_rl__fixed_next_word(c, d, cost);
}

uint64_t __wrap_rl__sliding_next_word(const struct rule_ctx *c, uint64_t d, uint32_t cost)
{
    maybe_stall();
    return __real_rl__sliding_next_word(c, d, cost);
}

void __wrap_rl__sliding_finalize(const struct rule_ctx *c, uint64_t old_word, uint64_t new_word)
{
    maybe_stall();
    __real_rl__sliding_finalize(c, old_word, new_word);
}

/* A bucket definition; parent is an index into the same array (parents come first). */
struct bdef {
    const char *name;
    const char *rules;
    int parent;
};

static bool in_chain(const struct bdef *defs, int target, int b)
{
    for (int x = target; x >= 0; x = defs[x].parent)
        if (x == b)
            return true;
    return false;
}

static void parse_or_die(const char *text, struct rl_policy *p)
{
    struct rl_parse_error e;
    if (rl_policy_parse(text, p, &e) < 0) {
        fprintf(stderr, "prop: cannot parse '%s' at %u: %s\n", text, e.column, e.message);
        exit(2);
    }
}

static int define_one(rl_table *t, const struct bdef *defs, unsigned i, rl_bucket **out)
{
    struct rl_policy p;
    parse_or_die(defs[i].rules, &p);
    return rl_bucket_define(t, defs[i].name, &p,
                            defs[i].parent >= 0 ? defs[defs[i].parent].name : NULL, out);
}

static int open_table(const char *path, unsigned flags, uint32_t capacity, rl_table **t)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = path;
    o.flags = flags;
    o.capacity = capacity;
    return rl_table_open(&o, t);
}

/* header.wall_offset_ns, read from the file itself (the fixed-window origin). */
static int read_wall_offset(const char *path, int64_t *off)
{
    unsigned char buf[RL_HEADER_BYTES];
    uint64_t magic;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    close(fd);
    if (n != (ssize_t)sizeof(buf))
        return -1;
    memcpy(&magic, buf + offsetof(struct shm_header, magic), sizeof(magic));
    memcpy(off, buf + offsetof(struct shm_header, wall_offset_ns), sizeof(*off));
    return magic == RL_MAGIC ? 0 : -1;
}

static const char *kind_name(enum rl_rule_kind k)
{
    return k == RL_GCRA ? "gcra" : k == RL_FIXED ? "fixed" : "sliding";
}

/* ------------------------------------------------------------------ the exact checks */

struct adm {
    uint64_t at;
    uint32_t cost;
    uint32_t e; /* index into the log */
};

static int cmp_adm(const void *a, const void *b)
{
    const struct adm *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return (x->e > y->e) - (x->e < y->e);
}

struct check_ctx {
    const char *label;
    const struct entry *log;
    int64_t wall_off;
    uint64_t start, end; /* the measured period for utilization */
    bool quiet;
};

static void show_entry(const struct check_ctx *cx, uint32_t e, uint64_t base)
{
    const struct entry *x = &cx->log[e];
    fprintf(stderr,
            "    entry %u: worker %u target %u cost %u %s at +%.6f ms (called +%.6f, returned "
            "+%.6f)\n",
            e, x->worker, x->target, x->cost, x->flags & F_BLOCKING ? "acquire" : "try",
            (double)(int64_t)(x->at - base) / 1e6, (double)(int64_t)(x->before - base) / 1e6,
            (double)(int64_t)(x->after - base) / 1e6);
}

/* Sliding: units sorted by instant; unit i+N must be at least T + margin after unit i. */
static uint64_t check_sliding(const struct check_ctx *cx, const char *bname,
                              const struct rl_rule *r, uint64_t margin, const struct adm *a,
                              size_t n, uint64_t *worst)
{
    uint64_t units = 0, bad = 0, span = r->period_ns + margin;
    for (size_t i = 0; i < n; i++)
        units += a[i].cost;
    uint64_t *t = malloc((units + 1) * sizeof(*t));
    uint32_t *who = malloc((units + 1) * sizeof(*who));
    if (!t || !who) {
        perror("prop: malloc");
        exit(2);
    }
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t c = 0; c < a[i].cost; c++) {
            t[u] = a[i].at;
            who[u++] = a[i].e;
        }
    *worst = 0;
    for (size_t i = 0, j = 0; i < units; i++) {
        while (j < units && t[j] < t[i] + span)
            j++;
        if (j - i > *worst)
            *worst = j - i;
        if (j - i > r->limit) {
            if (!bad++) {
                fprintf(stderr,
                        "  OVER-ADMISSION %s: bucket '%s' rule %" PRIu64 "/%" PRIu64
                        "ms sliding: window [+0, +%" PRIu64 " ns) from unit %zu holds %zu "
                        "units > %" PRIu64 "; first and last admissions in it:\n",
                        cx->label, bname, r->limit, r->period_ns / MS, span, i, j - i, r->limit);
                show_entry(cx, who[i], t[i]);
                show_entry(cx, who[i + r->limit], t[i]);
                show_entry(cx, who[j - 1], t[i]);
            }
        }
    }
    free(t);
    free(who);
    return bad;
}

/* GCRA: replay in instant order; *worst is the least slack seen, in ns. */
static uint64_t check_gcra(const struct check_ctx *cx, const char *bname, const struct rl_rule *r,
                           uint64_t margin, const struct adm *a, size_t n, int64_t *worst)
{
    uint64_t interval = (r->period_ns + r->limit - 1) / r->limit, bad = 0, tat = 0;
    uint64_t burst = r->burst ? r->burst : r->limit;
    *worst = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t at = a[i].at, x = tat > at ? tat : at;
        int64_t slack =
            (int64_t)((burst - a[i].cost) * interval) - (int64_t)margin - (int64_t)(x - at);
        if (slack < *worst)
            *worst = slack;
        if (slack < 0 && !bad++) {
            fprintf(stderr,
                    "  OVER-ADMISSION %s: bucket '%s' rule %" PRIu64 "/%" PRIu64 "ms burst %" PRIu64
                    ": admission %zu of cost %u at TAT-ahead %" PRIu64
                    " ns exceeds the allowance by %" PRId64 " ns:\n",
                    cx->label, bname, r->limit, r->period_ns / MS, burst, i, a[i].cost, x - at,
                    -slack);
            if (i)
                show_entry(cx, a[i - 1].e, a[i].at);
            show_entry(cx, a[i].e, a[i].at);
        }
        tat = x + a[i].cost * interval;
    }
    return bad;
}

/* Fixed: count per wall-clock-aligned window; with a margin, nothing in the dead zone. */
static uint64_t check_fixed(const struct check_ctx *cx, const char *bname, const struct rl_rule *r,
                            uint64_t margin, const struct adm *a, size_t n, uint64_t *worst)
{
    uint64_t T = r->period_ns, dz = margin < T / 2 ? margin : T / 2, bad = 0;
    uint64_t win = UINT64_MAX, count = 0;
    size_t first = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t wall = (uint64_t)((int64_t)a[i].at + cx->wall_off), w = wall / T;
        if (w != win) {
            win = w;
            count = 0;
            first = i;
        }
        count += a[i].cost;
        if (count > *worst)
            *worst = count;
        if (count > r->limit && !bad++) {
            fprintf(stderr,
                    "  OVER-ADMISSION %s: bucket '%s' rule %" PRIu64 "/%" PRIu64
                    "ms fixed: window %" PRIu64 " (wall %" PRIu64 ".%09" PRIu64 ") holds %" PRIu64
                    " > %" PRIu64 " units; first and last admissions:\n",
                    cx->label, bname, r->limit, T / MS, w, w * T / SEC, w * T % SEC, count,
                    r->limit);
            show_entry(cx, a[first].e, a[first].at);
            show_entry(cx, a[i].e, a[first].at);
        }
        if (dz && (wall + dz) / T != w && !bad++) {
            fprintf(stderr,
                    "  DEAD-ZONE %s: bucket '%s' rule %" PRIu64 "/%" PRIu64
                    "ms fixed margin %" PRIu64 "ms: admitted %" PRIu64
                    " ns before the window ends (server may count it in the next window):\n",
                    cx->label, bname, r->limit, T / MS, margin / MS, (w + 1) * T - wall);
            show_entry(cx, a[i].e, a[i].at);
        }
    }
    return bad;
}

/*
 * Check every rule of every bucket over the admissions of its subtree. util[b][r] is the
 * share of rule r's capacity used in [start, end). Returns the number of violations.
 */
static uint64_t check_all(const struct check_ctx *cx, const struct bdef *defs, unsigned nb,
                          size_t nlog, double util[][RL_MAX_RULES], uint64_t units_of[])
{
    uint64_t bad = 0;
    struct adm *a = malloc((nlog + 1) * sizeof(*a));
    if (!a) {
        perror("prop: malloc");
        exit(2);
    }
    for (unsigned b = 0; b < nb; b++) {
        struct rl_policy p;
        size_t n = 0;
        uint64_t units = 0, in_period = 0;
        parse_or_die(defs[b].rules, &p);
        for (size_t i = 0; i < nlog; i++) {
            const struct entry *e = &cx->log[i];
            if (!atomic_load_explicit(&e->valid, memory_order_acquire) ||
                !in_chain(defs, e->target, (int)b))
                continue;
            a[n++] = (struct adm){e->at, e->cost, (uint32_t)i};
            units += e->cost;
            if (e->at >= cx->start && e->at < cx->end)
                in_period += e->cost;
        }
        units_of[b] = units;
        qsort(a, n, sizeof(*a), cmp_adm);
        for (unsigned r = 0; r < p.nrules; r++) {
            const struct rl_rule *rule = &p.rules[r];
            double cap =
                (double)rule->limit * (double)(cx->end - cx->start) / (double)rule->period_ns;
            uint64_t v, worst = 0;
            int64_t slack = 0;
            char what[96];
            util[b][r] = cap > 0 ? (double)in_period / cap : 0;
            if (rule->kind == RL_GCRA) {
                v = check_gcra(cx, defs[b].name, rule, p.margin_ns, a, n, &slack);
                snprintf(what, sizeof(what), "least GCRA slack %.3f ms",
                         n ? (double)slack / 1e6 : 0.0);
            } else if (rule->kind == RL_FIXED) {
                v = check_fixed(cx, defs[b].name, rule, p.margin_ns, a, n, &worst);
                snprintf(what, sizeof(what), "fullest window %" PRIu64 "/%" PRIu64, worst,
                         rule->limit);
            } else {
                v = check_sliding(cx, defs[b].name, rule, p.margin_ns, a, n, &worst);
                snprintf(what, sizeof(what), "fullest window %" PRIu64 "/%" PRIu64, worst,
                         rule->limit);
            }
            bad += v;
            if (!cx->quiet || v)
                printf("  %-8s %-14s %" PRIu64 "/%" PRIu64 "ms %-7s: %6" PRIu64
                       " units, util %6.1f%%, %s%s\n",
                       cx->label, defs[b].name, rule->limit, rule->period_ns / MS,
                       kind_name(rule->kind), units, 100 * util[b][r], what,
                       v ? "  <-- OVER-ADMISSION" : "");
        }
    }
    free(a);
    return bad;
}

/* Every admission instant lies within the caller's [before, after]. Also counts the
 * blocking admissions that were reserved ahead (at_ns more than 100 us after the call). */
static uint64_t check_bounds(const struct check_ctx *cx, size_t nlog, uint64_t *waited,
                             uint64_t *max_wait)
{
    uint64_t bad = 0;
    *waited = *max_wait = 0;
    for (size_t i = 0; i < nlog; i++) {
        const struct entry *e = &cx->log[i];
        if (!atomic_load_explicit(&e->valid, memory_order_acquire))
            continue;
        if ((e->flags & F_BLOCKING) && e->at > e->before + 100000) {
            ++*waited;
            *max_wait = e->at - e->before > *max_wait ? e->at - e->before : *max_wait;
        }
        if (e->at < e->before || e->at > e->after) {
            if (!bad++) {
                fprintf(stderr, "  AT-BOUNDS %s: at_ns outside [before call, after return]:\n",
                        cx->label);
                show_entry(cx, (uint32_t)i, e->before);
            }
        }
    }
    return bad;
}

/* The least, over targets, of the most-used rule on the target's chain: is the bottleneck
 * of each worker group saturated? */
static double binding_util(const struct bdef *defs, unsigned nb, const int *targets,
                           unsigned ntargets, double util[][RL_MAX_RULES])
{
    double least = 1e9;
    for (unsigned i = 0; i < ntargets; i++) {
        double most = 0;
        for (unsigned b = 0; b < nb; b++) {
            struct rl_policy p;
            if (!in_chain(defs, targets[i], (int)b))
                continue;
            parse_or_die(defs[b].rules, &p);
            for (unsigned r = 0; r < p.nrules; r++)
                most = util[b][r] > most ? util[b][r] : most;
        }
        least = most < least ? most : least;
    }
    return least;
}

/* ------------------------------------------------------------------ property scenarios */

enum mode { M_TRY, M_BLOCK };

struct scenario {
    const char *name;
    enum mode mode;
    unsigned cost_max;
    unsigned nb;
    struct bdef b[10];
    unsigned ntargets;
    int targets[10];           /* worker w draws from targets[w % ntargets] */
    unsigned pace_us[10];      /* per target: pause after each call (0: saturate) */
    unsigned inject_per_mille; /* stalls injected into decisions (see fault injection) */
};

static const struct scenario scenarios[] = {
    {"sliding", M_TRY, 1, 1, {{"s", "50/200ms margin 0", -1}}, 1, {0}, {0}, 0},
    {"gcra", M_TRY, 1, 1, {{"g", "50/200ms burst 10 margin 0", -1}}, 1, {0}, {0}, 0},
    {"fixed", M_TRY, 1, 1, {{"f", "50/200ms fixed margin 0", -1}}, 1, {0}, {0}, 0},
    {"multi", M_TRY, 1, 1, {{"m", "20/100ms, 50/400ms margin 0", -1}}, 1, {0}, {0}, 0},
    {"multi-mixed",
     M_TRY,
     1,
     1,
     {{"mm", "10/50ms, 30/200ms fixed, 25/150ms burst 5 margin 0", -1}},
     1,
     {0},
     {0},
     0},
    {"chain",
     M_TRY,
     1,
     3,
     {{"p", "40/200ms margin 0", -1},
      {"p/c1", "30/200ms margin 0", 0},
      {"p/c2", "30/200ms margin 0", 0}},
     2,
     {1, 2},
     {0},
     0},
    {"cost",
     M_TRY,
     3,
     6,
     {{"cs", "50/200ms margin 0", -1},
      {"cg", "50/200ms burst 10 margin 0", -1},
      {"cf", "50/200ms fixed margin 0", -1},
      {"cp", "40/200ms margin 0", -1},
      {"cp/c1", "30/200ms margin 0", 3},
      {"cp/c2", "30/200ms burst 6 margin 0", 3}},
     5,
     {0, 1, 2, 4, 5},
     {0},
     0},
    /* Margins: sliding windows count T + margin, GCRA keeps margin of allowance spare, and
     * fixed windows admit nothing in their last `margin` (paced: never saturated, so the
     * dead zone is where the budget would otherwise be spent). */
    {"margin",
     M_TRY,
     2,
     3,
     {{"ms", "50/200ms margin 20ms", -1},
      {"mg", "50/200ms burst 10 margin 20ms", -1},
      {"mf", "5000/100ms fixed margin 10ms", -1}},
     3,
     {0, 1, 2},
     {0, 0, 300},
     0},
    /* Laps: a fast sliding leaf (a lap of its log every 2 ms) committed first, before the
     * CASes of a loose rule and two loose ancestors, so a writer preempted between its head
     * CAS and its log writes is overtaken by whole laps: its entries are helped, and its late
     * writes must not land on newer laps. */
    {"sliding-laps",
     M_TRY,
     3,
     3,
     {{"l", "1000000/1s burst 1000, 1000000/1s fixed, 100000/1s margin 0", -1},
      {"l/m", "1000000/1s burst 1000, 1000000/1s fixed margin 0", 0},
      {"l/m/s", "20/2ms, 1000000/1s burst 1000, 1000000/1s fixed margin 0", 1}},
     1,
     {2},
     {0},
     20},
    /* Undo: fast children under a parent that a hog sibling updates all the time, so a
     * child's commit is often followed by a failed parent CAS and taken back (step 5). */
    {"chain-undo",
     M_TRY,
     1,
     5,
     {{"u", "1000000/1s burst 1000 margin 0", -1},
      {"u/hog", "200000/1s burst 100 margin 0", 0},
      {"u/g", "20000/1s burst 20 margin 0", 0},
      {"u/s", "2000/100ms margin 0", 0},
      {"u/f", "2000/100ms fixed margin 0", 0}},
     4,
     {1, 2, 3, 4},
     {0},
     2},
    /* The GCRA fast path (acquire_gcra.c): lone-GCRA buckets and a chain of them, under a
     * parent a hog sibling keeps busy, with stalls between the loads and the CASes, so
     * decisions lose races, retry, undo, and must refresh their instant before they refuse. */
    {"gcra-fast",
     M_TRY,
     2,
     4,
     {{"gf", "600/200ms burst 40 margin 0", -1},
      {"gf/hog", "300/200ms burst 20 margin 0", 0},
      {"gf/a", "100/200ms burst 10 margin 0", 0},
      {"gl", "50/200ms burst 10 margin 0", -1}},
     3,
     {1, 2, 3},
     {0},
     5},
    {"blocking",
     M_BLOCK,
     3,
     9,
     {{"bs", "50/200ms margin 0", -1},
      {"bg", "50/200ms burst 10 margin 0", -1},
      {"bf", "50/200ms fixed margin 0", -1},
      {"bm", "20/100ms, 50/400ms margin 0", -1},
      {"bx", "10/50ms, 30/200ms fixed, 25/150ms burst 5 margin 0", -1},
      {"bp", "40/200ms margin 0", -1},
      {"bp/c1", "30/200ms margin 0", 5},
      {"bp/c2", "30/200ms fixed margin 0", 5},
      {"bfm", "5000/100ms fixed margin 10ms", -1}},
     8,
     {0, 1, 2, 3, 4, 6, 7, 8},
     {0, 0, 0, 0, 0, 0, 0, 300},
     5},
    /* Fixpoint: four fixed windows of close periods, each dead in its last 80 ms. A turn is
     * an instant all four admit; it can take many rounds to find, and waiters race for it.
     * Nothing may be admitted in any rule's dead zone. */
    {"fixpoint",
     M_BLOCK,
     1,
     1,
     {{"fp", "3/254ms fixed, 3/249ms fixed, 3/245ms fixed, 3/236ms fixed margin 80ms", -1}},
     1,
     {0},
     {0},
     0},
};

static const uint64_t block_timeouts[] = {0, 5 * MS, 20 * MS, 50 * MS, 100 * MS};

static void prop_worker(const struct scenario *sc, const char *path, struct shared *sh, unsigned w)
{
    rl_table *t;
    rl_bucket *h[10];
    /* Every worker creates-or-attaches the table and defines every bucket, concurrently:
     * creation and definition races must yield one table and one bucket per name. */
    int rc = open_table(path, RL_OPEN_CREATE, 64, &t);
    if (rc < 0) {
        werr(sh, "worker %u: rl_table_open: %s: %s", w, rl_err_name(rc), rl_errdetail());
        _exit(3);
    }
    for (unsigned i = 0; i < sc->nb; i++)
        if ((rc = define_one(t, sc->b, i, &h[i])) < 0) {
            werr(sh, "worker %u: define %s: %s: %s", w, sc->b[i].name, rl_err_name(rc),
                 rl_errdetail());
            _exit(3);
        }
    unsigned target = (unsigned)sc->targets[w % sc->ntargets];
    uint64_t pace = sc->pace_us[w % sc->ntargets] * UINT64_C(1000);
    rl_bucket *b = h[target];
    bool use_try = sc->mode == M_TRY || w % 4 == 3; /* blocking: a quarter keeps trying */
    bool sleepy = sc->mode == M_TRY && w % 4 == 1;  /* sleeps the hinted wait, no spin */
    uint64_t calls = 0, rejected = 0, timedout = 0, bad_wait = 0;
    sleep_until_ns(sh->start_ns);
    inject_per_mille = sc->inject_per_mille;
    for (uint64_t it = 0; it < ITER_MAX; it++) {
        uint64_t before = rl_now_ns();
        if (before >= sh->deadline_ns)
            break;
        uint32_t cost = 1 + rnd(sc->cost_max);
        uint64_t timeout = use_try ? 0 : block_timeouts[rnd(5)];
        struct rl_decision d;
        rc = use_try ? rl_try_acquire(b, cost, &d) : rl_acquire(b, cost, timeout, &d);
        uint64_t after = rl_now_ns();
        calls++;
        if (rc == 0) {
            log_admission(sh, w, target, cost, !use_try, timeout, &d, before, after);
        } else if (rc == RL_ELIMITED && use_try) {
            rejected++;
            bad_wait += d.wait_ns == 0;
            if (sleepy)
                sleep_ns(d.wait_ns < 2 * MS ? d.wait_ns : 2 * MS);
        } else if (rc == RL_ETIMEDOUT && !use_try) {
            timedout++;
            bad_wait += d.wait_ns <= timeout;
            sleep_ns(rnd(2 * MS));
        } else {
            werr(sh, "worker %u: %s(%s, %u): %s: %s", w, use_try ? "rl_try_acquire" : "rl_acquire",
                 sc->b[target].name, cost, rl_err_name(rc), rl_errdetail());
            break;
        }
        if (pace)
            sleep_ns(pace);
    }
    atomic_fetch_add(&sh->stalls, injected);
    atomic_fetch_add(&sh->calls, calls);
    atomic_fetch_add(&sh->rejected, rejected);
    atomic_fetch_add(&sh->timedout, timedout);
    atomic_fetch_add(&sh->bad_wait, bad_wait);
    rl_table_close(t);
    _exit(0);
}

struct verify_ctx {
    const struct bdef *defs;
    unsigned nb;
    unsigned found;
    unsigned bad;
};

static int count_bucket(rl_bucket *b, void *arg)
{
    struct verify_ctx *v = arg;
    struct rl_bucket_info info;
    v->found++;
    if (rl_bucket_info(b, &info) < 0) {
        fprintf(stderr, "  rl_bucket_info(%s): %s\n", rl_bucket_name(b), rl_errdetail());
        v->bad++;
    }
    return 0;
}

/* Exactly one bucket per name, each with the defined policy and parent. */
static unsigned verify_buckets(rl_table *t, const struct bdef *defs, unsigned nb, rl_bucket **h)
{
    struct verify_ctx v = {defs, nb, 0, 0};
    rl_table_foreach(t, count_bucket, &v);
    if (v.found != nb) {
        fprintf(stderr, "  table holds %u buckets, %u were defined\n", v.found, nb);
        v.bad++;
    }
    for (unsigned i = 0; i < nb; i++) {
        struct rl_bucket_info info;
        struct rl_policy p;
        parse_or_die(defs[i].rules, &p);
        if (rl_bucket_lookup(t, defs[i].name, &h[i]) < 0 || rl_bucket_info(h[i], &info) < 0) {
            fprintf(stderr, "  bucket %s: %s\n", defs[i].name, rl_errdetail());
            v.bad++;
            h[i] = NULL;
            continue;
        }
        const char *want = defs[i].parent >= 0 ? defs[defs[i].parent].name : "";
        if (!rl__policy_same(&p, &info.policy) || strcmp(info.parent, want) != 0) {
            fprintf(stderr, "  bucket %s: policy or parent differs from its definition\n",
                    defs[i].name);
            v.bad++;
        }
    }
    return v.bad;
}

static bool run_scenario(const struct scenario *sc, uint64_t dur_ns)
{
    char path[128];
    pid_t pids[PROP_WORKERS];
    snprintf(path, sizeof(path), "/dev/shm/rl-prop-%ld-%s", (long)getpid(), sc->name);
    unlink(path);
    struct shared *sh = shared_new();
    sh->start_ns = rl_now_ns() + 300 * MS;
    sh->deadline_ns = sh->start_ns + dur_ns;
    fflush(NULL);
    for (unsigned w = 0; w < PROP_WORKERS; w++) {
        pids[w] = fork();
        if (pids[w] < 0) {
            perror("prop: fork");
            exit(2);
        }
        if (pids[w] == 0)
            prop_worker(sc, path, sh, w);
    }
    uint64_t failures = 0;
    for (unsigned w = 0; w < PROP_WORKERS; w++) {
        int st;
        while (waitpid(pids[w], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "  worker %u ended abnormally (status 0x%x)\n", w, st);
            failures++;
        }
    }
    printf("[%s] %u procs, %.2f s: %" PRIu64 " calls, %" PRIu64 " rejected, %" PRIu64
           " timed out, %" PRIu64 " admissions, %" PRIu64 " injected stalls\n",
           sc->name, PROP_WORKERS, (double)dur_ns / 1e9, atomic_load(&sh->calls),
           atomic_load(&sh->rejected), atomic_load(&sh->timedout), atomic_load(&sh->next),
           atomic_load(&sh->stalls));
    if (atomic_load(&sh->errors)) {
        fprintf(stderr, "  %" PRIu64 " worker errors, first: %s\n", atomic_load(&sh->errors),
                sh->errmsg);
        failures++;
    }
    if (atomic_load(&sh->overflow)) {
        fprintf(stderr, "  admission log overflowed\n");
        failures++;
    }
    if (sc->inject_per_mille && !atomic_load(&sh->stalls)) {
        fprintf(stderr, "  fault injection is not active (is prop linked with -Wl,--wrap?)\n");
        failures++;
    }
    if (atomic_load(&sh->bad_wait)) {
        fprintf(stderr, "  %" PRIu64 " refusals with a wait_ns that contradicts the refusal\n",
                atomic_load(&sh->bad_wait));
        failures++;
    }

    rl_table *t;
    rl_bucket *h[10] = {0};
    int64_t wall_off = 0;
    int rc = open_table(path, 0, 0, &t);
    if (rc < 0 || read_wall_offset(path, &wall_off) < 0) {
        fprintf(stderr, "  cannot reopen %s: %s\n", path, rl_errdetail());
        munmap(sh, shared_bytes());
        printf("FAIL %-12s table unusable after the run\n", sc->name);
        return false;
    }
    failures += verify_buckets(t, sc->b, sc->nb, h);

    size_t nlog = atomic_load(&sh->next);
    nlog = nlog < LOG_MAX ? nlog : LOG_MAX;
    struct check_ctx cx = {sc->name, sh->log, wall_off, sh->start_ns, sh->deadline_ns, false};
    double util[10][RL_MAX_RULES] = {{0}};
    uint64_t units[10] = {0};
    uint64_t over = check_all(&cx, sc->b, sc->nb, nlog, util, units);
    uint64_t waited, max_wait;
    uint64_t bounds = check_bounds(&cx, nlog, &waited, &max_wait);
    if (sc->mode == M_BLOCK)
        printf("  %-8s %" PRIu64 " admissions were reserved ahead (longest %.1f ms)\n", sc->name,
               waited, (double)max_wait / 1e6);
    /* No process died: the counters must match the log exactly. */
    for (unsigned i = 0; i < sc->nb; i++) {
        struct rl_bucket_info info;
        if (h[i] && rl_bucket_info(h[i], &info) == 0 && info.counters.admitted_units != units[i]) {
            fprintf(stderr,
                    "  bucket %s: counters say %" PRIu64 " units admitted, the log %" PRIu64 "\n",
                    sc->b[i].name, info.counters.admitted_units, units[i]);
            failures++;
        }
    }
    int saturated[10];
    unsigned nsat = 0;
    for (unsigned i = 0; i < sc->ntargets; i++)
        if (!sc->pace_us[i])
            saturated[nsat++] = sc->targets[i];
    double bu = binding_util(sc->b, sc->nb, saturated, nsat, util);
    bool ok = !failures && !over && !bounds;
    printf("%s %-12s %u procs %.2f s: %" PRIu64 " over-admissions, %" PRIu64
           " at_ns out of bounds, binding utilization %.1f%% (not asserted)\n",
           ok ? "PASS" : "FAIL", sc->name, PROP_WORKERS, (double)dur_ns / 1e9, over, bounds,
           100 * bu);
    rl_table_close(t);
    munmap(sh, shared_bytes());
    if (ok)
        unlink(path);
    else
        fprintf(stderr, "  table kept for inspection: %s\n", path);
    fflush(NULL);
    return ok;
}

/* ------------------------------------------------------------------ crash test */

/* Buckets whose invariants are checked: never reset. */
static const struct bdef crash_inv[] = {
    {"x-sl8", "8/20ms margin 0", -1}, /* small N: many laps of the log */
    {"x-sl", "50/100ms margin 0", -1},
    {"x-gc", "40/100ms burst 8 margin 0", -1},
    {"x-fx", "40/100ms fixed margin 0", -1},
    {"x-multi", "10/50ms, 30/200ms fixed, 25/150ms burst 5 margin 0", -1},
    {"x-root", "60/100ms margin 0", -1},
    {"x-root/mid", "45/100ms fixed margin 0", 5},
    {"x-root/mid/a", "30/100ms burst 6 margin 0", 6},
    {"x-root/mid/b", "30/100ms margin 0", 6},
    {"x-root/c", "25/100ms margin 5ms", 5},
    {"x-fxm", "40/100ms fixed margin 10ms", -1},
    {"x-gcm", "40/100ms burst 8 margin 3ms", -1},
    {"x-slm", "20/50ms, 40/200ms margin 4ms", -1},
};
#define NINV (sizeof(crash_inv) / sizeof(crash_inv[0]))

/* The playground: resets and definitions happen here; checked for liveness only. */
static const struct bdef crash_play[] = {
    {"r-sl", "20/50ms", -1},
    {"r-gc", "20/50ms burst 5", -1},
    {"r-fx", "40/100ms fixed", -1},
    {"r-multi", "5/20ms, 20/100ms fixed, 10/50ms burst 3", -1},
    {"r-sl/child", "10/50ms margin 0", 0},
};
#define NPLAY (sizeof(crash_play) / sizeof(crash_play[0]))

/* New bucket n-u: policy and parent are functions of u, so every definer agrees. */
static void new_name(unsigned u, char *name, char *rules, char *parent)
{
    static const char *const shapes[] = {"%u/50ms", "%u/40ms burst 3", "%u/100ms fixed",
                                         "%u/30ms, 40/100ms fixed margin 5ms"};
    snprintf(name, 16, "n-%u", u);
    snprintf(rules, 64, shapes[u % 4], 5 + u % 7);
    if (u % 3 == 0)
        strcpy(parent, "r-gc");
    else if (u % 3 == 1)
        snprintf(parent, 16, "n-%u", u - 1);
    else
        parent[0] = '\0';
}

/* Playground buckets may have been switched to other rules (RL_EEXIST): find them. */
static int define_or_find(rl_table *t, const char *name, const struct rl_policy *p,
                          const char *parent, rl_bucket **out)
{
    int rc = rl_bucket_define(t, name, p, parent, out);
    return rc == RL_EEXIST ? rl_bucket_lookup(t, name, out) : rc;
}

static int define_new(rl_table *t, unsigned u, rl_bucket **out)
{
    char name[16], rules[64], parent[16];
    struct rl_policy p;
    new_name(u, name, rules, parent);
    parse_or_die(rules, &p);
    int rc = define_or_find(t, name, &p, parent[0] ? parent : NULL, out);
    if (rc == RL_ENOENT && u % 3 == 1) { /* the parent is not there yet: define it first */
        rl_bucket *dummy;
        if ((rc = define_new(t, u - 1, &dummy)) == 0)
            rc = define_or_find(t, name, &p, parent, out);
    }
    return rc;
}

static int define_play(rl_table *t, unsigned i, rl_bucket **out)
{
    struct rl_policy p;
    const struct bdef *d = &crash_play[i];
    parse_or_die(d->rules, &p);
    return define_or_find(t, d->name, &p, d->parent >= 0 ? crash_play[d->parent].name : NULL, out);
}

static rl_bucket *play_bucket(rl_table *t, rl_bucket **play, struct shared *sh)
{
    unsigned i = rnd(NPLAY + NEW_NAMES);
    rl_bucket *b;
    char name[16];
    if (i < NPLAY)
        return play[i];
    snprintf(name, sizeof(name), "n-%u", i - (unsigned)NPLAY);
    if (rl_bucket_lookup(t, name, &b) == 0)
        return b;
    int rc = define_new(t, i - (unsigned)NPLAY, &b);
    if (rc < 0) {
        werr(sh, "define %s: %s: %s", name, rl_err_name(rc), rl_errdetail());
        return NULL;
    }
    atomic_fetch_add_explicit(&sh->defines, 1, memory_order_relaxed);
    return b;
}

/* Two versions of a small config; workers apply one or the other (rl_config_apply). */
static rl_config *crash_config(unsigned version)
{
    static const char *const text[] = {
        "bucket cfg/plan 40/100ms\nbucket cfg/api 10/50ms parent cfg/plan\n"
        "template cfg/t/* 5/50ms parent cfg/plan\n",
        "bucket cfg/plan 30/100ms burst 8\nbucket cfg/api 24/100ms fixed parent cfg/plan\n"
        "template cfg/t/* 4/40ms parent cfg/plan\n"};
    rl_config *c = NULL;
    char *errors = NULL;
    if (rl_config_parse(text[version], strlen(text[version]), "crash.conf", &c, &errors) < 0) {
        fprintf(stderr, "prop: crash.conf: %s\n", errors ? errors : rl_errdetail());
        exit(2);
    }
    return c;
}

static void crash_worker(const char *path, struct shared *sh, uint32_t id)
{
    rl_table *t;
    rl_bucket *inv[NINV], *play[NPLAY];
    inject_per_mille = 3; /* a killed worker is sometimes caught mid-stall */
    int rc = open_table(path, 0, 0, &t);
    if (rc < 0) {
        werr(sh, "worker %x: rl_table_open: %s: %s", id, rl_err_name(rc), rl_errdetail());
        _exit(3);
    }
    for (unsigned i = 0; i < NINV; i++)
        if ((rc = define_one(t, crash_inv, i, &inv[i])) < 0) {
            werr(sh, "worker %x: define %s: %s: %s", id, crash_inv[i].name, rl_err_name(rc),
                 rl_errdetail());
            _exit(3);
        }
    for (unsigned i = 0; i < NPLAY; i++)
        if ((rc = define_play(t, i, &play[i])) < 0) {
            werr(sh, "worker %x: define %s: %s: %s", id, crash_play[i].name, rl_err_name(rc),
                 rl_errdetail());
            _exit(3);
        }
    rl_config *configs[2] = {crash_config(0), crash_config(1)};
    for (uint64_t it = 0; it < ITER_MAX; it++) {
        uint32_t op = rnd(1000);
        struct rl_decision d;
        if (op < 850) { /* an invariant bucket: try or blocking, cost 1..3 */
            unsigned target = rnd(NINV);
            uint32_t cost = 1 + rnd(3);
            bool blocking = rnd(10) == 0;
            uint64_t timeout = blocking ? rnd(10 * MS) : 0;
            uint64_t before = rl_now_ns();
            if (before >= sh->deadline_ns)
                break;
            rc = blocking ? rl_acquire(inv[target], cost, timeout, &d)
                          : rl_try_acquire(inv[target], cost, &d);
            uint64_t after = rl_now_ns();
            if (rc == 0) /* only AFTER the call returned: a killed caller's unit is lost */
                log_admission(sh, id, target, cost, blocking, timeout, &d, before, after);
            else if (rc == RL_ETIMEDOUT && blocking && d.wait_ns <= timeout)
                werr(sh,
                     "worker %x: acquire %s cost %u timed out with wait_ns %" PRIu64
                     " <= timeout %" PRIu64,
                     id, crash_inv[target].name, cost, d.wait_ns, timeout);
            else if (rc == RL_ELIMITED && !blocking && d.wait_ns == 0)
                werr(sh, "worker %x: try %s cost %u refused with wait_ns 0", id,
                     crash_inv[target].name, cost);
            else if (rc == RL_ETIMEDOUT && blocking)
                sleep_ns(rnd(MS));
            else if (rc != RL_ELIMITED || blocking)
                werr(sh, "worker %x: acquire %s cost %u: %s: %s", id, crash_inv[target].name, cost,
                     rl_err_name(rc), rl_errdetail());
        } else if (op < 950) { /* the playground: try or blocking */
            rl_bucket *b = play_bucket(t, play, sh);
            if (!b)
                continue;
            rc = rnd(4) ? rl_try_acquire(b, 1 + rnd(2), &d) : rl_acquire(b, 1, rnd(20 * MS), &d);
            if (rc != 0 && rc != RL_ELIMITED && rc != RL_ETIMEDOUT)
                werr(sh, "worker %x: acquire %s: %s: %s", id, rl_bucket_name(b), rl_err_name(rc),
                     rl_errdetail());
        } else if (op < 975) { /* reset a playground bucket */
            rl_bucket *b = play_bucket(t, play, sh);
            if (b && (rc = rl_bucket_reset(b)) < 0)
                werr(sh, "worker %x: reset %s: %s: %s", id, rl_bucket_name(b), rl_err_name(rc),
                     rl_errdetail());
            atomic_fetch_add_explicit(&sh->resets, 1, memory_order_relaxed);
        } else if (op < 982) { /* switch a playground bucket to other rules (update.c) */
            static const char *const shapes[] = {"%u/50ms", "%u/40ms burst 3", "%u/100ms fixed",
                                                 "%u/30ms, 40/100ms fixed margin 5ms"};
            char rules[64];
            struct rl_policy p;
            rl_bucket *b = play_bucket(t, play, sh);
            snprintf(rules, sizeof(rules), shapes[rnd(4)], 5 + rnd(20));
            parse_or_die(rules, &p);
            if (b && (rc = rl_bucket_update(b, &p)) < 0)
                werr(sh, "worker %x: update %s: %s: %s", id, rl_bucket_name(b), rl_err_name(rc),
                     rl_errdetail());
            atomic_fetch_add_explicit(&sh->updates, 1, memory_order_relaxed);
        } else if (op < 985) { /* apply a config (defines, switches, templates) */
            if ((rc = rl_config_apply(configs[rnd(2)], t, NULL, NULL)) < 0)
                werr(sh, "worker %x: apply: %s: %s", id, rl_err_name(rc), rl_errdetail());
            atomic_fetch_add_explicit(&sh->applies, 1, memory_order_relaxed);
        } else if (op < 990) { /* define a new name (or find it) */
            rl_bucket *b;
            unsigned u = rnd(NEW_NAMES);
            if ((rc = define_new(t, u, &b)) < 0)
                werr(sh, "worker %x: define n-%u: %s: %s", id, u, rl_err_name(rc), rl_errdetail());
            atomic_fetch_add_explicit(&sh->defines, 1, memory_order_relaxed);
        } else { /* inspect */
            struct rl_bucket_info info;
            unsigned i = rnd(NINV);
            if ((rc = rl_bucket_info(inv[i], &info)) < 0)
                werr(sh, "worker %x: info %s: %s: %s", id, crash_inv[i].name, rl_err_name(rc),
                     rl_errdetail());
        }
    }
    rl_config_free(configs[0]);
    rl_config_free(configs[1]);
    rl_table_close(t);
    _exit(0);
}

struct crash_state {
    const char *path;
    struct shared *sh;
    pid_t pids[CRASH_WORKERS];
    uint32_t incarnation[CRASH_WORKERS];
    uint64_t stopped_until[CRASH_WORKERS]; /* SIGSTOPped until then (0: running) */
    uint64_t spawned, killed, abnormal, stalls;
};

static void spawn(struct crash_state *cs, unsigned slot)
{
    uint32_t id = (uint32_t)slot << 24 | (cs->incarnation[slot]++ & 0xffffff);
    pid_t pid = fork();
    if (pid < 0) {
        perror("prop: fork");
        exit(2);
    }
    if (pid == 0)
        crash_worker(cs->path, cs->sh, id);
    cs->pids[slot] = pid;
    cs->spawned++;
}

/* A worker's end: SIGKILL (ours) or a clean exit is fine; anything else is a failure. */
static void judge(struct crash_state *cs, pid_t pid, int st)
{
    if ((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) || (WIFEXITED(st) && WEXITSTATUS(st) == 0))
        return;
    cs->abnormal++;
    fprintf(stderr, "  crash worker %ld ended abnormally: %s %d\n", (long)pid,
            WIFSIGNALED(st) ? "signal" : "exit status",
            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void kill_slot(struct crash_state *cs, unsigned slot)
{
    int st;
    kill(cs->pids[slot], SIGKILL);
    while (waitpid(cs->pids[slot], &st, 0) < 0 && errno == EINTR)
        ;
    judge(cs, cs->pids[slot], st);
    cs->killed++;
    cs->pids[slot] = 0;
    cs->stopped_until[slot] = 0;
}

/* Stalls: a worker stopped mid-call for longer than a window (and a lap of the small
 * sliding log) and then resumed is a slow writer, the case killing cannot produce. */
static void stall_round(struct crash_state *cs)
{
    uint64_t now = rl_now_ns();
    for (unsigned s = 0; s < CRASH_WORKERS; s++)
        if (cs->stopped_until[s] && now >= cs->stopped_until[s]) {
            kill(cs->pids[s], SIGCONT);
            cs->stopped_until[s] = 0;
        }
    if (rnd(6) == 0) {
        unsigned s = rnd(CRASH_WORKERS);
        if (!cs->stopped_until[s] && kill(cs->pids[s], SIGSTOP) == 0) {
            cs->stopped_until[s] = now + 10 * MS + rnd(50 * MS);
            cs->stalls++;
        }
    }
}

struct live_ctx {
    rl_bucket *list[4096];
    unsigned n;
};

static int collect(rl_bucket *b, void *arg)
{
    struct live_ctx *l = arg;
    if (l->n < sizeof(l->list) / sizeof(l->list[0]))
        l->list[l->n++] = b;
    return 0;
}

/* Every bucket admits again within a bounded wait, and blocking acquires work. */
static unsigned check_not_wedged(rl_table *t, unsigned *nbuckets, double *max_wait_ms)
{
    static struct live_ctx l;
    unsigned bad = 0;
    l.n = 0;
    rl_table_foreach(t, collect, &l);
    *nbuckets = l.n;
    *max_wait_ms = 0;
    for (unsigned i = 0; i < l.n; i++) {
        struct rl_bucket_info info;
        struct rl_decision d;
        uint64_t t0 = rl_now_ns();
        int rc;
        if (rl_bucket_is_template(l.list[i])) /* admits nothing itself; its buckets are here */
            continue;
        if ((rc = rl_bucket_info(l.list[i], &info)) < 0) {
            fprintf(stderr, "  WEDGED? rl_bucket_info(%s): %s: %s\n", rl_bucket_name(l.list[i]),
                    rl_err_name(rc), rl_errdetail());
            bad++;
            continue;
        }
        for (unsigned tries = 0;; tries++) {
            rc = rl_try_acquire(l.list[i], 1, &d);
            if (rc == 0 || rc != RL_ELIMITED || tries >= 20 || d.wait_ns > SEC ||
                rl_now_ns() - t0 > 30 * SEC) /* a hang guard, not a measurement */
                break;
            sleep_ns(d.wait_ns + 100000);
        }
        double waited = (double)(rl_now_ns() - t0) / 1e6;
        *max_wait_ms = waited > *max_wait_ms ? waited : *max_wait_ms;
        if (rc == 0)
            rc = rl_acquire(l.list[i], 1, SEC, &d);
        if (rc < 0) {
            fprintf(stderr,
                    "  WEDGED: bucket %s does not admit after %.1f ms: %s (wait_ns %" PRIu64
                    ") %s\n",
                    rl_bucket_name(l.list[i]), waited, rl_err_name(rc), d.wait_ns, rl_errdetail());
            bad++;
        }
    }
    return bad;
}

static unsigned check_readonly(const char *path)
{
    rl_table *ro;
    static struct live_ctx l;
    unsigned bad = 0;
    int rc = open_table(path, RL_OPEN_READONLY, 0, &ro);
    if (rc < 0) {
        fprintf(stderr, "  read-only attach: %s: %s\n", rl_err_name(rc), rl_errdetail());
        return 1;
    }
    l.n = 0;
    rl_table_foreach(ro, collect, &l);
    for (unsigned i = 0; i < l.n; i++) {
        struct rl_bucket_info info;
        if ((rc = rl_bucket_info(l.list[i], &info)) < 0) {
            fprintf(stderr, "  read-only rl_bucket_info(%s): %s: %s\n", rl_bucket_name(l.list[i]),
                    rl_err_name(rc), rl_errdetail());
            bad++;
        }
    }
    rl_table_close(ro);
    return bad;
}

/* After the storm, the parent alone saturates a few invariant buckets; the admissions go to
 * the same log, so they are checked together with the storm's (right after it). Returns
 * the utilization of the binding rule. */
static double probe(rl_table *t, struct shared *sh, unsigned target, uint64_t ns)
{
    rl_bucket *b;
    struct rl_policy p;
    uint64_t units = 0, t0 = rl_now_ns(), end = t0 + ns;
    if (rl_bucket_lookup(t, crash_inv[target].name, &b) < 0)
        return 0;
    parse_or_die(crash_inv[target].rules, &p);
    for (uint64_t it = 0; it < ITER_MAX; it++) {
        struct rl_decision d;
        uint64_t before = rl_now_ns();
        if (before >= end)
            break;
        if (rl_try_acquire(b, 1, &d) == 0) {
            log_admission(sh, WORKER_PROBE, target, 1, false, 0, &d, before, rl_now_ns());
            units++;
        }
    }
    double most = 0; /* of the binding rule */
    for (unsigned r = 0; r < p.nrules; r++) {
        double cap = (double)p.rules[r].limit * (double)ns / (double)p.rules[r].period_ns;
        double u = (double)units / cap;
        most = u > most ? u : most;
    }
    return most;
}

static bool run_crash(uint64_t max_ns, unsigned max_rounds)
{
    char path[128];
    struct crash_state cs = {0};
    rl_table *t;
    rl_bucket *h[NINV];
    int rc;
    snprintf(path, sizeof(path), "/dev/shm/rl-prop-%ld-crash", (long)getpid());
    unlink(path);
    cs.path = path;
    if ((rc = open_table(path, RL_OPEN_CREATE, 4096, &t)) < 0) {
        fprintf(stderr, "prop: create %s: %s\n", path, rl_errdetail());
        return false;
    }
    for (unsigned i = 0; i < NINV; i++)
        if ((rc = define_one(t, crash_inv, i, &h[i])) < 0) {
            fprintf(stderr, "prop: define %s: %s\n", crash_inv[i].name, rl_errdetail());
            return false;
        }
    for (unsigned i = 0; i < NPLAY; i++)
        if ((rc = define_one(t, crash_play, i, &h[0])) < 0) {
            fprintf(stderr, "prop: define %s: %s\n", crash_play[i].name, rl_errdetail());
            return false;
        }
    rl_table_close(t);

    struct shared *sh = cs.sh = shared_new();
    sh->start_ns = rl_now_ns();
    sh->deadline_ns = sh->start_ns + max_ns + SEC; /* workers' own bound; we kill them first */
    uint64_t stop_at = sh->start_ns + max_ns;
    fflush(NULL);
    for (unsigned s = 0; s < CRASH_WORKERS; s++)
        spawn(&cs, s);
    unsigned rounds = 0;
    for (; rounds < max_rounds && rl_now_ns() < stop_at; rounds++) {
        /* Mostly short lives; now and then a longer one so logs wrap and waits finish. */
        sleep_ns(rounds % 64 == 63 ? 20 * MS + rnd(30 * MS) : rnd(3 * MS));
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) /* a worker that ended on its own */
            for (unsigned s = 0; s < CRASH_WORKERS; s++)
                if (cs.pids[s] == pid) {
                    judge(&cs, pid, st);
                    spawn(&cs, s);
                }
        stall_round(&cs);
        unsigned nkill = 1 + (rnd(4) == 0 ? rnd(3) : 0);
        for (unsigned k = 0; k < nkill; k++) {
            unsigned s = rnd(CRASH_WORKERS);
            kill_slot(&cs, s);
            spawn(&cs, s);
        }
    }
    sleep_ns(rnd(3 * MS));
    for (unsigned s = 0; s < CRASH_WORKERS; s++) /* the last kill catches everyone mid-call */
        kill(cs.pids[s], SIGKILL);
    for (unsigned s = 0; s < CRASH_WORKERS; s++) {
        int st;
        while (waitpid(cs.pids[s], &st, 0) < 0 && errno == EINTR)
            ;
        judge(&cs, cs.pids[s], st);
        cs.killed++;
    }
    uint64_t storm_end = rl_now_ns();
    printf("[crash] %u rounds in %.2f s: %" PRIu64 " workers spawned, %" PRIu64
           " SIGKILLed, %" PRIu64 " stalled (SIGSTOP 10-60 ms), %" PRIu64
           " admissions logged, %" PRIu64 " resets, %" PRIu64 " rule switches, %" PRIu64
           " config applies, %" PRIu64 " defines\n",
           rounds, (double)(storm_end - sh->start_ns) / 1e9, cs.spawned, cs.killed, cs.stalls,
           atomic_load(&sh->next), atomic_load(&sh->resets), atomic_load(&sh->updates),
           atomic_load(&sh->applies), atomic_load(&sh->defines));

    uint64_t failures = cs.abnormal;
    if (atomic_load(&sh->errors)) {
        fprintf(stderr, "  %" PRIu64 " worker errors, first: %s\n", atomic_load(&sh->errors),
                sh->errmsg);
        failures++;
    }
    if (atomic_load(&sh->overflow)) {
        fprintf(stderr, "  admission log overflowed\n");
        failures++;
    }

    /* The table after the storm: attachable, valid, every bucket inspectable and live. */
    int64_t wall_off = 0;
    if ((rc = open_table(path, 0, 0, &t)) < 0 || read_wall_offset(path, &wall_off) < 0) {
        fprintf(stderr, "  cannot reopen %s after the storm: %s\n", path, rl_errdetail());
        printf("FAIL crash         table unusable after the storm (kept: %s)\n", path);
        return false;
    }
    struct rl_table_info ti;
    rl_table_info(t, &ti);
    if (ti.buckets > ti.capacity || ti.arena_used > ti.arena_bytes) {
        fprintf(stderr, "  table info is inconsistent\n");
        failures++;
    }
    unsigned ro_bad = check_readonly(path);
    failures += ro_bad;
    for (unsigned u = 0; u < NEW_NAMES; u++) { /* every name can still be defined or found */
        rl_bucket *b;
        if ((rc = define_new(t, u, &b)) < 0) {
            fprintf(stderr, "  define n-%u after the storm: %s: %s\n", u, rl_err_name(rc),
                    rl_errdetail());
            failures++;
        }
    }
    /* Exactly one bucket per invariant/playground name, as defined. */
    for (unsigned i = 0; i < NINV; i++) {
        struct rl_bucket_info info;
        struct rl_policy p;
        parse_or_die(crash_inv[i].rules, &p);
        if (rl_bucket_lookup(t, crash_inv[i].name, &h[i]) < 0 || rl_bucket_info(h[i], &info) < 0 ||
            !rl__policy_same(&p, &info.policy)) {
            fprintf(stderr, "  bucket %s is missing or changed\n", crash_inv[i].name);
            h[i] = NULL;
            failures++;
        }
    }
    sleep_ns(400 * MS); /* every window and reservation of the storm has passed */
    unsigned nbuckets;
    double max_wait_ms;
    unsigned wedged = check_not_wedged(t, &nbuckets, &max_wait_ms);
    failures += wedged;
    printf("[crash] after the storm: %u buckets (table: %u records), read-only inspection %s, "
           "%u wedged, longest wait to admit %.1f ms\n",
           nbuckets, ti.buckets, ro_bad ? "FAILED" : "ok", wedged, max_wait_ms);

    /* The probes' utilization is printed, not asserted: it depends on the machine's load.
     * check_not_wedged showed every bucket admits again; the log check below covers the
     * probes' admissions. */
    static const unsigned probed[] = {0, 1, 2, 3, 4};
    sleep_ns(250 * MS);
    for (unsigned i = 0; i < sizeof(probed) / sizeof(probed[0]); i++) {
        double u = probe(t, sh, probed[i], 300 * MS);
        printf("[crash] post-storm probe %-8s: utilization %.1f%%\n", crash_inv[probed[i]].name,
               100 * u);
    }

    /* The log: no over-admission anywhere, storm and probe together. */
    size_t nlog = atomic_load(&sh->next);
    nlog = nlog < LOG_MAX ? nlog : LOG_MAX;
    struct check_ctx cx = {"crash", sh->log, wall_off, sh->start_ns, storm_end, true};
    static double util[NINV][RL_MAX_RULES];
    uint64_t units[NINV];
    uint64_t over = check_all(&cx, crash_inv, NINV, nlog, util, units);
    uint64_t waited, max_wait;
    uint64_t bounds = check_bounds(&cx, nlog, &waited, &max_wait);
    printf("[crash] %" PRIu64 " admissions were reserved ahead (longest %.1f ms)\n", waited,
           (double)max_wait / 1e6);
    /* Killed callers may have been counted without being logged, never the reverse. */
    for (unsigned i = 0; i < NINV; i++) {
        struct rl_bucket_info info;
        if (h[i] && rl_bucket_info(h[i], &info) == 0 && info.counters.admitted_units < units[i]) {
            fprintf(stderr,
                    "  bucket %s: counters say %" PRIu64 " units admitted, the log shows %" PRIu64
                    "\n",
                    crash_inv[i].name, info.counters.admitted_units, units[i]);
            failures++;
        }
    }
    int all_targets[NINV];
    for (unsigned i = 0; i < NINV; i++)
        all_targets[i] = (int)i;
    double bu = binding_util(crash_inv, NINV, all_targets, NINV, util);
    bool ok = !failures && !over && !bounds;
    printf("%s crash        %u rounds, %" PRIu64 " kills, %" PRIu64 " admissions: %" PRIu64
           " over-admissions, %" PRIu64
           " at_ns out of bounds, %u wedged; least binding utilization under kills %.1f%% "
           "(not asserted)\n",
           ok ? "PASS" : "FAIL", rounds, cs.killed, (uint64_t)nlog, over, bounds, wedged, 100 * bu);
    rl_table_close(t);
    munmap(sh, shared_bytes());
    if (ok)
        unlink(path);
    else
        fprintf(stderr, "  table kept for inspection: %s\n", path);
    fflush(NULL);
    return ok;
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: prop property [--seconds S] [SCENARIO...]\n"
                    "       prop crash [--crash-seconds S] [--crash-rounds N]\n"
                    "       prop reuse [--seconds S]\n"
                    "scenarios:");
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        fprintf(stderr, " %s", scenarios[i].name);
    fprintf(stderr, "\n");
    exit(2);
}

/* ------------------------------------------------------------------ reuse test */

/*
 * prop reuse: workers decide on buckets whose rules they switch back and forth all the
 * time, while the parent SIGKILLs them and respawns them. Every switch leaves a block that
 * is freed and reused, by this bucket or another, while stalled deciders may still hold the
 * old one between their loads and their CAS. The log is checked against the rule both
 * policies of a bucket enforce (the second policy adds a loose rule), so a stale decider
 * that committed to a reused block would show as an over-admission. Afterwards, with
 * every worker gone, the limbo lists must drain completely: a killed process's slot counts
 * as drained.
 */
#define REUSE_WORKERS 10
#define REUSE_BUCKETS 6

static const struct bdef reuse_inv[REUSE_BUCKETS] = {
    {"r/s0", "20/100ms margin 0", -1},         {"r/s1", "20/100ms margin 0", -1},
    {"r/s2", "20/100ms margin 0", -1},         {"r/g0", "20/100ms burst 5 margin 0", -1},
    {"r/g1", "20/100ms burst 5 margin 0", -1}, {"r/g2", "20/100ms burst 5 margin 0", -1},
};

/* The other policy of bucket i: its checked rule and a loose one. */
static void reuse_other(unsigned i, struct rl_policy *p)
{
    char text[96];
    snprintf(text, sizeof(text), "%.*s, 1000/1s margin 0",
             (int)(strlen(reuse_inv[i].rules) - strlen(" margin 0")), reuse_inv[i].rules);
    parse_or_die(text, p);
}

static void reuse_worker(const char *path, struct shared *sh, uint32_t id)
{
    rl_table *t;
    rl_bucket *h[REUSE_BUCKETS];
    struct rl_policy pol[REUSE_BUCKETS][2];
    inject_per_mille = 20; /* stalls between a decision's loads and its CAS */
    int rc = open_table(path, 0, 0, &t);
    for (unsigned i = 0; rc == 0 && i < REUSE_BUCKETS; i++) {
        parse_or_die(reuse_inv[i].rules, &pol[i][0]);
        reuse_other(i, &pol[i][1]);
        rc = rl_bucket_lookup(t, reuse_inv[i].name, &h[i]);
    }
    if (rc < 0) {
        werr(sh, "reuse worker %x: open: %s: %s", id, rl_err_name(rc), rl_errdetail());
        _exit(3);
    }
    for (uint64_t it = 0; it < ITER_MAX; it++) {
        unsigned target = rnd(REUSE_BUCKETS);
        struct rl_decision d;
        uint64_t before = rl_now_ns();
        if (before >= sh->deadline_ns)
            break;
        if (rnd(1000) < 3) { /* switch the bucket to one of its two policies */
            if ((rc = rl_bucket_update(h[target], &pol[target][rnd(2)])) < 0)
                werr(sh, "reuse worker %x: update %s: %s: %s", id, reuse_inv[target].name,
                     rl_err_name(rc), rl_errdetail());
            atomic_fetch_add_explicit(&sh->updates, 1, memory_order_relaxed);
            continue;
        }
        uint32_t cost = 1 + rnd(2);
        rc = rl_try_acquire(h[target], cost, &d);
        uint64_t after = rl_now_ns();
        if (rc == 0)
            log_admission(sh, id, target, cost, false, 0, &d, before, after);
        else if (rc != RL_ELIMITED)
            werr(sh, "reuse worker %x: try %s: %s: %s", id, reuse_inv[target].name, rl_err_name(rc),
                 rl_errdetail());
    }
    rl_table_close(t);
    _exit(0);
}

static bool run_reuse(uint64_t dur_ns)
{
    char path[128];
    struct crash_state cs = {0};
    snprintf(path, sizeof(path), "/dev/shm/rl-prop-%ld-reuse", (long)getpid());
    unlink(path);
    rl_table *t;
    rl_bucket *h[REUSE_BUCKETS];
    if (open_table(path, RL_OPEN_CREATE, 64, &t) < 0) {
        fprintf(stderr, "prop: create %s: %s\n", path, rl_errdetail());
        exit(2);
    }
    for (unsigned i = 0; i < REUSE_BUCKETS; i++)
        if (define_one(t, reuse_inv, i, &h[i]) < 0) {
            fprintf(stderr, "prop: define %s: %s\n", reuse_inv[i].name, rl_errdetail());
            exit(2);
        }
    struct shared *sh = shared_new();
    sh->start_ns = rl_now_ns();
    sh->deadline_ns = sh->start_ns + dur_ns;
    cs.path = path;
    cs.sh = sh;
    pid_t pids[REUSE_WORKERS];
    uint32_t incarnation = 0;
    fflush(NULL);
    for (unsigned w = 0; w < REUSE_WORKERS; w++)
        if ((pids[w] = fork()) == 0)
            reuse_worker(path, sh, incarnation++);
        else
            incarnation++;
    /* Kill a random worker every 2-20 ms, respawn it; bounded by the deadline and a count. */
    for (unsigned round = 0; round < 20000 && rl_now_ns() < sh->deadline_ns; round++) {
        sleep_ns(2 * MS + rnd(18 * MS));
        unsigned w = rnd(REUSE_WORKERS);
        int st;
        kill(pids[w], SIGKILL);
        while (waitpid(pids[w], &st, 0) < 0 && errno == EINTR)
            ;
        judge(&cs, pids[w], st);
        cs.killed++;
        fflush(NULL);
        if ((pids[w] = fork()) == 0)
            reuse_worker(path, sh, incarnation);
        incarnation++;
    }
    for (unsigned w = 0; w < REUSE_WORKERS; w++) {
        int st;
        while (waitpid(pids[w], &st, 0) < 0 && errno == EINTR)
            ;
        judge(&cs, pids[w], st);
    }
    uint64_t failures = cs.abnormal;
    if (atomic_load(&sh->errors)) {
        fprintf(stderr, "  %" PRIu64 " worker errors, first: %s\n", atomic_load(&sh->errors),
                sh->errmsg);
        failures++;
    }
    if (atomic_load(&sh->overflow)) {
        fprintf(stderr, "  admission log overflowed\n");
        failures++;
    }
    /* Every worker is gone: two switches' reclaims drain the whole limbo. */
    for (unsigned k = 0; k < 2; k++)
        for (unsigned i = 0; i < REUSE_BUCKETS; i++) {
            struct rl_policy p;
            if (k)
                parse_or_die(reuse_inv[i].rules, &p);
            else
                reuse_other(i, &p);
            if (rl_bucket_update(h[i], &p) < 0) {
                fprintf(stderr, "  update %s after the storm: %s\n", reuse_inv[i].name,
                        rl_errdetail());
                failures++;
            }
        }
    uint64_t reused = atomic_load(&t->hdr->reused_blocks);
    /* Each reclaim advances the epoch twice and empties the list now due: six visit all
     * three. (limbo_bytes is a statistic: a worker killed between counting a block and
     * pushing it leaves it high, so the lists themselves are checked.) */
    for (unsigned k = 0; k < 6; k++)
        rl__reclaim(t);
    for (unsigned k = 0; k < 3; k++)
        if (atomic_load(&t->hdr->limbo[k]) & ((1ULL << 31) - 1)) {
            fprintf(stderr, "  limbo list %u still holds blocks with no process left\n", k);
            failures++;
        }
    if (reused == 0) {
        fprintf(stderr, "  no block was reused: the test tested nothing\n");
        failures++;
    }
    int64_t wall_off = 0;
    read_wall_offset(path, &wall_off);
    size_t nlog = atomic_load(&sh->next);
    nlog = nlog < LOG_MAX ? nlog : LOG_MAX;
    struct check_ctx cx = {"reuse", sh->log, wall_off, sh->start_ns, sh->deadline_ns, false};
    double util[REUSE_BUCKETS][RL_MAX_RULES] = {{0}};
    uint64_t units[REUSE_BUCKETS] = {0};
    uint64_t over = check_all(&cx, reuse_inv, REUSE_BUCKETS, nlog, util, units);
    uint64_t waited, max_wait, bounds = check_bounds(&cx, nlog, &waited, &max_wait);
    bool ok = !failures && !over && !bounds;
    printf("%s reuse        %u procs %.2f s: %" PRIu64 " kills, %" PRIu64 " switches, %" PRIu64
           " blocks reused, %zu admissions, %" PRIu64 " over-admissions, %" PRIu64
           " at_ns out of bounds\n",
           ok ? "PASS" : "FAIL", REUSE_WORKERS, (double)dur_ns / 1e9, cs.killed,
           atomic_load(&sh->updates), reused, nlog, over, bounds);
    rl_table_close(t);
    munmap(sh, shared_bytes());
    if (ok)
        unlink(path);
    else
        fprintf(stderr, "  table kept for inspection: %s\n", path);
    return ok;
}

int main(int argc, char **argv)
{
    double seconds = 1.5, crash_seconds = 20;
    unsigned crash_rounds = 4000;
    const char *only[16];
    unsigned nonly = 0;
    if (argc < 2)
        usage();
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--crash-seconds") && i + 1 < argc)
            crash_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--crash-rounds") && i + 1 < argc)
            crash_rounds = (unsigned)atoi(argv[++i]);
        else if (argv[i][0] != '-' && nonly < 16)
            only[nonly++] = argv[i];
        else
            usage();
    }
    if (seconds <= 0 || seconds > 60 || crash_seconds <= 0 || crash_seconds > 600)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned failed = 0, ran = 0;
    if (!strcmp(argv[1], "property")) {
        for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
            bool want = nonly == 0;
            for (unsigned j = 0; j < nonly; j++)
                want |= !strcmp(only[j], scenarios[i].name);
            if (!want)
                continue;
            ran++;
            failed += !run_scenario(&scenarios[i], (uint64_t)(seconds * 1e9));
        }
        if (!ran)
            usage();
    } else if (!strcmp(argv[1], "crash")) {
        ran = 1;
        failed += !run_crash((uint64_t)(crash_seconds * 1e9), crash_rounds);
    } else if (!strcmp(argv[1], "reuse")) {
        ran = 1;
        failed += !run_reuse((uint64_t)(seconds * 1e9));
    } else {
        usage();
    }
    printf("prop %s: %u of %u scenarios passed\n", argv[1], ran - failed, ran);
    return failed ? 1 : 0;
}
