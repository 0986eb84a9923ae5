/*
 * cmd_apply.c - `ratelimitctl apply [--dry-run] [--prune] [FILE]`: bring the table in line with a
 * config file (rl_config_apply), or say what that would do.
 *
 * --dry-run applies the file to a private copy of the table (a new table if there is none
 * yet; a sparse copy, as large on disk as the table's data), unlinked as soon as it is open: its
 * lines and its errors are exactly those of a real apply, checks included, and the real table is
 * never written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl apply [--dry-run] [--prune] [FILE]\n"
    "\n"
    "Bring the table in line with the config file FILE (default\n"
    "$RATELIMIT_CONFIG, else /etc/ratelimit.conf): create the buckets and\n"
    "templates it defines that the table lacks; switch those whose rules changed\n"
    "to the new rules (the usage counted so far carries over, so the switch never\n"
    "admits more than the new rules allow); leave the others alone. Buckets made\n"
    "from a template follow its new rules. Buckets the file does not mention are\n"
    "kept, and reported (with --prune: deleted). Applying a file twice changes\n"
    "nothing the second time.\n"
    "The file is checked first, as by check-config: if it is invalid, its\n"
    "problems go to stderr and nothing changes. The table is the one the file\n"
    "names ('table PATH'), else $RATELIMIT_TABLE, else " RL_TABLE_DEFAULT_PATH "; the\n"
    "global --table overrides them all. A missing table is created with the\n"
    "file's mode, group and capacity. Everything is checked before anything\n"
    "changes (a bucket's parent cannot change; the new buckets and rules must\n"
    "fit), so an error leaves the table as it was. Needs write access to the\n"
    "table (its owner, or root). Prints one line per bucket, e.g.\n"
    "  created foundry 200/1m\n"
    "  updated ti/standard: 120/1m burst 20 -> 600/1m burst 100\n"
    "  unchanged ti/standard/events\n"
    "  kept old/bucket: not in the config\n"
    "\n"
    "Options:\n"
    "  --dry-run   change nothing: print the lines apply would print, each after\n"
    "              \"dry run: \", with the same checks and errors (the file is\n"
    "              applied to a private copy of the table; a missing table is\n"
    "              assumed to be creatable); then, if it would succeed, the\n"
    "              file's footprint, as check-config prints it\n"
    "  --prune     delete the buckets and templates the file does not mention\n"
    "              (children first; buckets made from a template it keeps stay),\n"
    "              after every other change: \"deleted old/bucket: not in the\n"
    "              config\". Processes holding them get \"no such bucket\"\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status (1 as for check-config):\n"
    "  0  applied (or nothing to change); --dry-run: apply would succeed\n"
    "  1  the file is invalid (its problems are on stderr); nothing changed\n"
    "  3  usage error\n"
    "  4  error: the file cannot be read; no table and none can be created; not\n"
    "     a table, damaged, or from before the last reboot; a bucket's parent\n"
    "     would change; no room for the new buckets or rules. Nothing changed.\n"
    "  5  permission denied: no write access to the table\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl apply --dry-run /etc/ratelimit.conf\n"
    "  ratelimitctl check-config new.conf && ratelimitctl apply new.conf\n";

static const struct option options[] = {{"dry-run", no_argument, NULL, 'n'},
                                        {"prune", no_argument, NULL, 'p'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

/* --dry-run's private copy of the table. */
struct copy {
    const char *real; /* the real table's path */
    char dir[PATH_MAX], path[PATH_MAX];
};

/* The config's table options (path, mode, group, capacity), creating the table if missing. */
static void config_opts(const rl_config *cfg, const char *path, struct rl_table_opts *o)
{
    const struct rl_config_table *ct = rl_config_table(cfg);
    *o = (struct rl_table_opts)RL_TABLE_OPTS_INIT;
    o->path = path;
    o->mode = ct->mode;
    o->group = ct->group;
    o->capacity = ct->capacity;
    o->flags = RL_OPEN_CREATE;
}

static void note(void *prefix, const char *line)
{
    printf("%s%s\n", (const char *)prefix, line);
}

static int apply(const struct ctl *c, const char *file, const rl_config *cfg, unsigned flags)
{
    struct rl_table_opts o;
    rl_table *t;
    config_opts(cfg, c->table, &o);
    int err = c->table ? rl_table_open(&o, &t) : rl_config_open_table(cfg, RL_OPEN_CREATE, &t);
    if (err)
        return ctl_fail(c, file, err);
    err = rl_config_apply_flags(cfg, t, flags, note, "");
    rl_table_close(t);
    return err ? ctl_fail(c, file, err) : CTL_OK;
}

/* ------------------------------------------------------------------ --dry-run */

/* ctl_fail, with the copy's path in the library's detail replaced by the real table's. */
static int dry_fail(const struct ctl *c, const char *file, const struct copy *cp, int err)
{
    const char *detail = rl_errdetail(), *at = strstr(detail, cp->path);
    if (!at)
        return ctl_fail(c, file, err);
    ctl_say(c, file, "%.*s%s%s", (int)(at - detail), detail, cp->real, at + strlen(cp->path));
    return err == RL_EPERM ? CTL_DENIED : CTL_ERROR;
}

static int pwrite_all(int fd, const char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t put = pwrite(fd, p, n, off);
        if (put < 0 && errno != EINTR)
            return -1;
        if (put > 0)
            p += put, n -= (size_t)put, off += put;
    }
    return 0;
}

/* Copy [off, end) of from to the same place in to. */
static int copy_range(int from, int to, off_t off, off_t end)
{
    char buf[65536];
    while (off < end) {
        size_t want = end - off < (off_t)sizeof(buf) ? (size_t)(end - off) : sizeof(buf);
        ssize_t got = pread(from, buf, want, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got == 0)
            errno = EIO; /* the file shrank under us */
        if (got <= 0 || pwrite_all(to, buf, (size_t)got, off) < 0)
            return -1;
        off += got;
    }
    return 0;
}

/* Copy a sparse file sparsely: its size, then only its data (SEEK_DATA/SEEK_HOLE), so the
 * copy of a large table that uses little takes as little. */
static int copy_bytes(int from, int to)
{
    struct stat st;
    if (fstat(from, &st) < 0 || ftruncate(to, st.st_size) < 0)
        return -1;
    for (off_t data = 0, hole; data < st.st_size; data = hole) {
        if ((data = lseek(from, data, SEEK_DATA)) < 0)
            return errno == ENXIO ? 0 : -1; /* ENXIO: no data after this hole */
        if ((hole = lseek(from, data, SEEK_HOLE)) < 0 || copy_range(from, to, data, hole) < 0)
            return -1;
    }
    return 0;
}

/* Copy the real table to cp->path; 0 or -1 with errno. */
static int copy_table(const struct copy *cp)
{
    int from = open(cp->real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), to = -1, rc = -1;
    if (from >= 0 && (to = open(cp->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0)
        rc = copy_bytes(from, to);
    int e = errno;
    if (to >= 0 && close(to) < 0 && rc == 0)
        rc = -1, e = errno;
    if (from >= 0)
        close(from);
    errno = e;
    return rc;
}

/* A private directory, holding a copy of the real table if it exists. */
static int make_copy(const struct ctl *c, bool exists, struct copy *cp)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(cp->dir, sizeof(cp->dir), "%s/ratelimitctl-dry-run.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(cp->dir))
        return ctl_error(c, "cannot make a directory %s for --dry-run: %s", cp->dir,
                         strerror(errno));
    snprintf(cp->path, sizeof(cp->path), "%s/table", cp->dir);
    if (!exists || copy_table(cp) == 0)
        return CTL_OK;
    int rc = ctl_error(c, "cannot copy table %s to %s: %s", cp->real, cp->path, strerror(errno));
    unlink(cp->path);
    rmdir(cp->dir);
    return rc;
}

/* Open the private copy (creating a new table if the real one does not exist), then unlink
 * it: it lives on in this process alone. */
static int open_copy(const struct ctl *c, const char *file, const rl_config *cfg, bool exists,
                     struct copy *cp, rl_table **out)
{
    struct rl_table_opts o;
    int rc = make_copy(c, exists, cp);
    if (rc)
        return rc;
    config_opts(cfg, cp->path, &o);
    o.group = -1; /* the copy is this user's alone */
    int err = rl_table_open(&o, out);
    unlink(cp->path);
    rmdir(cp->dir);
    return err ? dry_fail(c, file, cp, err) : CTL_OK;
}

/* Attach to the real table as apply would, without creating it: *exists says if it does. */
static int probe(const struct ctl *c, const char *file, const struct copy *cp, bool *exists)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    rl_table *t = NULL;
    o.path = cp->real;
    o.flags = 0;
    int err = rl_table_open(&o, &t);
    *exists = err != RL_ENOENT;
    if (err && err != RL_ENOENT)
        return ctl_fail(c, file, err);
    rl_table_close(t);
    return CTL_OK;
}

static int dry_run(const struct ctl *c, const char *file, const rl_config *cfg, unsigned flags)
{
    const char *origin;
    struct copy cp = {c->table ? c->table : ctl_config_table_path(cfg, &origin), "", ""};
    rl_table *t = NULL;
    bool exists;
    int rc = probe(c, file, &cp, &exists);
    if (rc || (rc = open_copy(c, file, cfg, exists, &cp, &t)))
        return rc;
    int err = rl_config_apply_flags(cfg, t, flags, note, "dry run: ");
    if (!err)
        ctl_config_footprint(cfg, "dry run: ", file);
    rc = err ? dry_fail(c, file, &cp, err) : CTL_OK;
    rl_table_close(t);
    return rc;
}

int ctl_apply_run(struct ctl *c, int argc, char **argv)
{
    bool dry = false;
    unsigned flags = 0;
    const char *file;
    rl_config *cfg;
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        switch (opt) {
        case 'n':
            dry = true;
            break;
        case 'p':
            flags |= RL_APPLY_PRUNE;
            break;
        default:
            return ctl_option_end(opt);
        }
    }
    int rc = ctl_config_operand(c, argc, argv, &file);
    if (rc || (rc = ctl_config_load(c, file, &cfg)))
        return rc;
    file = rl_config_default_path(file);
    rc = dry ? dry_run(c, file, cfg, flags) : apply(c, file, cfg, flags);
    rl_config_free(cfg);
    return rc;
}

const struct ctl_syntax ctl_apply_syntax = {help, options};
