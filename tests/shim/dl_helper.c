/*
 * dl_helper.c - a library the dlopen case loads at run time, as a PHP extension or a
 * vendor SDK would be: its connect() goes through the symbol the preloaded shim
 * interposes, though the program never linked it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((visibility("default"))) int dl_helper_connect(unsigned port);

/* Connect to 127.0.0.1:port; 0 or the errno. */
int dl_helper_connect(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
    close(fd);
    return err;
}
