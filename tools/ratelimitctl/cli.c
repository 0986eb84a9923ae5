/*
 * cli.c - the command line of one command: its options, and the one-line errors.
 *
 * Every error is one line on stderr, "ratelimitctl: <command>[ <subject>]: <what went wrong>",
 * and an exit status from enum ctl_exit.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The next option of the command (getopt_long, GNU permutation: options may follow the
 * operands). Prints the help for -h/--help, and a usage error for a bad option. */
static int getopt_with(struct ctl *c, int argc, char **argv, const char *optstring);

int ctl_getopt(struct ctl *c, int argc, char **argv)
{
    return getopt_with(c, argc, argv, ":h");
}

/* Options only before the first operand: what follows belongs to a command to run. */
int ctl_getopt_ordered(struct ctl *c, int argc, char **argv)
{
    return getopt_with(c, argc, argv, "+:h");
}

static int getopt_with(struct ctl *c, int argc, char **argv, const char *optstring)
{
    int opt = getopt_long(argc, argv, optstring, c->cmd->syntax->options, NULL);
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    switch (opt) {
    case CTL_OPT_HELP:
        fputs(c->cmd->syntax->help, stdout);
        return opt;
    case ':':
        ctl_usage(c, "option '%s' needs a value", arg);
        return CTL_OPT_BAD;
    case '?':
        if (strncmp(arg, "--", 2) == 0 || !isprint(optopt))
            ctl_usage(c, "bad option '%s'", arg);
        else
            ctl_usage(c, "unknown option '-%c'", optopt);
        return CTL_OPT_BAD;
    }
    return opt;
}

/* The options of a command whose only option is --json (-j): -1 to go on, else the exit
 * status (--help, or a bad option). */
int ctl_json_option(struct ctl *c, int argc, char **argv, bool *json)
{
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        if (opt != 'j')
            return ctl_option_end(opt);
        *json = true;
    }
    return -1;
}

/* The exit status for an option the command does not handle itself: --help or a bad one. */
int ctl_option_end(int opt)
{
    return opt == CTL_OPT_HELP ? CTL_OK : CTL_USAGE;
}

/* The message of fmt, every byte visible (ctl_put_visible): it can carry names read from a
 * table or config file, and the library's details about them. */
static void put_message(const char *fmt, va_list ap)
{
    char *msg;
    if (vasprintf(&msg, fmt, ap) < 0) {
        fputs("out of memory", stderr);
        return;
    }
    ctl_put_visible(stderr, msg, strlen(msg));
    free(msg);
}

int ctl_usage(const struct ctl *c, const char *fmt, ...)
{
    va_list ap;
    fputs("ratelimitctl: ", stderr);
    if (c->cmd)
        fprintf(stderr, "%s: ", c->cmd->name);
    va_start(ap, fmt);
    put_message(fmt, ap);
    va_end(ap);
    if (c->cmd)
        fprintf(stderr, " (see 'ratelimitctl %s --help')\n", c->cmd->name);
    else
        fputs(" (see 'ratelimitctl --help')\n", stderr);
    return CTL_USAGE;
}

/* The line "ratelimitctl: COMMAND[ SUBJECT]: MESSAGE" on stderr (subject may be NULL). */
static void vsay(const struct ctl *c, const char *subject, const char *fmt, va_list ap)
{
    fprintf(stderr, "ratelimitctl: %s", c->cmd->name);
    if (subject) {
        fputc(' ', stderr);
        ctl_put_visible(stderr, subject, strlen(subject));
    }
    fputs(": ", stderr);
    put_message(fmt, ap);
    fputc('\n', stderr);
}

void ctl_say(const struct ctl *c, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(c, subject, fmt, ap);
    va_end(ap);
}

int ctl_error(const struct ctl *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(c, NULL, fmt, ap);
    va_end(ap);
    return CTL_ERROR;
}

static int exit_code(int err)
{
    switch (err) {
    case RL_EPERM:
        return CTL_DENIED;
    case RL_ENAME:
    case RL_EPARSE:
        return CTL_USAGE;
    default:
        return CTL_ERROR;
    }
}

/* Report err from a library call that records its details (rl_table_open, rl_bucket_lookup,
 * rl_bucket_define, rl_bucket_reset, rl_bucket_info, rl_try_acquire and rl_acquire other than
 * RL_ELIMITED and RL_ETIMEDOUT) and return the exit status for it. */
int ctl_fail(const struct ctl *c, const char *subject, int err)
{
    ctl_say(c, subject, "%s", *rl_errdetail() ? rl_errdetail() : rl_strerror(err));
    return exit_code(err);
}

/* A whole-string DURATION ("500ms", "60s", "1m") for option `option`. */
int ctl_parse_duration(const struct ctl *c, const char *option, const char *text, uint64_t *ns)
{
    struct rl_parse_error e;
    const char *end;
    if (rl_parse_duration(text, &end, ns, &e) < 0)
        return ctl_usage(c, "%s '%s': column %u: %s", option, text, e.column, e.message);
    if (*end)
        return ctl_usage(c, "%s '%s': column %u: unexpected '%s' after the duration", option, text,
                         (unsigned)(end - text) + 1, end);
    return CTL_OK;
}

/* True if name is a template pattern: a name, then a slash and a star. */
bool ctl_is_pattern(const char *name)
{
    size_t len = strlen(name);
    return len > 2 && strcmp(name + len - 2, "/*") == 0;
}

/* A valid bucket name, or with template_ok also a template pattern (see ctl_is_pattern). */
int ctl_check_name(const struct ctl *c, const char *name, bool template_ok)
{
    char prefix[RL_NAME_MAX + 1];
    if (template_ok && ctl_is_pattern(name) && strlen(name) - 2 < sizeof(prefix)) {
        memcpy(prefix, name, strlen(name) - 2);
        prefix[strlen(name) - 2] = '\0';
        name = prefix;
    }
    if (rl_name_check(name) < 0)
        return ctl_usage(c, "%s", rl_errdetail());
    return CTL_OK;
}
