/*
 * cmd_exec.c - `ratelimitctl exec [--config FILE] [--preload PATH] -- COMMAND [ARGS...]`:
 * run an unmodified program under the preload shim, so its connections to the config's
 * routes draw from the shared budget.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl exec [--config FILE] [--preload PATH] [--] COMMAND [ARGS...]\n"
    "       ratelimitctl exec --check [--config FILE] [--preload PATH] [-- CMD...]\n"
    "\n"
    "Run COMMAND with the preload shim (libratelimit-preload.so) loaded, so that\n"
    "each TCP connection it opens to a destination a 'route' of the config names\n"
    "first takes one unit from the route's bucket (see README \"Preload shim\").\n"
    "The shim goes first in LD_PRELOAD, before what is already there. With\n"
    "--config, the file is checked first (as check-config does) and passed as\n"
    "RATELIMIT_CONFIG; without it, the shim reads $RATELIMIT_CONFIG, else\n"
    "/etc/ratelimit.conf. RATELIMIT_TABLE and RATELIMIT_FAIL_CLOSED pass through.\n"
    "A route counts connections, or with 'count requests' each HTTP/1.1 request\n"
    "(and the vendor's 429s pause the pool). Static or set-id programs ignore\n"
    "the shim.\n"
    "\n"
    "The shim is looked for at --preload PATH, else $RATELIMIT_PRELOAD, else next\n"
    "to this program in a build tree, else where it was installed:\n"
    "  " CTL_PRELOAD_PATH "\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   the config the shim reads (checked before COMMAND runs)\n"
    "  -p, --preload PATH  the shim to load\n"
    "  -k, --check         run nothing: print the config, table and routes the shim\n"
    "                      would use, whether COMMAND can load it, and the result of\n"
    "                      a probe connect through it (exit 0 if the shim works\n"
    "                      with a usable config, else 4)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: COMMAND's own; 1 if FILE is invalid (its problems on stderr);\n"
    "3 usage error; 4 no shim found, or FILE unreadable; 126 COMMAND cannot be\n"
    "run; 127 COMMAND not found.\n"
    "\n"
    "Examples:\n"
    "  ratelimitctl exec --config /etc/ratelimit.conf -- php worker.php\n"
    "  ratelimitctl exec -- curl -s https://api.example.com/v1/users\n";

static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                        {"preload", required_argument, NULL, 'p'},
                                        {"check", no_argument, NULL, 'k'},
                                        {"probe", required_argument, NULL, 'P'}, /* internal */
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

/* The shim in a build tree: build/tools/ratelimitctl/ratelimitctl -> build/src/shim/. */
static bool build_tree_shim(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return snprintf(out, len, "%s/../../src/shim/libratelimit-preload.so", self) < (int)len &&
           access(out, R_OK) == 0;
}

static int find_shim(const struct ctl *c, const char *given, char *out, size_t len)
{
    const char *env = getenv("RATELIMIT_PRELOAD");
    const char *path = given ? given : env && *env ? env : NULL;
    if (!path && build_tree_shim(out, len))
        path = out;
    if (!path)
        path = CTL_PRELOAD_PATH;
    if (access(path, R_OK) != 0)
        return ctl_error(c, "cannot use the preload shim %s: %s (install it, or give --preload)",
                         path, strerror(errno));
    /* LD_PRELOAD needs an absolute path: the command may change directory. */
    if (!realpath(path, out))
        return ctl_error(c, "cannot resolve %s: %s", path, strerror(errno));
    return CTL_OK;
}

static int set_preload(const struct ctl *c, const char *shim)
{
    const char *old = getenv("LD_PRELOAD");
    size_t len = strlen(shim) + (old ? strlen(old) + 1 : 0) + 1;
    char *value = malloc(len);
    if (!value)
        return ctl_error(c, "out of memory");
    snprintf(value, len, "%s%s%s", shim, old && *old ? ":" : "", old ? old : "");
    int rc = setenv("LD_PRELOAD", value, 1);
    free(value);
    return rc == 0 ? CTL_OK : ctl_error(c, "cannot set LD_PRELOAD: %s", strerror(errno));
}

static int set_config(const struct ctl *c, const char *file)
{
    char abs[PATH_MAX];
    rl_config *config;
    int rc = ctl_config_load(c, file, &config);
    if (rc != CTL_OK)
        return rc;
    rl_config_free(config);
    if (!realpath(file, abs))
        return ctl_error(c, "cannot resolve %s: %s", file, strerror(errno));
    return setenv("RATELIMIT_CONFIG", abs, 1) == 0
               ? CTL_OK
               : ctl_error(c, "cannot set RATELIMIT_CONFIG: %s", strerror(errno));
}

int ctl_exec_run(struct ctl *c, int argc, char **argv)
{
    const char *config = NULL, *preload = NULL;
    char shim[PATH_MAX];
    bool check = false;
    int opt;
    while ((opt = ctl_getopt_ordered(c, argc, argv)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            preload = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'P': /* the --check probe's child (exec_check.c) */
            return ctl_exec_probe(optarg);
        default:
            return ctl_option_end(opt);
        }
    }
    if (optind >= argc && !check)
        return ctl_usage(c, "expected a COMMAND to run");
    int rc = find_shim(c, preload, shim, sizeof(shim));
    if (rc == CTL_OK && check)
        return ctl_exec_check(c, shim, config, argc - optind, argv + optind);
    if (rc == CTL_OK && config)
        rc = set_config(c, config);
    if (rc == CTL_OK)
        rc = set_preload(c, shim);
    if (rc != CTL_OK)
        return rc;
    fflush(stdout);
    execvp(argv[optind], argv + optind);
    int err = errno;
    ctl_error(c, "cannot run %s: %s", argv[optind], strerror(err));
    return err == ENOENT ? 127 : 126;
}

const struct ctl_syntax ctl_exec_syntax = {help, options};
