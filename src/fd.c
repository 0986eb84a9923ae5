/*
 * fd.c - the library's own file descriptors: opened above 2, a table file opened again for
 * a lock of this process's own, and table space reserved before the mapping writes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"

int rl__fd_open(const char *path, int flags, unsigned mode)
{
    int fd = open(path, flags, (mode_t)mode);
    if (fd < 0 || fd > 2)
        return fd;
    /* Descriptors 0-2 were closed: a program's next write to "stderr" would go into our
     * file. Move it up; the copy keeps close-on-exec. */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return high;
}

/* Do descriptors a and b name one file? */
static bool same_file(int a, int b)
{
    struct stat x, y;
    return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int rl__fd_reopen(int fd, const char *path)
{
    /* /proc/self/fd/N opens the file fd names even if its path now names another (a
     * resize, a replaced file). Without /proc, the path, if it still names that file. */
    char proc[32];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int own = rl__fd_open(proc, O_RDWR | O_CLOEXEC | O_NOCTTY, 0);
    if (own < 0)
        own = rl__fd_open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK, 0);
    if (own >= 0 && !same_file(fd, own)) {
        close(own);
        return -1;
    }
    return own;
}

void rl__fd_drop(int fd, int table_fd)
{
    /* A program that closed the inherited descriptor may have opened another file there. */
    if (same_file(fd, table_fd))
        close(fd);
}

int rl__fd_lock(int fd, uint64_t off, bool on)
{
    struct flock l = {
        .l_type = on ? F_WRLCK : F_UNLCK, .l_whence = SEEK_SET, .l_start = (off_t)off, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &l);
}

int rl__fd_locked(int fd, uint64_t off)
{
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)off, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &l) < 0)
        return -1;
    return l.l_type != F_UNLCK;
}

int rl__fd_reserve(int fd, const char *path, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    /* Linux fallocate, not posix_fallocate: the latter's fallback writes zeros over pages
     * another process may be using. Mode 0 inside the file's size keeps the size and the
     * contents; on pages already reserved it is cheap. */
    int rc;
    while ((rc = fallocate(fd, 0, (off_t)off, (off_t)len)) < 0 && errno == EINTR)
        ;
    if (rc == 0 || errno == EOPNOTSUPP || errno == ENOSYS)
        return 0;
    if (errno == ENOSPC)
        return rl__fail(RL_EFULL, "table %s: the file system is full: %llu more bytes are needed",
                        path, (unsigned long long)len);
    return rl__fail(RL_ESYS, "table %s: cannot reserve %llu bytes: %s", path,
                    (unsigned long long)len, strerror(errno));
}

/* From the process's copy of the geometry, not the shared header. */
static uint64_t buckets_off(const rl_table *t)
{
    return (uint64_t)((unsigned char *)t->buckets - t->base);
}

int rl__table_reserve(const rl_table *t, uint64_t records, uint64_t arena_bytes)
{
    /* Acquire: as in rl__claim; only a hint here, the claim decides. */
    uint64_t next = rl__load_acquire(&t->hdr->next_bucket);
    uint64_t used = rl__load_acquire(&t->hdr->arena_used);
    uint64_t rec_bytes = sizeof(struct shm_bucket);
    if (next > t->capacity || records > t->capacity - next)
        records = next < t->capacity ? t->capacity - next : 0; /* the claim reports it */
    if (used > t->arena_bytes || arena_bytes > t->arena_bytes - used)
        arena_bytes = used < t->arena_bytes ? t->arena_bytes - used : 0;
    int err =
        rl__fd_reserve(t->fd, t->path, buckets_off(t) + next * rec_bytes, records * rec_bytes);
    return err ? err
               : rl__fd_reserve(t->fd, t->path, (uint64_t)(t->arena - t->base) + used, arena_bytes);
}
