/*
 * cmd_resize.c - `ratelimitctl resize --capacity N [--arena-kib K]`: grow or compact the
 * table (rl_table_resize).
 */
#include <bsd/stdlib.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl resize --capacity N [--arena-kib K]\n"
    "\n"
    "Build a new table file that holds N buckets (and K KiB of arena for rules\n"
    "and sliding-window logs; default 4 KiB per bucket + 16 MiB), copy every\n"
    "bucket and template into it with its usage, feedback state and counters\n"
    "(deleted buckets are left out: a resize to the same capacity compacts a\n"
    "table), and rename it over the table's path. While it copies, and for good\n"
    "afterwards, the old file refuses every request, so nothing is admitted that\n"
    "the copy misses; processes follow the new file within about a second (the\n"
    "preload shim and rl_table_reopen_if_replaced do). Needs write access to the\n"
    "table (its owner, or root). Prints one line:\n"
    "  resized /dev/shm/ratelimit: capacity 1024 -> 4096, 812 buckets copied\n"
    "\n"
    "Options:\n"
    "  --capacity N   buckets the new table holds (at least those the table holds)\n"
    "  --arena-kib K  KiB of arena in the new table (0: the default)\n"
    "  -h, --help     show this help\n"
    "\n"
    "Exit status: 0 resized, 3 usage error, 4 error (no table; N too small; a\n"
    "process stayed inside a decision for 5 s, e.g. stopped; no room on the file\n"
    "system: then the table is left as it was), 5 permission denied.\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl resize --capacity 65536\n";

static const struct option options[] = {{"capacity", required_argument, NULL, 'c'},
                                        {"arena-kib", required_argument, NULL, 'a'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

int ctl_resize_run(struct ctl *c, int argc, char **argv)
{
    uint32_t capacity = 0, arena_kib = 0;
    const char *errstr;
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        switch (opt) {
        case 'c':
            capacity = (uint32_t)strtonum(optarg, 1, UINT32_MAX, &errstr);
            if (errstr)
                return ctl_usage(c, "--capacity '%s' is %s", optarg, errstr);
            break;
        case 'a':
            arena_kib = (uint32_t)strtonum(optarg, 0, UINT32_MAX, &errstr);
            if (errstr)
                return ctl_usage(c, "--arena-kib '%s' is %s", optarg, errstr);
            break;
        default:
            return ctl_option_end(opt);
        }
    }
    if (optind < argc)
        return ctl_usage(c, "unexpected argument '%s'", argv[optind]);
    if (!capacity)
        return ctl_usage(c, "--capacity N is required");
    rl_table *t;
    struct rl_table_info before;
    unsigned copied;
    int rc = ctl_open(c, 0, &t);
    if (rc)
        return rc;
    rl_table_info(t, &before);
    int err = rl_table_resize(t, capacity, arena_kib, &copied);
    if (!err)
        printf("resized %s: capacity %u -> %u, %u buckets copied\n", rl_table_path(t),
               before.capacity, capacity, copied);
    rc = err ? ctl_fail(c, rl_table_path(t), err) : CTL_OK;
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_resize_syntax = {help, options};
