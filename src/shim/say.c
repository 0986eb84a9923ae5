/*
 * say.c - where the shim's diagnostics go, and the shim's own file descriptors.
 *
 * The host program owns fd 2. The shim writes there only if fd 2 was open when the shim
 * was loaded and still refers to that same file (device and inode). A host that closed
 * stderr may have opened anything on fd 2 since: its data file, a socket, our table. Then
 * the line goes to syslog instead: ident "ratelimit-shim", LOG_PID, facility LOG_USER.
 * So does every line of a host whose stderr is /dev/null (a daemon's, php-fpm's children
 * without catch_workers_output): a line written there would be seen by nobody.
 *
 * The syslog line is sent to the log socket directly, as syslog(3) would send it. glibc's
 * openlog() would change the host's own ident and keep a socket open on the lowest free
 * fd, which may be 0, 1 or 2.
 *
 * Every fd the shim opens itself lives above 2 (shim_fd_high), so a host write to a
 * closed stdio fd never lands in one of ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define LOG_SOCKET_DEFAULT   "/dev/log"
#define LOG_PRI_USER_WARNING 12 /* LOG_USER | LOG_WARNING */

/* fd 2 as the shim found it at load: written once by the constructor, read-only after. */
static struct {
    bool open;
    dev_t dev;
    ino_t ino;
} stderr_at_load;

/* Set in the resolver thread, whose fd table is its own (see helper.c). */
static _Thread_local bool private_fds __attribute__((tls_model("initial-exec")));

__attribute__((constructor)) static void note_stderr(void)
{
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0 || (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)))
        return; /* closed, or /dev/null: lines go to syslog */
    stderr_at_load.open = true;
    stderr_at_load.dev = st.st_dev;
    stderr_at_load.ino = st.st_ino;
}

void shim_say_from_private_fds(void)
{
    private_fds = true;
}

int shim_fd_high(int fd)
{
    if (fd < 0 || fd > STDERR_FILENO)
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    int saved = errno;
    close(fd);
    errno = saved;
    return high;
}

/* ------------------------------------------------------------------ stderr */

static bool is_load_time_stderr(int fd)
{
    struct stat st;
    return stderr_at_load.open && fstat(fd, &st) == 0 && st.st_dev == stderr_at_load.dev &&
           st.st_ino == stderr_at_load.ino;
}

/* write(2) that cannot raise SIGPIPE in the host program (stderr may be a closed pipe). */
static bool write_quietly(int fd, const char *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    ssize_t n;
    while ((n = write(fd, buf, len)) < 0 && errno == EINTR)
        continue;
    if (n < 0 && errno == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero); /* take back the SIGPIPE we raised */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return n >= 0;
}

/*
 * The host's stderr, if it is still the file it was at load; -1 if not. In the resolver
 * thread fd 2 is not the host's: the host's fd 2 is reopened through /proc (a socket cannot
 * be reopened: then syslog). *opened says the fd is ours to close.
 */
static int host_stderr(bool *opened)
{
    *opened = private_fds;
    if (!private_fds)
        return is_load_time_stderr(STDERR_FILENO) ? STDERR_FILENO : -1;
    if (!stderr_at_load.open)
        return -1;
    int fd = shim_fd_high(open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC));
    if (fd >= 0 && !is_load_time_stderr(fd)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* ------------------------------------------------------------------ syslog */

static void log_address(struct sockaddr_un *sa)
{
    const char *path = secure_getenv("RATELIMIT_SYSLOG_SOCKET");
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path && *path ? path : LOG_SOCKET_DEFAULT);
}

/* One datagram "<12>Mmm dd hh:mm:ss ratelimit-shim[PID]: TEXT", as syslog(3) sends it. */
static void syslog_line(const char *text, size_t len)
{
    char msg[1200], stamp[32] = "";
    struct sockaddr_un sa;
    struct tm tm;
    time_t now = time(NULL);
    if (localtime_r(&now, &tm))
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
    int n = snprintf(msg, sizeof(msg), "<%d>%s ratelimit-shim[%ld]: %.*s", LOG_PRI_USER_WARNING,
                     stamp, (long)getpid(), (int)len, text);
    if (n < 0)
        return;
    log_address(&sa);
    int fd = shim_fd_high(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd < 0)
        return;
    size_t size = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    while (sendto(fd, msg, size, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof(sa)) <
               0 &&
           errno == EINTR)
        continue;
    close(fd);
}

/* ------------------------------------------------------------------ lines */

void shim_say(const char *fmt, ...)
{
    static const char prefix[] = "ratelimit-preload: ";
    char line[1024];
    va_list ap;
    int saved = errno;
    size_t n = sizeof(prefix) - 1;
    memcpy(line, prefix, n);
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    n += m < 0 ? 0 : (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
    line[n++] = '\n';
    bool opened;
    int fd = host_stderr(&opened);
    if (fd < 0 || !write_quietly(fd, line, n))
        syslog_line(line + sizeof(prefix) - 1, n - sizeof(prefix)); /* no prefix, no \n */
    if (opened && fd >= 0)
        close(fd);
    errno = saved;
}
