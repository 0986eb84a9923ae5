/*
 * test_records.c - bucket records and index slots are reused in place: tenants created and
 * deleted or expired without end keep a small table usable; a handle whose record was
 * reused for another bucket refuses (RL_ENOENT) and never decides; a child defined while
 * its parent is deleted is never left answering RL_ENOENT under that name.
 */
#include <pthread.h>

#include "fixture.h"

TestSuite(records, .init = fixture_setup, .fini = fixture_teardown, .timeout = 300);

/* Tenants a run creates and deletes: RL_TENANTS in the environment, else this many. */
#define TENANTS_DEFAULT 1000000u
/* The process reopens the table this often: it keeps every handle it made until it closes
 * the table (a caller may still hold one), about 140 bytes each once its view slots are
 * freed. */
#define REOPEN_EVERY 100000u

static unsigned tenants(void)
{
    const char *e = getenv("RL_TENANTS");
    return e && atoi(e) > 0 ? (unsigned)atoi(e) : TENANTS_DEFAULT;
}

static uint32_t records_used(rl_table *t)
{
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    cr_assert_eq(rl_table_space(t, &sp), 0);
    return sp.records_used;
}

/* Before: the 256th tenant found the table full (its deleted buckets' records stayed). Now
 * every creation succeeds, the file never grows, and no more records than the capacity are
 * ever in use: deleted tenants give theirs back (expired ones: the next test). */
Test(records, a_million_tenants_keep_a_small_table_usable)
{
    enum { CAPACITY = 256 };
    rl_table *t = table_at(CAPACITY, 0);
    struct rl_policy tpl = policy_of("5/1h margin 0");
    cr_assert_eq(rl_template_define(t, "tenant/*", &tpl, NULL), 0);
    uint64_t size = file_size(g_path);
    unsigned n = tenants();
    for (unsigned i = 0; i < n; i++) {
        char name[32];
        rl_bucket *b;
        snprintf(name, sizeof(name), "tenant/%u", i);
        int rc = rl_bucket_get(t, name, &b);
        if (rc)
            cr_assert_fail("tenant %u: %s (%s)", i, rl_err_name(rc), rl_errdetail());
        rc = rl_try_acquire(b, 1, NULL);
        if (rc)
            cr_assert_fail("tenant %u: take: %s (%s)", i, rl_err_name(rc), rl_errdetail());
        rc = rl_bucket_delete(b);
        if (rc)
            cr_assert_fail("tenant %u: delete: %s (%s)", i, rl_err_name(rc), rl_errdetail());
        if (records_used(t) > CAPACITY)
            cr_assert_fail("tenant %u: %u records in use", i, records_used(t));
        if (i % 4096 == 0 && file_size(g_path) != size)
            cr_assert_fail("tenant %u: the file grew", i);
        if (i % REOPEN_EVERY == REOPEN_EVERY - 1) {
            rl_table_close(t);
            t = table_at(CAPACITY, 0);
        }
    }
    cr_expect_eq(file_size(g_path), size, "the file never grew");
    cr_expect_leq(records_used(t), 2, "the template, and a tenant at most");
    rl_bucket *b;
    cr_assert_eq(rl_bucket_get(t, "tenant/last", &b), 0);
    cr_expect_eq(drain(b), 5, "a full budget");
    rl_table_close(t);
}

/* Every tenant goes by its template's expiry alone: nothing deletes it, the creations of
 * other tenants sweep it away once idle (tenant.c). Every creation succeeds (one that finds
 * every record taken by a tenant not yet due waits a millisecond and asks again), the file
 * never grows, and every tenant made is accounted for exactly: expired automatically, or
 * still in the table. */
Test(records, a_million_tenants_go_by_their_templates_expiry_alone)
{
    enum { CAPACITY = 1024, PATIENCE = 30000 /* 1 ms waits for one tenant: a hang guard */ };
    rl_table *t = table_at(CAPACITY, 0);
    struct rl_policy tpl = policy_of("5/1ms margin 0");
    cr_assert_eq(rl_template_define_expire(t, "tenant/*", &tpl, NULL, 1000000), 0);
    uint64_t size = file_size(g_path), waits = 0;
    unsigned n = tenants();
    for (unsigned i = 0; i < n; i++) {
        char name[32];
        rl_bucket *b;
        int rc;
        snprintf(name, sizeof(name), "tenant/%u", i);
        for (unsigned k = 0; (rc = rl_bucket_get(t, name, &b)) == RL_EFULL && k < PATIENCE; k++) {
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
            waits++;
        }
        if (rc)
            cr_assert_fail("tenant %u: %s (%s)", i, rl_err_name(rc), rl_errdetail());
        rc = rl_try_acquire(b, 1, NULL);
        if (rc)
            cr_assert_fail("tenant %u: take: %s (%s)", i, rl_err_name(rc), rl_errdetail());
        if (i % 4096 == 0 && file_size(g_path) != size)
            cr_assert_fail("tenant %u: the file grew", i);
        if (i % REOPEN_EVERY == REOPEN_EVERY - 1) {
            rl_table_close(t);
            t = table_at(CAPACITY, 0);
        }
    }
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    cr_assert_eq(rl_table_space(t, &sp), 0);
    printf("[records] %u tenants through %u records: %llu expired automatically, %u left, "
           "%llu waits of 1 ms for a due tenant\n",
           n, CAPACITY, (unsigned long long)sp.expired_auto, sp.records_used - 1,
           (unsigned long long)waits);
    cr_expect_eq(file_size(g_path), size, "the file never grew");
    cr_expect_leq(sp.records_used, CAPACITY);
    cr_expect_eq(sp.deleted, sp.expired_auto, "nothing but the expiry deleted a tenant");
    cr_expect_eq(sp.expired_auto + (sp.records_used - 1), n,
                 "every tenant expired automatically or is still there (and the template)");
    rl_table_close(t);
}

/* Idle tenants expire (idle 0 once their unit left the window) and give their records back. */
Test(records, expired_tenants_give_their_records_back)
{
    enum { CAPACITY = 16 };
    rl_table *t = table_at(CAPACITY, 0);
    struct rl_policy tpl = policy_of("5/1ms margin 0");
    cr_assert_eq(rl_template_define(t, "tenant/*", &tpl, NULL), 0);
    for (unsigned i = 0; i < 20 * CAPACITY; i++) {
        char name[32];
        rl_bucket *b;
        bool expired = false;
        snprintf(name, sizeof(name), "tenant/%u", i);
        cr_assert_eq(rl_bucket_get(t, name, &b), 0, "tenant %u: %s", i, rl_errdetail());
        cr_assert_eq(rl_try_acquire(b, 1, NULL), 0);
        for (unsigned k = 0; k < 10000 && !expired; k++) {
            struct timespec pause = {0, 200000};
            nanosleep(&pause, NULL);
            cr_assert_eq(rl_bucket_expire(b, 0, &expired), 0);
        }
        cr_assert(expired, "tenant %u never expired", i);
        cr_assert_eq(rl_bucket_lookup(t, name, &b), RL_ENOENT);
    }
    cr_expect_leq(records_used(t), 2);
    rl_table_close(t);
}

/* Delete buckets and define others until one gets record `no` again: its handle. */
static rl_bucket *reuse_record(rl_table *t, uint32_t no, const char *policy)
{
    for (unsigned i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "other/%u", i);
        rl_bucket *b = define(t, name, policy, NULL);
        if (b->no == no)
            return b;
        cr_assert_eq(rl_bucket_delete(b), 0);
    }
    cr_assert_fail("record %u was never reused", no);
    return NULL;
}

/* A handle kept across its bucket's deletion and its record's reuse by another bucket
 * refuses every call with RL_ENOENT: nothing it does reaches the new bucket. */
Test(records, a_stale_handle_never_decides_for_the_new_bucket)
{
    rl_table *t = table_at(8, 0);
    rl_bucket *old = define(t, "old", "3/1h margin 0", NULL);
    cr_assert_eq(rl_try_acquire(old, 1, NULL), 0);
    uint32_t no = old->no;
    cr_assert_eq(rl_bucket_delete(old), 0);
    rl_bucket *fresh = reuse_record(t, no, "2/1h margin 0");
    cr_assert_neq(fresh, old, "a new handle for the reused record");
    cr_expect_neq(fresh->gen, old->gen, "under a new generation");
    struct rl_response r = RL_RESPONSE_INIT;
    struct rl_bucket_info info;
    struct rl_policy wide = policy_of("100/1h margin 0");
    bool expired = true;
    r.status = 429;
    r.retry_after = "3600";
    for (unsigned k = 0; k < 3; k++)
        cr_expect_eq(rl_try_acquire(old, 1, NULL), RL_ENOENT);
    cr_expect_eq(rl_acquire(old, 1, NS_PER_MS, NULL), RL_ENOENT);
    cr_expect_eq(rl_report(old, &r, NULL), RL_ENOENT);
    cr_expect_eq(rl_bucket_info(old, &info), RL_ENOENT);
    cr_expect_eq(rl_bucket_update(old, &wide), RL_ENOENT);
    cr_expect_eq(rl_bucket_reset(old), RL_ENOENT);
    cr_expect_eq(rl_bucket_expire(old, 0, &expired), RL_ENOENT);
    cr_expect_not(expired);
    cr_expect_eq(rl_bucket_delete(old), RL_ENOENT);
    struct rl_bucket_info now = info_of(fresh);
    cr_expect_eq(now.counters.admitted, 0, "nothing was admitted against the new bucket");
    cr_expect_eq(now.policy.rules[0].limit, 2, "its own rules");
    cr_expect_eq(now.feedback.cooldown_ns, 0, "the 429 did not reach it");
    cr_expect_eq(now.feedback.last_429_ns, 0);
    cr_expect_eq(drain(fresh), 2, "its whole budget");
    rl_bucket *again;
    cr_expect_eq(rl_bucket_lookup(t, "old", &again), RL_ENOENT);
    rl_table_close(t);
}

/* The lookup of a reused record by name makes a new handle, never the stale one. */
Test(records, a_lookup_after_reuse_gets_the_new_bucket)
{
    rl_table *t = table_at(8, 0);
    rl_bucket *old = define(t, "old", "3/1h margin 0", NULL), *got;
    uint32_t no = old->no;
    cr_assert_eq(rl_bucket_delete(old), 0);
    rl_bucket *fresh = reuse_record(t, no, "2/1h margin 0");
    cr_assert_eq(rl_bucket_lookup(t, fresh->name, &got), 0);
    cr_expect_eq(got, fresh);
    cr_expect_str_eq(rl_bucket_name(got), fresh->name);
    rl_table_close(t);
}

struct deleter {
    rl_table *t;
    atomic_bool stop;
    atomic_uint deleted;
};

static void *delete_parent(void *arg)
{
    struct deleter *d = arg;
    while (!atomic_load(&d->stop)) {
        rl_bucket *p;
        if (rl_bucket_lookup(d->t, "P", &p) == 0 && rl_bucket_delete(p) == 0)
            atomic_fetch_add(&d->deleted, 1);
    }
    return NULL;
}

/* The reviewer's repro. Before: a child defined while its parent was deleted could stay
 * under its name answering RL_ENOENT for good (an orphan). Now a child's creation and its
 * parent's deletion see each other: a child that refuses with RL_ENOENT is gone from the
 * index too, once the deleter is done. */
Test(records, a_child_is_never_left_under_a_deleted_parent)
{
    enum { ROUNDS = 20000 };
    rl_table *t = table_at(64, 0);
    struct deleter d = {.t = t};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, delete_parent, &d), 0);
    static unsigned suspect[ROUNDS];
    unsigned suspects = 0, admitted = 0;
    for (unsigned i = 0; i < ROUNDS; i++) {
        char name[32];
        rl_bucket *c;
        snprintf(name, sizeof(name), "c%u", i);
        if (define_rc(t, "P", "1000000/1s fixed margin 0", NULL) < 0)
            continue;
        if (define_rc(t, name, "1000000/1s fixed margin 0", "P") < 0 ||
            rl_bucket_lookup(t, name, &c) < 0)
            continue;
        int rc = rl_try_acquire(c, 1, NULL);
        if (rc == RL_ENOENT) {
            suspect[suspects++] = i;
            continue;
        }
        cr_assert_eq(rc, 0, "round %u: %s (%s)", i, rl_err_name(rc), rl_errdetail());
        admitted++;
        rc = rl_bucket_delete(c);
        cr_assert(rc == 0 || rc == RL_ENOENT, "round %u: delete: %s", i, rl_err_name(rc));
    }
    atomic_store(&d.stop, true);
    pthread_join(th, NULL);
    for (unsigned k = 0; k < suspects; k++) {
        char name[32];
        rl_bucket *c;
        snprintf(name, sizeof(name), "c%u", suspect[k]);
        int rc = rl_bucket_lookup(t, name, &c);
        if (rc == 0)
            rc = rl_try_acquire(c, 1, NULL) == RL_ENOENT ? -1 : 0;
        cr_expect_neq(rc, -1, "%s answers RL_ENOENT under its name: an orphan", name);
    }
    cr_expect_gt(atomic_load(&d.deleted), 0, "the parent was deleted meanwhile");
    cr_expect_gt(admitted, 0);
    /* The name is whole again: P and a child of it work. */
    rl_bucket *p, *c;
    int prc = define_rc(t, "P", "1000000/1s fixed margin 0", NULL);
    cr_assert_eq(prc, 0, "%s: %s", rl_err_name(prc), rl_errdetail());
    cr_assert_eq(define_rc(t, "c-last", "1000000/1s fixed margin 0", "P"), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_lookup(t, "c-last", &c), 0);
    cr_expect_eq(rl_try_acquire(c, 1, NULL), 0);
    cr_assert_eq(rl_bucket_lookup(t, "P", &p), 0);
    cr_expect_eq(rl_bucket_delete(p), RL_EINVAL, "a parent goes after its children");
    rl_table_close(t);
}

/* A record that lost a creation race to another of its name does not keep the parent: the
 * parent can be deleted once its one child is. */
Test(records, a_losing_record_does_not_hold_its_parent)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *p = define(t, "P", "10/1s", NULL);
    rl_bucket *c = define(t, "P/c", "10/1s", "P");
    /* A creator that built its record and died before its slot was live: the record names
     * P as its parent, and is no child. */
    uint32_t lost;
    cr_assert_eq(rl__record_take(t, &lost), 0);
    struct shm_bucket *rec = &t->buckets[lost];
    strlcpy(rec->name, "P/c", sizeof(rec->name));
    rec->parent = p->no + 1;
    atomic_store(&rec->life, (uint64_t)rl__record_next_gen(rec) << 32 | p->gen);
    atomic_store(&rec->policy_off, atomic_load(&c->rec->policy_off));
    atomic_store(&rec->state, RL_BUCKET_BUILT);
    cr_expect_eq(rl_bucket_delete(p), RL_EINVAL);
    cr_assert_eq(rl_bucket_delete(c), 0);
    cr_expect_eq(rl_bucket_delete(p), 0, "%s", rl_errdetail());
    rl_table_close(t);
}

/* A child P/c<i> of P whose record number is below P's (a deleted bucket's, reused). */
static rl_bucket *child_below(rl_table *t, rl_bucket **parent)
{
    rl_bucket *x = define(t, "x", "10/1s", NULL), *p = define(t, "P", "10/1s", NULL);
    uint32_t low = x->no;
    cr_assert_eq(rl_bucket_delete(x), 0);
    for (unsigned i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "P/c%u", i);
        rl_bucket *b = define(t, name, "10/1s", "P");
        if (b->no == low) {
            cr_assert_lt(b->no, p->no);
            *parent = p;
            return b;
        }
        cr_assert_eq(rl_bucket_delete(b), 0);
    }
    cr_assert_fail("record %u was never reused", low);
    return NULL;
}

/* Records are reused, so a child may have a lower number than its parent: what goes
 * parents first (resize) or children first (apply --prune) goes by depth, not by number. */
Test(records, a_child_below_its_parent_is_resized)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *p, *c = child_below(t, &p);
    cr_assert_eq(rl_try_acquire(c, 1, NULL), 0);
    unsigned copied = 0;
    cr_assert_eq(rl_table_resize(t, 16, 0, &copied), 0, "%s", rl_errdetail());
    cr_expect_eq(copied, 2);
    char name[RL_NAME_MAX + 1];
    strlcpy(name, rl_bucket_name(c), sizeof(name)); /* the handle goes with the table */
    rl_table_close(t);
    t = table_at(16, 0);
    cr_assert_eq(rl_bucket_lookup(t, name, &c), 0);
    cr_expect_eq(info_of(c).counters.admitted, 1, "its usage came along");
    rl_table_close(t);
}

Test(records, a_child_below_its_parent_is_pruned)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *p, *c = child_below(t, &p);
    (void)c;
    rl_config *none = parse_ok("bucket other 5/1s\n");
    int rc = rl_config_apply_flags(none, t, RL_APPLY_PRUNE, NULL, NULL);
    cr_expect_eq(rc, 0, "%s (%s)", rl_err_name(rc), rl_errdetail());
    cr_expect_eq(rl_bucket_lookup(t, "P", &p), RL_ENOENT);
    rl_config_free(none);
    rl_table_close(t);
}

/* A deleter killed after its parent's reference went to 0 and before it deleted the child
 * defined meanwhile leaves an orphan: it resolves to nothing (RL_ENOENT), and defining its
 * name again deletes it and makes a working bucket, even once the parent's record is
 * reused. */
Test(records, an_orphan_gives_way_to_a_new_definition)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *p = define(t, "P", "10/1s", NULL), *c = define(t, "P/c", "10/1s", "P");
    uint32_t pno = p->no;
    struct rl_section s;
    uint64_t ref = atomic_load(&p->rec->policy_off);
    cr_assert(atomic_compare_exchange_strong(&p->rec->policy_off, &ref, 0));
    rl__section_enter(t, &s);
    cr_assert(rl__index_unlink(t, "P", pno), "the parent leaves the index");
    rl__section_exit(&s);
    (void)reuse_record(t, pno, "3/1s");
    rl_table_close(t);
    t = table_at(16, 0);
    cr_expect_eq(rl_bucket_lookup(t, "P/c", &c), RL_ENOENT, "an orphan resolves to nothing");
    cr_assert_eq(define_rc(t, "P", "10/1s", NULL), 0, "%s", rl_errdetail());
    cr_assert_eq(define_rc(t, "P/c", "10/1s", "P"), 0, "%s", rl_errdetail());
    cr_assert_eq(rl_bucket_lookup(t, "P/c", &c), 0);
    cr_expect_eq(rl_try_acquire(c, 1, NULL), 0);
    cr_expect_eq(strcmp(rl_bucket_name(rl_bucket_parent(c)), "P"), 0);
    rl_table_close(t);
}

struct churn {
    rl_table *t;
    atomic_uint errors;
};

/* Threads of one process look up, use and delete a few names: handles are replaced while
 * other threads still decide with them, and their view slots freed after the grace period
 * (run under ASan: a slot freed too early is a use after free). */
static void *churn_thread(void *arg)
{
    struct churn *c = arg;
    struct rl_policy p = policy_of("1000000/1s fixed margin 0");
    unsigned seed = (unsigned)(uintptr_t)&p;
    for (unsigned i = 0; i < 50000; i++) {
        char name[8];
        rl_bucket *b;
        seed = seed * 1103515245u + 12345u;
        snprintf(name, sizeof(name), "n%u", (seed >> 16) % 4);
        int rc = rl_bucket_lookup(c->t, name, &b);
        if (rc == RL_ENOENT)
            rc = rl_bucket_define(c->t, name, &p, NULL, &b);
        /* RL_EFULL: every free record still in its grace period (a thread preempted inside
         * a section holds the epoch back; README "Limits of record reuse"). */
        if (rc == RL_ENOENT || rc == RL_EFULL)
            continue;
        if (rc) {
            atomic_fetch_add(&c->errors, 1);
            continue;
        }
        rc = rl_try_acquire(b, 1, NULL);
        if (rc && rc != RL_ENOENT)
            atomic_fetch_add(&c->errors, 1);
        if ((seed >> 8) % 16 == 0 && (rc = rl_bucket_delete(b)) && rc != RL_ENOENT)
            atomic_fetch_add(&c->errors, 1);
    }
    return NULL;
}

Test(records, threads_replace_handles_under_each_other)
{
    rl_table *t = table_at(64, 0);
    struct churn c = {.t = t};
    pthread_t th[4];
    for (unsigned k = 0; k < 4; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, churn_thread, &c), 0);
    for (unsigned k = 0; k < 4; k++)
        pthread_join(th[k], NULL);
    cr_expect_eq(atomic_load(&c.errors), 0, "%s", rl_errdetail());
    rl_table_close(t);
}

struct rival {
    rl_table *t;
    atomic_bool stop;
};

/* Define child "c" under "P" and delete it, again and again (its creations abort ours). */
static void *define_child(void *arg)
{
    struct rival *r = arg;
    while (!atomic_load(&r->stop)) {
        rl_bucket *c;
        if (define_rc(r->t, "c", "1000000/1s fixed margin 0", "P") == 0 &&
            rl_bucket_lookup(r->t, "c", &c) == 0)
            rl_bucket_delete(c);
    }
    return NULL;
}

/* Before: a creation aborted by a rival of its name kept its record for the next attempt;
 * when that attempt found the parent deleted it gave the record back, took the orphan path
 * on a stale winner, and after its last attempt gave it back again. A record given back
 * twice is handed to two buckets. Now every record is given back once: after the churn,
 * buckets filling the table each have a record of their own and a full budget. */
Test(records, a_record_is_given_back_once_when_its_parent_goes_between_attempts)
{
    enum { CAPACITY = 64, ROUNDS = 20000 };
    rl_table *t = table_at(CAPACITY, 0);
    struct deleter d = {.t = t};
    struct rival r = {.t = t};
    pthread_t del, riv[2];
    cr_assert_eq(pthread_create(&del, NULL, delete_parent, &d), 0);
    for (unsigned k = 0; k < 2; k++)
        cr_assert_eq(pthread_create(&riv[k], NULL, define_child, &r), 0);
    for (unsigned i = 0; i < ROUNDS; i++) {
        rl_bucket *c;
        define_rc(t, "P", "1000000/1s fixed margin 0", NULL);
        if (define_rc(t, "c", "1000000/1s fixed margin 0", "P") == 0 &&
            rl_bucket_lookup(t, "c", &c) == 0)
            rl_bucket_delete(c);
    }
    atomic_store(&r.stop, true);
    for (unsigned k = 0; k < 2; k++)
        pthread_join(riv[k], NULL);
    atomic_store(&d.stop, true);
    pthread_join(del, NULL);
    rl_bucket *c, *p;
    if (rl_bucket_lookup(t, "c", &c) == 0)
        cr_assert(rl_bucket_delete(c) == 0 || rl_bucket_lookup(t, "c", &c) == RL_ENOENT);
    if (rl_bucket_lookup(t, "P", &p) == 0)
        cr_assert_eq(rl_bucket_delete(p), 0);
    static bool seen[CAPACITY];
    unsigned made = 0;
    for (unsigned i = 0; i < CAPACITY; i++) {
        char name[32];
        rl_bucket *b;
        snprintf(name, sizeof(name), "fill%u", i);
        if (define_rc(t, name, "3/1h margin 0", NULL) < 0 || rl_bucket_lookup(t, name, &b) < 0)
            break;
        cr_assert(!seen[b->no], "%s was given record %u, which another bucket holds", name, b->no);
        seen[b->no] = true;
        made++;
    }
    for (unsigned i = 0; i < made; i++) {
        char name[32];
        rl_bucket *b;
        snprintf(name, sizeof(name), "fill%u", i);
        cr_assert_eq(rl_bucket_lookup(t, name, &b), 0);
        cr_expect_eq(drain(b), 3, "%s has a full budget of its own", name);
    }
    cr_expect_eq(made, CAPACITY, "every record came back: none was lost or handed out twice");
    rl_table_close(t);
}
