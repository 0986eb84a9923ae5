/*
 * test_corrupt.c - damaged table contents are contained: a bucket whose record, policy
 * block or state words are damaged refuses (RL_ECORRUPT, or a refusal that never admits
 * more than its rules allow), other buckets keep working, and nothing crashes or hangs.
 *
 * Damage is written into the table file (offsets from the header: index_off, buckets_off,
 * arena_off, and the layouts of src/shm_format.h) and the table is then attached afresh.
 */
#include <signal.h>

#include "fixture.h"

TestSuite(corrupt, .init = fixture_setup, .fini = fixture_teardown, .timeout = 55);

/* Bucket numbers of the fixture. */
enum { BYSTANDER, VICTIM, CHILD, OTHER, NBUCKETS };
static const char *names[NBUCKETS] = {"bystander", "victim", "victim/child", "other"};

static struct shm_header H;

/* Build the fixture table with the victim's policy, use it a little, and close it. */
static void build(const char *victim_policy)
{
    unlink(g_path);
    rl_table *t = table_create(16);
    define(t, names[BYSTANDER], "5/1h", NULL);
    rl_bucket *v = define(t, names[VICTIM], victim_policy, NULL);
    rl_bucket *c = define(t, names[CHILD], "5/1h", names[VICTIM]);
    define(t, names[OTHER], "3/1h burst 3 margin 0", NULL);
    cr_assert_eq(v->no, VICTIM);
    cr_assert_eq(c->no, CHILD);
    /* Blocking: a GCRA victim with a margin may not admit in the table's first moments. */
    int rc = rl_acquire(c, 1, 2 * NS_PER_SEC, NULL);
    cr_assert_eq(rc, 0, "%s", rl_err_name(rc));
    rl_table_close(t);
    H = header_of(g_path);
}

static uint64_t rec_off(unsigned no)
{
    return H.buckets_off + (uint64_t)no * sizeof(struct shm_bucket);
}

static uint64_t policy_off(unsigned no)
{
    return file_read_u64(g_path, rec_off(no) + offsetof(struct shm_bucket, policy_off));
}

/* File offset of the policy block of bucket `no`. */
static uint64_t block_at(unsigned no)
{
    return H.arena_off + rl__ref_off(policy_off(no));
}

static uint64_t rule_at(unsigned no, unsigned i)
{
    return block_at(no) + sizeof(struct shm_policy) + (uint64_t)i * sizeof(struct shm_rule);
}

static uint64_t word_at(unsigned no, unsigned i)
{
    return rule_at(no, i) + offsetof(struct shm_rule, word);
}

static void write_u32(uint64_t off, uint32_t v)
{
    file_write(g_path, off, &v, sizeof(v));
}

static bool allowed(int rc, const int *codes)
{
    for (; *codes != 1; codes++)
        if (rc == *codes)
            return true;
    return false;
}

/* The buckets not involved keep working exactly. */
static void expect_others_work(rl_table *t)
{
    rl_bucket *b;
    cr_assert_eq(rl_bucket_lookup(t, names[BYSTANDER], &b), 0, "%s", rl_errdetail());
    struct rl_bucket_info i = info_of(b);
    cr_expect_eq(i.rules[0].used, 0);
    cr_expect_eq(admit_run(b, 10), 5, "the bystander's budget is intact");
    cr_assert_eq(rl_bucket_lookup(t, names[OTHER], &b), 0, "%s", rl_errdetail());
    cr_expect_eq(admit_run(b, 10), 3);
    cr_expect_eq(rl_bucket_reset(b), 0);
    cr_expect_eq(admit_run(b, 10), 3);
    /* A new bucket can still be made. */
    define(t, "newcomer", "2/1h", NULL);
    cr_assert_eq(rl_bucket_lookup(t, "newcomer", &b), 0);
    cr_expect_eq(admit_run(b, 10), 2);
    unsigned n = foreach_count(t);
    cr_expect_geq(n, 3, "foreach visited %u buckets", n);
}

/* The victim refuses everything with RL_ECORRUPT; so does its child. */
static void expect_victim_corrupt(rl_table *t, const char *what)
{
    rl_bucket *v, *c;
    struct rl_decision d;
    struct rl_bucket_info i;
    int rc = rl_bucket_lookup(t, names[VICTIM], &v);
    cr_assert_eq(rc, 0, "%s: lookup %s", what, rl_err_name(rc));
    cr_expect_eq(rl_try_acquire(v, 1, &d), RL_ECORRUPT, "%s: try_acquire", what);
    cr_expect(strstr(rl_errdetail(), "victim"), "%s: detail '%s'", what, rl_errdetail());
    cr_expect_eq(rl_acquire(v, 1, 0, &d), RL_ECORRUPT, "%s: acquire", what);
    cr_expect_eq(rl_acquire(v, 1, NS_PER_SEC, &d), RL_ECORRUPT, "%s: acquire", what);
    cr_expect_eq(rl_bucket_info(v, &i), RL_ECORRUPT, "%s: info", what);
    cr_expect_str_eq(i.name, names[VICTIM]);
    cr_expect_eq(rl_bucket_reset(v), RL_ECORRUPT, "%s: reset", what);
    rc = define_rc(t, names[VICTIM], "10/1h", NULL);
    cr_expect(rc == RL_ECORRUPT || rc == RL_EEXIST, "%s: define again: %s", what, rl_err_name(rc));
    cr_assert_eq(rl_bucket_lookup(t, names[CHILD], &c), 0);
    cr_expect_eq(rl_try_acquire(c, 1, &d), RL_ECORRUPT, "%s: the child draws from the victim",
                 what);
    cr_expect_eq(rl_bucket_info(c, &i), 0, "%s: the child itself is fine", what);
    cr_expect_eq(i.rules[0].used, 1, "%s: a refusal took nothing from the child", what);
}

/* Attach, check that the victim refuses with RL_ECORRUPT and the others work. */
static void check_corrupt(const char *what)
{
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    expect_victim_corrupt(t, what);
    expect_others_work(t);
    rl_table_close(t);
}

/*
 * Attach and hammer the victim: every call returns one of `codes`, and at most `max`
 * units are admitted (its rules' capacity: the damage must never admit more).
 */
static const int REFUSALS[] = {0, RL_ELIMITED, RL_ECORRUPT, 1};

static void check_never_over_admits(const char *what, unsigned max)
{
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    rl_bucket *v;
    struct rl_decision d;
    struct rl_bucket_info i;
    cr_assert_eq(rl_bucket_lookup(t, names[VICTIM], &v), 0);
    unsigned admitted = 0;
    for (unsigned k = 0; k < 3 * max + 5; k++) {
        int rc = rl_try_acquire(v, 1, &d);
        cr_expect(allowed(rc, REFUSALS), "%s: try_acquire %s", what, rl_err_name(rc));
        admitted += rc == 0;
    }
    cr_expect_leq(admitted, max, "%s: %u admitted, the rules allow %u", what, admitted, max);
    int rc = rl_acquire(v, 1, 0, &d);
    cr_expect(rc == 0 || rc == RL_ETIMEDOUT || rc == RL_ECORRUPT, "%s: %s", what, rl_err_name(rc));
    rc = rl_bucket_info(v, &i);
    cr_expect(rc == 0 || rc == RL_ECORRUPT, "%s: info %s", what, rl_err_name(rc));
    expect_others_work(t);
    rl_table_close(t);
}

/* ------------------------------------------------------------ policy_off */

Test(corrupt, policy_off_out_of_range)
{
    build("10/1h");
    uint64_t good = policy_off(VICTIM);
    const uint64_t bad[] = {
        H.arena_bytes, H.arena_bytes - 8, H.arena_bytes - 64, H.arena_bytes + 64,
        UINT64_MAX,    UINT64_MAX - 63,   1ULL << 40,         good + 4,
        good + 8,      good + 1,          good - 8,
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char what[64];
        snprintf(what, sizeof(what), "policy_off %#" PRIx64, bad[k]);
        build("10/1h");
        file_write_u64(g_path, rec_off(VICTIM) + offsetof(struct shm_bucket, policy_off), bad[k]);
        check_corrupt(what);
    }
}

Test(corrupt, policy_off_damaged_while_attached)
{
    /* Handles are cached: damage after they were made is still caught at every call. */
    build("10/1h");
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    rl_bucket *v;
    cr_assert_eq(rl_bucket_lookup(t, names[VICTIM], &v), 0);
    cr_assert_eq(rl_try_acquire(v, 1, NULL), 0);
    file_write_u64(g_path, rec_off(VICTIM) + offsetof(struct shm_bucket, policy_off),
                   H.arena_bytes + 4096);
    expect_victim_corrupt(t, "policy_off damaged while attached");
    expect_others_work(t);
    rl_table_close(t);
}

/* The header's geometry is checked at attach and copied: damage to it afterwards must not
 * lead an attached process outside its mapping. */
Test(corrupt, header_geometry_damaged_while_attached)
{
    build("10/1h burst 5 margin 0");
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    rl_bucket *v;
    cr_assert_eq(rl_bucket_lookup(t, names[VICTIM], &v), 0);
    cr_assert_eq(rl_try_acquire(v, 1, NULL), 0);
    file_write_u64(g_path, offsetof(struct shm_header, arena_bytes), 1ULL << 36);
    uint32_t huge = UINT32_MAX;
    file_write(g_path, offsetof(struct shm_header, capacity), &huge, sizeof(huge));
    file_write(g_path, offsetof(struct shm_header, index_slots), &huge, sizeof(huge));
    struct rl_bucket_info i;
    cr_expect_eq(rl_bucket_info(v, &i), 0, "%s", rl_errdetail());
    cr_expect_eq(i.counters.admitted, 2, "admitted %" PRIu64, i.counters.admitted);
    cr_expect_eq(rl_try_acquire(v, 1, NULL), 0);
    rl_bucket *b;
    cr_expect_eq(rl_bucket_lookup(t, "nosuch", &b), RL_ENOENT);
    cr_expect_eq(rl_bucket_lookup(t, names[OTHER], &b), 0);
    cr_expect_eq(foreach_count(t), NBUCKETS);
    rl_table_close(t);
}

static void write_header_u64(size_t field, uint64_t v)
{
    file_write_u64(g_path, field, v);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "a blocking acquire hung after the clock fields were damaged\n";
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(3);
    _exit(3);
}

/* Regression: the header's clock bases were read live. One scribbled epoch_ns stopped the
 * clock (now < epoch reads as instant 1) or moved it (a bucket stayed full for minutes),
 * and a waiter slept until a shared instant: 268 years inside connect(). Now each process
 * uses the bases it checked at attach, and every sleep is capped by the caller's timeout
 * from its own clock reading. The first scribble moves the old code's clock to a fresh
 * epoch, so that its wait below is short enough to be taken, then made endless. */
Test(corrupt, clock_fields_damaged_while_attached)
{
    rl_table *t = table_create(8);
    rl_bucket *wait = define(t, "wait", "2/1s burst 2 margin 0", NULL);
    rl_bucket *keep = define(t, "keep", "2/10s burst 2 margin 0", NULL);
    rl_bucket *fixed = define(t, "fixed", "2/366d fixed margin 0", NULL);
    uint64_t epoch = t->hdr->epoch_ns;
    write_header_u64(offsetof(struct shm_header, epoch_ns), rl_now_ns() - NS_PER_MS);
    cr_assert_eq(admit_run(wait, 2), 2);
    cr_assert_eq(admit_run(keep, 2), 2);
    cr_assert_eq(admit_run(fixed, 2), 2);

    uint64_t text = 0x4141414141414141ULL; /* "AAAAAAAA" */
    write_header_u64(offsetof(struct shm_header, epoch_ns), text);
    write_header_u64(offsetof(struct shm_header, wall_offset_ns), text);
    signal(SIGALRM, on_alarm);
    alarm(20); /* the hang detector: 20 times the timeout */
    struct rl_decision d;
    int rc = rl_acquire(wait, 1, NS_PER_SEC, &d);
    alarm(0);
    cr_expect(rc == 0 || rc == RL_ETIMEDOUT, "%s (%s)", rl_err_name(rc), rl_errdetail());
    cr_expect_leq(d.at_ns, rl_now_ns(), "admitted at an instant of this process's clock");
    cr_expect_eq(rl_try_acquire(fixed, 1, NULL), RL_ELIMITED, "the window's count stays");
    cr_expect_eq(rl_try_acquire(keep, 1, NULL), RL_ELIMITED);

    /* An epoch a minute earlier would make every bucket look a minute older. */
    if (epoch > NS_PER_MIN)
        write_header_u64(offsetof(struct shm_header, epoch_ns), epoch - NS_PER_MIN);
    write_header_u64(offsetof(struct shm_header, wall_offset_ns), (uint64_t)-NS_PER_DAY);
    cr_expect_eq(rl_try_acquire(keep, 1, NULL), RL_ELIMITED, "the bucket keeps its state");
    cr_expect_eq(rl_try_acquire(fixed, 1, NULL), RL_ELIMITED, "the window's count stays");
    struct rl_bucket_info i = info_of(keep);
    cr_expect_leq(i.rules[0].next_free_ns, 10 * NS_PER_SEC, "next unit in %" PRIu64 " ns",
                  i.rules[0].next_free_ns);
    cr_expect_geq(i.now_ns, rl_now_ns() - NS_PER_MIN, "the bucket's clock is this process's");
    /* The drift check puts the alignment back: damaged, or of the same parity and far from
     * the clocks (a real change flips the parity). */
    uint64_t mine = atomic_load(&t->wall->offset);
    for (int k = 0; k < 2; k++) {
        write_header_u64(offsetof(struct shm_header, wall_offset_ns), k ? text : mine - NS_PER_DAY);
        atomic_store(&t->wall->checked, 0); /* due */
        cr_expect_eq(rl_try_acquire(fixed, 1, NULL), RL_ELIMITED);
        cr_expect_eq(atomic_load(&t->hdr->wall_offset_ns), mine, "the header's alignment stays");
    }
    rl_table_close(t);
}

/* ------------------------------------------------------------ policy block */

struct field_damage {
    const char *what;
    unsigned rule; /* UINT32_MAX: the block header */
    size_t offset;
    unsigned size; /* 4 or 8 */
    uint64_t value;
};

Test(corrupt, policy_block_fields)
{
    /* Rule 0 sliding, rule 1 GCRA, rule 2 fixed. */
    const char *policy = "10/1h, 10/1h burst 5, 10/366d fixed";
    build(policy);
    const uint64_t log_off =
        file_read_u64(g_path, rule_at(VICTIM, 0) + offsetof(struct shm_rule, log_off));
    const struct field_damage cases[] = {
        {"nrules 0", UINT32_MAX, offsetof(struct shm_policy, nrules), 4, 0},
        {"nrules 5", UINT32_MAX, offsetof(struct shm_policy, nrules), 4, 5},
        {"nrules huge", UINT32_MAX, offsetof(struct shm_policy, nrules), 4, 0xffffffff},
        {"margin", UINT32_MAX, offsetof(struct shm_policy, margin_ns), 8, RL_MARGIN_MAX_NS + 1},
        {"sliding kind", 0, offsetof(struct shm_rule, kind), 4, 7},
        {"sliding limit 0", 0, offsetof(struct shm_rule, limit), 8, 0},
        {"sliding limit", 0, offsetof(struct shm_rule, limit), 8, RL_SLIDING_LIMIT_MAX + 1},
        {"sliding limit past the arena", 0, offsetof(struct shm_rule, limit), 8,
         RL_SLIDING_LIMIT_MAX},
        {"sliding period 0", 0, offsetof(struct shm_rule, period_ns), 8, 0},
        {"sliding period", 0, offsetof(struct shm_rule, period_ns), 8, RL_PERIOD_MAX_NS + 1},
        {"sliding log_off", 0, offsetof(struct shm_rule, log_off), 8, H.arena_bytes},
        {"sliding log_off end", 0, offsetof(struct shm_rule, log_off), 8, H.arena_bytes - 8},
        {"sliding log_off misaligned", 0, offsetof(struct shm_rule, log_off), 8, log_off + 4},
        {"sliding log_off huge", 0, offsetof(struct shm_rule, log_off), 8, UINT64_MAX - 7},
        {"gcra kind", 1, offsetof(struct shm_rule, kind), 4, 0xffffffff},
        {"gcra limit", 1, offsetof(struct shm_rule, limit), 8, RL_LIMIT_MAX + 1},
        {"gcra interval 0", 1, offsetof(struct shm_rule, interval_ns), 8, 0},
        {"gcra interval", 1, offsetof(struct shm_rule, interval_ns), 8, 1},
        {"gcra burst 0", 1, offsetof(struct shm_rule, burst), 8, 0},
        {"gcra burst huge", 1, offsetof(struct shm_rule, burst), 8, UINT64_MAX},
        {"fixed kind", 2, offsetof(struct shm_rule, kind), 4, 3},
        {"fixed limit 0", 2, offsetof(struct shm_rule, limit), 8, 0},
        {"fixed period 0", 2, offsetof(struct shm_rule, period_ns), 8, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct field_damage *c = &cases[k];
        build(policy);
        uint64_t at =
            (c->rule == UINT32_MAX ? block_at(VICTIM) : rule_at(VICTIM, c->rule)) + c->offset;
        if (c->size == 4)
            write_u32(at, (uint32_t)c->value);
        else
            file_write_u64(g_path, at, c->value);
        if (strcmp(c->what, "sliding limit past the arena") == 0) /* the log would overrun */
            file_write_u64(g_path, rule_at(VICTIM, 0) + offsetof(struct shm_rule, log_off),
                           H.arena_bytes - 8 * 1000);
        check_corrupt(c->what);
    }
}

/* ------------------------------------------------------------ state words */

Test(corrupt, sliding_head_damaged)
{
    /* pos >= 4N: no valid log position. */
    build("10/1h");
    file_write_u64(g_path, word_at(VICTIM, 0), (40ULL + 5) << 44);
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    rl_bucket *v;
    struct rl_decision d;
    struct rl_bucket_info i;
    cr_assert_eq(rl_bucket_lookup(t, names[VICTIM], &v), 0);
    cr_expect_eq(rl_try_acquire(v, 1, &d), RL_ECORRUPT);
    cr_expect(strstr(rl_errdetail(), "victim"), "%s", rl_errdetail());
    cr_expect_eq(rl_acquire(v, 1, NS_PER_SEC, &d), RL_ECORRUPT);
    int rc = rl_bucket_info(v, &i);
    cr_expect(rc == 0 || rc == RL_ECORRUPT, "info: %s", rl_err_name(rc));
    rl_bucket *c;
    cr_assert_eq(rl_bucket_lookup(t, names[CHILD], &c), 0);
    cr_expect_eq(rl_try_acquire(c, 1, &d), RL_ECORRUPT);
    cr_expect_eq(used_of(c, 0), 1);
    expect_others_work(t);
    rl_table_close(t);

    /* The largest pos the field holds. */
    build("10/1h");
    file_write_u64(g_path, word_at(VICTIM, 0), ((1ULL << 19) - 1) << 44);
    check_never_over_admits("sliding pos max", 0);
}

Test(corrupt, sliding_head_inconsistent_with_log)
{
    /* A valid but wrong position: the log entries do not match it. The bucket must not admit
     * more than N, and must not wedge either (repair after repeated stale views). */
    static const uint64_t pos[] = {1, 9, 10, 11, 17, 20, 39};
    for (size_t k = 0; k < sizeof(pos) / sizeof(pos[0]); k++) {
        char what[32];
        snprintf(what, sizeof(what), "sliding pos %" PRIu64, pos[k]);
        build("10/1h");
        file_write_u64(g_path, word_at(VICTIM, 0), pos[k] << 44);
        check_never_over_admits(what, 10);
    }
    /* Last admission far in the future: everything waits. */
    build("10/1h");
    file_write_u64(g_path, word_at(VICTIM, 0), (1ULL << 44) - 1);
    check_never_over_admits("sliding last max", 0);
}

Test(corrupt, sliding_log_damaged)
{
    static const uint64_t entries[] = {
        0,
        1ULL << 62,
        2ULL << 62,
        (3ULL << 62) | ((1ULL << 44) - 1),
        (1ULL << 62) | 12345,
        UINT64_MAX,
        0x5555555555555555ULL,
    };
    for (size_t k = 0; k < sizeof(entries) / sizeof(entries[0]); k++) {
        char what[48];
        snprintf(what, sizeof(what), "sliding log entries %#" PRIx64, entries[k]);
        build("10/1h");
        uint64_t log_off =
            file_read_u64(g_path, rule_at(VICTIM, 0) + offsetof(struct shm_rule, log_off));
        for (unsigned j = 0; j < 10; j += 1 + (unsigned)k % 3)
            file_write_u64(g_path, H.arena_off + log_off + 8 * j, entries[k]);
        check_never_over_admits(what, 10);
    }
}

Test(corrupt, sliding_log_entry_wrong_lap_is_repaired)
{
    /* One entry of another lap: after repeated stale views the decision repairs it
     * conservatively instead of refusing forever. */
    build("10/1h");
    uint64_t log_off =
        file_read_u64(g_path, rule_at(VICTIM, 0) + offsetof(struct shm_rule, log_off));
    file_write_u64(g_path, H.arena_off + log_off, 1ULL << 62);
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    rl_bucket *v;
    cr_assert_eq(rl_bucket_lookup(t, names[VICTIM], &v), 0);
    unsigned admitted = 0;
    for (unsigned k = 0; k < 20; k++) {
        int rc = rl_try_acquire(v, 1, NULL);
        cr_expect(rc == 0 || rc == RL_ELIMITED, "request %u: %s", k, rl_err_name(rc));
        admitted += rc == 0;
    }
    cr_expect(admitted >= 1 && admitted <= 10, "%u admitted", admitted);
    expect_others_work(t);
    rl_table_close(t);
}

Test(corrupt, gcra_word_damaged)
{
    static const uint64_t words[] = {
        1ULL << 63, (1ULL << 63) | 12345, UINT64_MAX, 1ULL << 62, (1ULL << 63) - 1, 3ULL << 61,
    };
    for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
        char what[48];
        snprintf(what, sizeof(what), "GCRA TAT %#" PRIx64, words[k]);
        build("1/1h burst 1 margin 0");
        file_write_u64(g_path, word_at(VICTIM, 0), words[k]);
        check_never_over_admits(what, 1);
    }
}

/*
 * BUG (gcra.c gcra_earliest, `(int64_t)c->word - allowance(c, cost)`): with a damaged TAT
 * near 2^63 and a margin larger than the burst's tolerance (allowance < 0), the signed
 * subtraction overflows: undefined behaviour (the UBSan build aborts, "never a crash"),
 * and in practice it wraps to a large negative instant and admits.
 */
Test(corrupt, gcra_word_near_the_top_with_margin)
{
    build("1/1h burst 1 margin 50ms");
    file_write_u64(g_path, word_at(VICTIM, 0), (1ULL << 63) - 1000);
    check_never_over_admits("GCRA TAT 2^63 - 1000, margin 50ms", 0);
}

Test(corrupt, fixed_word_damaged)
{
    static const uint64_t words[] = {
        0xffffffffULL, 0x00ffffffffffffffULL, UINT64_MAX, 1ULL << 63, 0x7f00000000000000ULL,
    };
    for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
        char what[48];
        snprintf(what, sizeof(what), "fixed word %#" PRIx64, words[k]);
        build("3/366d fixed");
        file_write_u64(g_path, word_at(VICTIM, 0), words[k]);
        check_never_over_admits(what, 3);
    }
}

/* ------------------------------------------------------------ bucket records */

static void expect_lookup(rl_table *t, const char *name, int code, const char *what)
{
    rl_bucket *b;
    int rc = rl_bucket_lookup(t, name, &b);
    cr_expect_eq(rc, code, "%s: lookup %s: %s", what, name, rl_err_name(rc));
}

Test(corrupt, record_parent_damaged)
{
    static const uint32_t parents[] = {VICTIM + 1, VICTIM + 2, 100, 0xffffffff};
    for (size_t k = 0; k < sizeof(parents) / sizeof(parents[0]); k++) {
        char what[48];
        snprintf(what, sizeof(what), "parent %u", parents[k]);
        build("10/1h");
        write_u32(rec_off(VICTIM) + offsetof(struct shm_bucket, parent), parents[k]);
        rl_table *t = table_open_opts(g_path, 0, 0, 0);
        expect_lookup(t, names[VICTIM], RL_ECORRUPT, what);
        expect_lookup(t, names[CHILD], RL_ECORRUPT, what);
        int rc = define_rc(t, names[CHILD], "5/1h", names[VICTIM]);
        cr_expect(rc == RL_ENOENT || rc == RL_ECORRUPT, "%s: %s", what, rl_err_name(rc));
        expect_others_work(t);
        rl_table_close(t);
    }
    /* A parent chain longer than RL_MAX_DEPTH (with the parent's generation: c2's, 1). */
    unlink(g_path);
    rl_table *t = table_create(16);
    char name[16], parent[16];
    for (unsigned k = 0; k < 8; k++) {
        snprintf(name, sizeof(name), "c%u", k);
        snprintf(parent, sizeof(parent), "c%u", k - 1);
        define(t, name, "5/1h", k % 4 ? parent : NULL);
    }
    rl_table_close(t);
    H = header_of(g_path);
    write_u32(rec_off(4) + offsetof(struct shm_bucket, parent), 2 + 1); /* c4 under c2 */
    write_u32(rec_off(4) + offsetof(struct shm_bucket, life), 1);       /* c2's generation */
    t = table_open_opts(g_path, 0, 0, 0);
    expect_lookup(t, "c4", 0, "depth 4: c4 c2 c1 c0");
    expect_lookup(t, "c5", RL_ECORRUPT, "depth 5");
    expect_lookup(t, "c7", RL_ECORRUPT, "depth 7");
    expect_lookup(t, "c0", 0, "depth 8 ancestor");
    rl_table_close(t);
}

Test(corrupt, record_state_and_name_damaged)
{
    build("10/1h");
    write_u32(rec_off(VICTIM) + offsetof(struct shm_bucket, state), RL_BUCKET_FREE);
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    expect_lookup(t, names[VICTIM], RL_ENOENT, "state FREE");
    expect_lookup(t, names[CHILD], RL_ECORRUPT, "state FREE");
    expect_others_work(t);
    rl_table_close(t);

    build("10/1h");
    write_u32(rec_off(VICTIM) + offsetof(struct shm_bucket, state), 0xdeadbeef);
    t = table_open_opts(g_path, 0, 0, 0);
    expect_lookup(t, names[VICTIM], RL_ENOENT, "state garbage");
    expect_others_work(t);
    rl_table_close(t);

    build("10/1h");
    char garbage[RL_NAME_MAX + 1];
    memset(garbage, 'x', sizeof(garbage));
    file_write(g_path, rec_off(VICTIM) + offsetof(struct shm_bucket, name), garbage,
               sizeof(garbage));
    t = table_open_opts(g_path, 0, 0, 0);
    expect_lookup(t, names[VICTIM], RL_ENOENT, "unterminated name");
    expect_lookup(t, names[CHILD], RL_ECORRUPT, "unterminated parent name");
    unsigned n = foreach_count(t);
    cr_expect_eq(n, 2, "foreach visits bystander and other only, got %u", n);
    expect_others_work(t);
    rl_table_close(t);
}

/* ------------------------------------------------------------ index and header */

Test(corrupt, index_damaged)
{
    build("10/1h");
    /* Every slot names a bucket number out of range. */
    for (uint32_t s = 0; s < H.index_slots; s++)
        file_write_u64(g_path, H.index_off + 8ULL * s, 0xffffffffffffffffULL);
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    for (unsigned k = 0; k < NBUCKETS; k++)
        expect_lookup(t, names[k], RL_ENOENT, "index all garbage");
    cr_expect_eq(define_rc(t, "newcomer", "1/1h", NULL), RL_EFULL);
    cr_expect_eq(foreach_count(t), 0);
    rl_table_close(t);

    /* One slot pointing at another bucket: the name check keeps them apart. */
    build("10/1h");
    uint64_t h = rl__name_hash(names[VICTIM]);
    uint32_t mask = H.index_slots - 1;
    for (uint32_t i = 0; i <= mask; i++) {
        uint64_t at = H.index_off + 8ULL * ((h + i) & mask);
        uint64_t slot = file_read_u64(g_path, at);
        if ((slot & 0xffffffff) == VICTIM + 1) {
            file_write_u64(g_path, at, (slot & ~0xffffffffULL) | (BYSTANDER + 1));
            break;
        }
    }
    t = table_open_opts(g_path, 0, 0, 0);
    rl_bucket *b;
    int rc = rl_bucket_lookup(t, names[VICTIM], &b);
    cr_expect(rc == RL_ENOENT || (rc == 0 && strcmp(rl_bucket_name(b), names[VICTIM]) == 0),
              "lookup: %s", rl_err_name(rc));
    expect_others_work(t);
    rl_table_close(t);
}

Test(corrupt, header_counters_damaged)
{
    build("10/1h");
    file_write_u64(g_path, offsetof(struct shm_header, next_bucket), UINT64_MAX - 1);
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    struct rl_table_info i;
    rl_table_info(t, &i);
    cr_expect_eq(i.buckets, NBUCKETS, "info counts the buckets defined, not numbers taken");
    cr_expect_eq(foreach_count(t), NBUCKETS);
    cr_expect_eq(define_rc(t, "newcomer", "1/1h", NULL), RL_EFULL);
    rl_bucket *b;
    cr_assert_eq(rl_bucket_lookup(t, names[BYSTANDER], &b), 0);
    cr_expect_eq(admit_run(b, 10), 5);
    rl_table_close(t);

    build("10/1h");
    file_write_u64(g_path, offsetof(struct shm_header, arena_used), UINT64_MAX - 63);
    t = table_open_opts(g_path, 0, 0, 0);
    rl_table_info(t, &i);
    cr_expect_eq(i.arena_used, i.arena_bytes);
    cr_expect_eq(define_rc(t, "newcomer", "1/1h", NULL), RL_EFULL);
    cr_assert_eq(rl_bucket_lookup(t, names[BYSTANDER], &b), 0);
    cr_expect_eq(admit_run(b, 10), 5);
    rl_table_close(t);
}

/*
 * BUG (bucket.c record_create and table.c rl__arena_alloc): next_bucket and arena_used are
 * advanced by an unconditional fetch_add. Damaged to near 2^64, they wrap after a failed
 * definition or two, and the next definition is handed bucket record 0 or arena offset 64:
 * it overwrites a live bucket's record or policy block. Damage to one header word then
 * spreads to buckets that were intact. (Checking before adding, or a CAS loop that never
 * moves the counter past the capacity, would contain it.)
 */
Test(corrupt, header_counter_wrap_spreads_damage)
{
    static const size_t fields[] = {offsetof(struct shm_header, next_bucket),
                                    offsetof(struct shm_header, arena_used)};
    static const uint64_t values[] = {UINT64_MAX - 1, UINT64_MAX - 63};
    for (size_t f = 0; f < 2; f++) {
        build("10/1h");
        file_write_u64(g_path, fields[f], values[f]);
        rl_table *t = table_open_opts(g_path, 0, 0, 0);
        char name[16];
        for (unsigned k = 0; k < 3; k++) {
            snprintf(name, sizeof(name), "late%u", k);
            int rc = define_rc(t, name, "1/1h", NULL);
            cr_expect(rc == 0 || rc == RL_EFULL, "%s", rl_err_name(rc));
        }
        rl_bucket *b;
        int rc = rl_bucket_lookup(t, names[BYSTANDER], &b);
        cr_expect_eq(rc, 0, "header field at %zu: the bystander is gone: %s", fields[f],
                     rl_err_name(rc));
        if (rc == 0) {
            struct rl_bucket_info i;
            rc = rl_bucket_info(b, &i);
            cr_expect_eq(rc, 0, "header field at %zu: bystander info %s", fields[f],
                         rl_err_name(rc));
            cr_expect(rc || (i.policy.nrules == 1 && i.policy.rules[0].limit == 5),
                      "header field at %zu: the bystander's policy was overwritten", fields[f]);
            cr_expect_eq(admit_run(b, 10), 5, "header field at %zu: bystander", fields[f]);
        }
        cr_expect_eq(rl_bucket_lookup(t, names[VICTIM], &b), 0, "header field at %zu", fields[f]);
        rl_table_close(t);
    }
}

/* ------------------------------------------------------------ no hangs */

/* Run fn in a child process with a deadline; returns its exit status (-1: killed). */
static int within(unsigned seconds, void (*fn)(void))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        alarm(seconds);
        fn();
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static void reset_victim(void)
{
    rl_table *t;
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_bucket *v;
    o.path = g_path;
    if (rl_table_open(&o, &t) || rl_bucket_lookup(t, names[VICTIM], &v))
        _exit(2);
    int rc = rl_bucket_reset(v);
    _exit(rc == 0 || rc == RL_ECORRUPT ? 0 : 3);
}

static void acquire_victim(void)
{
    rl_table *t;
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_bucket *v;
    o.path = g_path;
    if (rl_table_open(&o, &t) || rl_bucket_lookup(t, names[VICTIM], &v))
        _exit(2);
    for (unsigned k = 0; k < 20; k++) {
        int rc = rl_try_acquire(v, 1, NULL);
        if (rc != 0 && rc != RL_ELIMITED && rc != RL_ECORRUPT)
            _exit(3);
    }
    _exit(0);
}

/*
 * BUG (bucket.c rl_bucket_reset `do { ... } while (rl__switch_help(b, p))`, and the same
 * `for (;;)` in update.c rl_bucket_update): a damaged next_off that names the block itself
 * (or any cycle of valid blocks) makes rl__switch_help report a switch forever, and the
 * reset spins without end instead of returning RL_ECORRUPT. Deciders bound the same
 * situation (STALE_LIMIT); reset and update do not.
 */
Test(corrupt, policy_next_off_cycle_does_not_hang)
{
    build("10/1h");
    file_write_u64(g_path, block_at(VICTIM) + offsetof(struct shm_policy, next_off),
                   policy_off(VICTIM));
    int st = within(5, acquire_victim);
    cr_expect_eq(st, 0, "try_acquire with next_off -> itself: status %d (-14: hung)", st);
    st = within(5, reset_victim);
    cr_expect_eq(st, 0, "rl_bucket_reset with next_off -> itself: status %d (-14: hung)", st);
}

/* ------------------------------------------------------------ random damage */

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *fuzz_names[] = {"s", "g", "f", "multi", "s/child", "g/child/leaf"};

static void fuzz_round(void)
{
    rl_table *t;
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    o.path = g_path;
    if (rl_table_open(&o, &t))
        _exit(10);
    for (size_t k = 0; k < sizeof(fuzz_names) / sizeof(fuzz_names[0]); k++) {
        rl_bucket *b;
        struct rl_decision d;
        struct rl_bucket_info i;
        int rc = rl_bucket_lookup(t, fuzz_names[k], &b);
        if (rc == RL_ENOENT || rc == RL_ECORRUPT)
            continue;
        if (rc)
            _exit(11);
        for (unsigned j = 0; j < 4; j++) {
            rc = rl_try_acquire(b, 1 + j % 2, &d);
            if (rc != 0 && rc != RL_ELIMITED && rc != RL_ECORRUPT && rc != RL_ECOST)
                _exit(12);
        }
        rc = rl_acquire(b, 1, 0, &d);
        if (rc != 0 && rc != RL_ETIMEDOUT && rc != RL_ECORRUPT)
            _exit(13);
        rc = rl_bucket_info(b, &i);
        if (rc != 0 && rc != RL_ECORRUPT)
            _exit(14);
        rc = rl_bucket_reset(b);
        if (rc != 0 && rc != RL_ECORRUPT)
            _exit(15);
        rc = rl_try_acquire(b, 1, &d);
        if (rc != 0 && rc != RL_ELIMITED && rc != RL_ECORRUPT && rc != RL_ECOST)
            _exit(16);
    }
    unsigned n = 0;
    rl_table_foreach(t, table_count_cb, &n);
    struct rl_policy p;
    rl_policy_parse("1/1h", &p, NULL);
    rl_bucket *b;
    int rc = rl_bucket_define(t, "late", &p, NULL, &b);
    if (rc != 0 && rc != RL_EFULL && rc != RL_ECORRUPT && rc != RL_EEXIST)
        _exit(17);
    rl_table_close(t);
    _exit(0);
}

Test(corrupt, random_damage_never_crashes)
{
    for (unsigned round = 0; round < 60; round++) {
        unlink(g_path);
        rl_table *t = table_open_opts(g_path, RL_OPEN_CREATE, 16, 64);
        define(t, "s", "8/1h", NULL);
        define(t, "g", "8/1h burst 4", NULL);
        define(t, "f", "8/366d fixed", NULL);
        define(t, "multi", "8/1h, 6/1h burst 6, 7/366d fixed margin 0", NULL);
        define(t, "s/child", "4/1h", "s");
        define(t, "g/child", "4/1h", "g");
        define(t, "g/child/leaf", "3/1h burst 2", "g/child");
        rl_bucket *b;
        for (size_t k = 0; k < sizeof(fuzz_names) / sizeof(fuzz_names[0]); k++) {
            cr_assert_eq(rl_bucket_lookup(t, fuzz_names[k], &b), 0);
            admit_run(b, 2);
        }
        struct rl_table_info info;
        rl_table_info(t, &info);
        rl_table_close(t);
        H = header_of(g_path);

        /* Damage 1..8 words in the index, the records or the used arena. */
        rng_state = 0x243f6a8885a308d3ULL * (round + 1);
        uint64_t lo = H.index_off, hi = H.arena_off + info.arena_used;
        unsigned hits = 1 + (unsigned)(rng() % 8);
        for (unsigned h = 0; h < hits; h++) {
            uint64_t at = lo + (rng() % ((hi - lo) / 8)) * 8, v;
            switch (rng() % 4) {
            case 0:
                v = rng();
                break;
            case 1:
                v = file_read_u64(g_path, at) ^ (1ULL << (rng() % 64));
                break;
            case 2:
                v = rng() % 64;
                break;
            default:
                v = file_read_u64(g_path, at) + (rng() % 16) * 8;
                break;
            }
            file_write_u64(g_path, at, v);
        }
        int st = within(20, fuzz_round);
        cr_expect_eq(st, 0,
                     "round %u: status %d (exit code >= 10: an unexpected error code; "
                     "negative: killed by signal)",
                     round, st);
        if (st != 0)
            break;
    }
}

/* ------------------------------------------------------------ view cache (issue 13, item 10) */

/* Allocations by anyone in this process (the test links with --wrap=malloc,calloc,realloc). */
static _Atomic unsigned long g_allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    g_allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    g_allocs++;
    return __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    g_allocs++;
    return __real_realloc(p, n);
}

/* Decide on `b` with its record naming block `off`: admitted (0) or refused. */
static int decide_at(rl_bucket *b, uint64_t off)
{
    atomic_store(&b->rec->policy_off, off);
    int rc = rl_try_acquire(b, 1, NULL);
    cr_assert(rc == 0 || rc == RL_ELIMITED, "try_acquire: %s (%s)", rl_err_name(rc),
              rl_errdetail());
    return rc;
}

/* A record whose policy_off flips between valid blocks made the handle allocate a view on
 * every change (1.7 MB to 1.75 GB in 20 s). Now a handle allocates its view slots once;
 * beyond RL_VIEW_SLOTS blocks a decision copies its view on the stack. Every decision still
 * follows the block the record names at that moment. */
Test(corrupt, view_cache_stays_bounded_while_policy_off_flips)
{
    enum { NBLOCKS = RL_VIEW_SLOTS + 2 };
    rl_table *t = table_create(16);
    rl_bucket *b[NBLOCKS];
    uint64_t off[NBLOCKS];
    for (unsigned k = 0; k < NBLOCKS; k++) {
        char name[16];
        snprintf(name, sizeof(name), "b%u", k);
        /* Even blocks admit everything, odd ones are drained: a decision shows its block. */
        b[k] = define(t, name, k % 2 ? "1/1h" : "1000000000/1s burst 1000000000 margin 0", NULL);
        if (k % 2)
            cr_assert_eq(rl_try_acquire(b[k], 1, NULL), 0);
        off[k] = atomic_load(&b[k]->rec->policy_off);
    }
    rl_bucket *x = define(t, "flipped", "5/1h", NULL);
    unsigned long before = g_allocs;
    cr_expect_eq(decide_at(x, off[0]), 0);
    cr_expect_leq(g_allocs - before, 1, "the first view allocates the slots, nothing else");
    before = g_allocs;
    for (unsigned i = 0; i < 100000; i++)
        cr_assert_eq(decide_at(x, off[i % 2]), (int)(i % 2 ? RL_ELIMITED : 0), "flip %u", i);
    cr_expect_eq(g_allocs - before, 0, "flipping between two blocks allocates nothing");
    before = g_allocs;
    for (unsigned i = 0; i < 10000; i++)
        cr_assert_eq(decide_at(x, off[i % NBLOCKS]), (int)(i % 2 ? RL_ELIMITED : 0), "flip %u", i);
    cr_expect_eq(g_allocs - before, 0, "more blocks than slots: stack copies, no allocation");
    /* A cached block rewritten in place is validated again, not taken from the cache. */
    struct shm_policy *p = (struct shm_policy *)(t->arena + rl__ref_off(off[1]));
    p->rules[0].limit = 0;
    atomic_store(&x->rec->policy_off, off[1]);
    cr_expect_eq(rl_try_acquire(x, 1, NULL), RL_ECORRUPT);
    p->rules[0].limit = 1;
    cr_expect_eq(decide_at(x, off[1]), RL_ELIMITED);
    atomic_store(&x->rec->policy_off, off[NBLOCKS - 1]);
    rl_table_close(t);
}
