/*
 * fake_resolver.c - preloaded after the shim in the refresh test: host names ending in
 * ".test" resolve to the IPv4 address written in $FAKE_RESOLVER_FILE, read afresh on every
 * call, so the test can move a host name while the shim runs. Other names go to the real
 * getaddrinfo.
 *
 * With $FAKE_RESOLVER_GATE set, each lookup of a ".test" name first holds: it writes one
 * byte to the FIFO GATE.entered, then reads one from GATE.release (end of file releases it
 * too). The test sees the lookup start and decides when it ends.
 *
 * The answer is one malloc'd block (addrinfo, then its sockaddr_in), which is how glibc's
 * freeaddrinfo frees each entry (free(ai_canonname); free(ai)).
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

static int fake_answer(struct in_addr ip, struct addrinfo **res)
{
    struct block {
        struct addrinfo ai;
        struct sockaddr_in sa;
    } *b = calloc(1, sizeof(*b));
    if (!b)
        return EAI_MEMORY;
    b->sa.sin_family = AF_INET;
    b->sa.sin_addr = ip;
    b->ai.ai_family = AF_INET;
    b->ai.ai_socktype = SOCK_STREAM;
    b->ai.ai_protocol = IPPROTO_TCP;
    b->ai.ai_addrlen = sizeof(b->sa);
    b->ai.ai_addr = (struct sockaddr *)&b->sa;
    *res = &b->ai;
    return 0;
}

static int fake_lookup(struct addrinfo **res)
{
    char line[64] = "";
    struct in_addr ip;
    const char *path = getenv("FAKE_RESOLVER_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return EAI_NONAME;
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    if (inet_pton(AF_INET, line, &ip) != 1)
        return EAI_NONAME;
    return fake_answer(ip, res);
}

/* Tell the test a lookup started, and wait until it lets the lookup go on. */
static void hold_at_gate(void)
{
    char path[4096], c = 'e';
    const char *gate = getenv("FAKE_RESOLVER_GATE");
    if (!gate)
        return;
    snprintf(path, sizeof(path), "%s.entered", gate);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && write(fd, &c, 1) != 1)
        c = 0;
    close(fd);
    snprintf(path, sizeof(path), "%s.release", gate);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && read(fd, &c, 1) < 0 && errno == EINTR)
        continue;
    close(fd);
}

__attribute__((visibility("default"))) int getaddrinfo(const char *node, const char *service,
                                                       const struct addrinfo *hints,
                                                       struct addrinfo **res)
{
    size_t len = node ? strlen(node) : 0;
    if (len > 5 && strcmp(node + len - 5, ".test") == 0) {
        hold_at_gate();
        return fake_lookup(res);
    }
    void *sym = dlsym(RTLD_NEXT, "getaddrinfo");
    getaddrinfo_fn next;
    if (!sym)
        return EAI_SYSTEM;
    memcpy(&next, &sym, sizeof(next));
    return next(node, service, hints, res);
}
