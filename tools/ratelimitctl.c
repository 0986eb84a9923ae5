/*
 * ratelimitctl - the ops tool of libratelimit: inspect, define, reset and watch the buckets
 * of a shared table, acquire and report from shell scripts, export stats, check and apply
 * config files. See ratelimitctl(1).
 *
 * This file parses the global options and runs one command (ctl_<command>.c).
 */
#include <errno.h>
#include <string.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl [--table PATH] COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Inspect and manage a libratelimit table: the named buckets that many\n"
    "processes on this host draw from to share API budgets, their rules, their\n"
    "remaining budget and their counters.\n"
    "\n"
    "Commands:\n"
    "  list [PATTERN]                   one line per bucket: rules, usage, remaining\n"
    "  show NAME                        one bucket: state, parent chain, counters\n"
    "  stats [PATTERN]                  counters as text, JSON or Prometheus metrics\n"
    "  watch [PATTERN]                  live full-screen view; q quits\n"
    "  info                             the table: path, capacity, space used\n"
    "  define NAME RULES... [parent P]  create a bucket (and the table if missing)\n"
    "  reset NAME... | --all [PATTERN]  restore buckets' full budget\n"
    "  acquire NAME                     take units from a bucket, for scripts\n"
    "  report NAME --status CODE ...    tell the pool what the vendor answered\n"
    "  check-config [FILE]              check a config file, like 'nginx -t'\n"
    "  apply [--dry-run] [FILE]         bring the table in line with a config file\n"
    "  exec [--config FILE] -- CMD...   run CMD with the preload shim limiting its\n"
    "                                   connections to the config's routes\n"
    "'ratelimitctl COMMAND --help' describes a command.\n"
    "\n"
    "Options:\n"
    "  -t, --table PATH  the table file; default $RATELIMIT_TABLE, else\n"
    "                    /dev/shm/ratelimit (for apply, the config file's\n"
    "                    'table' comes before both)\n"
    "  -h, --help        show this help\n"
    "  -V, --version     show the version\n"
    "\n"
    "PATTERN is a shell glob (fnmatch(3)) on bucket names; '*' also matches '/'.\n"
    "list, show, stats, watch and info open the table read-only: permission to\n"
    "read the file is enough.\n"
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

static const struct ctl_command *const commands[] = {
    &ctl_list_cmd,   &ctl_show_cmd,   &ctl_stats_cmd,        &ctl_watch_cmd,
    &ctl_info_cmd,   &ctl_define_cmd, &ctl_reset_cmd,        &ctl_acquire_cmd,
    &ctl_report_cmd, &ctl_apply_cmd,  &ctl_check_config_cmd, &ctl_exec_cmd,
};

static const struct ctl_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
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
            fputs(help, stdout);
            return CTL_OK;
        case 'V':
            printf("ratelimitctl %s\n", CTL_VERSION);
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
