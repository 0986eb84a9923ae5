/*
 * clock.c - the one clock decisions use: CLOCK_MONOTONIC, relative to the table's epoch;
 * and the fixed windows' alignment to the wall clock.
 *
 * Alignment. Fixed windows are multiples of T in wall-clock time: relative instant t is in
 * window (t + epoch + wall_offset) / T. The offset (CLOCK_REALTIME - CLOCK_MONOTONIC) was
 * measured at creation, and goes stale when the wall clock is set (a table made at boot,
 * before NTP), or when the two clocks drift apart (suspend, a VM paused). So each process,
 * at most once a second (a process-local timestamp, on a fixed-window decision), measures
 * it again; if it moved by more than RL_WALL_DRIFT_NS, it stores the new one in the header
 * with the other generation parity (O3). A word of a fixed rule records the parity of the
 * alignment its window belongs to; rule_fixed.c carries a word of the previous alignment
 * over into the new one (its argument for "never more than N per window" is there).
 * Header values out of bounds are never taken; one with the parity of ours, another value
 * and far from the clocks is damage (a real change flips the parity), repaired to ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "internal.h"

#define WALL_CHECK_NS 1000000000ULL /* one drift check a second per table and process */

uint64_t rl_now_ns(void)
{
    return rl__clock_mono();
}

int rl__boot_id(char out[40])
{
    memset(out, 0, 40);
    int fd = rl__fd_open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return RL_ESYS;
    ssize_t n = read(fd, out, 39);
    int saved = errno;
    close(fd);
    if (n <= 0) {
        errno = n < 0 ? saved : EIO;
        return RL_ESYS;
    }
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

bool rl__wall_offset_read(const struct shm_header *h, int64_t *cur, int64_t *prev)
{
    /* O1: acquire pairs with O3: the offset's predecessor, stored before it, is visible. */
    int64_t c = (int64_t)rl__load_acquire(&h->wall_offset_ns);
    int64_t p = (int64_t)rl__load_relaxed(&h->wall_offset_prev); /* published by O3 */
    if (c > RL_WALL_OFFSET_MAX || c < -RL_WALL_OFFSET_MAX || p > RL_WALL_OFFSET_MAX ||
        p < -RL_WALL_OFFSET_MAX)
        return false;
    *cur = c;
    *prev = p;
    return true;
}

/* Take cur and prev as this process's alignment (t->wall: process-local words). */
static void adopt(const rl_table *t, int64_t cur, int64_t prev)
{
    rl__store_relaxed(&t->wall->prev, (uint64_t)prev);
    /* O2: release pairs with the acquire load in rule_fixed.c's alignment: prev first. */
    rl__store_release(&t->wall->offset, (uint64_t)cur);
}

static int64_t local_offset(const rl_table *t)
{
    /* O2: acquire pairs with adopt's release. */
    return (int64_t)rl__load_acquire(&t->wall->offset);
}

void rl__wall_sync(const rl_table *t)
{
    int64_t cur, prev, mine = local_offset(t);
    /* A change flips the parity. Out of bounds or the same parity: damage or two changes,
     * which the drift check sorts out against the clocks. */
    if (rl__wall_offset_read(t->hdr, &cur, &prev) && (cur & 1) != (mine & 1))
        adopt(t, cur, prev);
}

static int64_t distance(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

/* CLOCK_REALTIME - CLOCK_MONOTONIC now, read between two monotonic readings close enough
 * together that a preemption cannot pass for drift; false if none were. */
static bool measure(int64_t *out)
{
    for (int i = 0; i < 3; i++) {
        uint64_t before = rl__clock_mono();
        int64_t wall = rl__wall_now_ns();
        uint64_t after = rl__clock_mono();
        if (after - before < RL_WALL_DRIFT_NS / 10) {
            *out = wall - (int64_t)(before + (after - before) / 2);
            return *out <= RL_WALL_OFFSET_MAX && *out >= -RL_WALL_OFFSET_MAX;
        }
    }
    return false;
}

/* Replace the header's alignment word `seen` by `next` (prev: the one it follows). */
static bool publish(const rl_table *t, uint64_t seen, int64_t next, int64_t prev)
{
    /* Relaxed: published by the CAS below (O3). A racing re-aligner stores the same
     * predecessor or loses the CAS; two changes within one check are the limit
     * rule_fixed.c states. */
    rl__store_relaxed(&t->hdr->wall_offset_prev, (uint64_t)prev);
    /* O3: acq_rel CAS; release publishes wall_offset_prev to O1. */
    if (!rl__cas_acq_rel(&t->hdr->wall_offset_ns, &seen, (uint64_t)next))
        return false;
    adopt(t, next, prev);
    return true;
}

/*
 * The drift check, against the clocks just measured:
 *   header = ours                   re-align if the clocks drifted from it
 *   header near the clocks          take it (another process re-aligned, once or twice)
 *   header of the other parity      take it, then as above (a change we had not seen)
 *   header damaged, or same parity  put ours back (a change flips the parity), then as
 *   and far from the clocks         above
 * A read-only attachment only takes; it never writes the header.
 */
static void check_now(const rl_table *t)
{
    int64_t mine = local_offset(t), measured, cur, prev;
    if (!measure(&measured))
        return;
    uint64_t raw = rl__load_relaxed(&t->hdr->wall_offset_ns); /* relaxed: the CAS's guess */
    bool valid = rl__wall_offset_read(t->hdr, &cur, &prev);
    if (valid && cur != mine && distance(cur, measured) <= (int64_t)RL_WALL_DRIFT_NS) {
        adopt(t, cur, prev);
        return;
    }
    if (valid && (cur & 1) != (mine & 1)) {
        adopt(t, cur, prev);
        mine = cur;
        raw = (uint64_t)cur;
    } else if (!valid || cur != mine) {
        if (t->read_only || !publish(t, raw, mine, (int64_t)rl__load_relaxed(&t->wall->prev)))
            return;
        raw = (uint64_t)mine;
    }
    if (!t->read_only && distance(measured, mine) > (int64_t)RL_WALL_DRIFT_NS)
        publish(t, raw, (measured & ~1LL) | ((mine & 1) ^ 1), mine);
}

void rl__wall_check(const rl_table *t, uint64_t now)
{
    /* Relaxed: a process-local timestamp; the CAS lets one thread a second check. `now`
     * may be a waiter's later instant: the stamp is this process's clock reading. */
    uint64_t last = rl__load_relaxed(&t->wall->checked);
    if (last && (now < last || now - last < WALL_CHECK_NS))
        return;
    if (rl__cas_acq_rel(&t->wall->checked, &last, rl__clock_rel(t))) /* T2: the claim only */
        check_now(t);
}
