/*
 * guard.c - contain a SIGBUS on a table mapping.
 *
 * A table file truncated under running processes leaves their mappings pointing past the
 * end of the file: the next access to a lost page raises SIGBUS, which kills the process.
 * With the guard installed (rl_guard_install), the handler looks the faulting address up
 * in a registry of table mappings. Inside one, it maps anonymous memory over the whole
 * table, so the access completes on zeros, and marks the table lost: every later decision
 * on it returns RL_ESTALE, and one in flight when it happened does not admit. Any other
 * SIGBUS goes to the program's previous handler, or kills as it would have.
 *
 * The registry is a fixed array read by the handler without locks. A slot is claimed with
 * a CAS on `used`; its fields are written, then `base` is published with a release store
 * (G1) that the handler's acquire load (G2) pairs with. Removal clears `base` first.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "guard.h"

#define GUARD_SLOTS 64

struct guard_slot {
    rl_atomic64 used; /* 0 free, 1 claimed */
    rl_atomic64 base; /* the mapping's address once published (G1), 0 if none */
    uint64_t size;
    int prot;
    rl_atomic32 *lost; /* the table's flag */
};

static struct guard_slot slots[GUARD_SLOTS];
static struct sigaction previous;
static rl_atomic64 installed; /* 0 no, 1 yes (or being installed) */

void rl__guard_register(rl_table *t)
{
    t->guard_slot = -1;
    for (int i = 0; i < GUARD_SLOTS; i++) {
        uint64_t free_ = 0;
        /* Acq_rel: the claim orders after the last owner's release of `used`. */
        if (!rl__cas_acq_rel(&slots[i].used, &free_, 1))
            continue;
        slots[i].size = t->size;
        slots[i].prot = PROT_READ | (t->read_only ? 0 : PROT_WRITE);
        slots[i].lost = &t->lost;
        /* G1: release publishes size, prot and lost to the handler's G2. */
        rl__store_release(&slots[i].base, (uint64_t)(uintptr_t)t->base);
        t->guard_slot = i;
        return;
    }
}

void rl__guard_unregister(rl_table *t)
{
    if (t->guard_slot < 0)
        return;
    struct guard_slot *s = &slots[t->guard_slot];
    /* Release: the handler stops matching before the slot can be reused (pairs with G2). */
    rl__store_release(&s->base, 0);
    rl__store_release(&s->used, 0); /* release: pairs with the claiming CAS */
    t->guard_slot = -1;
}

int rl__guard_lost(const rl_table *t)
{
    return rl__fail(RL_ESTALE,
                    "table %s was truncated under this process: its state is lost; reopen it",
                    t->path);
}

/* The slot whose mapping holds addr, or NULL. Async-signal-safe. */
static struct guard_slot *slot_of(uintptr_t addr)
{
    for (int i = 0; i < GUARD_SLOTS; i++) {
        /* G2: acquire pairs with G1. */
        uint64_t base = rl__load_acquire(&slots[i].base);
        if (base && addr >= base && addr - base < slots[i].size)
            return &slots[i];
    }
    return NULL;
}

/* Not a table's fault: what the program asked for before us. */
static void pass_on(int sig, siginfo_t *info, void *ctx)
{
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, info, ctx);
        return;
    }
    if (previous.sa_handler == SIG_IGN && info->si_code <= 0)
        return; /* sent by kill() or raise(), and ignored */
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    /* Die as without us: the signal stays blocked until we return, then kills. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGBUS, &dfl, NULL);
    raise(SIGBUS);
}

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
    int saved = errno;
    struct guard_slot *s = info->si_code > 0 ? slot_of((uintptr_t)info->si_addr) : NULL;
    if (!s) {
        errno = saved;
        pass_on(sig, info, ctx);
        return;
    }
    /* Release: pairs with G3. Set before the memory changes, so a thread that reads the
     * zeros also sees the flag. */
    rl__store32_release(s->lost, 1);
    void *base = (void *)(uintptr_t)rl__load_acquire(&s->base); /* G2 */
    if (mmap(base, s->size, s->prot, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
        MAP_FAILED) {
        errno = saved;
        pass_on(sig, info, ctx); /* the fault would repeat forever */
        return;
    }
    errno = saved;
}

int rl_guard_install(void)
{
    uint64_t no = 0;
    /* Acq_rel: one caller installs; a failed one resets the flag with a release store. */
    if (!rl__cas_acq_rel(&installed, &no, 1))
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    if (sigaction(SIGBUS, NULL, &previous) < 0) {
        rl__store_release(&installed, 0); /* release: pairs with the CAS above */
        return rl__fail(RL_ESYS, "cannot read the SIGBUS handler: %s", strerror(errno));
    }
    /* The program's choice of stack and restart carries over to its handler, run from ours. */
    sa.sa_flags = SA_SIGINFO | (previous.sa_flags & (SA_ONSTACK | SA_RESTART));
    sa.sa_mask = previous.sa_mask;
    if (sigaction(SIGBUS, &sa, NULL) < 0) {
        rl__store_release(&installed, 0); /* release: pairs with the CAS above */
        return rl__fail(RL_ESYS, "cannot install the SIGBUS handler: %s", strerror(errno));
    }
    return 0;
}
