/*
 * fuzz_table.c - libFuzzer harness for the attach/validate path and everything a damaged
 * table file can reach: the input is written as a table file, then attached read-only and
 * read-write, walked, inspected, decided on, reset and extended. Any crash, sanitizer
 * report or hang is a bug: a hostile file must give a clear error or be contained.
 *
 * LLVMFuzzerInitialize writes a real table (every rule kind, a chain, a template, some
 * usage) into the corpus directory as the seed, so mutations start from a valid layout.
 * Each input gets this boot's id, and an epoch not after now, so saved inputs (the corpus
 * in tests/fuzz/tables) reach past the attach checks on any machine, any boot.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static char path[64];

static int define(rl_table *t, const char *name, const char *rules, const char *parent)
{
    struct rl_policy p;
    rl_bucket *b;
    if (rl_policy_parse(rules, &p, NULL) || rl_bucket_define(t, name, &p, parent, &b))
        return -1;
    for (int i = 0; i < 3; i++)
        rl_try_acquire(b, 1, NULL);
    return 0;
}

static int seed_table(const char *dir)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct rl_policy p;
    rl_table *t;
    o.path = path;
    o.capacity = 8;
    o.arena_kib = 4;
    unlink(path);
    if (rl_table_open(&o, &t) || define(t, "s", "8/1h", NULL) ||
        define(t, "g", "8/1h burst 4", NULL) || define(t, "f", "8/1h fixed", NULL) ||
        define(t, "m", "4/1h, 6/1h burst 3 margin 0", "s") || rl_policy_parse("2/1m", &p, NULL) ||
        rl_template_define(t, "t/*", &p, "g"))
        return -1;
    rl_table_close(t);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp %s %s/seed.table", path, dir);
    return system(cmd) == 0 ? 0 : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(path, sizeof(path), "/dev/shm/rl-fuzz-table-%ld", (long)getpid());
    const char *dir = NULL;
    struct stat st;
    for (int i = 1; i < *argc; i++)
        if ((*argv)[i][0] != '-' && stat((*argv)[i], &st) == 0 && S_ISDIR(st.st_mode))
            dir = (*argv)[i];
    if (dir && seed_table(dir) < 0) {
        fprintf(stderr, "fuzz_table: cannot write the seed table: %s\n", rl_errdetail());
        exit(1);
    }
    return 0;
}

static int visit(rl_bucket *b, void *arg)
{
    bool writable = *(bool *)arg;
    struct rl_bucket_info info;
    struct rl_decision d;
    rl_bucket_info(b, &info);
    rl_bucket_parent(b);
    if (!writable)
        return 0;
    rl_try_acquire(b, 1, &d);
    rl_try_acquire(b, 3, NULL);
    struct rl_response r = RL_RESPONSE_INIT;
    r.status = 429;
    r.retry_after = "1";
    r.remaining = "0";
    r.reset = "2";
    rl_report(b, &r, NULL);
    rl_bucket_reset(b);
    struct rl_policy p;
    if (rl_policy_parse("5/1h burst 2", &p, NULL) == 0)
        rl_bucket_update(b, &p);
    return 0;
}

static void exercise(unsigned flags)
{
    struct rl_table_opts o = RL_TABLE_OPTS_INIT;
    struct rl_table_info ti;
    struct rl_policy p;
    rl_table *t;
    rl_bucket *b;
    bool writable = !(flags & RL_OPEN_READONLY);
    o.path = path;
    o.flags = flags;
    if (rl_table_open(&o, &t) != 0)
        return;
    rl_table_info(t, &ti);
    rl_table_check(t);
    rl_table_foreach(t, visit, &writable);
    rl_bucket_lookup(t, "s", &b);
    rl_bucket_get(t, "t/x", &b);
    if (writable && rl_policy_parse("3/1m", &p, NULL) == 0)
        rl_bucket_define(t, "new", &p, "g", &b);
    rl_table_close(t);
}

/* This boot's id, and an epoch that is not in the future. */
static void adopt(unsigned char *file, size_t size)
{
    struct shm_header h;
    if (size < sizeof(h))
        return;
    memcpy(&h, file, sizeof(h));
    rl__boot_id(h.boot_id);
    uint64_t now = rl_now_ns();
    h.epoch_ns = h.epoch_ns > now ? now / 2 : h.epoch_ns;
    memcpy(file, &h, sizeof(h));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    unsigned char *file = malloc(size ? size : 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (!file || fd < 0) {
        free(file);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    memcpy(file, data, size);
    adopt(file, size);
    ssize_t n = write(fd, file, size);
    close(fd);
    free(file);
    if (n != (ssize_t)size)
        return 0;
    exercise(RL_OPEN_READONLY);
    exercise(0);
    return 0;
}
