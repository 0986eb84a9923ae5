/*
 * config.c - config files, for check-config and apply: the FILE operand, loading and
 * reporting a file's problems, and the table it names.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The optional FILE operand of check-config and apply; *file is NULL when it is absent. */
int ctl_config_operand(const struct ctl *c, int argc, char **argv, const char **file)
{
    if (argc - optind > 1)
        return ctl_usage(c, "expected at most one FILE");
    *file = optind < argc ? argv[optind] : NULL;
    if (*file && !**file)
        return ctl_usage(c, "FILE must not be empty");
    return CTL_OK;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        n++;
    return n;
}

/* The library's lines about a file, each byte visible (ctl_put_visible) but the newlines. */
static void put_lines(const char *text)
{
    for (const char *end; (end = strchr(text, '\n')); text = end + 1) {
        ctl_put_visible(stderr, text, (size_t)(end - text));
        fputc('\n', stderr);
    }
    ctl_put_visible(stderr, text, strlen(text));
}

/*
 * Parse config `file` (NULL: $RATELIMIT_CONFIG, else /etc/ratelimit.conf). An invalid file's
 * problems go to stderr as the library words them, "FILE:LINE:COL: what", all of them, then
 * a count. Returns CTL_OK, CTL_INVALID, or CTL_ERROR for a file that cannot be read.
 */
int ctl_config_load(const struct ctl *c, const char *file, rl_config **out)
{
    char *errors = NULL;
    const char *path = rl_config_default_path(file);
    int err = rl_config_load(path, out, &errors);
    if (err == RL_EPARSE && errors) {
        size_t n = count_lines(errors);
        put_lines(errors);
        ctl_say(c, NULL, "%s is invalid: %zu problem%s", path, n, ctl_plural(n));
        free(errors);
        return CTL_INVALID;
    }
    free(errors);
    return err ? ctl_error(c, "%s", rl_errdetail()) : CTL_OK;
}

/* The table the config names, else $RATELIMIT_TABLE, else the default, as the library
 * resolves it; *origin is "" for the config's own, else says where the path comes from. */
const char *ctl_config_table_path(const rl_config *cfg, const char **origin)
{
    const char *path = rl_config_table(cfg)->path, *env = getenv("RATELIMIT_TABLE");
    *origin = path ? "" : env && *env ? " (from $RATELIMIT_TABLE)" : " (the default)";
    return path ? path : env && *env ? env : RL_TABLE_DEFAULT_PATH;
}
