/*
 * interpose.c - the only symbols libratelimit-preload.so exports: connect() and sendto().
 * Each asks shim_admit() and then calls the next definition in the lookup order (libc's,
 * or another preloaded shim's), found with dlsym(RTLD_NEXT). Should dlsym fail, the system
 * call is made directly, so the host program never loses its connect.
 *
 * The caller's address is never dereferenced: it is copied with process_vm_readv on our
 * own process, which fails with EFAULT instead of faulting. An address the copy cannot read
 * goes straight to the real call untouched, so the kernel answers EFAULT as without the
 * shim. Only the bytes the kernel would read are copied (len, at most a sockaddr_in6).
 *
 * glibc declares the address parameter as __CONST_SOCKADDR_ARG, a transparent union under
 * _GNU_SOURCE; the definitions below use the same type to match the declarations.
 */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../atomics.h"
#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

/* A transparent union is passed as its first member: these are the same functions. */
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);

/* dlsym(RTLD_NEXT, name) results, looked up on first use. Acquire/CAS: the pointer is
 * published once; racing lookups find the same value and the loser's CAS changes nothing. */
static void *_Atomic next_connect;
static void *_Atomic next_sendto;

static void *next_symbol(void *_Atomic *slot, const char *name)
{
    void *fn = rl__ptr_load_acquire(slot), *none = NULL;
    if (fn)
        return fn;
    fn = dlsym(RTLD_NEXT, name);
    if (fn)
        rl__ptr_cas_acq_rel(slot, &none, fn);
    return fn;
}

/* The next connect(): a function pointer from dlsym's object pointer (memcpy: ISO C has no
 * conversion between them; POSIX guarantees they have one representation). */
static int real_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    void *sym = next_symbol(&next_connect, "connect");
    connect_fn fn;
    if (!sym)
        return (int)syscall(SYS_connect, fd, sa, len);
    memcpy(&fn, &sym, sizeof(fn));
    return fn(fd, sa, len);
}

static ssize_t real_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
                           socklen_t len)
{
    void *sym = next_symbol(&next_sendto, "sendto");
    sendto_fn fn;
    if (!sym)
        return (ssize_t)syscall(SYS_sendto, fd, buf, n, flags, sa, len);
    memcpy(&fn, &sym, sizeof(fn));
    return fn(fd, buf, n, flags, sa, len);
}

/*
 * The decision for a connect to the caller's sa: copy what the kernel would read, then ask
 * shim_admit. 0 (go ahead, also when sa is unreadable: the real call fails with EFAULT) or
 * the errno to fail with. Without process_vm_readv (ENOSYS, or a seccomp filter) the
 * address is read directly, as before.
 */
static int admit(int fd, const struct sockaddr *sa, socklen_t len)
{
    struct sockaddr_in6 copy; /* the largest address shim_dest_from reads */
    size_t n = len < (socklen_t)sizeof(copy) ? (size_t)len : sizeof(copy);
    struct iovec local = {&copy, n}, remote = {(void *)(uintptr_t)sa, n};
    if (!sa || n == 0)
        return shim_admit(fd, sa, len);
    int saved = errno;
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    bool unavailable = got < 0 && (errno == ENOSYS || errno == EPERM);
    errno = saved;
    if (unavailable)
        return shim_admit(fd, sa, len);
    if (got != (ssize_t)n)
        return 0; /* unreadable: the kernel will say EFAULT */
    return shim_admit(fd, (const struct sockaddr *)&copy, (socklen_t)n);
}

EXPORT int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    const struct sockaddr *sa = addr.__sockaddr__;
    int err = admit(fd, sa, len);
    if (err) {
        errno = err;
        return -1;
    }
    return real_connect(fd, sa, len);
}

/* sendto(MSG_FASTOPEN) to an address opens a TCP connection too (TCP Fast Open). */
EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr,
                      socklen_t len)
{
    const struct sockaddr *sa = addr.__sockaddr__;
    int err = (flags & MSG_FASTOPEN) && sa ? admit(fd, sa, len) : 0;
    if (err) {
        errno = err;
        return -1;
    }
    return real_sendto(fd, buf, n, flags, sa, len);
}
