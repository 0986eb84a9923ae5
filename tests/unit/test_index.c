/*
 * test_index.c - the name index: many buckets, iteration, probing collisions, concurrent
 * definitions from several processes.
 */
#include "fixture.h"

TestSuite(index, .init = fixture_setup, .fini = fixture_teardown, .timeout = 55);

struct visit {
    unsigned count, dup, bad, out_of_order;
    int last;
    unsigned char *seen;
    unsigned n;
};

static int visit_cb(rl_bucket *b, void *arg)
{
    struct visit *v = arg;
    unsigned k;
    v->count++;
    if (sscanf(rl_bucket_name(b), "bucket/%u", &k) != 1 || k >= v->n) {
        v->bad++;
        return 0;
    }
    v->dup += v->seen[k]++ != 0;
    v->out_of_order += (int)k < v->last;
    v->last = (int)k;
    return 0;
}

static struct visit visit_all(rl_table *t, unsigned n)
{
    struct visit v = {.last = -1, .seen = calloc(n, 1), .n = n};
    cr_assert_eq(rl_table_foreach(t, visit_cb, &v), 0);
    for (unsigned k = 0; k < n; k++)
        cr_expect_eq(v.seen[k], 1, "bucket/%u visited %u times", k, v.seen[k]);
    free(v.seen);
    return v;
}

Test(index, many_buckets)
{
    enum { N = 5000 };
    rl_table *t = table_create(8192);
    char name[32];
    static rl_bucket *handles[N];
    for (unsigned k = 0; k < N; k++) {
        snprintf(name, sizeof(name), "bucket/%u", k);
        static const char *policies[] = {"10/1h burst 2", "5/1h", "3/366d fixed"};
        handles[k] = define(t, name, policies[k % 3], NULL);
    }
    struct rl_table_info i;
    rl_table_info(t, &i);
    cr_expect_eq(i.buckets, N);

    /* Found by name, in this attachment and in a new one. */
    rl_table *t2 = table_open_opts(g_path, 0, 0, 0);
    for (unsigned k = 0; k < N; k++) {
        rl_bucket *b, *b2;
        uint32_t no, gen;
        snprintf(name, sizeof(name), "bucket/%u", k);
        cr_assert_eq(rl_bucket_lookup(t, name, &b), 0, "%s not found", name);
        cr_assert_eq(b, handles[k]);
        cr_assert_eq(rl_bucket_lookup(t2, name, &b2), 0, "%s not found by another attach", name);
        cr_assert_str_eq(rl_bucket_name(b2), name);
        cr_assert_eq(rl__index_find(t2, name, &no, &gen), 0);
        cr_assert_eq(no, k, "%s is bucket %u, created as %u", name, no, k);
    }
    /* Names that are not there. */
    for (unsigned k = N; k < N + 2000; k++) {
        rl_bucket *b;
        uint32_t no, gen;
        snprintf(name, sizeof(name), "bucket/%u", k);
        cr_assert_eq(rl_bucket_lookup(t, name, &b), RL_ENOENT);
        cr_assert_eq(rl__index_find(t, name, &no, &gen), RL_ENOENT);
    }
    rl_bucket *b;
    cr_expect_eq(rl_bucket_lookup(t, "bucket", &b), RL_ENOENT);
    cr_expect_eq(rl_bucket_lookup(t, "bucket/1/", &b), RL_ENAME);

    /* foreach: each exactly once, in creation order. */
    struct visit v = visit_all(t2, N);
    cr_expect_eq(v.count, N);
    cr_expect_eq(v.bad, 0);
    cr_expect_eq(v.dup, 0);
    cr_expect_eq(v.out_of_order, 0, "foreach is documented to walk in creation order");

    /* They are distinct buckets. */
    cr_assert_eq(rl_try_acquire(handles[1], 5, NULL), 0);
    cr_expect_eq(used_of(handles[1], 0), 5);
    cr_expect_eq(used_of(handles[2], 0), 0);
    rl_table_close(t2);
    rl_table_close(t);
}

static int stop_at_three(rl_bucket *b, void *arg)
{
    (void)b;
    return ++*(int *)arg == 3 ? 42 : 0;
}

Test(index, foreach_stops_early)
{
    rl_table *t = table_create(16);
    cr_expect_eq(foreach_count(t), 0, "an empty table");
    char name[16];
    for (unsigned k = 0; k < 10; k++) {
        snprintf(name, sizeof(name), "b%u", k);
        define(t, name, "1/1h", NULL);
    }
    int calls = 0;
    cr_expect_eq(rl_table_foreach(t, stop_at_three, &calls), 42);
    cr_expect_eq(calls, 3);
    rl_table_close(t);
}

Test(index, fill_to_capacity)
{
    /* Capacity 64: 128 index slots, every bucket findable when the table is full. */
    rl_table *t = table_create(64);
    char name[32];
    for (unsigned k = 0; k < 64; k++) {
        snprintf(name, sizeof(name), "bucket/%u", k);
        define(t, name, "1/1h", NULL);
    }
    cr_expect_eq(define_rc(t, "one-more", "1/1h", NULL), RL_EFULL);
    for (unsigned k = 0; k < 64; k++) {
        rl_bucket *b;
        snprintf(name, sizeof(name), "bucket/%u", k);
        cr_expect_eq(rl_bucket_lookup(t, name, &b), 0, "%s", name);
    }
    struct visit v = visit_all(t, 64);
    cr_expect_eq(v.count, 64);
    rl_table_close(t);
}

Test(index, probing_collisions)
{
    /* Names whose hashes share the home slot of an 8-slot index, and the wrap-around. */
    rl_table *t = table_create(4);
    uint32_t mask = t->hdr->index_slots - 1;
    cr_assert_eq(mask, 7);
    char names[4][16];
    unsigned found = 0;
    for (unsigned k = 0; found < 4 && k < 100000; k++) {
        char name[16];
        snprintf(name, sizeof(name), "n%u", k);
        if ((rl__name_hash(name) & mask) == mask) /* the last slot: probing wraps to 0 */
            strcpy(names[found++], name);
    }
    cr_assert_eq(found, 4);
    rl_bucket *b[4];
    for (unsigned k = 0; k < 4; k++)
        b[k] = define(t, names[k], "2/1h", NULL);
    for (unsigned k = 0; k < 4; k++) {
        rl_bucket *x;
        uint32_t no, gen;
        cr_expect_eq(rl_bucket_lookup(t, names[k], &x), 0);
        cr_expect_eq(x, b[k]);
        cr_expect_eq(rl__index_find(t, names[k], &no, &gen), 0);
        cr_expect_eq(no, k);
        cr_expect_eq(define(t, names[k], "2/1h", NULL), b[k]);
    }
    /* Names with the same home slot that are absent: the probe ends at an empty slot. */
    for (unsigned k = 100000, miss = 0; miss < 20; k++) {
        char name[16];
        uint32_t no, gen;
        snprintf(name, sizeof(name), "n%u", k);
        if ((rl__name_hash(name) & mask) != mask)
            continue;
        cr_expect_eq(rl__index_find(t, name, &no, &gen), RL_ENOENT, "%s", name);
        miss++;
    }
    rl_table_close(t);
}

static int cmp_tag(const void *x, const void *y)
{
    const uint64_t *a = x, *b = y;
    return (a[0] > b[0]) - (a[0] < b[0]);
}

Test(index, same_tag_and_slot)
{
    /* Two names whose 64-bit hashes agree in the tag (high 32 bits) and in the home slot
     * of a 16-slot index: only the stored name tells them apart. Found by a birthday
     * search over 2^36 values (deterministic: the hash is fixed). */
    enum { M = 1500000 };
    uint64_t(*h)[2] = malloc(sizeof(*h) * M);
    cr_assert_not_null(h);
    for (unsigned k = 0; k < M; k++) {
        char name[16];
        snprintf(name, sizeof(name), "t%u", k);
        uint64_t x = rl__name_hash(name);
        h[k][0] = (x & 0xffffffff00000000ULL) | (x & 15);
        h[k][1] = k;
    }
    qsort(h, M, sizeof(*h), cmp_tag);
    unsigned a = 0, b = 0;
    for (unsigned k = 1; k < M && a == b; k++)
        if (h[k][0] == h[k - 1][0])
            a = (unsigned)h[k - 1][1], b = (unsigned)h[k][1];
    free(h);
    cr_assert_neq(a, b, "no pair found");

    rl_table *t = table_create(8);
    cr_assert_eq(t->hdr->index_slots, 16);
    char na[16], nb[16];
    snprintf(na, sizeof(na), "t%u", a);
    snprintf(nb, sizeof(nb), "t%u", b);
    cr_assert_eq(rl__name_hash(na) >> 32, rl__name_hash(nb) >> 32);
    rl_bucket *x;
    define(t, na, "1/1h", NULL);
    cr_expect_eq(rl_bucket_lookup(t, nb, &x), RL_ENOENT, "%s must not be found as %s", nb, na);
    define(t, nb, "2/1h", NULL);
    cr_assert_eq(rl_bucket_lookup(t, na, &x), 0);
    cr_expect_str_eq(rl_bucket_name(x), na);
    cr_expect_eq(info_of(x).policy.rules[0].limit, 1);
    cr_assert_eq(rl_bucket_lookup(t, nb, &x), 0);
    cr_expect_str_eq(rl_bucket_name(x), nb);
    cr_expect_eq(info_of(x).policy.rules[0].limit, 2);
    rl_table_close(t);
}

Test(index, long_names)
{
    rl_table *t = table_create(8);
    char a[RL_NAME_MAX + 1], b[RL_NAME_MAX + 1];
    memset(a, 'x', RL_NAME_MAX);
    a[RL_NAME_MAX] = '\0';
    memcpy(b, a, sizeof(b));
    b[RL_NAME_MAX - 1] = 'y';
    define(t, a, "1/1h", NULL);
    rl_bucket *x;
    cr_expect_eq(rl_bucket_lookup(t, b, &x), RL_ENOENT);
    define(t, b, "2/1h", NULL);
    cr_assert_eq(rl_bucket_lookup(t, a, &x), 0);
    cr_expect_str_eq(rl_bucket_name(x), a);
    cr_expect_str_eq(info_of(x).name, a);
    cr_assert_eq(rl_bucket_lookup(t, b, &x), 0);
    cr_expect_str_eq(rl_bucket_name(x), b);
    rl_table_close(t);
}

/* ------------------------------------------------------------ several processes */

#define PROCS 8
#define NAMES 200

struct defs {
    atomic_uint ready;
    int rc[PROCS];
    uint32_t defined[PROCS][NAMES];
    uint32_t looked_up[PROCS][NAMES];
};

static void define_child(struct gate *g, struct defs *s, unsigned me, bool same_names)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct rl_policy p;
    rl_table *t;
    rl_bucket *b;
    char name[32];
    o.path = g_path;
    rl_policy_parse("100/1h", &p, NULL);
    if (rl_table_open(&o, &t) != 0)
        _exit(2);
    gate_wait(g);
    for (unsigned i = 0; i < NAMES; i++) {
        /* Each process starts at a different name, so they race on every one. */
        unsigned k = same_names ? (i + me * NAMES / PROCS) % NAMES : i;
        if (same_names)
            snprintf(name, sizeof(name), "bucket/%u", k);
        else
            snprintf(name, sizeof(name), "bucket/%u", me * NAMES + k);
        int rc = rl_bucket_define(t, name, &p, NULL, &b);
        if (rc) {
            s->rc[me] = rc;
            _exit(3);
        }
        s->defined[me][k] = b->no;
    }
    barrier_wait(&s->ready, PROCS);
    for (unsigned k = 0; k < NAMES; k++) {
        snprintf(name, sizeof(name), "bucket/%u", same_names ? k : me * NAMES + k);
        if (rl_bucket_lookup(t, name, &b) != 0)
            _exit(4);
        s->looked_up[me][k] = b->no;
    }
    rl_table_close(t);
    _exit(0);
}

static struct defs *run_definers(bool same_names)
{
    struct defs *s = shared_alloc(sizeof(*s));
    /* Room for every loser's record too. */
    rl_table_close(table_open_opts(g_path, RL_OPEN_CREATE, PROCS * NAMES + 64, 0));
    pid_t pids[PROCS];
    struct gate g;
    gate_init(&g);
    for (unsigned i = 0; i < PROCS; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0)
            define_child(&g, s, i, same_names);
    }
    gate_open(&g);
    wait_children(pids, PROCS);
    for (unsigned i = 0; i < PROCS; i++)
        cr_expect_eq(s->rc[i], 0, "process %u: %s", i, rl_err_name(s->rc[i]));
    return s;
}

Test(index, concurrent_definition_of_the_same_names)
{
    struct defs *s = run_definers(true);
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    for (unsigned k = 0; k < NAMES; k++) {
        char name[32];
        rl_bucket *b;
        snprintf(name, sizeof(name), "bucket/%u", k);
        cr_assert_eq(rl_bucket_lookup(t, name, &b), 0);
        for (unsigned i = 0; i < PROCS; i++) {
            cr_expect_eq(s->defined[i][k], b->no, "process %u defined %s as bucket %u, not %u", i,
                         name, s->defined[i][k], b->no);
            cr_expect_eq(s->looked_up[i][k], b->no, "process %u looked %s up as %u, not %u", i,
                         name, s->looked_up[i][k], b->no);
        }
    }
    struct visit v = visit_all(t, NAMES);
    cr_expect_eq(v.count, NAMES, "foreach visited %u buckets for %u names", v.count, NAMES);
    struct rl_table_info info;
    rl_table_info(t, &info);
    cr_expect_geq(info.buckets, NAMES);
    if (info.buckets != NAMES) /* see table::info_counts_defined_buckets_only */
        cr_log_warn("rl_table_info reports %u buckets for %u names (lost races)", info.buckets,
                    NAMES);
    cr_expect_eq(v.dup, 0);
    /* Every bucket works, and is shared. */
    rl_bucket *b;
    cr_assert_eq(rl_bucket_lookup(t, "bucket/7", &b), 0);
    cr_expect_eq(rl_try_acquire(b, 100, NULL), 0);
    cr_expect_eq(rl_try_acquire(b, 1, NULL), RL_ELIMITED);
    rl_table_close(t);
    munmap(s, sizeof(*s));
}

Test(index, concurrent_definition_of_distinct_names)
{
    struct defs *s = run_definers(false);
    rl_table *t = table_open_opts(g_path, 0, 0, 0);
    struct rl_table_info i;
    rl_table_info(t, &i);
    cr_expect_eq(i.buckets, PROCS * NAMES);
    struct visit v = visit_all(t, PROCS * NAMES);
    cr_expect_eq(v.count, PROCS * NAMES);
    unsigned char *used = calloc(PROCS * NAMES, 1);
    for (unsigned p = 0; p < PROCS; p++)
        for (unsigned k = 0; k < NAMES; k++) {
            uint32_t no = s->defined[p][k];
            cr_assert_lt(no, PROCS * NAMES);
            cr_expect_eq(used[no]++, 0, "bucket number %u handed out twice", no);
            cr_expect_eq(s->looked_up[p][k], no);
        }
    free(used);
    rl_table_close(t);
    munmap(s, sizeof(*s));
}
