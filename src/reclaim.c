/*
 * reclaim.c - give arena space back: sections, the epoch, the limbo and the free lists.
 *
 * A policy block a rule switch left (update.c S5) may still be read by a decider that found
 * it before the switch: it may be about to CAS one of its state words. So the block is
 * reused only after every such reader finished. Readers say when they read, by sections:
 *
 *   enter  X1: e = E; active[e & 1] += 1 (seq_cst); if E != e: undo and retry.
 *          X2: every policy reference is then loaded seq_cst (A3).
 *   exit   X3: active[e & 1] -= 1.
 *   advance (E = e to e + 1), X4 X5: every slot's active[(e + 1) & 1] is 0 (or its owner is
 *          gone), then CAS E from e to e + 1.
 *   retire X6: after the won S5 (seq_cst), r = E; the block goes on limbo[r % 3] stamped r.
 *   free   a limbo block stamped r goes to a free list once E >= r + 2. At epoch E, every
 *          block of limbo[(E - 2) % 3] is stamped E - 2 or earlier (stamps never pass E):
 *          the whole list is due, so blocks retired later never hide due ones.
 *
 * Why that is safe. A reader R that can reach block P registered (X1) with E = e at its
 * re-read, before it loaded a reference leading to P, and that load came before P was
 * unlinked (S5). X1, the reference load, S5 and X6 are all seq_cst, so R's count is raised
 * before X6 reads r, and e <= r. E went from e to e + 1 after R's re-read (E was e then),
 * so the advance from e + 1 to e + 2 checked parity e & 1 after R had raised its count:
 * it cannot have happened while R was in its section. E >= r + 2 >= e + 2 therefore means
 * R has left. A reader that registered later loads the new reference and never meets P.
 *
 * A view cached in a handle outlives its section. It is used again only while policy_off
 * still equals its reference, and a reused block gets a new generation in its reference.
 * A read-only attachment has no section: what it copied is checked afterwards (X11, the
 * allocator fences the new generation before the new contents; block.c).
 *
 * Processes die, and exec. Each process has a slot of its own (shm_format.h), and its
 * owner holds an OFD lock on the slot's byte of the file, through a descriptor of its own
 * (close-on-exec, its own open file description). The kernel drops the lock when the
 * process exits (a zombie holds none) or execs (which ends its other threads first), in
 * any pid namespace. A slot whose byte no one locks counts as drained, and may be taken.
 * A reclaimer asks through the table's descriptor, which holds no lock. Where the file
 * system has no OFD locks, liveness is the pid: kill(pid, 0) fails with ESRCH, in the same
 * pid namespace (an exec or a zombie then looks alive: reclamation waits).
 *
 * Taking a slot: the owner word is read (free, or its owner gone), the byte locked, then
 * the word CASed to ours. A reclaimer that finds the owner gone re-reads the word (X4): if
 * it is unchanged, the new owner's CAS, and so its sections, come after that re-read. The
 * word counts takes, so a new owner never writes the value an earlier one had.
 *
 * Children. This process's slot number lives in a page the kernel zeroes in a child of
 * fork, _Fork or any clone without CLONE_VM (MADV_WIPEONFORK): a child claims a slot and a
 * lock of its own on its first section, and closes the lock descriptor it inherited. A
 * child sharing the address space (vfork, CLONE_VM) shares the slot: it must not use the
 * table before it execs. A process that cannot have that page, an own descriptor or a lock
 * (fd limits, ENOLCK) uses slot 0, shared by any number of processes and never taken.
 *
 * Lists are stacks (Treiber) whose heads carry a 33-bit tag counting their changes. A pop
 * reads the head node's link; if the node was popped meanwhile, the tag changed and the
 * CAS fails. A process killed between a pop and the push that follows leaks one block.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "internal.h"

#define LINE_BITS  31
#define LINE_MASK  ((1ULL << LINE_BITS) - 1)
#define HEAD_BYTES ((uint64_t)sizeof(struct shm_block_head))
/* Blocks moved from the limbo to the free lists per rl__reclaim: bounds its work. */
#define COLLECT_MAX 256

/* The owner word (shm_format.h). */
#define OWNER_PID  0xffffffffULL
#define OWNER_LOCK (1ULL << 32)
#define TAKE_SHIFT 33

/* Process-local, in a page of its own that a fork child sees zeroed. */
struct rl_reader_local {
    rl_atomic64 reader; /* this process's slot + 1, 0: none yet */
};

/* The pid namespace of this process, 0 if unknown (then no pid is ever taken for dead). */
static uint64_t pid_ns(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* The file byte a slot's owner holds locked. */
static uint64_t lock_byte(uint32_t i)
{
    return RL_HEADER_BYTES + (uint64_t)i * sizeof(struct shm_reader);
}

/* Without a lock: the slot's pid is a process that no longer exists. */
static bool pid_dead(struct shm_reader *r, uint64_t pid, uint64_t ns)
{
    /* pidns is stored after the owner's CAS, before its first section: a stale value read
     * before that store (seq_cst) means its sections come after this test. */
    if (pid == 0 || pid > INT32_MAX || ns == 0 || rl__load_seq_cst(&r->pidns) != ns)
        return false;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* The owner of slot i, whose word read w, can never again enter a section there. */
static bool owner_gone(const rl_table *t, uint32_t i, uint64_t w, uint64_t ns)
{
    struct shm_reader *r = &t->readers[i];
    if (i == 0 || (w & OWNER_PID) == 0)
        return false;
    bool gone =
        w & OWNER_LOCK ? rl__fd_locked(t->fd, lock_byte(i)) == 0 : pid_dead(r, w & OWNER_PID, ns);
    /* X4: still w's slot now: a new owner's sections begin after its CAS. */
    return gone && rl__load_seq_cst(&r->owner) == w;
}

/* X4: no section of parity p is running in slot i (or its owner is gone). */
static bool slot_drained(const rl_table *t, uint32_t i, unsigned p, uint64_t ns)
{
    uint64_t w = rl__load_seq_cst(&t->readers[i].owner);
    if (rl__load_seq_cst(&t->readers[i].active[p]) == 0)
        return true;
    return owner_gone(t, i, w, ns);
}

static uint32_t readers_in_use(const rl_table *t)
{
    uint64_t hwm = rl__load_seq_cst(&t->hdr->readers_hwm); /* X4: with the slots' loads */
    return hwm < RL_READER_SLOTS ? (uint32_t)hwm : RL_READER_SLOTS;
}

/* X5: E from e to e + 1 once parity (e + 1) & 1 is drained. True if E moved. */
static bool epoch_advance(rl_table *t, uint64_t ns)
{
    uint64_t e = rl__load_seq_cst(&t->hdr->epoch);
    uint32_t n = readers_in_use(t);
    for (uint32_t i = 0; i < n; i++)
        if (!slot_drained(t, i, (unsigned)((e + 1) & 1), ns))
            return false;
    return rl__cas_seq_cst(&t->hdr->epoch, &e, e + 1);
}

int rl__table_moved(const rl_table *t)
{
    /* Z3: inside the caller's section. */
    if (rl__load_seq_cst(&t->hdr->moved) == 0)
        return 0;
    return rl__fail(RL_ESTALE, "table %s was resized into a new file: open it again", t->path);
}

int rl__epoch_quiesce(rl_table *t, uint64_t timeout_ns)
{
    uint64_t ns = pid_ns(), deadline = rl__clock_mono() + timeout_ns;
    uint64_t want = rl__load_seq_cst(&t->hdr->epoch) + 2;
    while (rl__load_seq_cst(&t->hdr->epoch) < want) {
        if (epoch_advance(t, ns))
            continue;
        if (rl__clock_mono() >= deadline)
            return rl__fail(RL_ETIMEDOUT, "table %s: a process stayed inside a decision (stopped?)",
                            t->path);
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    return 0;
}

/* Raise readers_hwm to at least n (X4 reads it). */
static void hwm_raise(rl_table *t, uint64_t n)
{
    uint64_t cur = rl__load_seq_cst(&t->hdr->readers_hwm);
    while (cur < n && !rl__cas_seq_cst(&t->hdr->readers_hwm, &cur, n))
        ;
}

enum take { TAKEN, BUSY, FAILED };

/* Take slot i, whose word read w (free, or its owner gone). *fd: our lock descriptor,
 * closed and set to -1 if the file system has no OFD locks (the pid tells liveness). */
static enum take slot_take(rl_table *t, uint32_t i, uint64_t w, int *fd, uint64_t ns)
{
    struct shm_reader *r = &t->readers[i];
    if (*fd >= 0 && rl__fd_lock(*fd, lock_byte(i), true) < 0) {
        if (errno == EAGAIN || errno == EACCES)
            return BUSY; /* its owner, or another taker, holds it */
        if (errno != EINVAL)
            return FAILED; /* no lock to be had (ENOLCK): the shared slot */
        close(*fd);
        *fd = -1;
    }
    uint64_t mine = (((w >> TAKE_SHIFT) + 1) << TAKE_SHIFT) | (*fd >= 0 ? OWNER_LOCK : 0) |
                    ((uint64_t)getpid() & OWNER_PID);
    if (!rl__cas_seq_cst(&r->owner, &w, mine)) {
        if (*fd >= 0)
            rl__fd_lock(*fd, lock_byte(i), false);
        return BUSY;
    }
    /* The slot is ours: no one else writes its counters. Its first section comes after
     * these stores and after hwm covers it, so every advance that could miss it ran
     * before that section began. */
    rl__store_seq_cst(&r->active[0], 0);
    rl__store_seq_cst(&r->active[1], 0);
    rl__store_seq_cst(&r->pidns, ns);
    hwm_raise(t, i + 1);
    return TAKEN;
}

/* A slot for this process: a free one, else one whose owner is gone, else the shared slot
 * 0. *fd: our lock descriptor; closed and set to -1 unless the slot's lock is on it. */
static uint32_t slot_claim(rl_table *t, int *fd)
{
    uint64_t ns = pid_ns();
    enum take got = BUSY;
    hwm_raise(t, 1); /* slot 0 */
    for (unsigned pass = 0; pass < 2 && got != FAILED; pass++)
        for (uint32_t i = 1; i < RL_READER_SLOTS && got != FAILED; i++) {
            uint64_t w = rl__load_seq_cst(&t->readers[i].owner);
            bool free_ = (w & OWNER_PID) == 0;
            if (pass == 0 ? !free_ : free_ || !owner_gone(t, i, w, ns))
                continue;
            if ((got = slot_take(t, i, w, fd, ns)) == TAKEN)
                return i;
        }
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    return 0;
}

/* Give slot i (not 0) back: the word first, then the lock, with the descriptor. */
static void slot_give_back(rl_table *t, uint32_t i, int fd)
{
    /* The takes count stays: the next owner's word differs from ours. */
    uint64_t w = rl__load_relaxed(&t->readers[i].owner); /* relaxed: ours, no one else writes it */
    rl__store_seq_cst(&t->readers[i].owner, w & ~(OWNER_PID | OWNER_LOCK));
    if (fd >= 0)
        close(fd);
}

void rl__reader_init(rl_table *t)
{
    size_t len = sizeof(struct rl_reader_local);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    if (madvise(p, len, MADV_WIPEONFORK) < 0) { /* before Linux 4.14: the shared slot */
        munmap(p, len);
        return;
    }
    t->local = p;
}

/* This process's first section on t (in a fork child too): claim a slot. */
static uint32_t reader_claim(rl_table *t, struct rl_reader_local *l)
{
    int fd = rl__fd_reopen(t->fd, t->path);
    uint32_t i = fd >= 0 ? slot_claim(t, &fd) : 0;
    uint64_t have = 0;
    /* X10: publishes the slot's reset counters to this process's other threads. */
    if (!rl__cas_acq_rel(&l->reader, &have, i + 1)) {
        if (i != 0) /* another thread claimed first: give ours back */
            slot_give_back(t, i, fd);
        return (uint32_t)(have - 1);
    }
    /* Only the winner of the CAS writes lock_fd; a fork child finds its parent's there. */
    int inherited = t->lock_fd;
    t->lock_fd = fd;
    if (inherited >= 0)
        rl__fd_drop(inherited, t->fd);
    return i;
}

static struct shm_reader *reader_of(rl_table *t)
{
    struct rl_reader_local *l = t->local;
    if (!l)
        return &t->readers[0];
    /* X10: acquire pairs with the claim's CAS: the slot was reset before. */
    uint64_t have = rl__load_acquire(&l->reader);
    return &t->readers[have ? have - 1 : reader_claim(t, l)];
}

void rl__section_enter(rl_table *t, struct rl_section *s)
{
    s->count = NULL;
    if (t->read_only)
        return;
    struct shm_reader *r = reader_of(t);
    for (;;) {
        uint64_t e = rl__load_seq_cst(&t->hdr->epoch);
        rl_atomic64 *c = &r->active[e & 1];
        rl__fetch_add_seq_cst(c, 1); /* X1 */
        if (rl__load_seq_cst(&t->hdr->epoch) == e) {
            s->count = c;
            return;
        }
        rl__fetch_add_acq_rel(c, (uint64_t)-1); /* the epoch moved: register again */
    }
}

void rl__section_exit(struct rl_section *s)
{
    if (s->count)
        rl__fetch_add_acq_rel(s->count, (uint64_t)-1); /* X3: release ends our reads */
    s->count = NULL;
}

void rl__reader_release(rl_table *t)
{
    struct rl_reader_local *l = t->local;
    if (!l) /* read-only, or the shared slot only: no lock descriptor either */
        return;
    uint64_t have = rl__load_relaxed(&l->reader); /* relaxed: closing, no thread uses t */
    munmap(l, sizeof(*l));
    t->local = NULL;
    if (have == 0 && t->lock_fd >= 0) /* a fork child that never claimed: its parent's */
        rl__fd_drop(t->lock_fd, t->fd);
    if (have <= 1)
        return;
    struct shm_reader *r = &t->readers[have - 1];
    /* A section left open (a thread still inside while the table closes) keeps the slot
     * and its lock until the process exits or execs. */
    if (rl__load_seq_cst(&r->active[0]) == 0 && rl__load_seq_cst(&r->active[1]) == 0) {
        slot_give_back(t, (uint32_t)(have - 1), t->lock_fd);
        t->lock_fd = -1;
    }
}

int rl__claim(rl_atomic64 *counter, uint64_t n, uint64_t limit, uint64_t *at)
{
    /* K1: a CAS loop, not fetch_add. The counter never passes `limit`, so even a damaged
     * counter cannot wrap around and hand out space that is in use. Acq_rel is more than
     * needed: the number only has to be unique, and contents are published by the owner's
     * release store (R1, S2). It keeps this one primitive simple. */
    uint64_t cur = rl__load_acquire(counter);
    do {
        if (cur > limit || n > limit - cur)
            return RL_EFULL;
    } while (!rl__cas_acq_rel(counter, &cur, cur + n));
    *at = cur;
    return 0;
}

/* The head line at arena offset `off`, if a whole block of its recorded size fits. */
static struct shm_block_head *head_at(const rl_table *t, uint64_t off)
{
    struct shm_block_head *h = rl__arena_at(t, off, HEAD_BYTES);
    if (!h || off % RL_ALIGN)
        return NULL;
    uint64_t bytes = h->bytes;
    if (bytes < 3 * HEAD_BYTES || bytes % RL_ALIGN || !rl__arena_at(t, off, bytes))
        return NULL;
    return h;
}

/* Classes below this hold blocks of one size; the others sizes within a power of two. */
#define EXACT_CLASSES 256

static unsigned size_class(uint64_t bytes)
{
    uint64_t lines = bytes / RL_ALIGN;
    if (lines < EXACT_CLASSES)
        return (unsigned)lines;
    unsigned log = 63 - (unsigned)__builtin_clzll(lines);
    return 248 + log < RL_FREE_CLASSES ? 248 + log : RL_FREE_CLASSES - 1;
}

/* X7: push the block whose head line is at `off` on a list. */
static void list_push(const rl_table *t, rl_atomic64 *list, uint64_t off)
{
    struct shm_block_head *h = (struct shm_block_head *)(t->arena + off);
    uint64_t cur = rl__load_acquire(list);
    uint64_t mine = off / RL_ALIGN + 1;
    do {
        /* Relaxed: published by the CAS's release. */
        rl__store_relaxed(&h->link, cur & LINE_MASK);
    } while (!rl__cas_acq_rel(list, &cur, ((cur >> LINE_BITS) + 1) << LINE_BITS | mine));
}

/* What a pop accepts: a limbo node whose grace period is over, or a free block that is
 * large enough; either in the state its list holds. */
struct pop_want {
    bool limbo;
    uint64_t epoch; /* limbo: E now */
    uint64_t bytes; /* free list: at least this many */
};

static bool pop_ok(const struct shm_block_head *h, const struct pop_want *w)
{
    /* Relaxed: the node was published by the push whose head we acquired; if it was popped
     * and reused since, what we read is garbage and the CAS fails. */
    uint64_t stamp = rl__load_relaxed(&h->epoch);
    if (w->limbo)
        return rl__load32_acquire(&h->state) == RL_BLOCK_RETIRED && stamp <= w->epoch && /* X9 */
               w->epoch - stamp >= 2;
    return rl__load32_acquire(&h->state) == RL_BLOCK_FREE && h->bytes >= w->bytes;
}

/* X8: pop the head node if `w` accepts it: its head line's arena offset, or -1. */
static int64_t list_pop(const rl_table *t, rl_atomic64 *list, const struct pop_want *w)
{
    uint64_t cur = rl__load_acquire(list); /* X8: acquire pairs with X7: the node's fields */
    for (;;) {
        uint64_t line = cur & LINE_MASK;
        if (line == 0)
            return -1;
        struct shm_block_head *h = head_at(t, (line - 1) * RL_ALIGN);
        if (!h || !pop_ok(h, w))
            return -1;
        uint64_t next = rl__load_relaxed(&h->link) & LINE_MASK;
        if (rl__cas_acq_rel(list, &cur, ((cur >> LINE_BITS) + 1) << LINE_BITS | next))
            return (int64_t)((line - 1) * RL_ALIGN);
    }
}

/* A block that left the limbo: fold the admissions counted in it into its bucket's record
 * (shm_rule.admitted), then free it. */
static void block_free(rl_table *t, uint64_t off)
{
    struct shm_block_head *h = (struct shm_block_head *)(t->arena + off);
    struct shm_policy *p = (struct shm_policy *)(t->arena + off + HEAD_BYTES);
    /* Relaxed: statistics. */
    uint64_t late = rl__xchg_relaxed(&p->rules[0].admitted, 0);
    if (late && h->owner && h->owner - 1 < t->capacity)
        rl__fetch_add_relaxed(&t->buckets[h->owner - 1].counters.admitted, late);
    rl__fetch_add_relaxed(&t->hdr->free_bytes, h->bytes);
    rl__store32_release(&h->state, RL_BLOCK_FREE); /* X9 */
    list_push(t, &t->hdr->free_head[size_class(h->bytes)], off);
}

void rl__block_free_now(rl_table *t, uint64_t ref)
{
    uint64_t off = rl__ref_off(ref) - HEAD_BYTES;
    struct shm_block_head *h = rl__ref_off(ref) >= HEAD_BYTES ? head_at(t, off) : NULL;
    if (h && rl__load32_acquire(&h->state) == RL_BLOCK_USED)
        block_free(t, off);
}

void rl__block_retire(rl_table *t, uint64_t ref, struct shm_bucket *rec)
{
    uint64_t off = rl__ref_off(ref) - HEAD_BYTES;
    struct shm_block_head *h = rl__ref_off(ref) >= HEAD_BYTES ? head_at(t, off) : NULL;
    if (!h || rl__load32_acquire(&h->state) != RL_BLOCK_USED) /* damaged: never reused */
        return;
    struct shm_policy *p = (struct shm_policy *)(t->arena + off + HEAD_BYTES);
    /* Relaxed: statistics; admissions counted in the block later are folded when it is
     * freed. */
    rl__fetch_add_relaxed(&rec->counters.admitted, rl__xchg_relaxed(&p->rules[0].admitted, 0));
    /* X6: after S5 in the seq_cst order: any reader that can hold the block registered
     * before this load. Relaxed store: published by the push. */
    uint64_t e = rl__load_seq_cst(&t->hdr->epoch);
    rl__store_relaxed(&h->epoch, e);
    rl__fetch_add_relaxed(&t->hdr->limbo_bytes, h->bytes);
    rl__store32_release(&h->state, RL_BLOCK_RETIRED); /* X9 */
    list_push(t, &t->hdr->limbo[e % 3], off);
}

static bool limbo_empty(const rl_table *t)
{
    /* Relaxed: an empty limbo is the common case, and a block pushed meanwhile is
     * collected next time. */
    for (unsigned k = 0; k < 3; k++)
        if ((rl__load_relaxed(&t->hdr->limbo[k]) & LINE_MASK) ||
            (rl__load_relaxed(&t->hdr->rec_limbo[k]) & 0xffffffffULL)) /* records: record.c */
            return false;
    return true;
}

void rl__reclaim(rl_table *t)
{
    if (t->read_only || limbo_empty(t))
        return;
    uint64_t ns = pid_ns();
    epoch_advance(t, ns);
    epoch_advance(t, ns);
    struct pop_want w = {.limbo = true, .epoch = rl__load_seq_cst(&t->hdr->epoch)};
    if (w.epoch < 2)
        return;
    rl_atomic64 *due = &t->hdr->limbo[(w.epoch - 2) % 3];
    for (unsigned n = 0; n < COLLECT_MAX; n++) {
        int64_t off = list_pop(t, due, &w);
        if (off < 0)
            return;
        struct shm_block_head *h = (struct shm_block_head *)(t->arena + off);
        rl__fetch_add_relaxed(&t->hdr->limbo_bytes, -h->bytes); /* relaxed: a statistic */
        block_free(t, (uint64_t)off);
    }
}

/* Nodes a pop from a class of mixed sizes sets aside to reach one large enough. */
#define MIXED_TRIES 4

/* A free block of at least len bytes from class c of mixed sizes: the heads too small are
 * taken off and pushed back (a process killed meanwhile leaks them). */
static int64_t mixed_take(rl_table *t, rl_atomic64 *list, uint64_t len)
{
    struct pop_want any = {.bytes = 0};
    int64_t aside[MIXED_TRIES], off = -1;
    unsigned n = 0;
    while (n < MIXED_TRIES) {
        int64_t got = list_pop(t, list, &any);
        if (got < 0)
            break;
        if (((struct shm_block_head *)(t->arena + got))->bytes >= len) {
            off = got;
            break;
        }
        aside[n++] = got;
    }
    while (n-- > 0)
        list_push(t, list, (uint64_t)aside[n]);
    return off;
}

/* A free block of at least len bytes: its head line's offset, or -1. */
static int64_t free_take(rl_table *t, uint64_t len)
{
    struct pop_want w = {.bytes = len};
    unsigned c = size_class(len);
    rl_atomic64 *list = &t->hdr->free_head[c];
    int64_t off = c < EXACT_CLASSES ? list_pop(t, list, &w) : mixed_take(t, list, len);
    if (off >= 0) {
        struct shm_block_head *h = (struct shm_block_head *)(t->arena + off);
        /* Relaxed: statistics. */
        rl__fetch_add_relaxed(&t->hdr->free_bytes, -h->bytes);
        rl__fetch_add_relaxed(&t->hdr->reused_blocks, 1);
    }
    return off;
}

/* len bytes from the arena's end: the head line's offset. */
static int bump(rl_table *t, uint64_t len, uint64_t *off)
{
    /* Reserve the pages first: a full file system then takes nothing from the arena. */
    int err = rl__table_reserve(t, 0, len);
    if (err)
        return err;
    if (rl__claim(&t->hdr->arena_used, len, t->arena_bytes, off) < 0)
        return rl__fail(RL_EFULL, "table %s: arena is full (%llu bytes)", t->path,
                        (unsigned long long)t->arena_bytes);
    if (*off % RL_ALIGN) /* only a damaged counter is ever unaligned: it stays so */
        return rl__fail(RL_ECORRUPT, "table %s: arena counter is damaged", t->path);
    /* The range claimed: the one reserved, unless another process claimed first. */
    err = rl__fd_reserve(t->fd, t->path, (uint64_t)(t->arena - t->base) + *off, len);
    if (err)
        return err;
    struct shm_block_head *h = (struct shm_block_head *)(t->arena + *off);
    h->bytes = len; /* fixed for the block's life; published with the block */
    return 0;
}

int rl__block_alloc(rl_table *t, uint64_t len, uint32_t owner, uint64_t *ref)
{
    len = (len + RL_ALIGN - 1) & ~(uint64_t)(RL_ALIGN - 1);
    int64_t taken = free_take(t, len);
    uint64_t off = (uint64_t)taken;
    if (taken < 0) {
        int err = bump(t, len, &off);
        if (err)
            return err;
    }
    struct shm_block_head *h = (struct shm_block_head *)(t->arena + off);
    /* Relaxed: the block is ours alone until R1 or S2 publishes it. */
    uint64_t gen = (rl__load_relaxed(&h->gen) + 1) & RL_GEN_MASK;
    gen = gen ? gen : 1;
    rl__store_relaxed(&h->gen, gen);
    /* X11: the new generation before the new contents: a read-only copy that saw any of
     * them sees the bucket's reference moved (block.c rl__bucket_view_settled). */
    rl__fence_release();
    h->owner = owner;
    rl__store32_release(&h->state, RL_BLOCK_USED); /* X9: ours alone until published */
    *ref = gen << RL_REF_LINE_BITS | (off + HEAD_BYTES) / RL_ALIGN;
    return 0;
}
