/* clock.c - the one clock decisions use: CLOCK_MONOTONIC, relative to the table's epoch. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "internal.h"

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
