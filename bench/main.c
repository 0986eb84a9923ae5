/*
 * bench - measurements that cannot be tests, each against a baseline measured in the same
 * run (the machine may be shared and noisy: ratios, not absolutes):
 *   cost        one decision against the floor (clock_gettime + one CAS on a shared page)
 *   peers       the same decision by a robust mutex, flock() and Redis
 *   contention  1..256 processes on one bucket and on a bucket each, against the mutex
 *   scale       lookup and acquire with 1..1M buckets; creating them
 *   config      parse + check, first apply, unchanged re-apply of 1k..1M-bucket configs
 *               (--full-capacity: also 4M and 16M, the largest capacity; about 2.5 min, ~11 GiB)
 *   memory      table bytes per bucket for each rule kind
 *   waiters     64 blocking waiters: CPU while waiting, admission order, lateness
 *   accuracy    utilization under saturation and over-admissions, from the admission log
 *   shim        connect() with the preload shim loaded (a route that matches nothing)
 *   shim-requests  the request-level shim: a write() on an unrouted fd, a routed request
 * Ends with a markdown summary: every target, met or not, and the machine it ran on.
 *
 * usage: bench [--quick] [--full-capacity] [--csv DIR] [--only SECTION[,SECTION...]]
 * --quick is the smoke run of tools/check: tiny sizes, asserts nothing about speed.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

bool bench_quick;
bool bench_full_capacity;
const char *bench_csv;

static const struct {
    const char *name;
    void (*run)(void);
} sections[] = {
    {"cost", bench_cost},
    {"peers", bench_peers},
    {"contention", bench_contention},
    {"scale", bench_scale},
    {"memory", bench_memory},
    {"waiters", bench_waiters},
    {"accuracy", bench_accuracy},
    {"shim", bench_shim},
    {"config", bench_config},
    {"shim-requests", bench_shim_requests},
};

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: bench [--quick] [--full-capacity] [--csv DIR] "
                    "[--only SECTION[,SECTION...]]\n"
                    "sections: cost peers contention scale memory waiters accuracy shim config\n"
                    "          shim-requests\n");
    exit(2);
}

static bool wanted(const char *only, const char *name)
{
    if (!only)
        return true;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* "nproc 2, AMD EPYC ..., Linux 6.1" */
static void machine(char *out, size_t len)
{
    char line[256], model[160] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (f)
        fclose(f);
    struct utsname u;
    uname(&u);
    snprintf(out, len, "nproc %ld, %s, Linux %s", sysconf(_SC_NPROCESSORS_ONLN), model, u.release);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    if (argc == 4 && strcmp(argv[1], "--connect-child") == 0)
        return shim_connect_child(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "--requests-child") == 0)
        return shim_requests_child(argv[2], argv[3], argv[4]);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            bench_quick = true;
        else if (strcmp(argv[i], "--full-capacity") == 0)
            bench_full_capacity = true;
        else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
            bench_csv = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            usage();
    char host[320];
    machine(host, sizeof(host));
    printf("ratelimit bench%s: %s\n", bench_quick ? " (quick smoke run)" : "", host);
    for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++)
        if (wanted(only, sections[s].name)) {
            uint64_t t0 = now_ns();
            sections[s].run();
            printf("(%s: %.1f s)\n", sections[s].name, (now_ns() - t0) / 1e9);
        }
    printf("\n== summary (markdown)\n\nMachine: %s.\n\n", host);
    summary_print();
    return 0;
}
