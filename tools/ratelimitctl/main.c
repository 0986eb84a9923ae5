/*
 * main.c - ratelimitctl, the ops tool of libratelimit: inspect, define, reset and watch the
 * buckets of a shared table, acquire and report from shell scripts, export stats, check and
 * apply config files. See ratelimitctl(1).
 *
 * This file holds the command table, parses the global options and runs one command
 * (cmd_<command>.c). The table drives both the dispatch and the global help.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../stdfds.h"
#include "ctl.h"
#include "shm_format.h" /* RL_LAYOUT_VERSION: the table layout this build writes and reads */

static const char help_head[] =
    "Usage: ratelimitctl [--table PATH] COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Inspect and manage a libratelimit table: the named buckets that many\n"
    "processes on this host draw from to share API budgets, their rules, their\n"
    "remaining budget and their counters.\n"
    "\n";

static const char help_tail[] =
    "'ratelimitctl help COMMAND' or 'ratelimitctl COMMAND --help' describes a\n"
    "command.\n"
    "\n"
    "Options:\n"
    "  -t, --table PATH  the table file; default $RATELIMIT_TABLE, else\n"
    "                    " RL_TABLE_DEFAULT_PATH " (for apply, the config file's\n"
    "                    'table' comes before both)\n"
    "  -h, --help        show this help\n"
    "  -V, --version     show the version\n"
    "\n"
    "PATTERN is a shell glob (fnmatch(3)) on bucket names; '*' also matches '/'.\n"
    "list, show, stats, watch and info open the table read-only: permission to\n"
    "read the file is enough. Whoever can write the file can put anything where\n"
    "a name belongs: names read from it are checked, and every output shows any\n"
    "byte other than printable ASCII as \\xHH (JSON: \\u00XX), a backslash as \\\\.\n"
    "\n"
    "Exit status:\n"
    "  0  success; acquire: admitted\n"
    "  1  acquire --nowait: rejected, the budget does not allow the request now;\n"
    "     check-config, apply: the config file is invalid (as for 'nginx -t')\n"
    "  2  acquire: timed out, the turn would come after the timeout\n"
    "  3  usage error: unknown command or option, bad value, name or rule text\n"
    "  4  error: no table, no such bucket, damaged or full table, ...\n"
    "  5  permission denied: the table cannot be opened as the command needs\n"
    "Errors are one line on stderr: \"ratelimitctl: COMMAND: what went wrong\";\n"
    "a config file's problems are lines \"FILE:LINE:COLUMN: what is wrong\".\n"
    "\n"
    "Environment:\n"
    "  RATELIMIT_TABLE   the table file, unless --table is given (or, for\n"
    "                    apply, the config file names one)\n"
    "  RATELIMIT_CONFIG  the config file of check-config and apply, else\n"
    "                    /etc/ratelimit.conf\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl define foundry 200/60s\n"
    "  ratelimitctl acquire foundry && curl https://api.example.com/...\n"
    "  ratelimitctl list 'ti/*'\n"
    "  ratelimitctl report foundry --status 429 --retry-after 30\n"
    "  ratelimitctl check-config && ratelimitctl apply\n"
    "\n"
    "See ratelimitctl(1) for the rule syntax and the JSON schemas.\n";

static int run_help(struct ctl *c, int argc, char **argv);

static const char help_help[] =
    "Usage: ratelimitctl help [COMMAND]\n"
    "\n"
    "Show the global help, or the help of COMMAND (as 'ratelimitctl COMMAND\n"
    "--help' does).\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 shown, 3 usage error (such as an unknown COMMAND).\n";

static const struct option help_options[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static const struct ctl_syntax help_syntax = {help_help, help_options};

static const struct ctl_command commands[] = {
    {"list", ctl_list_run, "[PATTERN]", "one line per bucket: rules, usage, remaining",
     &ctl_list_syntax},
    {"show", ctl_show_run, "NAME", "one bucket: state, parent chain, counters", &ctl_show_syntax},
    {"stats", ctl_stats_run, "[PATTERN]", "counters as text, JSON or Prometheus metrics",
     &ctl_stats_syntax},
    {"watch", ctl_watch_run, "[PATTERN]", "live full-screen view; q quits", &ctl_watch_syntax},
    {"info", ctl_info_run, "", "the table: path, capacity, space used", &ctl_info_syntax},
    {"define", ctl_define_run, "NAME RULES... [parent P]",
     "create a bucket (and the table if missing)", &ctl_define_syntax},
    {"reset", ctl_reset_run, "NAME... | --all [PATTERN]", "restore buckets' full budget",
     &ctl_reset_syntax},
    {"delete", ctl_delete_run, "NAME|PATTERN...", "delete buckets; their names are free again",
     &ctl_delete_syntax},
    {"expire", ctl_expire_run, "[--dry-run] [PATTERN]", "expire the tenants that are due",
     &ctl_expire_syntax},
    {"resize", ctl_resize_run, "--capacity N", "grow the table; every bucket's usage carried",
     &ctl_resize_syntax},
    {"acquire", ctl_acquire_run, "NAME", "take units from a bucket, for scripts",
     &ctl_acquire_syntax},
    {"report", ctl_report_run, "NAME --status CODE ...", "tell the pool what the vendor answered",
     &ctl_report_syntax},
    {"check-config", ctl_check_config_run, "[FILE]", "check a config file, like 'nginx -t'",
     &ctl_check_config_syntax},
    {"apply", ctl_apply_run, "[--dry-run] [FILE]", "bring the table in line with a config file",
     &ctl_apply_syntax},
    {"exec", ctl_exec_run, "[--config FILE] -- CMD...", "run CMD under the preload shim",
     &ctl_exec_syntax},
    {"help", run_help, "[COMMAND]", "this help, or the help of COMMAND", &help_syntax},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct ctl_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The global help: its list of commands comes from the table. */
static void print_help(void)
{
    char line[64];
    fputs(help_head, stdout);
    fputs("Commands:\n", stdout);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        snprintf(line, sizeof(line), "%s %s", commands[i].name, commands[i].usage);
        printf("  %-32s %s\n", line, commands[i].summary);
    }
    fputs(help_tail, stdout);
}

static int run_help(struct ctl *c, int argc, char **argv)
{
    int opt = ctl_getopt(c, argc, argv);
    if (opt != -1)
        return ctl_option_end(opt);
    if (argc - optind > 1)
        return ctl_usage(c, "expected at most one COMMAND");
    if (optind == argc) {
        print_help();
        return CTL_OK;
    }
    const struct ctl_command *cmd = find_command(argv[optind]);
    if (!cmd)
        return ctl_usage(c, "unknown command '%s'", argv[optind]);
    fputs(cmd->syntax->help, stdout);
    return CTL_OK;
}

/*
 * The tool's version, the library's (rl_version(): the one loaded, which may be newer than
 * the headers), the table layout version and the default table. The library and the tool
 * are built together, so they speak the same layout; a table of another layout is refused.
 */
static void print_version(void)
{
    printf("ratelimitctl %s\n", CTL_VERSION);
    printf("libratelimit %s, table layout version %d\n", rl_version(), RL_LAYOUT_VERSION);
    printf("default table %s\n", RL_TABLE_DEFAULT_PATH);
}

/* The global options, before the command. Returns -1 to go on, else the exit status. */
static int global_options(struct ctl *c, int argc, char **argv)
{
    static const struct option options[] = {{"table", required_argument, NULL, 't'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, 'V'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "+:t:hV", options, NULL)) != -1) {
        switch (opt) {
        case 't':
            if (!*optarg)
                return ctl_usage(c, "--table needs a path");
            c->table = optarg;
            break;
        case 'h':
            print_help();
            return CTL_OK;
        case 'V':
            print_version();
            return CTL_OK;
        case ':':
            return ctl_usage(c, "option '%s' needs a value", argv[optind - 1]);
        default:
            return ctl_usage(c, "unknown option '%s'", argv[optind - 1]);
        }
    }
    return -1;
}

/* Everything printed must reach stdout: a full disk or a closed pipe is an error. */
static int finish(const struct ctl *c, int rc)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return rc;
    ctl_error(c, "cannot write the output: %s", strerror(errno));
    return rc ? rc : CTL_ERROR;
}

int main(int argc, char **argv)
{
    struct ctl c = {NULL, NULL};
    if (!standard_fds_open()) {
        fprintf(stderr, "ratelimitctl: cannot open /dev/null: %s\n", strerror(errno));
        return CTL_ERROR;
    }
    rl_guard_install(); /* a table truncated under us: an error, not a SIGBUS */
    opterr = 0;
    int rc = global_options(&c, argc, argv);
    if (rc >= 0)
        return rc;
    if (optind == argc)
        return ctl_usage(&c, "no command given");
    c.cmd = find_command(argv[optind]);
    if (!c.cmd)
        return ctl_usage(&c, "unknown command '%s'", argv[optind]);
    argc -= optind;
    argv += optind;
    optind = 0; /* getopt_long starts afresh on the command's arguments */
    return finish(&c, c.cmd->run(&c, argc, argv));
}
