/*
 * test_race.c - a rule switch racing a delete of its bucket (update.c, bucket.c). Either the
 * switch comes first (rl_bucket_update returns 0, and its block was the bucket's until the
 * delete retired it) or the delete does (RL_ENOENT, and the switch's block went back to a
 * free list). Nothing is leaked: every arena byte handed out is in a live block, on a free
 * list or in the limbo. Between threads of one process, and between processes.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "fixture.h"

TestSuite(race, .init = fixture_setup, .fini = fixture_teardown, .timeout = 120);

#define ROUNDS 6000

struct race {
    pthread_barrier_t start, done;
    rl_bucket *b; /* this round's bucket, defined by the main thread */
    int delete_rc, update_rc;
    bool stop;
};

/* Spin for up to `max_ns`, at random: the two threads meet at every point of each other. */
static void jitter(uint64_t max_ns)
{
    uint64_t until = rl_now_ns() + (uint64_t)random() % max_ns;
    while (rl_now_ns() < until)
        ;
}

static void *deleter(void *arg)
{
    struct race *r = arg;
    for (;;) {
        pthread_barrier_wait(&r->start);
        if (r->stop)
            return NULL;
        jitter(20000);
        r->delete_rc = rl_bucket_delete(r->b);
        pthread_barrier_wait(&r->done);
    }
}

static void *updater(void *arg)
{
    struct race *r = arg;
    struct rl_policy p = policy_of("20/1h, 500/1d margin 0");
    for (;;) {
        pthread_barrier_wait(&r->start);
        if (r->stop)
            return NULL;
        jitter(20000);
        r->update_rc = rl_bucket_update(r->b, &p);
        pthread_barrier_wait(&r->done);
    }
}

/* Arena bytes handed out but neither free nor waiting for reuse: the live blocks'. */
static uint64_t held(rl_table *t)
{
    struct rl_table_info i;
    struct rl_table_space s = RL_TABLE_SPACE_INIT;
    cr_assert_eq(rl_table_info(t, &i), 0);
    cr_assert_eq(rl_table_space(t, &s), 0);
    return i.arena_used - s.arena_free - s.arena_reclaimable;
}

static const struct shm_block_head *head_of(rl_table *t, uint64_t ref)
{
    return (const struct shm_block_head *)(t->arena + rl__ref_off(ref) -
                                           sizeof(struct shm_block_head));
}

/* After a round in which bucket b (first block `first`) was deleted while an update ran:
 * an update that returned 0 switched the live bucket, and no block is leaked. True if the
 * update switched. */
static bool round_check(rl_table *t, rl_bucket *b, uint64_t first, int delete_rc, int update_rc,
                        unsigned round)
{
    cr_assert_eq(delete_rc, 0, "round %u: delete: %s", round, rl_err_name(delete_rc));
    cr_assert(update_rc == 0 || update_rc == RL_ENOENT, "round %u: update: %s", round,
              rl_err_name(update_rc));
    cr_assert_eq(atomic_load(&b->rec->policy_off), 0, "round %u: deleted", round);
    /* The first block's successor, if the switch linked one. */
    uint64_t next = atomic_load(&((struct shm_policy *)(t->arena + rl__ref_off(first)))->next_off);
    if (update_rc == 0) {
        /* It switched a live bucket: its block was current, then the delete retired it. */
        cr_assert(rl__ref_off(next) != 0, "round %u: update returned 0, no block linked", round);
        cr_assert_eq(atomic_load(&head_of(t, next)->state), RL_BLOCK_RETIRED,
                     "round %u: update returned 0 but its block never was the bucket's", round);
    }
    cr_assert_eq(held(t), 0, "round %u (update %s): a block is leaked", round,
                 rl_err_name(update_rc));
    return update_rc == 0;
}

Test(race, an_update_racing_a_delete_switches_a_live_bucket_or_gives_its_block_back)
{
    rl_table *t = table_at(ROUNDS + 16, 0);
    struct race r = {0};
    pthread_t d, u;
    pthread_barrier_init(&r.start, NULL, 3);
    pthread_barrier_init(&r.done, NULL, 3);
    pthread_create(&d, NULL, deleter, &r);
    pthread_create(&u, NULL, updater, &r);
    unsigned switched = 0, refused = 0;
    for (unsigned round = 0; round < ROUNDS; round++) {
        r.b = define(t, "x", "10/1h margin 0", NULL);
        uint64_t first = atomic_load(&r.b->rec->policy_off);
        pthread_barrier_wait(&r.start);
        pthread_barrier_wait(&r.done);
        if (round_check(t, r.b, first, r.delete_rc, r.update_rc, round))
            switched++;
        else
            refused++;
    }
    r.stop = true;
    pthread_barrier_wait(&r.start);
    pthread_join(d, NULL);
    pthread_join(u, NULL);
    cr_log_info("switched %u, refused %u", switched, refused);
    rl_table_close(t);
}

#define PROC_ROUNDS 2000

/* Rounds a parent and two processes go through together (numbers from 1). */
struct rounds {
    atomic_uint ready, deleted, updated;
    atomic_int delete_rc, update_rc;
};

/* Wait until *w reaches `round`, spinning (the children: they start together) or sleeping
 * (the parent: it leaves both cores to them); false after 30 s (a hang guard). */
static bool await_round(atomic_uint *w, unsigned round, bool spin)
{
    uint64_t deadline = rl_now_ns() + 30 * NS_PER_SEC;
    while (atomic_load(w) < round) {
        if (rl_now_ns() > deadline)
            return false;
        if (spin)
            sched_yield();
        else
            usleep(50);
    }
    return true;
}

/* A child: each round, look the bucket up and delete it, or update it. No Criterion calls
 * here: the parent checks the exit status and the results left in shared memory. */
static void race_child(struct rounds *sh, bool deleting)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct rl_policy p;
    rl_table *t;
    o.path = g_path;
    srandom((unsigned)getpid());
    if (rl_table_open(&o, &t) != 0 || rl_policy_parse("20/1h, 500/1d margin 0", &p, NULL) != 0)
        _exit(2);
    for (unsigned round = 1; round <= PROC_ROUNDS; round++) {
        rl_bucket *b;
        if (!await_round(&sh->ready, round, true))
            _exit(3);
        int rc = rl_bucket_lookup(t, "x", &b);
        if (rc == 0) {
            jitter(20000);
            rc = deleting ? rl_bucket_delete(b) : rl_bucket_update(b, &p);
        }
        atomic_store(deleting ? &sh->delete_rc : &sh->update_rc, rc);
        atomic_store(deleting ? &sh->deleted : &sh->updated, round);
    }
    rl_table_close(t);
    _exit(0);
}

Test(race, across_processes)
{
    rl_table *t = table_at(PROC_ROUNDS + 16, 0);
    struct rounds *sh = shared_alloc(sizeof(*sh));
    pid_t pids[2];
    for (unsigned k = 0; k < 2; k++)
        if ((pids[k] = fork()) == 0)
            race_child(sh, k == 0);
    unsigned switched = 0;
    for (unsigned round = 1; round <= PROC_ROUNDS; round++) {
        rl_bucket *b = define(t, "x", "10/1h margin 0", NULL);
        uint64_t first = atomic_load(&b->rec->policy_off);
        atomic_store(&sh->ready, round);
        cr_assert(await_round(&sh->deleted, round, false) &&
                      await_round(&sh->updated, round, false),
                  "round %u: a child is stuck", round);
        switched += round_check(t, b, first, atomic_load(&sh->delete_rc),
                                atomic_load(&sh->update_rc), round);
    }
    wait_children(pids, 2);
    cr_log_info("switched %u of %u", switched, PROC_ROUNDS);
    rl_table_close(t);
}

/* A deleter killed between its claim (D1) and the reference's move to 0: the bucket still
 * decides, refuses switches, and the next delete finishes the job. */
Test(race, a_delete_killed_after_its_claim_is_finished_by_the_next)
{
    rl_table *t = table_at(16, 0);
    rl_bucket *b = define(t, "x", "3/1h margin 0", NULL);
    uint64_t ref = atomic_load(&b->rec->policy_off);
    struct shm_policy *p = (struct shm_policy *)(t->arena + rl__ref_off(ref));
    atomic_store(&p->next_off, RL_NEXT_DELETED);
    cr_expect_eq(rl_try_acquire(b, 1, NULL), 0, "it still decides");
    struct rl_policy wide = policy_of("9/1h margin 0");
    uint64_t held_before = held(t);
    cr_expect_eq(rl_bucket_update(b, &wide), RL_ENOENT);
    cr_expect(strstr(rl_errdetail(), "being deleted"), "%s", rl_errdetail());
    cr_expect_eq(held(t), held_before, "the switch's block went back");
    cr_expect_eq(rl_bucket_reset(b), 0);
    cr_expect_eq(atomic_load(&p->next_off), RL_NEXT_DELETED, "the claim stays");
    atomic_fetch_or(&p->rules[0].word, RL_FROZEN); /* wedged: a reset would replace it */
    cr_expect_eq(rl_bucket_reset(b), RL_ENOENT, "no fresh block replaces a claimed one");
    cr_expect_eq(atomic_load(&p->next_off), RL_NEXT_DELETED, "the claim stays");
    cr_expect_eq(held(t), held_before, "the fresh block went back");
    cr_assert_eq(rl_bucket_delete(b), 0, "%s", rl_errdetail());
    cr_expect_eq(atomic_load(&b->rec->policy_off), 0);
    cr_expect_eq(held(t), 0);
    rl_table_close(t);
}
