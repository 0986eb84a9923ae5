/*
 * ctl.h - ratelimitctl, the ops tool: what its source files share.
 *
 * main.c holds the command table and runs one command; each command lives in its own
 * cmd_<command>.c. The helpers: cli.c (options, errors), table.c (opening the table, finding
 * buckets), bucket.c (bucket state, its text and JSON), config.c (loading a config file, for
 * check-config and apply), out_human.c, out_json.c and out_prom.c (the outputs) and term.c
 * (the terminal for watch).
 */
#ifndef CTL_H
#define CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ratelimit.h"

/* Exit statuses, documented in --help and ratelimitctl(1). */
enum ctl_exit {
    CTL_OK = 0,       /* success; acquire: admitted */
    CTL_REJECTED = 1, /* acquire --nowait: the budget does not allow the request now */
    CTL_INVALID = 1,  /* check-config, apply: the config file is invalid (as `nginx -t`) */
    CTL_TIMEDOUT = 2, /* acquire: the turn would come after the timeout */
    CTL_USAGE = 3,    /* bad command line: unknown command or option, bad value */
    CTL_ERROR = 4,    /* no table, no such bucket, damaged table, full table, ... */
    CTL_DENIED = 5,   /* permission denied: the table cannot be opened as needed */
};

struct ctl;

/* A command's own command line: its options and the text of `ratelimitctl NAME --help`. */
struct ctl_syntax {
    const char *help;
    const struct option *options; /* getopt_long options, ending with a zero entry */
};

/* One entry of the command table (main.c), which drives both dispatch and the global help. */
struct ctl_command {
    const char *name;
    int (*run)(struct ctl *c, int argc, char **argv); /* argv[optind..] are the operands */
    const char *usage;   /* what follows the name, for the global help: "[PATTERN]" */
    const char *summary; /* one line of the global help */
    const struct ctl_syntax *syntax;
};

/* One run of the tool: the global options and the command being run. */
struct ctl {
    const char *table; /* --table, or NULL for $RATELIMIT_TABLE or the default path */
    const struct ctl_command *cmd;
};

/* The commands, one per cmd_<x>.c: run and syntax. */
#define CTL_COMMAND(x)                                                                             \
    int ctl_##x##_run(struct ctl *c, int argc, char **argv);                                       \
    extern const struct ctl_syntax ctl_##x##_syntax
CTL_COMMAND(list);
CTL_COMMAND(show);
CTL_COMMAND(stats);
CTL_COMMAND(watch);
CTL_COMMAND(info);
CTL_COMMAND(define);
CTL_COMMAND(reset);
CTL_COMMAND(delete);
CTL_COMMAND(expire);
CTL_COMMAND(resize);
CTL_COMMAND(acquire);
CTL_COMMAND(report);
CTL_COMMAND(check_config);
CTL_COMMAND(apply);
CTL_COMMAND(exec);

/* cli.c: options and errors. */
enum { CTL_OPT_HELP = 'h', CTL_OPT_BAD = '?' };
int ctl_getopt(struct ctl *c, int argc, char **argv);
int ctl_getopt_ordered(struct ctl *c, int argc, char **argv);
int ctl_option_end(int opt);
int ctl_json_option(struct ctl *c, int argc, char **argv, bool *json);
int ctl_usage(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ctl_error(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ctl_say(const struct ctl *c, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ctl_fail(const struct ctl *c, const char *subject, int err);
int ctl_parse_duration(const struct ctl *c, const char *option, const char *text, uint64_t *ns);
bool ctl_is_pattern(const char *name);
int ctl_check_name(const struct ctl *c, const char *name, bool template_ok);

/* table.c: the table and its buckets. */
struct ctl_buckets {
    rl_bucket **v;
    size_t n;
};
struct ctl_view {
    struct rl_bucket_info *v;
    uint64_t *expire_ns; /* per bucket: rl_bucket_expiry (0: none) */
    size_t n;
};
int ctl_open(const struct ctl *c, unsigned flags, rl_table **out);
int ctl_open_opts(const struct ctl *c, struct rl_table_opts *o, rl_table **out);
void ctl_warn_if_replaced(const struct ctl *c, const rl_table *t);
int ctl_collect_quiet(rl_table *t, const char *pattern, struct ctl_buckets *out);
int ctl_collect(const struct ctl *c, rl_table *t, const char *pattern, struct ctl_buckets *out);
int ctl_lookup(const struct ctl *c, rl_table *t, const char *name, rl_bucket **out);
int ctl_read(const struct ctl *c, const rl_bucket *b, struct rl_bucket_info *out);
int ctl_name_read_check(const struct ctl *c, const struct rl_bucket_info *bi);
int ctl_view_read(const struct ctl *c, rl_table *t, const char *pattern, struct ctl_view *out);
void ctl_view_free(struct ctl_view *v);

/* bucket.c: bucket state in words and JSON. */
#define CTL_POLICY_MAX 320
struct ctl_summary {
    uint64_t remaining;    /* units admitted now: the tightest rule, or less by feedback */
    uint64_t next_free_ns; /* until the bucket admits one more unit */
};
void ctl_summarize(const struct rl_bucket_info *bi, struct ctl_summary *out);
/* The bucket's rules as canonical rule text, with its expiry if any: "200/1m expire 1h". */
void ctl_rules_text(const struct rl_bucket_info *bi, uint64_t expire_ns, char *buf, size_t len);
uint64_t ctl_rule_capacity(const struct rl_rule *r);
void ctl_rule_text(const struct rl_rule *r, char *buf, size_t len);
const char *ctl_kind_name(enum rl_rule_kind kind);

/* out_human.c: numbers for people; each returns buf. */
#define CTL_HUMAN_MAX 32
char *ctl_human_duration(char *buf, size_t len, uint64_t ns);
char *ctl_human_wait(char *buf, size_t len, uint64_t ns);
char *ctl_human_count(char *buf, size_t len, uint64_t n);
char *ctl_human_bytes(char *buf, size_t len, uint64_t n);
const char *ctl_plural(size_t n);

/* out_human.c: text read from a file (bucket names, the library's details about them),
 * printable whatever it holds: printable ASCII stays, a backslash is doubled, any other
 * byte (ESC, BEL, CR, newline, non-ASCII) becomes \xHH. */
#define CTL_VISIBLE_MAX (4 * RL_NAME_MAX + 1) /* the visible form of any valid-length name */
char *ctl_visible(char *buf, size_t len, const char *s);
void ctl_put_visible(FILE *f, const char *s, size_t n);

/* out_json.c: a streaming JSON writer (compact, one document per line). */
struct json {
    FILE *f;
    bool comma; /* a value precedes in the current object or array */
};
void json_begin(struct json *j, FILE *f);
void json_end(struct json *j);
void json_open(struct json *j, const char *key, char bracket);
void json_close(struct json *j, char bracket);
void json_str(struct json *j, const char *key, const char *s);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_bool(struct json *j, const char *key, bool v);
void json_duration(struct json *j, const char *key_ns, const char *key_human, uint64_t ns);

/* exec_check.c: `exec --check` (prints; CTL_OK if the shim works) and its probe child. */
int ctl_exec_check(const struct ctl *c, const char *shim, const char *config_file, int argc,
                   char **argv);
int ctl_exec_probe(const char *port);

/* shim_seen.c: the table's preload shim attachments, as one text line or a "shim" object. */
void ctl_shim_print(const rl_table *t);
void ctl_shim_json(struct json *j, const rl_table *t);

/* bucket.c, JSON part. */
void ctl_json_bucket(struct json *j, const char *key, const struct rl_bucket_info *bi,
                     uint64_t expire_ns);
void ctl_json_counters(struct json *j, const struct rl_counters *cn);
void ctl_json_margin(struct json *j, const struct rl_bucket_info *bi);

/* config.c: config files, for check-config and apply. */
int ctl_config_operand(const struct ctl *c, int argc, char **argv, const char **file);
int ctl_config_load(const struct ctl *c, const char *file, rl_config **out);
const char *ctl_config_table_path(const rl_config *cfg, const char **origin);
/* Print the config's footprint line (rl_config_footprint), after `prefix`. */
void ctl_config_footprint(const rl_config *cfg, const char *prefix, const char *path);

/* out_prom.c: stats in the Prometheus text exposition format. */
void ctl_prometheus(FILE *f, const struct rl_table_info *ti, const struct rl_table_space *sp,
                    const char *path, const struct ctl_view *view);

/* global.c: ratelimit-agent's status of the global rules (TABLE.agent). */
struct ctl_global {
    bool stale, redis_ok, found; /* stale: the agent does not run; found: the bucket's line */
    uint64_t calls;              /* Redis calls the agent made */
    char error[160];             /* why the last call failed, "-" if none */
    uint64_t limit, period_ns;   /* the global budget */
    uint64_t lease, lease_ns;    /* this host's lease: units, time left */
    uint64_t held, others;       /* units in Redis's window: this host's, the other hosts' */
    uint64_t quiet_ns;           /* Redis grants nothing for this long (restart, failover) */
};
/* -1 if the agent never wrote a status; `bucket` NULL reads the Redis line only. */
int ctl_global_read(const char *table_path, const char *bucket, struct ctl_global *out);
bool ctl_has_global(const struct rl_bucket_info *bi);

/* term.c: the terminal of watch. */
int ctl_term_enter(void);
void ctl_term_leave(void);
void ctl_term_size(int fd, int *rows, int *cols);
bool ctl_term_wait(uint64_t ns);
void ctl_term_reraise(void);

#endif /* CTL_H */
