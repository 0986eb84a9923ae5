/*
 * shim_seen.c - whether programs reach the table through the preload shim: the table
 * counts each process whose shim attached (on its first connect to a TCP/IP address), and
 * keeps the pid and instant of the latest. list, show and stats print it. A pool whose
 * programs never attach (no LD_PRELOAD, a config the shim cannot find) shows 0 here.
 */
#include <inttypes.h>
#include <time.h>

#include "ctl.h"

static uint64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Nanoseconds since the latest attachment (0 if none, or if it is in the future). */
static uint64_t since_last(const struct rl_table_info *ti)
{
    uint64_t now = mono_now();
    return ti->shim_last_attach_ns && now > ti->shim_last_attach_ns ? now - ti->shim_last_attach_ns
                                                                    : 0;
}

void ctl_shim_print(const rl_table *t)
{
    struct rl_table_info ti;
    char ago[CTL_HUMAN_MAX];
    rl_table_info(t, &ti);
    if (ti.shim_attaches == 0) {
        printf("shim: no process has attached to this table through the preload shim\n");
        return;
    }
    printf("shim: %" PRIu64 " process%s attached through the preload shim, the latest pid %" PRId64
           " %s ago\n",
           ti.shim_attaches, ti.shim_attaches == 1 ? "" : "es", ti.shim_last_pid,
           ctl_human_duration(ago, sizeof(ago), since_last(&ti)));
}

void ctl_shim_json(struct json *j, const rl_table *t)
{
    struct rl_table_info ti;
    rl_table_info(t, &ti);
    json_open(j, "shim", '{');
    json_u64(j, "attaches", ti.shim_attaches);
    json_u64(j, "last_pid", ti.shim_last_pid > 0 ? (uint64_t)ti.shim_last_pid : 0);
    json_duration(j, "since_last_ns", "since_last", since_last(&ti));
    json_close(j, '}');
}
