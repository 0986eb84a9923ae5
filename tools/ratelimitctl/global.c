/*
 * global.c - what ratelimit-agent says about the global rules: it writes TABLE.agent
 * (tools/agent/agent.c, write_status) a few times a second, and show and stats read it.
 *   redis ok|down calls C grants G granted U returned R error TEXT|-
 *   bucket NAME limit N period_ns T lease L lease_ns NS held_in_window H
 *          others_in_window O quiet_ns Q
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl.h"

#define STALE_SEC 5 /* a status older than this: the agent is not running */

static uint64_t value(const char *line, const char *key)
{
    char pat[40];
    snprintf(pat, sizeof(pat), " %s ", key);
    const char *p = strstr(line, pat);
    unsigned long long v = 0;
    if (p)
        sscanf(p + strlen(pat), "%llu", &v);
    return v;
}

int ctl_global_read(const char *table_path, const char *bucket, struct ctl_global *out)
{
    char path[4200], line[1024], want[RL_NAME_MAX + 16];
    struct stat st;
    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "%s.agent", table_path);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (fstat(fileno(f), &st) == 0)
        out->stale = time(NULL) - st.st_mtime > STALE_SEC;
    if (fgets(line, sizeof(line), f)) {
        out->redis_ok = strncmp(line, "redis ok ", 9) == 0;
        out->calls = value(line, "calls");
        const char *e = strstr(line, " error ");
        snprintf(out->error, sizeof(out->error), "%s", e ? e + 7 : "-");
        out->error[strcspn(out->error, "\n")] = '\0';
    }
    snprintf(want, sizeof(want), "bucket %s ", bucket ? bucket : "");
    while (bucket && fgets(line, sizeof(line), f)) {
        if (strncmp(line, want, strlen(want)) != 0)
            continue;
        out->found = true;
        out->limit = value(line, "limit");
        out->period_ns = value(line, "period_ns");
        out->lease = value(line, "lease");
        out->lease_ns = value(line, "lease_ns");
        out->held = value(line, "held_in_window");
        out->others = value(line, "others_in_window");
        out->quiet_ns = value(line, "quiet_ns");
        break;
    }
    fclose(f);
    return 0;
}

bool ctl_has_global(const struct rl_bucket_info *bi)
{
    for (unsigned i = 0; i < bi->policy.nrules; i++)
        if (bi->policy.rules[i].kind == RL_GLOBAL)
            return true;
    return false;
}
