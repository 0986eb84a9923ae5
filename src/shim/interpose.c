/*
 * interpose.c - the only symbols libratelimit-preload.so exports: connect() and sendto(),
 * and the request-level shim's reads, writes and closes (at the end). The first two ask
 * shim_admit() and then calls the next definition in the lookup order (libc's,
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
#include "http.h"
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
    /* A route counting requests: the data (with Fast Open, the first request) is counted. */
    struct shim_http *h = shim_fd_hold(fd);
    struct iovec iov = {(void *)buf, n};
    if (h && (shim_in_tls || (err = shim_http_before_sendv(h, &iov, 1)) != 0)) {
        shim_http_free(h);
        if (err) {
            errno = err;
            return -1;
        }
        h = NULL;
    }
    ssize_t r = real_sendto(fd, buf, n, flags, sa, len);
    if (h) {
        err = errno;
        shim_http_after_sendv(h, &iov, 1, r > 0 ? (size_t)r : 0);
        shim_http_free(h);
        errno = err;
    }
    return r;
}

/* ------------------------------------------------------------------ request level
 *
 * The hooks of the request-level shim (route option `count requests`, http.c). A write
 * on a socket with state (fd.c) first parses its bytes and takes one unit per request head
 * in them; a read parses what came in and reports each response. Any other fd costs one
 * load. The TLS hooks set shim_in_tls around libssl's own reads and writes, which then pass
 * here untouched. Each hook keeps errno as the real call left it.
 */

/* The next definition of `name`, as a function pointer of type T (see real_connect). */
#define NEXT(T, slot, name)                                                                        \
    static void *_Atomic slot;                                                                     \
    static T next_##name(void)                                                                     \
    {                                                                                              \
        void *sym = next_symbol(&slot, #name);                                                     \
        T fn = NULL;                                                                               \
        if (sym)                                                                                   \
            memcpy(&fn, &sym, sizeof(fn));                                                         \
        return fn;                                                                                 \
    }

typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef ssize_t (*recvfrom_fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*readv_fn)(int, const struct iovec *, int);
typedef ssize_t (*recv_chk_fn)(int, void *, size_t, size_t, int);
typedef ssize_t (*recvfrom_chk_fn)(int, void *, size_t, size_t, int, struct sockaddr *,
                                   socklen_t *);
typedef ssize_t (*read_chk_fn)(int, void *, size_t, size_t);
typedef int (*close_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);
typedef int (*shutdown_fn)(int, int);

NEXT(send_fn, next_send_slot, send)
NEXT(sendmsg_fn, next_sendmsg_slot, sendmsg)
NEXT(write_fn, next_write_slot, write)
NEXT(writev_fn, next_writev_slot, writev)
NEXT(recv_fn, next_recv_slot, recv)
NEXT(recvfrom_fn, next_recvfrom_slot, recvfrom)
NEXT(recvmsg_fn, next_recvmsg_slot, recvmsg)
NEXT(read_fn, next_read_slot, read)
NEXT(readv_fn, next_readv_slot, readv)
NEXT(recv_chk_fn, next_recv_chk_slot, __recv_chk)
NEXT(recvfrom_chk_fn, next_recvfrom_chk_slot, __recvfrom_chk)
NEXT(read_chk_fn, next_read_chk_slot, __read_chk)
NEXT(close_fn, next_close_slot, close)
NEXT(dup2_fn, next_dup2_slot, dup2)
NEXT(dup3_fn, next_dup3_slot, dup3)
NEXT(shutdown_fn, next_shutdown_slot, shutdown)

/* The connection's state for a hook, or NULL: no state, or inside a TLS hook. */
static struct shim_http *state_of(int fd)
{
    struct shim_http *h = shim_fd_hold(fd);
    if (h && shim_in_tls) {
        shim_http_free(h);
        return NULL;
    }
    return h;
}

/* Before a counted write: 0, or -1 with errno set (the write fails, h is dropped). */
static int before_write(struct shim_http *h, const struct iovec *iov, int n)
{
    int err = shim_http_before_sendv(h, iov, n);
    if (!err)
        return 0;
    shim_http_free(h);
    errno = err;
    return -1;
}

/* After a counted write that returned r. Returns r with the write's errno. */
static ssize_t after_write(struct shim_http *h, const struct iovec *iov, int n, ssize_t r)
{
    int saved = errno;
    shim_http_after_sendv(h, iov, n, r > 0 ? (size_t)r : 0);
    shim_http_free(h);
    errno = saved;
    return r;
}

/* After a read of r bytes into iov (n buffers). Returns r with the read's errno. */
static ssize_t heard(int fd, const struct iovec *iov, int n, ssize_t r, int flags)
{
    struct shim_http *h;
    if (r <= 0 || (flags & MSG_PEEK) || !(h = state_of(fd)))
        return r;
    int saved = errno;
    if (flags & MSG_TRUNC)
        shim_http_give_up(h, "a read discarded response bytes (MSG_TRUNC)");
    size_t left = (size_t)r;
    for (int i = 0; i < n && left; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        shim_http_after_recv(h, iov[i].iov_base, k);
        left -= k;
    }
    shim_http_free(h);
    errno = saved;
    return r;
}

static ssize_t heard1(int fd, void *buf, ssize_t r, int flags)
{
    struct iovec iov = {buf, r > 0 ? (size_t)r : 0};
    return heard(fd, &iov, 1, r, flags);
}

/* A real call whose next definition dlsym could not find: the system call itself. */
#define CALL(name, ...) (next_##name() ? next_##name()(__VA_ARGS__) : sys_##name(__VA_ARGS__))

static ssize_t sys_send(int fd, const void *b, size_t n, int f)
{
    return (ssize_t)syscall(SYS_sendto, fd, b, n, f, NULL, 0);
}
static ssize_t sys_sendmsg(int fd, const struct msghdr *m, int f)
{
    return (ssize_t)syscall(SYS_sendmsg, fd, m, f);
}
static ssize_t sys_write(int fd, const void *b, size_t n)
{
    return (ssize_t)syscall(SYS_write, fd, b, n);
}
static ssize_t sys_writev(int fd, const struct iovec *v, int n)
{
    return (ssize_t)syscall(SYS_writev, fd, v, n);
}
static ssize_t sys_recv(int fd, void *b, size_t n, int f)
{
    return (ssize_t)syscall(SYS_recvfrom, fd, b, n, f, NULL, NULL);
}
static ssize_t sys_recvfrom(int fd, void *b, size_t n, int f, struct sockaddr *sa, socklen_t *l)
{
    return (ssize_t)syscall(SYS_recvfrom, fd, b, n, f, sa, l);
}
static ssize_t sys_recvmsg(int fd, struct msghdr *m, int f)
{
    return (ssize_t)syscall(SYS_recvmsg, fd, m, f);
}
static ssize_t sys_read(int fd, void *b, size_t n)
{
    return (ssize_t)syscall(SYS_read, fd, b, n);
}
static ssize_t sys_readv(int fd, const struct iovec *v, int n)
{
    return (ssize_t)syscall(SYS_readv, fd, v, n);
}
static ssize_t sys___recv_chk(int fd, void *b, size_t n, size_t cap, int f)
{
    (void)cap;
    return sys_recv(fd, b, n, f);
}
static ssize_t sys___recvfrom_chk(int fd, void *b, size_t n, size_t cap, int f, struct sockaddr *sa,
                                  socklen_t *l)
{
    (void)cap;
    return sys_recvfrom(fd, b, n, f, sa, l);
}
static ssize_t sys___read_chk(int fd, void *b, size_t n, size_t cap)
{
    (void)cap;
    return sys_read(fd, b, n);
}
static int sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}
static int sys_dup2(int old, int fd)
{
    return (int)syscall(SYS_dup3, old, fd, 0);
}
static int sys_dup3(int old, int fd, int flags)
{
    return (int)syscall(SYS_dup3, old, fd, flags);
}
static int sys_shutdown(int fd, int how)
{
    return (int)syscall(SYS_shutdown, fd, how);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    struct shim_http *h = state_of(fd);
    struct iovec iov = {(void *)buf, n};
    if (!h)
        return CALL(send, fd, buf, n, flags);
    if (before_write(h, &iov, 1) != 0)
        return -1;
    return after_write(h, &iov, 1, CALL(send, fd, buf, n, flags));
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct shim_http *h = state_of(fd);
    if (!h)
        return CALL(sendmsg, fd, msg, flags);
    int n = msg->msg_iovlen > 1024 ? 1024 : (int)msg->msg_iovlen;
    if (before_write(h, msg->msg_iov, n) != 0)
        return -1;
    return after_write(h, msg->msg_iov, n, CALL(sendmsg, fd, msg, flags));
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    struct shim_http *h = state_of(fd);
    struct iovec iov = {(void *)buf, n};
    if (!h)
        return CALL(write, fd, buf, n);
    if (before_write(h, &iov, 1) != 0)
        return -1;
    return after_write(h, &iov, 1, CALL(write, fd, buf, n));
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    struct shim_http *h = n > 0 ? state_of(fd) : NULL;
    if (!h)
        return CALL(writev, fd, iov, n);
    if (before_write(h, iov, n) != 0)
        return -1;
    return after_write(h, iov, n, CALL(writev, fd, iov, n));
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    return heard1(fd, buf, CALL(recv, fd, buf, n, flags), flags);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, __SOCKADDR_ARG addr, socklen_t *len)
{
    return heard1(fd, buf, CALL(recvfrom, fd, buf, n, flags, addr.__sockaddr__, len), flags);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    ssize_t r = CALL(recvmsg, fd, msg, flags);
    if (r <= 0)
        return r;
    int n = msg->msg_iovlen > 1024 ? 1024 : (int)msg->msg_iovlen;
    return heard(fd, msg->msg_iov, n, r, flags | (msg->msg_flags & MSG_TRUNC));
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    return heard1(fd, buf, CALL(read, fd, buf, n), 0);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    return heard(fd, iov, n, CALL(readv, fd, iov, n), 0);
}

/* The fortified forms (_FORTIFY_SOURCE) that a program calls instead when the compiler
 * knows its buffer's size. glibc declares them only inside its fortify wrappers. */
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t cap, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t cap, int flags, struct sockaddr *sa,
                       socklen_t *len);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t cap);

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t cap, int flags)
{
    return heard1(fd, buf, CALL(__recv_chk, fd, buf, n, cap, flags), flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t cap, int flags,
                              struct sockaddr *sa, socklen_t *len)
{
    return heard1(fd, buf, CALL(__recvfrom_chk, fd, buf, n, cap, flags, sa, len), flags);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t cap)
{
    return heard1(fd, buf, CALL(__read_chk, fd, buf, n, cap), 0);
}

/* The state goes before the real call: once the number is free, another thread's socket
 * may take it. */
EXPORT int close(int fd)
{
    shim_fd_forget(fd);
    return CALL(close, fd);
}

EXPORT int dup2(int old, int fd)
{
    if (old != fd)
        shim_fd_forget(fd);
    return CALL(dup2, old, fd);
}

EXPORT int dup3(int old, int fd, int flags)
{
    shim_fd_forget(fd);
    return CALL(dup3, old, fd, flags);
}

/* SHUT_WR keeps the state: the responses to what was sent are still to be heard. */
EXPORT int shutdown(int fd, int how)
{
    if (how != SHUT_WR)
        shim_fd_forget(fd);
    return CALL(shutdown, fd, how);
}
