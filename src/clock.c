/* clock.c - the one clock decisions use: CLOCK_MONOTONIC, relative to the table's epoch. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uint64_t rl_now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC is system-wide: every process of the host reads the same clock. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t rl_clock_rel(const rl_table *t)
{
    uint64_t now = rl_now_ns();
    uint64_t epoch = t->hdr->epoch_ns;
    /* The epoch was read from this boot's clock (boot id checked at attach). */
    return now > epoch ? now - epoch : 1; /* never 0: tick 0 means "never used" */
}

int rl_boot_id(char out[40])
{
    memset(out, 0, 40);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
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
