/*
 * tls.c - the TLS hooks' common half: the caller's real library functions, and the state
 * of each TLS session (README "Preload shim", count requests over HTTPS).
 *
 * Real functions. dlsym(RTLD_NEXT) is not enough: Python loads _ssl and its libssl with
 * RTLD_LOCAL, outside the global scope the shim is in, and a process may hold two copies
 * of libssl (a wheel bundles its own). So each call site is resolved once, in the scope of
 * the object the call comes from: dlopen(its file, RTLD_NOLOAD) and dlsym on that handle
 * search the object and its dependencies only, hence the caller's libssl. The main program
 * (whose scope is the global one, the shim included) falls back to RTLD_NEXT, and then to
 * the first loaded object named like the library (dl_iterate_phdr).
 *
 * Sessions. A table of 64 shards, each a mutex and a hash chain, keyed by the session's
 * address. A lock is held only to find, insert or unlink an entry: never across a wait or
 * a call into the TLS library. fork: pthread_atfork takes every shard's lock around the
 * fork, so a child never inherits one held by a thread that no longer exists.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../atomics.h"
#include "tls.h"

/* ------------------------------------------------------------------ real functions */

/* `fn` is not one of ours: the shim's own interposers are never the real thing. */
static bool foreign(void *fn)
{
    Dl_info self, it;
    return fn && dladdr((void *)(uintptr_t)foreign, &self) && dladdr(fn, &it) &&
           it.dli_fbase != self.dli_fbase;
}

/* dlsym in the scope of the loaded object `file` only; NULL if not loaded or not there. */
static void *in_object(const char *file, const char *name)
{
    void *handle = dlopen(file, RTLD_LAZY | RTLD_NOLOAD);
    void *fn = handle ? dlsym(handle, name) : NULL;
    if (handle)
        dlclose(handle); /* NOLOAD took a reference: the object stays loaded */
    return foreign(fn) ? fn : NULL;
}

struct scan {
    const struct tls_real *r;
    void *fn;
};

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct scan *s = arg;
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, s->r->lib))
        s->fn = in_object(info->dlpi_name, s->r->name);
    return s->fn != NULL;
}

static void *resolve(const struct tls_real *r, const void *site)
{
    Dl_info info;
    void *fn = NULL;
    if (dladdr(site, &info) && info.dli_fname && info.dli_fname[0])
        fn = in_object(info.dli_fname, r->name);
    if (!fn && !foreign(fn = dlsym(RTLD_NEXT, r->name)))
        fn = NULL;
    if (!fn) {
        struct scan s = {r, NULL};
        dl_iterate_phdr(scan_object, &s);
        fn = s.fn;
    }
    return fn;
}

void *shim_tls_real(struct tls_real *r, const void *site)
{
    void *key = (void *)(uintptr_t)site;
    for (size_t i = 0; i < TLS_SITES; i++) {
        /* N1: pairs with N2; a site seen claimed may not have its fn yet. */
        void *s = rl__ptr_load_acquire(&r->hit[i].site);
        if (!s)
            break;
        if (s == key) {
            /* N3: pairs with N4: the function is resolved and final. */
            void *fn = rl__ptr_load_acquire(&r->hit[i].fn);
            if (fn)
                return fn;
            break; /* being filled in: resolve it ourselves */
        }
    }
    void *fn = resolve(r, site);
    for (size_t i = 0; fn && i < TLS_SITES; i++) {
        void *none = NULL;
        /* N2: claim a free slot for this site (or find it claimed by a racing caller). */
        if (rl__ptr_cas_acq_rel(&r->hit[i].site, &none, key) || none == key) {
            none = NULL;
            /* N4: publish the function; a racer's CAS fails, having found the same one. */
            rl__ptr_cas_acq_rel(&r->hit[i].fn, &none, fn);
            break;
        }
    }
    return fn;
}

/* ------------------------------------------------------------------ the session table */

#define SHARDS 64

static struct shard {
    pthread_mutex_t lock;
    struct tls_session *head;
} shards[SHARDS];

static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void lock_all(void)
{
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
}

static void unlock_all(void)
{
    for (size_t i = SHARDS; i-- > 0;)
        pthread_mutex_unlock(&shards[i].lock);
}

static void table_init(void)
{
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    pthread_atfork(lock_all, unlock_all, unlock_all);
}

static struct shard *shard_of(const void *key)
{
    uintptr_t k = (uintptr_t)key;
    pthread_once(&table_once, table_init);
    return &shards[((k >> 4) ^ (k >> 12)) % SHARDS]; /* allocations are 16-byte aligned */
}

static struct tls_session **find(struct shard *sh, const void *key)
{
    struct tls_session **p = &sh->head;
    while (*p && (*p)->key != key)
        p = &(*p)->next;
    return p;
}

struct tls_session *shim_tls_session(const void *key, bool make)
{
    struct shard *sh = shard_of(key);
    pthread_mutex_lock(&sh->lock);
    struct tls_session **p = find(sh, key);
    if (!*p && make && (*p = calloc(1, sizeof(**p)))) {
        (*p)->key = key;
        (*p)->fd = -1;
    }
    struct tls_session *s = *p;
    pthread_mutex_unlock(&sh->lock);
    return s;
}

void shim_tls_forget(const void *key)
{
    struct shard *sh = shard_of(key);
    pthread_mutex_lock(&sh->lock);
    struct tls_session **p = find(sh, key), *s = *p;
    if (s)
        *p = s->next;
    pthread_mutex_unlock(&sh->lock);
    if (!s)
        return;
    shim_http_free(s->http);
    free(s->host);
    free(s->alpn);
    free(s);
}

/* ------------------------------------------------------------------ one session */

bool shim_tls_set_host(struct tls_session *s, const char *host, size_t len)
{
    char *copy = strndup(host, len);
    if (!copy)
        return false;
    free(s->host);
    s->host = copy;
    return true;
}

bool shim_tls_set_alpn(struct tls_session *s, const unsigned char *alpn, size_t len)
{
    unsigned char *copy = len ? malloc(len) : NULL;
    if (len && !copy)
        return false;
    if (len)
        memcpy(copy, alpn, len);
    free(s->alpn);
    s->alpn = copy;
    s->alpn_len = len;
    return true;
}

/* The TCP/IP peer of socket fd; false if fd is no such socket (or not connected). */
static bool peer_of(int fd, struct shim_dest *d)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int saved = errno;
    bool ok = fd >= 0 && getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
              shim_dest_from((struct sockaddr *)&peer, len, d);
    errno = saved;
    return ok;
}

/* A session on a known TCP/IP socket is matched by its peer's address and port only: its
 * server name could belong to a route on another port. The name decides only when the
 * library writes to a transport of its own (curl's BIO, asyncio's memory BIO). */
bool shim_tls_decide(struct tls_session *s, int fd)
{
    struct shim_match m;
    struct shim_dest d;
    if (s->decided)
        return false;
    bool socket = peer_of(fd, &d);
    if (socket ? shim_routes_match(&d, &m) : s->host && shim_routes_match_host(s->host, &m)) {
        s->http = shim_http_new(&m); /* holds the table for the session's life */
        shim_match_done(&m);
    }
    s->decided = true;
    if (s->http && socket)
        shim_fd_forget(fd); /* its bytes are TLS records: the plaintext is counted here */
    return s->http != NULL;
}

size_t shim_tls_alpn_http1(const unsigned char *in, size_t len, unsigned char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i += 1 + (size_t)in[i]) {
        size_t plen = in[i];
        if (plen == 0 || i + 1 + plen > len)
            return 0; /* malformed: leave it to the library to refuse */
        if (plen == 2 && memcmp(in + i + 1, "h2", 2) == 0)
            continue;
        memcpy(out + n, in + i, 1 + plen);
        n += 1 + plen;
    }
    return n;
}

int shim_tls_before_send(struct tls_session *s, const void *buf, size_t len)
{
    int err = 0;
    if (len > s->ahead)
        err = shim_http_before_send(s->http, (const char *)buf + s->ahead, len - s->ahead);
    if (!err && len > s->ahead)
        s->ahead = len;
    return err;
}

void shim_tls_sent(struct tls_session *s, size_t taken)
{
    s->ahead = taken < s->ahead ? s->ahead - taken : 0;
}
