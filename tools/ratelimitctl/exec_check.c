/*
 * exec_check.c - `ratelimitctl exec --check [--config FILE] [-- COMMAND...]`: what a program
 * started by `exec` would get from the preload shim, without running it. Prints the shim,
 * the config the shim reads (and whether it loads), the table, the routes, whether COMMAND
 * can load a preloaded library at all, and the result of a probe: a child process started
 * like COMMAND (LD_PRELOAD) connects once to a loopback listener through a route of a
 * scratch config, and the scratch table must count that connect. For php-fpm, it says what
 * clear_env does to RATELIMIT_CONFIG.
 */
#include <arpa/inet.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"

/* COMMAND's file along PATH, as execvp finds it; false if none. */
static bool find_command(const char *cmd, char *out, size_t len)
{
    if (strchr(cmd, '/'))
        return snprintf(out, len, "%s", cmd) < (int)len && access(out, X_OK) == 0;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        if (snprintf(out, len, "%.*s/%s", (int)n, n ? p : ".", cmd) < (int)len &&
            access(out, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/* Does the ELF file ask for a program interpreter (dynamically linked)? -1: not ELF. */
static int is_dynamic(const char *file)
{
    Elf64_Ehdr eh;
    int fd = open(file, O_RDONLY | O_CLOEXEC), dynamic = -1;
    if (fd < 0)
        return -1;
    if (pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) &&
        memcmp(eh.e_ident, ELFMAG, 4) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64) {
        dynamic = 0;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
                (ssize_t)sizeof(ph))
                break;
            dynamic |= ph.p_type == PT_INTERP;
        }
    }
    close(fd);
    return dynamic;
}

static void check_command(const char *cmd, const char *config)
{
    char file[PATH_MAX];
    struct stat st;
    if (!find_command(cmd, file, sizeof(file)) || stat(file, &st) != 0) {
        printf("command  %s: not found\n", cmd);
        return;
    }
    int dyn = is_dynamic(file);
    printf("command  %s: %s\n", file,
           st.st_mode & (S_ISUID | S_ISGID) ? "set-id: the dynamic linker ignores LD_PRELOAD"
           : dyn == 0                       ? "statically linked: LD_PRELOAD has no effect"
           : dyn < 0 ? "not a 64-bit ELF program (a script: its interpreter loads the shim)"
                     : "dynamically linked: the shim is loaded");
    if (strstr(strrchr(file, '/') + 1, "php-fpm"))
        printf("php-fpm  clears its children's environment (clear_env = yes, the default): "
               "set env[RATELIMIT_CONFIG] = %s in each pool, or use /etc/ratelimit.conf; the "
               "children's stderr is /dev/null, so the shim's messages go to syslog\n",
               config);
}

/* The probe child: connect once to 127.0.0.1:port; exit 0 if connected. */
int ctl_exec_probe(const char *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : 1;
}

/* Units the scratch table's bucket "probe" admitted; -1 if there is no such table. */
static long long probe_admitted(const char *table)
{
    struct rl_table_opts opts = RL_TABLE_OPTS_INIT;
    rl_table *t;
    rl_bucket *b;
    struct rl_bucket_info bi;
    long long n = -1;
    opts.path = table;
    opts.flags = RL_OPEN_READONLY;
    if (rl_table_open(&opts, &t) != 0)
        return -1;
    if (rl_bucket_lookup(t, "probe", &b) == 0 && rl_bucket_info(b, &bi) == 0)
        n = (long long)bi.counters.admitted;
    rl_table_close(t);
    return n;
}

/* Run this program under the shim with a scratch config; true if its connect took a unit. */
static bool probe(const char *shim)
{
    char dir[] = "/tmp/rl-exec-check.XXXXXX", conf[PATH_MAX], table[PATH_MAX], port[16],
         self[PATH_MAX];
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (l < 0 || n <= 0 || !mkdtemp(dir) || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(l, 4) != 0 || getsockname(l, (struct sockaddr *)&sa, &len) != 0) {
        printf("probe    cannot be set up: %s\n", strerror(errno));
        if (l >= 0)
            close(l);
        return false;
    }
    self[n] = '\0';
    snprintf(conf, sizeof(conf), "%s/ratelimit.conf", dir);
    snprintf(table, sizeof(table), "%s/table", dir);
    snprintf(port, sizeof(port), "%u", ntohs(sa.sin_port));
    FILE *f = fopen(conf, "w");
    if (f) {
        fprintf(f, "table %s\nbucket probe 1000/1s\nroute 127.0.0.1:%s probe\n", table, port);
        fclose(f);
    }
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LD_PRELOAD", shim, 1);
        setenv("RATELIMIT_CONFIG", conf, 1);
        execl(self, self, "exec", "--probe", port, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    close(l);
    long long admitted = probe_admitted(table);
    unlink(conf);
    unlink(table);
    rmdir(dir);
    bool ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && admitted == 1;
    printf("probe    %s\n", ok ? "a connect through the shim took one unit: the shim works"
                               : "a connect through the shim took no unit: the shim does not work "
                                 "here (is it built for this system?)");
    return ok;
}

int ctl_exec_check(const struct ctl *c, const char *shim, const char *config_file, int argc,
                   char **argv)
{
    char abs[PATH_MAX];
    const char *path = rl_config_default_path(config_file);
    rl_config *config = NULL;
    if (realpath(path, abs))
        path = abs;
    char *errors = NULL;
    bool ok = true;
    printf("preload  %s\n", shim);
    printf("config   %s", path);
    if (rl_config_load(path, &config, &errors) != 0) {
        char *nl = errors ? strchr(errors, '\n') : NULL;
        if (nl)
            *nl = '\0';
        printf(": %s: the shim lets every connection pass\n", errors ? errors : rl_errdetail());
        ok = false;
    } else {
        const struct rl_route *routes;
        size_t nroutes = rl_config_routes(config, &routes);
        const char *table = rl_config_table(config)->path;
        const char *env = getenv("RATELIMIT_TABLE");
        table = table ? table : env && *env ? env : RL_TABLE_DEFAULT_PATH;
        printf(": %zu route%s\n", nroutes, nroutes == 1 ? "" : "s");
        printf("table    %s%s\n", table,
               access(table, F_OK) == 0 ? "" : " (missing: the first shimmed connect creates it)");
        for (size_t i = 0; i < nroutes; i++)
            printf("route    %s:%u -> bucket %s\n", routes[i].dest, routes[i].port,
                   routes[i].bucket);
        if (nroutes == 0) {
            printf("         no route: the shim limits nothing\n");
            ok = false;
        }
        rl_config_free(config);
    }
    free(errors);
    if (argc > 0)
        check_command(argv[0], path);
    ok = probe(shim) && ok;
    (void)c;
    return ok ? CTL_OK : CTL_ERROR;
}
