/*
 * stdfds.h - what every program of tools/ does first: fds 0, 1 and 2 open (on /dev/null)
 * if they were closed, before anything else is opened. Else the next file opened (a lock,
 * a status file, a config) would get one of them, and a message written to stdout or
 * stderr would land in it. The library keeps its own files above 2 by itself.
 */
#ifndef RL_TOOLS_STDFDS_H
#define RL_TOOLS_STDFDS_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>

static inline bool standard_fds_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* The lowest free fd: fd itself, since those below it are open. */
        if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
            return false;
    }
    return true;
}

#endif /* RL_TOOLS_STDFDS_H */
