/*
 * gnutls_client.c PORT N - N HTTP/1.1 GET requests to https://localhost:PORT/ on one
 * GnuTLS connection (keep-alive), printing each response's status on its own line. The
 * server's certificate is not checked (the test makes a self-signed one). Exit 0 when all
 * N answers were read, 1 otherwise.
 */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        return -1;
    }
    return fd;
}

/* Read one response (head, then Content-Length bytes of body); its status, or -1. */
static int response(gnutls_session_t s)
{
    char buf[8192] = "";
    size_t n = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        ssize_t got = n + 1 < sizeof(buf) ? gnutls_record_recv(s, buf + n, sizeof(buf) - 1 - n) : 0;
        if (got == GNUTLS_E_AGAIN || got == GNUTLS_E_INTERRUPTED)
            continue;
        if (got <= 0)
            return fprintf(stderr, "gnutls_client: %s\n", gnutls_strerror((int)got)), -1;
        n += (size_t)got;
        buf[n] = '\0';
    }
    const char *cl = strstr(buf, "Content-Length:");
    size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, have = n - (size_t)(end + 4 - buf);
    int status = atoi(buf + 9);
    for (ssize_t got = 1; have < body && got > 0; have += got > 0 ? (size_t)got : 0)
        got = gnutls_record_recv(s, buf, sizeof(buf) < body - have ? sizeof(buf) : body - have);
    return have == body ? status : -1;
}

int main(int argc, char **argv)
{
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    gnutls_datum_t alpn[] = {{(unsigned char *)"h2", 2}, {(unsigned char *)"http/1.1", 8}};
    int fd = argc == 3 ? dial(atoi(argv[1])) : -1, n = argc == 3 ? atoi(argv[2]) : 0;
    if (fd < 0)
        return 1;
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_init(&s, GNUTLS_CLIENT);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", strlen("localhost"));
    gnutls_set_default_priority(s);
    gnutls_alpn_set_protocols(s, alpn, 2, 0); /* as an HTTP/2-capable client offers */
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(s, fd);
    int rc;
    while ((rc = gnutls_handshake(s)) < 0 && !gnutls_error_is_fatal(rc))
        ;
    if (rc < 0) {
        fprintf(stderr, "gnutls_client: handshake failed: %s\n", gnutls_strerror(rc));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        int status = gnutls_record_send(s, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)
                         ? response(s)
                         : -1;
        if (status < 0)
            return fprintf(stderr, "gnutls_client: request %d failed\n", i + 1), 1;
        printf("%d\n", status);
    }
    gnutls_bye(s, GNUTLS_SHUT_RDWR);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    return 0;
}
