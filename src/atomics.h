/*
 * atomics.h - the one door to atomics. Every atomic access in src/ goes through these
 * wrappers, so the ordering is always explicit at the call site (tests/lint_atomics.sh
 * fails if <stdatomic.h> operations appear anywhere else).
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

static inline bool rl__ptr_cas_acq_rel(void *_Atomic *p, void **expected, void *desired)
{
    return atomic_compare_exchange_strong_explicit(p, expected, desired, memory_order_acq_rel,
                                                   memory_order_acquire);
}

#endif /* RL_ATOMICS_H */
