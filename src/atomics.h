/*
 * atomics.h - the one door to atomics. Every atomic access in src/ goes through these
 * wrappers, so the ordering is always explicit at the call site. `tests/lint.sh atomics`
 * fails if <stdatomic.h> operations appear anywhere else.
 *
 * Every acquire, release and CAS carries a label at its call site. This is the index.
 * "pairs" names the other side of each edge. Every CAS is acq_rel on success and acquire
 * on failure.
 *
 * label file:function                       order   pairs    publishes, or what it orders
 * A1    shm_index.c:record_names            acquire R1       the record's name and fields
 * A3    block.c:rl__bucket_view             seq_cst R1, S5   the current policy block (seq_cst:
 *       internal.h:rl__bucket_view_cached           X6       X2, a section's reference)
 *       counters.c:block_admissions
 * A4    bucket.c:rl__bucket_handle          acquire R1       the record is final
 *       bucket.c:rl_table_foreach
 * A5    acquire.c:plan_load                 acquire C2 U1 S3 a state word (a sliding head:
 *       acquire_gcra.c:chain_load                   S4 Z1 F2 the log entries it needs)
 *                                                   Q1
 *       rule.h:rl__rule_ctx_load
 *       rule_lease.c:rl__lease_load
 * A6    update.c:rl__switch_help            acquire S2       block B's rules, carry_at
 * A7    acquire.c:plan_load                 acquire F1       the cool-down in force
 *       acquire_gcra.c:chain_load
 * A8    acquire.c:turn_voided_until         acquire F1       cool-down start (last_429), end
 * I1    shm_index.c (every slot access)     seq_cst I1       claims, scans, confirmations and
 *                                                            tombstones of index slots: the
 *                                                            later of two creators sees the
 *                                                            other (file comment); a claim
 *                                                            publishes its record (R1)
 * C2    acquire.c:plan_commit               CAS     A5       one rule's decision (the
 *       acquire_gcra.c:chain_commit                          linearization point)
 * U1    acquire.c:rule_undo                 CAS     A5       the word restored, if ours
 *       acquire_gcra.c:chain_commit
 * R1    bucket.c:record_create              release A1 A3 A4 name, parent, first block
 * R3    bucket.c:record_create              seq_cst A9 B3    the reference, after the record's
 *                                                            generation, name, parent (record.c)
 * A9    shm_index.c:record_names, block.c:  acquire R3       a record's generation after its
 *       gen_ok, bucket.c:rl__bucket_handle,                  reference: a reused record
 *       child_find                                           refuses a stale handle
 * B1    bucket.c:record_create (R3)         seq_cst B4       a child published, then ...
 * B2    bucket.c:parent_lost                seq_cst B4       ... its parent's reference read
 * B3    bucket.c:child_find                 seq_cst R3 I1    after B4: late children found
 * B4    bucket.c:delete_in_section          CAS sc  B2       the parent's reference to 0
 * J1    record.c:rl__record_retire          seq_cst I1 X5    the epoch after the tombstone
 * J3    record.c:push                       CAS     J5       a record on a list, its link
 * J4    record.c:pop_ok, collect, retire    rel/acq J4       a record's list state
 * J5    record.c:pop                        CAS     J3       a record taken (the tag: no ABA)
 * R2    rule_sliding.c:unit_tick            acquire C2       an unmoved head: repair
 * S1    update.c:rl_bucket_update           relaxed S2       block B's contents
 * S2    update.c:rl_bucket_update           CAS     A6       block B, filled by S1
 * S3    update.c:freeze                     CAS     A5 C2    frozen: no commit succeeds
 * S4    update.c:rl__switch_help            CAS     A5       B's first state, its log
 * S5    update.c:rl__switch_help            CAS sc  A3 X6    B is current, filled in; P unlinked
 * D1    update.c:rl__switch_close           CAS     S2 A6    a delete's claim: no S2 after it
 * L1    rule_sliding.c:unit_tick            acquire W1 W2 Z1 a log entry's tick
 * W1    rule_sliding.c:unit_tick            CAS     L1       a helped log entry
 * W2    rule_sliding.c:rl__sliding_finalize CAS     L1       a written log entry
 * Z1    rule_*.c:rl__*_reset                CAS     A5 L1    the reset state
 * F1    feedback.c:raise_to, raise_429      CAS     A7 A8    a cool-down, the last 429
 * F2    feedback.c:reconcile                CAS     A5 C2    the server rule's word
 * M1    margin.h:rl__margin_effective       relaxed M2       the learned margin (orders
 *       margin.c:rl__margin_report                          nothing: any value read is
 *       margin.c:rl__margin_read                            at least the configured one)
 * M2    margin.c:rl__margin_report          CAS     M1       margin, delay estimate, steps
 * M3    margin.c:claim_widening             CAS     M3       one widening per event
 * Q1    rule_lease.c:rl__lease_swap         CAS     A5 C2    a new lease from Redis
 * K1    reclaim.c:rl__claim                 CAS     K1       a unique number or range
 * X1    reclaim.c:rl__section_enter         seq_cst X4       active[p] raised, then E re-read:
 *                                                            a section is counted before it
 *                                                            loads a reference (Dekker, X6)
 * X2    (every seq_cst policy_off load, A3) seq_cst X6       after X1: the block is not freed
 * X3    reclaim.c:rl__section_exit          acq_rel X4       the section's reads are over
 * X4    reclaim.c:slot_drained              seq_cst X1 X3    the slot's sections of parity p
 * X5    reclaim.c:epoch_advance             CAS sc  X1       the epoch, once parity p drained
 * X6    reclaim.c:rl__block_retire          seq_cst S5 X5    the epoch after the unlink
 * X7    reclaim.c:list_push                 CAS     X8       a node and its head line
 * X8    reclaim.c:list_pop                  CAS     X7       a node taken (the tag: no ABA)
 * Z2    resize.c:rl_table_resize            seq_cst Z3       moved: then the epoch advances
 *                                                            twice (all older sections end)
 * Z3    reclaim.c:rl__table_moved           seq_cst Z2 X1    after X1: a section that misses
 *                                                            moved ended before the copy
 * X9    reclaim.c:pop_ok (acquire), block_  rel/acq X9       a block's list state: a list
 *       free, rl__block_retire, _alloc                       takes only its own nodes
 * X10   reclaim.c:reader_claim (CAS),      rel/acq X10      this process's slot, its counters
 *       reader_of (acquire)                                  reset (process)
 * X11   reclaim.c:rl__block_alloc           fences  X11      a reused block's generation (and
 *       (release), block.c:rl__bucket_                       the reference moved off it before)
 *       view_settled (acquire)                               before its contents: a read-only
 *                                                            copy that saw them sees that
 * E1    tenant.c:cursor_next                CAS     E1       the next record a sweep examines
 *                                                            (orders nothing)
 * E2    bucket.c:note_parent (CAS),         seq_cst B1 B4    parents_below covers a parent
 *       child_find (load)                                    before its child is published
 * P1    block.c:rl__bucket_view_refresh     rel ptr A3 (ptr) the current slot (process)
 * P2    bucket.c:handle_make                CAS ptr A4 (ptr) a handle (process)
 * P3    block.c:slots_of                    CAS ptr P3       a handle's view slots (process)
 * P4    bucket.c:handle_retire (xchg),      seq_cst X1 X5    a replaced handle's slots
 *       internal.h:rl__bucket_view_cached                    detached before the epoch read:
 *                                                            freed after two advances
 * P5    bucket.c:dead_push, dead_collect    CAS ptr P5       replaced handles (process)
 * V1    block.c:slot_for                    acquire V2       a ready slot's view (process)
 * V2    block.c:slot_for                    release V1       a slot filled (process)
 * G1    shim/deepbind.c:patch_slot          release (none)   a GOT slot: another object's
 *                                                            calls now reach the shim
 *       shim/deepbind.c:shim_deepbind_init  release (asm)    the next dlopen (x86-64 load)
 * T1    shm_table.c:rl_table_reopen_if_... CAS     T1       one check a second (process)
 * T2    clock.c:rl__wall_check              CAS     T2       one drift check a second
 * O1    clock.c:rl__wall_offset_read        acquire O3       wall_offset_prev with it
 * O2    clock.c:adopt (release)             rel/acq O2       a process's prev with its
 *       rule_fixed.c:align_of (acquire)                      new alignment (process)
 * O3    clock.c:realign, rl__wall_sync      CAS     O1       a new alignment, its prev
 * H1    shim/http.c:fifo_push               release FIFO A   a request's kind (process)
 * H2    shim/http.c:response_body           release FIFO A   a FIFO slot free again
 * H3    shim/http.c:response_body           release expect A a final answer to Expect
 * H4-H7 shim/fd.c (file comment)            seq_cst H4-H7    a per-fd state's lifetime
 * N1    shim/tls.c:shim_tls_real            acquire N2       a call site's slot (process)
 * N2    shim/tls.c:shim_tls_real            CAS ptr N1       a call site's slot claimed
 * N3    shim/tls.c:shim_tls_real            acquire N4       the site's real function
 * N4    shim/tls.c:shim_tls_real            CAS ptr N3       the site's real function set
 *
 * Relaxed accesses (statistics, fields published by one of the edges above) say why at
 * the call site.
 */
#ifndef RL_ATOMICS_H
#define RL_ATOMICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef _Atomic uint64_t rl_atomic64;
typedef _Atomic uint32_t rl_atomic32;

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free: they live in "
                                            "shared memory and are used by several processes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(sizeof(rl_atomic64) == 8, "an atomic word is a plain 64-bit word in the file");

static inline uint64_t rl__load_acquire(const rl_atomic64 *p)
{
    return atomic_load_explicit((rl_atomic64 *)p, memory_order_acquire);
}

static inline uint64_t rl__load_relaxed(const rl_atomic64 *p)
{
    return atomic_load_explicit((rl_atomic64 *)p, memory_order_relaxed);
}

static inline void rl__store_release(rl_atomic64 *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_release);
}

static inline void rl__store_relaxed(rl_atomic64 *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

/* CAS with acq_rel on success (publishes what we wrote before, sees what the previous
 * writer published) and acquire on failure (the fresh value is used to retry). */
static inline bool rl__cas_acq_rel(rl_atomic64 *p, uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(p, expected, desired, memory_order_acq_rel,
                                                   memory_order_acquire);
}

/* Sequentially consistent CAS: the rule switch's S5 and the epoch advance (reclaim.c). */
static inline bool rl__cas_seq_cst(rl_atomic64 *p, uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(p, expected, desired, memory_order_seq_cst,
                                                   memory_order_seq_cst);
}

static inline void rl__store_seq_cst(rl_atomic64 *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_seq_cst);
}

static inline uint64_t rl__xchg_relaxed(rl_atomic64 *p, uint64_t v)
{
    return atomic_exchange_explicit(p, v, memory_order_relaxed);
}

static inline uint64_t rl__fetch_add_relaxed(rl_atomic64 *p, uint64_t v)
{
    return atomic_fetch_add_explicit(p, v, memory_order_relaxed);
}

static inline uint64_t rl__fetch_add_acq_rel(rl_atomic64 *p, uint64_t v)
{
    return atomic_fetch_add_explicit(p, v, memory_order_acq_rel);
}

static inline uint32_t rl__load32_acquire(const rl_atomic32 *p)
{
    return atomic_load_explicit((rl_atomic32 *)p, memory_order_acquire);
}

static inline void rl__store32_release(rl_atomic32 *p, uint32_t v)
{
    atomic_store_explicit(p, v, memory_order_release);
}

/* Process-local pointers (per-process handle cache): publish an immutable object. */
static inline void *rl__ptr_load_acquire(void *_Atomic const *p)
{
    return atomic_load_explicit((void *_Atomic *)p, memory_order_acquire);
}

static inline void rl__ptr_store_release(void *_Atomic *p, void *v)
{
    atomic_store_explicit(p, v, memory_order_release);
}

static inline bool rl__ptr_cas_acq_rel(void *_Atomic *p, void **expected, void *desired)
{
    return atomic_compare_exchange_strong_explicit(p, expected, desired, memory_order_acq_rel,
                                                   memory_order_acquire);
}

static inline void *rl__ptr_load_relaxed(void *_Atomic const *p)
{
    return atomic_load_explicit((void *_Atomic *)p, memory_order_relaxed);
}

/* Sequentially consistent: the shim's per-fd table (shim/fd.c), a Dekker-style handshake
 * between a hook and a forgetter that acquire/release cannot order. */
static inline void *rl__ptr_load_seq_cst(void *_Atomic const *p)
{
    return atomic_load_explicit((void *_Atomic *)p, memory_order_seq_cst);
}

static inline void *rl__ptr_xchg_seq_cst(void *_Atomic *p, void *v)
{
    return atomic_exchange_explicit(p, v, memory_order_seq_cst);
}

/* Fences: only where a reader in another process copies plain fields a writer may be
 * rewriting, and checks afterwards that it was not (X11). GCC refuses fences under
 * -fsanitize=thread, and TSan does not see other processes: there, a full barrier it does
 * not instrument. */
#ifdef __SANITIZE_THREAD__
static inline void rl__fence_release(void)
{
    __sync_synchronize();
}

static inline void rl__fence_acquire(void)
{
    __sync_synchronize();
}
#else
static inline void rl__fence_release(void)
{
    atomic_thread_fence(memory_order_release);
}

static inline void rl__fence_acquire(void)
{
    atomic_thread_fence(memory_order_acquire);
}
#endif

static inline uint64_t rl__load_seq_cst(const rl_atomic64 *p)
{
    return atomic_load_explicit((rl_atomic64 *)p, memory_order_seq_cst);
}

static inline uint64_t rl__fetch_add_seq_cst(rl_atomic64 *p, uint64_t v)
{
    return atomic_fetch_add_explicit(p, v, memory_order_seq_cst);
}

#endif /* RL_ATOMICS_H */
