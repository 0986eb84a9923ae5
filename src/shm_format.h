/*
 * shm_format.h - the table file format. This file is the specification: every process
 * that maps the table agrees on it, so change RL_LAYOUT_VERSION with any change here.
 *
 * File layout (all offsets in bytes from the start of the file, all integers little-endian
 * host order, the file is only ever shared between processes of one host):
 *
 *   +---------------------------+ 0
 *   | struct shm_header         |  4096 bytes: magic, version, sizes, clock bases, counters
 *   +---------------------------+ 4096
 *   | RL_READER_SLOTS readers   |  one line per process: its sections in progress
 *   +---------------------------+ index_off
 *   | index: index_slots words  |  open addressing, linear probing: name -> bucket number
 *   +---------------------------+ buckets_off
 *   | capacity x shm_bucket     |  fixed-size records; a deleted bucket's is reused
 *   +---------------------------+ arena_off
 *   | arena                     |  policy blocks, each: a shm_block_head line, the
 *   |                           |  shm_policy with its rules and state words, the sliding
 *   |                           |  logs; 64-byte aligned. Bump-allocated; a block a switch
 *   |                           |  left is reused once no reader can still hold it
 *   +---------------------------+ file_bytes
 *
 * No pointers live in the file. Records refer to each other by bucket number and arena
 * offset. Every reader bounds-checks them against the header before use. A corrupt record
 * refuses requests with RL_ECORRUPT; it never makes a process read out of bounds.
 *
 * Clock: all instants in the file are CLOCK_MONOTONIC nanoseconds minus header.epoch_ns
 * ("relative ns"), so 0 is the table's creation. CLOCK_MONOTONIC restarts at boot. So the
 * header records the boot id, and an attach after a reboot fails with RL_ESTALE.
 *
 * Crash safety. Most changes are one CAS on one 64-bit word whose old and new values are
 * both valid states. A process killed before the CAS changed nothing; one killed after it
 * is done. Five operations take several steps. Each leaves a valid table at every step,
 * and none makes anyone wait for the process that started it:
 *
 * 1. Creation, of the table and of a bucket.
 *    - The table file is built whole under a temporary name, then link()ed to its path.
 *      link() fails with EEXIST if another creator won. So exactly one table appears, and
 *      it is complete when it appears: attachers never see a half-built header.
 *    - A bucket is a record filled and published by R3 and R1, then an index slot claimed
 *      pending, the probe chain scanned, and the slot confirmed live (I1, shm_index.c).
 *      A creator killed between two steps leaves an unreachable record (one bucket of
 *      capacity lost until a resize, never a wrong answer) and a pending slot, which the
 *      next creator of the name aborts and any creator may reuse.
 * 2. The sliding log (rule_sliding.c). A decision claims units by one CAS on the head,
 *    then writes their log entries. A writer killed in between leaves entries unwritten.
 *    The claimer of the unit one lap later writes them for it ("helps"), conservatively.
 * 3. The rule switch (update.c S1-S5). A new block is filled, linked from the old one,
 *    the old words are frozen, the new words seeded, and policy_off moved. Anyone who
 *    meets a frozen word or a linked successor finishes the switch itself. A delete first
 *    claims the same link (D1), so a switch and a delete never both start from one block.
 *    A deleter killed between its claim and policy_off's move to 0 leaves a bucket that
 *    still decides but takes no switch (RL_ENOENT); the next delete finishes it.
 * 4. The multi-rule commit and its undo (acquire.c, acquire_gcra.c). A decision commits
 *    its rules one CAS each (C2). If one CAS fails, it undoes the ones before (U1), each
 *    only if the word is still its own. A process killed between two commits, or during
 *    the undo, leaves its units counted by the rules it committed: under-admission, never
 *    over-admission.
 * 5. Block reuse (reclaim.c X1-X8). The switcher whose S5 won stamps the old block with the
 *    epoch e and pushes it on the limbo list of e % 3; a block is moved to a free list only two
 * epoch advances later, and an advance needs every live process's sections of the older parity
 *    drained. A process killed between two of these steps leaks that one block (its space,
 *    never a wrong answer); a process killed inside a section (or one that execs while
 *    other threads of it are inside) holds the epoch back only until the kernel drops its
 *    slot's lock.
 * 6. Record reuse (record.c J1-J5). A deleted bucket's live slot becomes a tombstone; its
 *    winner stamps the record with the epoch and pushes it on rec_limbo; two advances later
 *    it goes to rec_free and a creation reuses it with a raised generation. A deleter
 *    killed before the tombstone is helped by the next creator that passes the slot; one
 *    killed between the tombstone and the push leaks that one record.
 */
#ifndef RL_SHM_FORMAT_H
#define RL_SHM_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "ratelimit.h"

#define RL_MAGIC 0x31544c4d4954524cULL /* "LRTIMLT1" */
/* 3: the fixed-window word's generation bit and the header's wall_offset_prev; the record's
 * margin word (was cooldown_start) and backoff packing widened_at. */
/* 4: reader slots before the index, the reclamation words in the header, a line before every
 * policy block (struct shm_block_head), policy references carry a generation. */
/* 5: index slots may be pending or tombstones, records are reused: the record's life word
 * (generation, list link), its limbo state, the record lists in the header. */
#define RL_LAYOUT_VERSION 5
#define RL_HEADER_BYTES   4096
/* Free-list size classes: a block of n lines (64 bytes each, its head line included) is in
 * class n below 256 (16 KiB), else in class 248 + log2(n) (at most RL_FREE_CLASSES - 1). */
#define RL_FREE_CLASSES 280
#define RL_ALIGN        64

/* Sliding-window log timestamps are kept in ticks of this many ns (44 bits: 55 years). */
#define RL_TICK_NS 100000ULL

/* A wall-clock offset this far from the table's re-aligns the fixed windows (rule_fixed.c). */
#define RL_WALL_DRIFT_NS 1000000ULL
/* The offset's bounds: a wall-clock time within 146 years of 1970. */
#define RL_WALL_OFFSET_MAX (1LL << 62)

struct shm_header {
    uint64_t magic;          /* RL_MAGIC, written before the file is linked into place */
    uint32_t layout_version; /* RL_LAYOUT_VERSION */
    uint32_t header_bytes;   /* RL_HEADER_BYTES */
    uint32_t capacity;       /* bucket records */
    uint32_t index_slots;    /* power of two, >= 2 * capacity */
    uint32_t bucket_bytes;   /* sizeof(struct shm_bucket) */
    uint32_t rule_bytes;     /* sizeof(struct shm_rule) */
    uint64_t index_off;
    uint64_t buckets_off;
    uint64_t arena_off;
    uint64_t arena_bytes;
    uint64_t file_bytes;
    uint64_t epoch_ns; /* CLOCK_MONOTONIC ns at creation: relative instant 0 */
    /* wall_offset_ns: CLOCK_REALTIME - CLOCK_MONOTONIC ns, an int64_t: the fixed windows'
     * alignment. Bit 0 is the alignment's generation parity (the offset is kept to 2 ns):
     * a fixed rule's state word records the parity of the alignment its window number
     * belongs to. Set at creation (parity 0); a process that finds the clocks drifted apart
     * by more than RL_WALL_DRIFT_NS stores wall_offset_prev = the offset in force, then the
     * new offset with the other parity by CAS (O3, clock.c). Read at attach, by the drift
     * check and when a word of the other parity is met, each time bounds-checked;
     * decisions use the process's copies. */
    rl_atomic64 wall_offset_ns;
    char boot_id[40]; /* /proc/sys/kernel/random/boot_id at creation, NUL-terminated */
    /*
     * next_bucket: bucket numbers ever handed out, by rl__claim (a CAS loop that never passes
     * capacity; the record's contents are published by the release store of its `state`).
     * Readers still clamp it, as a damaged file may hold anything. Records of deleted
     * buckets are reused first (rec_free, record.c).
     */
    rl_atomic64 next_bucket;
    /* arena_used: bytes of the arena handed out, same rules as next_bucket. */
    rl_atomic64 arena_used;
    /* defined: buckets that won their name in the index (relaxed fetch_add: a count for
     * display; a creator killed between its index CAS and the add leaves it one short). */
    rl_atomic64 defined;
    /*
     * applied_digest: which config the buckets and templates are known to match
     * (src/applied.c, labels Y1-Y3):
     *   0                       unknown (a new table, or one older than this word)
     *   bit 63 set              they match the config whose digest is the low 63 bits
     *   bit 63 clear, non-zero  unknown: a count of changes, so that an apply running
     *                           meanwhile can tell that something else changed the table
     * Every define that creates a bucket or template by name, and every rule switch, moves
     * it to the next count before and after the change (CAS). An apply moves it at its
     * start and sets the digest last, by CAS from the count it left, so an apply killed
     * midway or raced by another change leaves "unknown". Tenants made from a template and
     * resets leave it alone: they never make the table differ from the config.
     */
    rl_atomic64 applied_digest;
    /* Preload shim attachments (rl__table_note_shim), for display: processes whose shim
     * opened this table, the relative ns of the latest, and its pid. Relaxed: statistics,
     * they order nothing. */
    rl_atomic64 shim_attaches;
    rl_atomic64 shim_last_attach;
    rl_atomic64 shim_last_pid;
    /* wall_offset_prev: the alignment before wall_offset_ns (relaxed; published by O3). */
    rl_atomic64 wall_offset_prev;
    /* Reclamation statistics (reclaim.c), relaxed: bytes on the free lists, bytes retired and
     * waiting for their grace period, blocks reused, and the reader slots ever claimed. */
    rl_atomic64 free_bytes;
    rl_atomic64 limbo_bytes;
    rl_atomic64 reused_blocks;
    rl_atomic64 readers_hwm; /* slots [0, readers_hwm) may be in use; raised by CAS (X4) */
    rl_atomic64 deleted;     /* buckets deleted (relaxed, a statistic): records reused */
    rl_atomic64 expired;     /* of which expired idle (rl_bucket_expire; relaxed) */
    /* Automatic expiry (tenant.c). expire_cursor: the next record the sweep examines, in
     * [0, records handed out) (CAS E1: any record will do, it is only where to look).
     * expired_auto: of `expired`, by a template's expiry (the sweep, rl_bucket_expire_due;
     * relaxed, a statistic). */
    rl_atomic64 expire_cursor;
    rl_atomic64 expired_auto;
    /* epoch: the reclamation epoch (reclaim.c), alone on its line: every decision reads it,
     * only an advance (X5) writes it. */
    rl_atomic64 epoch;
    /* moved: 0, or (once rl_table_resize began to copy this table into a new file) the
     * resizer's pid, then UINT64_MAX after the rename. Non-zero: every decision refuses
     * (RL_ELIMITED) and every change fails (RL_ESTALE), so nothing is admitted here that the
     * copy misses. Set by CAS seq_cst (Z2), read seq_cst inside a section (Z3); on the
     * epoch's line, which every decision reads anyway. */
    rl_atomic64 moved;
    /* Record reuse (record.c), list heads tag:32 | no + 1 (0: empty): rec_limbo[e % 3] holds
     * records retired in epoch e, rec_free the records ready for reuse. rec_spare: records
     * on those lists (relaxed, a statistic). */
    rl_atomic64 rec_limbo[3];
    rl_atomic64 rec_free;
    rl_atomic64 rec_spare;
    uint8_t reserved1[8];
    /* limbo[e % 3]: blocks retired in epoch e, waiting for two more; free_head[c]: free
     * blocks of size class c. Each a list head: tag:33 | line:31, line = (arena offset of
     * the node's head line) / 64 + 1, 0 for an empty list. The tag counts every change, so
     * a stale pop fails its CAS. */
    rl_atomic64 limbo[3];
    rl_atomic64 free_head[RL_FREE_CLASSES];
    /* parents_below: 1 + the highest bucket number ever named as a parent, raised by CAS (E2)
     * before the child is published (R1): a bucket numbered at or above it has no children,
     * and a deletion or an expiry need not look for them. */
    rl_atomic64 parents_below;
    uint8_t reserved[RL_HEADER_BYTES - 352 - 8 * RL_FREE_CLASSES];
};

/*
 * Reader slots (reclaim.c): RL_READER_SLOTS records right after the header, one line each.
 * A process claims one by CAS of its owner word on its first section. Slot 0 is shared by
 * processes that found no slot of their own; it is never taken for gone.
 *   owner      takes:31 | lock:1 | pid:32
 *                pid    0: free; else the owner's pid (in its own namespace: for display,
 *                       and for liveness without a lock)
 *                lock   1: the owner holds an OFD write lock on the slot's first byte in the
 *                       file (offset 4096 + 64 * slot) for as long as it can enter a section;
 *                       0: the file system has no OFD locks, the pid tells liveness
 *                takes  counts the slot's owners, so that a new owner never writes the word
 *                       an earlier one had (a reclaimer re-reads it to know no one took it)
 *   pidns      the owner's pid namespace (st_ino of /proc/self/ns/pid), 0 if unknown
 *   active[p]  sections in progress that entered while the epoch had parity p (X1, X3)
 * A slot whose owner is gone counts as drained: with lock 1, no lock on its byte (the
 * kernel drops it when the owner exits or execs, zombies and other pid namespaces
 * included); with lock 0, its pid dead in the reclaimer's own pid namespace. Nothing else
 * locks bytes of the table file.
 */
#define RL_READER_SLOTS 1024

struct shm_reader {
    rl_atomic64 owner;
    rl_atomic64 pidns;
    rl_atomic64 active[2];
    uint8_t pad[32];
};

/*
 * Index slot word (shm_index.c has the protocol and its proof):
 *   0                                  empty: a lookup stops here; never again once left
 *   tag:32 | 0:1 | no + 1:31           live: bucket number `no` answers for its name
 *   tag:32 | 1:1 | no + 1:31           pending: a creator's claim, not yet confirmed
 *   RL_INDEX_TOMB (low 32 bits 0)      a tombstone: nothing, reusable by a creator
 * tag = high 32 bits of the name's hash. Every access is seq_cst.
 */
#define RL_INDEX_EMPTY   0
#define RL_INDEX_TOMB    0xffffffff00000000ULL
#define RL_INDEX_PENDING 0x80000000ULL

/* Bucket record state (32-bit, release-stored, acquire-loaded). */
enum shm_bucket_state {
    RL_BUCKET_FREE = 0,  /* never used, or being rebuilt, or its creator died meanwhile */
    RL_BUCKET_BUILT = 1, /* every field is final; it may or may not have won the index */
    RL_BUCKET_SPARE = 2, /* on the record free list (record.c) */
};
/* RL_BUCKET_LIMBO | stamp: retired, on rec_limbo[stamp % 3]; stamp = the epoch's low 31 bits
 * at retirement: reused once the epoch is 2 past it. */
#define RL_BUCKET_LIMBO 0x80000000U

/* Per-bucket counters: relaxed fetch_add, they order nothing. extra_units: units admitted
 * beyond one per admission (admitted units = admitted + extra_units), so that the commonest
 * admission, of one unit, costs one fetch_add. */
struct shm_counters {
    rl_atomic64 admitted;
    rl_atomic64 extra_units;
    rl_atomic64 rejected;
    rl_atomic64 waited;
    rl_atomic64 waited_ns;
    rl_atomic64 dry_run_rejected;
    rl_atomic64 resets;
    rl_atomic64 reported_429;
};

/*
 * A bucket record: three cache lines. The first holds what every decision reads, written
 * rarely (at creation, a rule switch, a 429); the second the name (lookups); the third the
 * counters, written by decisions (but for the fast path's admissions: shm_rule.admitted).
 * Kept apart, a decision in one process does not evict what the others read.
 */
struct shm_bucket {
    rl_atomic32 state; /* enum shm_bucket_state; release store publishes every field */
    /* parent: parent bucket number + 1, 0 if none; fixed while BUILT. A parent is never
     * deleted while a child lives (bucket.c, B1-B4), so its record is never reused under
     * one. Numbers are reused: a parent may have a higher number than its child. */
    uint32_t parent;
    /*
     * policy_off: a reference to the bucket's current struct shm_policy: gen:34 | line:30,
     * line = arena offset / 64, gen = the block's generation (shm_block_head.gen), so a
     * reference to a block that was freed and reused never matches the new one. Loaded
     * seq_cst by deciders inside a section (X2; pairs with R1, S5).
     */
    rl_atomic64 policy_off;
    /*
     * Server feedback (feedback.c):
     * cooldown_until: relative ns before which the bucket admits nothing (a 429 was
     *   reported). Reports only raise it (CAS to a later value); rl_bucket_reset clears it.
     * backoff: widened_at:56 | count:8. count: consecutive 429s without Retry-After (CAS,
     *   saturating; a success clears it by CAS). widened_at: relative ns of the margin's
     *   latest widening (margin.c, CAS M3; saturates after 2.2 years, then every admitted
     *   429 may widen).
     * last_429: relative ns of the latest 429, which is also when the cool-down in force
     *   began; only raised, and not by a 429 for a request decided before it (the same
     *   event, feedback.c).
     * server: the remaining budget the server reported, as an extra rule of the bucket:
     *   remaining:20 | until:44 (ticks); inactive once `until` has passed. Decisions treat
     *   it like any rule word: loaded, checked, committed by CAS with the others.
     *
     * margin: what the pool learned of the margin (margin.c), read by every decision:
     *   learned:26  µs; the bucket counts windows max(configured, learned) longer (0: none)
     *   delay:24    µs; the estimated p99 of decision-to-response delays (0: no sample)
     *   steps:14    narrowing steps taken since last_429
     * Written by reports only: on a 429, and when the delay estimate or a narrowing step
     * moves it (CAS). A damaged value can only widen the margin up to 67 s.
     */
    rl_atomic64 cooldown_until;
    rl_atomic64 server;
    rl_atomic64 margin;
    rl_atomic64 backoff;
    rl_atomic64 last_429;
    /*
     * life: gen:32 | link:32. gen: the record's generation, raised each time the record is
     * reused (never 0 once built): a handle keeps the one it was made for, and a reused
     * record's raised one refuses it. Written by the record's owner before the release of
     * policy_off (R3). link: the next record on a record list (no + 1, 0: none), written by
     * the pusher (record.c).
     */
    rl_atomic64 life;
    char name[RL_NAME_MAX + 1];
    struct shm_counters counters;
};

/*
 * One rule and its state word. Bit 63 of every state word is RL_FROZEN: set when the
 * bucket switches to a new policy block (update.c); a frozen word is never committed to.
 * The other bits depend on the kind:
 *
 *   RL_GCRA     word = TAT, the theoretical arrival time, relative ns. TAT <= now means a
 *               full bucket; each admitted unit adds interval_ns. Never above 3 * 2^61:
 *               a turn that needs more is refused (rule_gcra.c).
 *   RL_FIXED    word = gen:1 | count:30 | window:32. window = (wall-clock ns / T) mod
 *               2^32 of the window being counted, under the alignment whose parity is
 *               gen (header.wall_offset_ns; see rule_fixed.c).
 *   RL_SLIDING  word = pos:19 | last:44, the log's head (see rule_sliding.c): pos = units
 *               admitted so far mod 4N, last = ceil(latest admission instant) in ticks.
 */
struct shm_rule {
    uint32_t kind; /* enum rl_rule_kind */
    uint32_t reserved0;
    uint64_t limit;       /* N */
    uint64_t period_ns;   /* T */
    uint64_t burst;       /* B (GCRA) */
    uint64_t interval_ns; /* GCRA: ceil(T / N), ns per unit */
    uint64_t log_off;     /* sliding: arena offset of limit log words */
    rl_atomic64 word;     /* the state, see above */
    /* admitted: admissions the GCRA fast path (acquire_gcra.c) committed on this word,
     * counted here, on the line its CAS just took, not on the record's counter line: an
     * admission of one unit writes one cache line per bucket. Rule 0 only; a bucket's
     * admitted count is counters.admitted plus this, of its current block (relaxed
     * fetch_add). A block's count is folded into the record when it is retired, and again
     * when it is freed (late adds). */
    rl_atomic64 admitted;
};

#define RL_FROZEN       (1ULL << 63)
#define RL_BACKOFF_MASK 0xffULL    /* shm_bucket.backoff: the count */
#define RL_UNINIT       UINT64_MAX /* a new block's state word before the switch fills it in */

/*
 * The line before every policy block: the allocator's, never read by decisions.
 *   link   the next node on the limbo or a free list (list head encoding, tag 0)
 *   epoch  the epoch read after the block was unlinked (X6): freed once the epoch is 2 past
 *   gen    the block's generation, 1..2^34-1, raised each time the block is reused; a
 *          policy reference carries it, and a view checks it
 *   bytes  the block's size with this line, fixed when the arena first handed it out
 *   owner  bucket number + 1 it was made for (its admissions are folded into that record)
 *   state  enum shm_block_state, written by whoever holds the block: a list accepts only
 *          nodes in the state it holds, so a damaged link never hands out a live block
 */
enum shm_block_state {
    RL_BLOCK_USED = 0,    /* handed out (a block from the arena's end starts so) */
    RL_BLOCK_RETIRED = 1, /* on the limbo */
    RL_BLOCK_FREE = 2,    /* on a free list */
};

struct shm_block_head {
    rl_atomic64 link;
    rl_atomic64 epoch;
    rl_atomic64 gen;
    uint64_t bytes;
    uint32_t owner;
    rl_atomic32 state;
    uint8_t pad[24];
};

#define RL_REF_LINE_BITS 30
#define RL_GEN_MASK      ((1ULL << 34) - 1)
/* shm_policy.next_off of a block whose bucket a delete claimed: line 0 names no block. */
#define RL_NEXT_DELETED (RL_GEN_MASK << RL_REF_LINE_BITS)

/*
 * A policy block: immutable once published, except the rules' state words and next_off.
 * expire_ms: a template's `expire`, copied into the blocks of the tenants made from it and
 * into every block that replaces one (a switch keeps it unless it sets a new one).
 * next_off, set once by CAS from 0:
 *   0                 no switch started from this block
 *   a reference       the block replacing it (S2, release: publishes its rules, carry_at)
 *   RL_NEXT_DELETED   its bucket is being deleted (D1, update.c): no switch starts from it
 * carry_at: the relative instant at which the usage of the block it replaces is carried
 * over; for a bucket's first block, when it was made (the expiry sweep spares younger
 * tenants, tenant.c). carry_excess[i]: units carried into sliding rule i beyond the N its log can
 * hold (they expire with the log's stamps); written (relaxed, the same value by every helper)
 * before the block is published by S5.
 */
struct shm_policy {
    uint16_t nrules;
    uint16_t flags;     /* enum rl_policy_flags */
    uint32_t expire_ms; /* ms a tenant may idle beyond its longest window, 0: never (tenant.c) */
    uint64_t margin_ns;
    rl_atomic64 next_off;
    uint64_t carry_at;
    rl_atomic64 carry_excess[RL_MAX_RULES];
    struct shm_rule rules[]; /* nrules entries */
};

_Static_assert(sizeof(struct shm_header) == RL_HEADER_BYTES, "header is one page");
_Static_assert(offsetof(struct shm_header, epoch) == 256, "the epoch has its own line");
_Static_assert(offsetof(struct shm_header, limbo) == 320, "list heads follow the epoch line");
_Static_assert(sizeof(struct shm_reader) == RL_ALIGN, "one reader slot per line");
_Static_assert(sizeof(struct shm_block_head) == RL_ALIGN, "a block's head is one line");
_Static_assert(offsetof(struct shm_header, next_bucket) == 128, "header layout is pinned");
_Static_assert(offsetof(struct shm_header, applied_digest) == 152, "carved from reserved");
_Static_assert(offsetof(struct shm_header, shim_attaches) == 160, "carved from reserved");
_Static_assert(sizeof(struct shm_bucket) == 192, "bucket record layout is pinned");
_Static_assert(offsetof(struct shm_bucket, margin) < RL_ALIGN, "decisions read it with the rest");
_Static_assert(sizeof(struct shm_bucket) % RL_ALIGN == 0, "records are cache-line aligned");
_Static_assert(offsetof(struct shm_bucket, counters) == 2 * RL_ALIGN &&
                   sizeof(struct shm_counters) == RL_ALIGN,
               "the counters, written by every decision, fill the last line alone");
_Static_assert(sizeof(struct shm_rule) == 64, "a rule and its state word fill a cache line");
_Static_assert(sizeof(struct shm_policy) == 64, "policy header fills a cache line");
_Static_assert(offsetof(struct shm_rule, word) % 8 == 0, "state words are naturally aligned");

#endif /* RL_SHM_FORMAT_H */
