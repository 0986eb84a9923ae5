/*
 * records_kill - record and index slot reuse under SIGKILL, across processes.
 *
 * Workers look up or define a few names, take units from them and delete them again, so
 * that creations of one name race each other and records and index slots are reused all
 * the time; the parent SIGKILLs a random worker every 2-20 ms (KILLS times) and starts
 * another. Every admission is logged (name, the record and generation it came from, its
 * instant). Afterwards:
 *   1. per record generation (one bucket), no window [a, a + T) holds more than N units;
 *   2. per name, two buckets never admit at once: ordered by instant, once a name's
 *      admissions moved from one bucket to another, the first never admits again. Two
 *      live records for a name (a budget counted twice) show here. An admission whose call
 *      overlapped a deletion of its name is left out of this check only: a decision that
 *      loaded the reference before the deletion may commit just after it;
 *   3. every name resolves to one working bucket or none (the index holds at most one
 *      live slot for it), and each can be defined, used and deleted again.
 * A creation may find the table full meanwhile (RL_EFULL, counted, not a failure): the
 * deletions come so fast that every free record can be a deleted one in its grace period,
 * held back by a worker preempted inside a section.
 * Exit status 0 if all hold. Usage: records_kill [KILLS].
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ratelimit.h"

#define WORKERS 6
#define NAMES   4
#define LIMIT   4
#define PERIOD  (50 * 1000000ULL) /* ns */
#define RULES   "4/50ms margin 0"
#define LOG_MAX (1u << 22)
#define CAPACITY                                                                                   \
    256 /* deleted records wait for their grace period; killed creators leak theirs                \
         */

struct entry {
    uint64_t at;  /* rl_decision.at_ns */
    uint64_t rec; /* record number << 32 | generation */
    uint16_t name;
    uint16_t overlapped;   /* a deletion of the name ran during the call */
    _Atomic uint32_t done; /* written last: a worker killed while writing leaves 0 */
};

struct shared {
    _Atomic uint64_t next, errors, deletes, creates, full;
    _Atomic uint64_t seq[NAMES];               /* raised before and after each deletion */
    _Atomic uint32_t busy[WORKERS + 1][NAMES]; /* worker w is deleting name i */
    char errmsg[256];
    struct entry log[LOG_MAX];
};

static struct shared *sh;

static uint64_t rnd(uint64_t n)
{
    return (uint64_t)random() % n;
}

static void werr(const char *what, int rc)
{
    if (atomic_fetch_add(&sh->errors, 1) == 0)
        snprintf(sh->errmsg, sizeof(sh->errmsg), "%s: %s (%s)", what, rl_err_name(rc),
                 rl_errdetail());
}

static bool any_busy(unsigned i)
{
    for (unsigned w = 0; w <= WORKERS; w++)
        if (atomic_load(&sh->busy[w][i]))
            return true;
    return false;
}

static rl_bucket *get(rl_table *t, unsigned i)
{
    char name[8];
    struct rl_policy p;
    struct rl_parse_error e;
    rl_bucket *b = NULL;
    snprintf(name, sizeof(name), "n%u", i);
    if (rl_bucket_lookup(t, name, &b) == 0)
        return b;
    if (rl_policy_parse(RULES, &p, &e) < 0) {
        werr("parse", RL_EPARSE);
        _exit(3);
    }
    int rc = rl_bucket_define(t, name, &p, NULL, &b);
    if (rc == 0) {
        atomic_fetch_add(&sh->creates, 1);
        return b;
    }
    if (rc == RL_EFULL) /* every free record is a deleted one in its grace period */
        atomic_fetch_add(&sh->full, 1);
    else if (rc != RL_ENOENT) /* a creation that found the bucket deleted at once may say so */
        werr("define", rc);
    return NULL;
}

static void worker(const char *path, unsigned w)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    o.path = path;
    srandom((unsigned)getpid());
    int rc = rl_table_open(&o, &t);
    if (rc) {
        werr("open", rc);
        _exit(3);
    }
    for (;;) {
        unsigned i = (unsigned)rnd(NAMES);
        rl_bucket *b = get(t, i);
        if (!b)
            continue;
        if (rnd(8) == 0) { /* delete it */
            atomic_store(&sh->busy[w][i], 1);
            atomic_fetch_add(&sh->seq[i], 1);
            rc = rl_bucket_delete(b);
            atomic_fetch_add(&sh->seq[i], 1);
            atomic_store(&sh->busy[w][i], 0);
            if (rc == 0)
                atomic_fetch_add(&sh->deletes, 1);
            else if (rc != RL_ENOENT)
                werr("delete", rc);
            continue;
        }
        for (unsigned k = 0; k < 4; k++) {
            struct rl_decision d;
            uint64_t before = atomic_load(&sh->seq[i]);
            bool busy = any_busy(i);
            rc = rl_try_acquire(b, 1, &d);
            if (rc == RL_ELIMITED || rc == RL_ENOENT)
                break;
            if (rc) {
                werr("try", rc);
                break;
            }
            uint64_t slot = atomic_fetch_add(&sh->next, 1);
            if (slot >= LOG_MAX)
                break;
            struct entry *e = &sh->log[slot];
            e->at = d.at_ns;
            e->rec = (uint64_t)b->no << 32 | b->gen;
            e->name = (uint16_t)i;
            e->overlapped = busy || atomic_load(&sh->seq[i]) != before;
            atomic_store(&e->done, 1);
        }
    }
}

static int by_instant(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->name != y->name)
        return x->name < y->name ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Checks 1 and 2 over the sorted log: the violations found. */
static unsigned check_log(struct entry *log, size_t n)
{
    unsigned bad = 0;
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) /* a worker killed between its slot and its write */
        if (atomic_load(&log[k].done))
            log[kept++] = log[k];
    n = kept;
    qsort(log, n, sizeof(*log), by_instant);
    for (size_t a = 0; a < n; a++) { /* 1: the units of a's bucket in [at, at + T) */
        unsigned units = 0;
        for (size_t b = a; b < n && log[b].name == log[a].name && log[b].at < log[a].at + PERIOD;
             b++)
            units += log[b].rec == log[a].rec;
        if (units > LIMIT && bad++ < 5)
            fprintf(stderr, "  n%u: bucket %llx admitted %u units in one window\n", log[a].name,
                    (unsigned long long)log[a].rec, units);
    }
    for (size_t a = 0; a < n;) { /* 2: per name, buckets one after the other */
        size_t end = a;
        while (end < n && log[end].name == log[a].name)
            end++;
        static uint64_t done[LOG_MAX]; /* the buckets this name's admissions left */
        size_t ndone = 0;
        uint64_t cur = 0;
        for (size_t b = a; b < end; b++) {
            if (log[b].overlapped || log[b].rec == cur)
                continue;
            for (size_t c = 0; c < ndone; c++)
                if (done[c] == log[b].rec && bad++ < 10)
                    fprintf(stderr, "  n%u: bucket %llx admits again after %llx did\n", log[b].name,
                            (unsigned long long)log[b].rec, (unsigned long long)cur);
            if (cur)
                done[ndone++] = cur;
            cur = log[b].rec;
        }
        a = end;
    }
    return bad;
}

/* Check 3: at most one live slot per name, and the name works. */
static unsigned check_names(rl_table *t)
{
    unsigned bad = 0;
    struct rl_policy p;
    struct rl_parse_error e;
    if (rl_policy_parse(RULES, &p, &e) < 0)
        return 1;
    for (unsigned i = 0; i < NAMES; i++) {
        char name[8];
        rl_bucket *b;
        unsigned live = 0;
        snprintf(name, sizeof(name), "n%u", i);
        for (uint32_t s = 0; s < t->index_slots; s++) {
            uint64_t w = atomic_load(&t->index[s]);
            uint64_t no = (w & 0x7fffffffULL) - 1;
            if (w == RL_INDEX_EMPTY || (w & RL_INDEX_PENDING) || (w & 0x7fffffffULL) == 0 ||
                no >= t->capacity)
                continue;
            struct shm_bucket *r = &t->buckets[no];
            live += atomic_load(&r->policy_off) != 0 && strcmp(r->name, name) == 0;
        }
        if (live > 1 && ++bad)
            fprintf(stderr, "  %s has %u live index slots\n", name, live);
        int rc = rl_bucket_lookup(t, name, &b);
        if (rc == 0) {
            rc = rl_try_acquire(b, 1, NULL);
            if (rc != 0 && rc != RL_ELIMITED && ++bad)
                fprintf(stderr, "  %s resolves to a bucket that answers %s\n", name,
                        rl_err_name(rc));
            if ((rc = rl_bucket_delete(b)) != 0 && ++bad)
                fprintf(stderr, "  %s cannot be deleted: %s\n", name, rl_err_name(rc));
        } else if (rc != RL_ENOENT && ++bad) {
            fprintf(stderr, "  %s: lookup %s\n", name, rl_err_name(rc));
        }
        if ((rc = rl_bucket_define(t, name, &p, NULL, &b)) != 0 ||
            (rc = rl_try_acquire(b, 1, NULL)) != 0) {
            fprintf(stderr, "  %s cannot be made again: %s (%s)\n", name, rl_err_name(rc),
                    rl_errdetail());
            bad++;
        }
    }
    return bad;
}

static pid_t spawn(const char *path, unsigned w)
{
    pid_t pid = fork();
    if (pid == 0)
        worker(path, w);
    if (pid < 0) {
        perror("records_kill: fork");
        exit(2);
    }
    return pid;
}

int main(int argc, char **argv)
{
    unsigned kills = argc > 1 ? (unsigned)atoi(argv[1]) : 300;
    char path[128];
    pid_t pids[WORKERS];
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t;
    snprintf(path, sizeof(path), "/dev/shm/rl-records-kill-%ld", (long)getpid());
    unlink(path);
    o.path = path;
    o.flags = RL_OPEN_CREATE;
    o.capacity = CAPACITY;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || rl_table_open(&o, &t) != 0) {
        fprintf(stderr, "records_kill: setup: %s\n", rl_errdetail());
        return 2;
    }
    srandom((unsigned)getpid());
    for (unsigned w = 0; w < WORKERS; w++)
        pids[w] = spawn(path, w);
    for (unsigned k = 0; k < kills; k++) {
        struct timespec pause = {0, (long)(2000000 + rnd(18000000))};
        nanosleep(&pause, NULL);
        unsigned w = (unsigned)rnd(WORKERS);
        kill(pids[w], SIGKILL);
        while (waitpid(pids[w], NULL, 0) < 0 && errno == EINTR)
            ;
        for (unsigned i = 0; i < NAMES; i++) /* it deletes nothing any more */
            atomic_store(&sh->busy[w][i], 0);
        pids[w] = spawn(path, w);
    }
    for (unsigned w = 0; w < WORKERS; w++) {
        kill(pids[w], SIGKILL);
        while (waitpid(pids[w], NULL, 0) < 0 && errno == EINTR)
            ;
    }
    size_t n = atomic_load(&sh->next);
    n = n < LOG_MAX ? n : LOG_MAX;
    unsigned bad = check_log(sh->log, n) + check_names(t);
    struct rl_table_space sp = RL_TABLE_SPACE_INIT;
    rl_table_space(t, &sp);
    if (atomic_load(&sh->errors) && ++bad)
        fprintf(stderr, "  %llu worker errors, first: %s\n",
                (unsigned long long)atomic_load(&sh->errors), sh->errmsg);
    if (atomic_load(&sh->deletes) < 100 && ++bad)
        fprintf(stderr, "  only %llu deletions: the test tested little\n",
                (unsigned long long)atomic_load(&sh->deletes));
    printf("%s records_kill: %u kills, %llu creations (%llu found the table full), %llu "
           "deletions, %zu admissions, %u records used of %u, %u violations\n",
           bad ? "FAIL" : "PASS", kills, (unsigned long long)atomic_load(&sh->creates),
           (unsigned long long)atomic_load(&sh->full),
           (unsigned long long)atomic_load(&sh->deletes), n, sp.records_used, CAPACITY, bad);
    rl_table_close(t);
    if (!bad)
        unlink(path);
    else
        fprintf(stderr, "  table kept for inspection: %s\n", path);
    return bad ? 1 : 0;
}
