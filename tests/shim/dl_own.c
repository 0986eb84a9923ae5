/*
 * dl_own.c - a library with its own connect(), loaded with RTLD_DEEPBIND as mod_php's
 * extensions are, so that its calls bind to its own symbols before the program's. The
 * deepbind case checks that the shim leaves this binding alone: dl_own_connect() reaches
 * this connect, which returns DL_OWN_MARK and opens nothing.
 */
#include <sys/socket.h>

#define DL_OWN_MARK 4242

__attribute__((visibility("default"))) int dl_own_connect(void);

/* glibc's declaration: the address is a transparent union under _GNU_SOURCE. */
__attribute__((visibility("default"))) int connect(int fd, __CONST_SOCKADDR_ARG sa, socklen_t len)
{
    (void)fd, (void)sa, (void)len;
    return DL_OWN_MARK;
}

/* Through the PLT: an exported symbol may be interposed, so the call is not direct. */
int dl_own_connect(void)
{
    struct sockaddr none = {0};
    return connect(-1, &none, 0);
}
