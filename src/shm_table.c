/*
 * shm_table.c - create, attach, validate and detach the shared table file; the arena.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "guard.h"
#include "internal.h"

#define RL_CAPACITY_MAX    (1U << 24)
#define RL_ARENA_MAX_BYTES (64ULL << 30)

static const char *opts_path(const struct rl_table_opts *opts)
{
    if (opts->path && *opts->path)
        return opts->path;
    /* secure_getenv: the preload shim may run inside set-id programs. */
    const char *env = secure_getenv("RATELIMIT_TABLE");
    return env && *env ? env : RL_TABLE_DEFAULT_PATH;
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static uint64_t align_up(uint64_t v)
{
    return (v + RL_ALIGN - 1) & ~(uint64_t)(RL_ALIGN - 1);
}

void rl__table_layout(struct shm_header *h, uint32_t capacity, uint64_t arena_bytes)
{
    h->capacity = capacity;
    h->index_slots = pow2_at_least(2ULL * capacity);
    h->bucket_bytes = sizeof(struct shm_bucket);
    h->rule_bytes = sizeof(struct shm_rule);
    h->index_off = RL_HEADER_BYTES + RL_READER_SLOTS * sizeof(struct shm_reader);
    h->buckets_off = align_up(h->index_off + 8ULL * h->index_slots);
    h->arena_off = align_up(h->buckets_off + (uint64_t)capacity * sizeof(struct shm_bucket));
    h->arena_bytes = align_up(arena_bytes);
    h->file_bytes = h->arena_off + h->arena_bytes;
}

/* Fill a header for a new table of the given capacity and arena size. */
static int header_plan(struct shm_header *h, uint32_t capacity, uint64_t arena_bytes)
{
    memset(h, 0, sizeof(*h));
    h->magic = RL_MAGIC;
    h->layout_version = RL_LAYOUT_VERSION;
    h->header_bytes = RL_HEADER_BYTES;
    rl__table_layout(h, capacity, arena_bytes);
    h->epoch_ns = rl_now_ns();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t wall_ns = (int64_t)wall.tv_sec * 1000000000LL + wall.tv_nsec;
    /* Not yet shared: plain stores. The first alignment has parity 0. */
    rl__store_relaxed(&h->wall_offset_ns, (uint64_t)(wall_ns - (int64_t)h->epoch_ns) & ~1ULL);
    rl__store_relaxed(&h->wall_offset_prev, rl__load_relaxed(&h->wall_offset_ns));
    return rl__boot_id(h->boot_id);
}

static int check_create_opts(const struct rl_table_opts *o)
{
    if (o->capacity == 0 || o->capacity > RL_CAPACITY_MAX)
        return rl__fail(RL_EINVAL, "capacity %u is out of range 1..%u", o->capacity,
                        RL_CAPACITY_MAX);
    if (o->mode & 0002)
        return rl__fail(RL_EPERM, "mode %04o would make the table world-writable", o->mode);
    if (o->mode & ~0666U)
        return rl__fail(RL_EINVAL, "mode %04o: only read/write bits are allowed", o->mode);
    if ((uint64_t)o->arena_kib * 1024 > RL_ARENA_MAX_BYTES)
        return rl__fail(RL_EINVAL, "arena of %u KiB is larger than %llu GiB", o->arena_kib,
                        RL_ARENA_MAX_BYTES >> 30);
    return 0;
}

/* Build a complete table under a temporary name, then link it into place. */
static int table_create(const char *path, const struct rl_table_opts *o)
{
    int err = check_create_opts(o);
    if (err)
        return err;
    uint64_t arena =
        o->arena_kib ? (uint64_t)o->arena_kib * 1024 : (uint64_t)o->capacity * 4096 + (16ULL << 20);
    struct shm_header h;
    if (header_plan(&h, o->capacity, arena) < 0)
        return rl__fail(RL_ESYS, "cannot read the boot id: %s", strerror(errno));
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(), arc4random()) >=
        (int)sizeof(tmp))
        return rl__fail(RL_EINVAL, "table path is too long: %s", path);
    int fd = rl__fd_open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return rl__fail(RL_ESYS, "cannot create %s: %s", tmp, strerror(errno));
    err = 0;
    if (o->group >= 0 && fchown(fd, (uid_t)-1, (gid_t)o->group) < 0)
        err = rl__fail(RL_ESYS, "cannot give %s to group %ld: %s", path, o->group, strerror(errno));
    else if (fchmod(fd, o->mode) < 0 || ftruncate(fd, (off_t)h.file_bytes) < 0)
        err = rl__fail(RL_ESYS, "cannot size %s: %s", tmp, strerror(errno));
    else if ((err = rl__fd_reserve(fd, path, 0, h.buckets_off))) /* header, readers, index */
        ;
    else if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
        err = rl__fail(RL_ESYS, "cannot write %s: %s", tmp, strerror(errno));
    else if (link(tmp, path) < 0 && errno != EEXIST)
        err = rl__fail(RL_ESYS, "cannot create %s: %s", path, strerror(errno));
    /* EEXIST: another process created the table first; we attach to theirs. */
    unlink(tmp);
    close(fd);
    return err;
}

static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode)   ? "a FIFO"
           : S_ISDIR(mode)  ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "of another kind";
}

/* A writable attachment trusts only files of its own user or root: a table planted by
 * another user would let them set our budgets. Read-only inspection may look at any table
 * it can read; nothing it reads can make a worker over-admit. */
static int check_file(const char *path, int fd, bool read_only, struct stat *st)
{
    if (fstat(fd, st) < 0)
        return rl__fail(RL_ESYS, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return rl__fail(RL_EBADTABLE, "%s is %s, not a table: a table is a regular file", path,
                        file_kind(st->st_mode));
    if (st->st_mode & S_IWOTH)
        return rl__fail(RL_EPERM, "%s is world-writable (mode %04o): refusing to trust it", path,
                        (unsigned)(st->st_mode & 07777));
    if (!read_only && st->st_uid != geteuid() && st->st_uid != 0)
        return rl__fail(RL_EPERM, "%s is owned by uid %u, not by you or root: refusing to trust it",
                        path, (unsigned)st->st_uid);
    if ((uint64_t)st->st_size < RL_HEADER_BYTES)
        return rl__fail(RL_EBADTABLE, "%s is %lld bytes, too short for a table header", path,
                        (long long)st->st_size);
    return 0;
}

static int check_layout(const char *path, const struct shm_header *h, uint64_t file_size)
{
    struct shm_header plan;
    if (h->magic != RL_MAGIC)
        return rl__fail(RL_EBADTABLE, "%s is not a ratelimit table (bad magic)", path);
    if (h->layout_version != RL_LAYOUT_VERSION)
        return rl__fail(RL_EVERSION,
                        "table %s has layout version %u, this library speaks %u: it was made by "
                        "another release; once no process uses it, remove it and apply the "
                        "config again",
                        path, h->layout_version, RL_LAYOUT_VERSION);
    if (h->capacity == 0 || h->capacity > RL_CAPACITY_MAX || h->arena_bytes > RL_ARENA_MAX_BYTES ||
        h->header_bytes != RL_HEADER_BYTES || h->bucket_bytes != sizeof(struct shm_bucket) ||
        h->rule_bytes != sizeof(struct shm_rule))
        return rl__fail(RL_EBADTABLE, "table %s: header sizes are damaged", path);
    header_plan(&plan, h->capacity, h->arena_bytes);
    if (h->index_slots != plan.index_slots || h->index_off != plan.index_off ||
        h->buckets_off != plan.buckets_off || h->arena_off != plan.arena_off ||
        h->file_bytes != plan.file_bytes)
        return rl__fail(RL_EBADTABLE, "table %s: header offsets are damaged", path);
    if (file_size != h->file_bytes)
        return rl__fail(RL_EBADTABLE, "table %s is %llu bytes but its header says %llu (%s)", path,
                        (unsigned long long)file_size, (unsigned long long)h->file_bytes,
                        file_size < h->file_bytes ? "truncated" : "grown");
    if (memchr(h->boot_id, '\0', sizeof(h->boot_id)) == NULL)
        return rl__fail(RL_EBADTABLE, "table %s: boot id is damaged", path);
    if (strcmp(h->boot_id, plan.boot_id) != 0)
        return rl__fail(RL_ESTALE,
                        "table %s was created before the last reboot; remove it to start afresh",
                        path);
    /* Same boot: the epoch cannot lie ahead of now, and the offset is a wall-clock time. */
    int64_t wall, prev;
    if (h->epoch_ns > rl_now_ns() || !rl__wall_offset_read(h, &wall, &prev))
        return rl__fail(RL_EBADTABLE, "table %s: clock fields are damaged", path);
    return 0;
}

static int table_map(rl_table *t, const struct stat *st)
{
    int prot = PROT_READ | (t->read_only ? 0 : PROT_WRITE);
    void *base = mmap(NULL, (size_t)st->st_size, prot, MAP_SHARED, t->fd, 0);
    if (base == MAP_FAILED)
        return rl__fail(RL_ESYS, "cannot map %s: %s", t->path, strerror(errno));
    t->base = base;
    t->size = (uint64_t)st->st_size;
    t->hdr = base;
    rl__guard_register(t);
    int err = check_layout(t->path, t->hdr, t->size);
    if (err)
        return err;
    t->capacity = t->hdr->capacity;
    t->index_slots = t->hdr->index_slots;
    t->arena_bytes = t->hdr->arena_bytes;
    int64_t wall = 0, prev = 0;
    t->epoch_ns = t->hdr->epoch_ns;
    rl__wall_offset_read(t->hdr, &wall, &prev); /* checked above: a later scribble reads 0 */
    /* Relaxed: not yet shared with other threads. wall->checked 0: the first fixed-window
     * decision checks the clocks (a table made before the wall clock was set, say). */
    rl__store_relaxed(&t->wall->prev, (uint64_t)prev);
    rl__store_relaxed(&t->wall->offset, (uint64_t)wall);
    rl__store_relaxed(&t->wall->checked, 0);
    rl__store_relaxed(&t->replaced_checked, rl__clock_mono()); /* relaxed: likewise */
    t->index = (rl_atomic64 *)(t->base + t->hdr->index_off);
    t->buckets = (struct shm_bucket *)(t->base + t->hdr->buckets_off);
    t->arena = t->base + t->hdr->arena_off;
    t->readers = (struct shm_reader *)(t->base + RL_HEADER_BYTES);
    t->handles = calloc(t->capacity, sizeof(*t->handles));
    return t->handles ? 0 : rl__fail(RL_ENOMEM, "out of memory");
}

static int table_attach(rl_table *t)
{
    /* O_NONBLOCK: a FIFO planted at the path must not block the open; cleared below. */
    int flags = (t->read_only ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    t->fd = rl__fd_open(t->path, flags, 0);
    if (t->fd < 0) {
        if (errno == ELOOP)
            return rl__fail(RL_EPERM, "%s is a symbolic link: refusing to follow it", t->path);
        if (errno == EACCES)
            return rl__fail(RL_EPERM, "cannot open %s: %s", t->path, strerror(errno));
        return rl__fail(errno == ENOENT ? RL_ENOENT : RL_ESYS, "cannot open table %s: %s", t->path,
                        strerror(errno));
    }
    struct stat st;
    int err = check_file(t->path, t->fd, t->read_only, &st);
    if (!err && fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) & ~O_NONBLOCK) < 0)
        err = rl__fail(RL_ESYS, "cannot open table %s: %s", t->path, strerror(errno));
    return err ? err : table_map(t, &st);
}

int rl_table_open(const struct rl_table_opts *opts, rl_table **out)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    if (!out || (opts && opts->size < offsetof(struct rl_table_opts, group)))
        return rl__fail(RL_EINVAL, "rl_table_open: bad arguments");
    if (opts)
        memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
    rl_table *t = calloc(1, sizeof(*t));
    if (t) {
        t->fd = -1;
        t->lock_fd = -1;
        t->guard_slot = -1;
        t->path = strdup(opts_path(&o));
        t->wall = calloc(1, sizeof(*t->wall));
    }
    if (!t || !t->path || !t->wall) {
        rl_table_close(t);
        return rl__fail(RL_ENOMEM, "out of memory");
    }
    t->read_only = o.flags & RL_OPEN_READONLY;
    t->opts = o;
    t->opts.path = t->path;
    int err = table_attach(t);
    if (err == RL_ENOENT && (o.flags & RL_OPEN_CREATE) && !t->read_only) {
        err = table_create(t->path, &o);
        if (!err)
            err = table_attach(t);
    }
    if (err) {
        rl_table_close(t);
        return err;
    }
    if (!t->read_only)
        rl__reader_init(t);
    *out = t;
    return 0;
}

/* A handle and its cache of block views (the table owns the handle array). */
static void handle_free(rl_bucket *b)
{
    while (b) {
        rl_bucket *older = b->older;
        free(rl__ptr_load_acquire(&b->slots));
        free(b->dead_slots); /* still waiting for its grace period, or freed: NULL */
        free(b);
        b = older;
    }
}

void rl_table_close(rl_table *t)
{
    if (!t)
        return;
    if (t->handles) {
        for (uint32_t i = 0; i < t->capacity; i++)
            handle_free(rl__ptr_load_acquire(&t->handles[i]));
        free(t->handles);
    }
    if (t->hdr && t->capacity)
        rl__reader_release(t);
    rl__guard_unregister(t);
    if (t->base)
        munmap(t->base, t->size);
    if (t->fd >= 0)
        close(t->fd);
    free(t->wall);
    free(t->path);
    free(t);
}

int rl_table_check(const rl_table *t)
{
    struct stat mine, named;
    int err = rl__guard_check(t);
    if (err)
        return err;
    if (fstat(t->fd, &mine) < 0)
        return rl__fail(RL_ESYS, "cannot stat the open table %s: %s", t->path, strerror(errno));
    if ((uint64_t)mine.st_size < t->size)
        return rl__fail(RL_ESTALE, "table %s was truncated to %lld bytes: its state is lost",
                        t->path, (long long)mine.st_size);
    if (lstat(t->path, &named) < 0)
        return rl__fail(RL_ESTALE,
                        "table %s was deleted: processes that open it now get "
                        "another budget",
                        t->path);
    if (named.st_dev != mine.st_dev || named.st_ino != mine.st_ino)
        return rl__fail(RL_ESTALE,
                        "table %s was replaced by another file: processes that "
                        "open it now get another budget",
                        t->path);
    return 0;
}

/* rl_table_reopen_if_replaced checks at most this often per table. */
#define REPLACED_CHECK_NS 1000000000ULL

int rl_table_reopen_if_replaced(rl_table *t, rl_table **fresh)
{
    if (!t || !fresh)
        return rl__fail(RL_EINVAL, "rl_table_reopen_if_replaced: bad arguments");
    *fresh = NULL;
    uint64_t now = rl__clock_mono();
    /* Relaxed: a process-local timestamp; the CAS lets one thread per second check. */
    uint64_t last = rl__load_relaxed(&t->replaced_checked);
    if (now - last < REPLACED_CHECK_NS ||
        !rl__cas_acq_rel(&t->replaced_checked, &last, now)) /* T1: the claim, nothing else */
        return 0;
    int err = rl_table_check(t);
    if (err != RL_ESTALE)
        return err;
    err = rl_table_open(&t->opts, fresh);
    return err ? err : 1;
}

const char *rl_table_path(const rl_table *t)
{
    return t->path;
}

int rl_table_info(const rl_table *t, struct rl_table_info *out)
{
    const struct shm_header *h = t->hdr;
    memset(out, 0, sizeof(*out));
    out->layout_version = h->layout_version;
    out->capacity = h->capacity;
    uint64_t defined = rl__load_relaxed(&h->defined); /* a statistic */
    out->buckets = defined < h->capacity ? (uint32_t)defined : h->capacity;
    out->arena_bytes = h->arena_bytes;
    uint64_t used = rl__load_relaxed(&h->arena_used); /* a statistic: any recent value will do */
    out->arena_used = used < h->arena_bytes ? used : h->arena_bytes;
    out->file_bytes = h->file_bytes;
    out->created_ns = t->epoch_ns;
    out->read_only = t->read_only;
    out->applied_digest = rl__applied_load(t);
    /* Statistics: any recent values will do. */
    out->shim_attaches = rl__load_relaxed(&h->shim_attaches);
    uint64_t last = rl__load_relaxed(&h->shim_last_attach);
    out->shim_last_attach_ns = last ? h->epoch_ns + last : 0;
    out->shim_last_pid = (int64_t)rl__load_relaxed(&h->shim_last_pid);
    return 0;
}

int rl_table_space(const rl_table *t, struct rl_table_space *out)
{
    /* The first version of the struct ended with blocks_reused. */
    size_t v1 = offsetof(struct rl_table_space, blocks_reused) + sizeof(uint64_t);
    if (!out || out->size < v1)
        return rl__fail(RL_EINVAL, "rl_table_space needs a struct from RL_TABLE_SPACE_INIT");
    const struct shm_header *h = t->hdr;
    /* Relaxed: statistics, any recent values will do; clamped, as a damaged file may hold
     * anything. */
    uint64_t used = rl__min(rl__load_relaxed(&h->arena_used), h->arena_bytes);
    uint64_t deleted = rl__load_relaxed(&h->deleted);
    uint32_t handed = rl__bucket_count(t), spare = rl__record_spare(t);
    struct rl_table_space sp = {.size = rl__min(out->size, sizeof(sp))};
    sp.records_spare = spare < handed ? spare : handed;
    sp.records_used = handed - sp.records_spare;
    sp.deleted = (uint32_t)rl__min(deleted, UINT32_MAX);
    sp.expired = rl__min(rl__load_relaxed(&h->expired), sp.deleted);
    sp.arena_free = rl__min(rl__load_relaxed(&h->free_bytes), used);
    sp.arena_reclaimable = rl__min(rl__load_relaxed(&h->limbo_bytes), used);
    sp.blocks_reused = rl__load_relaxed(&h->reused_blocks);
    sp.expired_auto = rl__min(rl__load_relaxed(&h->expired_auto), sp.expired);
    sp.index_slots = t->index_slots;
    sp.index_empty = rl__index_empty(t);
    memcpy(out, &sp, sp.size); /* only the fields the caller's version has */
    return 0;
}

void rl__table_note_shim(rl_table *t)
{
    if (t->read_only)
        return;
    /* Relaxed: statistics for display; two attaching at once may pair one's time with the
     * other's pid, both recent. */
    rl__fetch_add_relaxed(&t->hdr->shim_attaches, 1);
    rl__store_relaxed(&t->hdr->shim_last_attach, rl__clock_rel(t));
    rl__store_relaxed(&t->hdr->shim_last_pid, (uint64_t)getpid());
}
