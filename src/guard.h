/*
 * guard.h - how the library keeps a table file from hurting the process that maps it:
 * its descriptors stay above 2 (fd.c), the pages it writes are reserved first (fd.c), and a
 * SIGBUS on a lost mapping is contained (guard.c). fd.c also holds the byte locks that tell
 * a reader slot's owner alive (reclaim.c).
 */
#ifndef RL_GUARD_H
#define RL_GUARD_H

#include <stdint.h>

#include "internal.h"

#pragma GCC visibility push(hidden)

/* open(2), but the descriptor is never 0, 1 or 2: a write to stderr must not land in a
 * table. -1 with errno on failure. */
int rl__fd_open(const char *path, int flags, unsigned mode);

/* A descriptor of fd's file (named path) with an open file description of its own
 * (O_RDWR, close-on-exec, above 2): an OFD lock on it is this process's alone, and goes
 * when the process exits or execs. -1 with errno if the file cannot be opened again. */
int rl__fd_reopen(int fd, const char *path);

/* Close fd, inherited from a parent process, if it still names table_fd's file. */
void rl__fd_drop(int fd, int table_fd);

/* Take (on) or drop an OFD write lock on byte `off` of fd's file, without waiting: 0, or
 * -1 with errno (EAGAIN: another open file description holds it; EINVAL: this kernel or
 * file system has no OFD locks). */
int rl__fd_lock(int fd, uint64_t off, bool on);

/* Does an open file description other than fd's hold a lock on byte `off`? 1 yes, 0 no,
 * -1 with errno. */
int rl__fd_locked(int fd, uint64_t off);

/* Reserve bytes [off, off+len) of table file fd (named path) before they are first written
 * through a mapping: a full tmpfs then fails here, not with a SIGBUS. 0, RL_EFULL or
 * RL_ESYS, with a detail naming the table. A file system that cannot reserve passes. */
int rl__fd_reserve(int fd, const char *path, uint64_t off, uint64_t len);

/* Reserve the next `records` bucket records and `arena_bytes` of arena as the counters
 * stand now: done before a claim, so a full file system takes nothing. */
int rl__table_reserve(const rl_table *t, uint64_t records, uint64_t arena_bytes);

/* Register t's mapping with the SIGBUS guard (no-op if every slot is taken), and remove it
 * before the mapping goes. */
void rl__guard_register(rl_table *t);
void rl__guard_unregister(rl_table *t);

/* rl__guard_check's rare half: RL_ESTALE with a detail naming the table. */
int rl__guard_lost(const rl_table *t);

/* Has the guard replaced t's mapping (the file was truncated under it)? If so,
 * RL_ESTALE with a detail; else 0. Inline: every decision asks twice. */
static inline int rl__guard_check(const rl_table *t)
{
    /* G3: acquire pairs with the handler's release store of the flag. */
    if (__builtin_expect(rl__load32_acquire(&t->lost) == 0, 1))
        return 0;
    return rl__guard_lost(t);
}

#pragma GCC visibility pop

#endif /* RL_GUARD_H */
