/*
 * cmd_check_config.c - `ratelimitctl check-config [FILE]`: check a config file without
 * touching any table, like `nginx -t`.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl check-config [FILE]\n"
    "\n"
    "Check the config file FILE (default $RATELIMIT_CONFIG, else\n"
    "/etc/ratelimit.conf), like 'nginx -t', without touching any table: every\n"
    "statement is parsed and checked, and so is what needs the whole file\n"
    "(parents defined before their children, chains of at most 4 buckets, the\n"
    "buckets that routes name, the capacity). Every problem is reported, all in\n"
    "one pass, as a line FILE:LINE:COLUMN: MESSAGE on stderr, followed by a\n"
    "count. A valid file gets one line on stdout, e.g.\n"
    "  ratelimit.conf: ok: 5 buckets, 1 template, 2 routes, table /dev/shm/ratelimit\n"
    "naming the table the file names, else $RATELIMIT_TABLE, else the default\n"
    "(the global --table plays no part). 'ratelimitctl apply' then brings a\n"
    "table in line with the file.\n"
    "A second line gives its footprint: the size of a new table's file (sparse:\n"
    "tmpfs holds only the pages written), the bytes apply writes (header, index,\n"
    "a 192-byte record per bucket, the policy blocks: a sliding rule of N takes\n"
    "8N bytes), and what each tenant of the costliest template takes, e.g.\n"
    "  ratelimit.conf: footprint: table file 16813312 bytes (16.0 MiB, sparse);\n"
    "  apply writes 6272 bytes, 1344 of them policy blocks; each tenant of t/*\n"
    "  1152 bytes, room for 13 (14976 bytes)\n"
    "\n"
    "The file holds one statement a line; '#' starts a comment:\n"
    "  table PATH                          the table file, and for its creation\n"
    "  mode OCTAL, group NAME, capacity N  its mode, group and bucket capacity\n"
    "  bucket NAME RULES [parent NAME]     a bucket (define parents first)\n"
    "  template PREFIX/* RULES [parent NAME]\n"
    "                                      buckets PREFIX/... made on first use\n"
    "  route HOST:PORT BUCKET [wait DURATION] [on-timeout fail|pass]\n"
    "        [count connections|requests]  a unit per connect, or per HTTP request\n"
    "  shim fail-open|fail-closed\n"
    "  resolve-every DURATION              these three: for the preload shim\n"
    "RULES as for 'ratelimitctl define' (see 'ratelimitctl define --help').\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status (0 and 1 as for 'nginx -t', unlike the other commands):\n"
    "  0  the file is valid\n"
    "  1  the file is invalid: its problems are on stderr\n"
    "  3  usage error\n"
    "  4  the file cannot be read (stderr names it and says why)\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl check-config\n"
    "  ratelimitctl check-config new.conf && ratelimitctl apply new.conf\n";

static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static void summarize(const char *path, const rl_config *cfg)
{
    const struct rl_config_bucket *bs;
    size_t n = rl_config_buckets(cfg, &bs), templates = 0;
    size_t routes = rl_config_routes(cfg, NULL);
    const char *origin, *table = ctl_config_table_path(cfg, &origin);
    for (size_t i = 0; i < n; i++)
        templates += bs[i].is_template;
    printf("%s: ok: %zu bucket%s, %zu template%s, %zu route%s, table %s%s\n", path, n - templates,
           ctl_plural(n - templates), templates, ctl_plural(templates), routes, ctl_plural(routes),
           table, origin);
}

void ctl_config_footprint(const rl_config *cfg, const char *prefix, const char *path)
{
    struct rl_config_footprint fp;
    char h[32];
    rl_config_footprint(cfg, &fp);
    printf("%s%s: footprint: table file %" PRIu64 " bytes (%s, sparse); apply writes %" PRIu64
           " bytes, %" PRIu64 " of them policy blocks",
           prefix, path, fp.file_bytes, ctl_human_bytes(h, sizeof(h), fp.file_bytes), fp.used_bytes,
           fp.block_bytes);
    if (fp.tenant_template)
        printf("; each tenant of %s %" PRIu64 " bytes, room for %" PRIu32 " (%" PRIu64 " bytes)",
               fp.tenant_template, fp.tenant_bytes, fp.tenants, fp.tenant_bytes * fp.tenants);
    putchar('\n');
}

int ctl_check_config_run(struct ctl *c, int argc, char **argv)
{
    const char *file;
    rl_config *cfg;
    int opt = ctl_getopt(c, argc, argv);
    if (opt != -1)
        return ctl_option_end(opt);
    int rc = ctl_config_operand(c, argc, argv, &file);
    if (rc || (rc = ctl_config_load(c, file, &cfg)))
        return rc;
    summarize(rl_config_default_path(file), cfg);
    ctl_config_footprint(cfg, "", rl_config_default_path(file));
    rl_config_free(cfg);
    return CTL_OK;
}

const struct ctl_syntax ctl_check_config_syntax = {help, options};
