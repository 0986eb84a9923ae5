/*
 * cmd_watch.c - `ratelimitctl watch [PATTERN]`: a live full-screen view, like top(1), drawn
 * with plain ANSI escape codes: one row per bucket with a bar per rule.
 */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

static const char help[] =
    "Usage: ratelimitctl watch [--interval DURATION] [--once] [PATTERN]\n"
    "\n"
    "Show the buckets (whose names match the shell glob PATTERN) live, full\n"
    "screen, like top(1): one row per bucket, sorted by name, with the units it\n"
    "admits now (REMAIN), the time until every rule admits one more unit (NEXT),\n"
    "and for each rule its text, a bar of its usage and used/limit (for a token\n"
    "bucket: debt/burst). A bar is green, yellow from 80% used, and red when the\n"
    "rule admits nothing. Rows beyond the screen are counted in a last line,\n"
    "\"... N more\". NEXT and REMAIN include a cool-down after a 429. A template\n"
    "shows its rules; a damaged bucket is shown as such; buckets defined\n"
    "meanwhile appear at the next refresh. A table deleted or replaced\n"
    "meanwhile gives way, within about a second, to the file the path names.\n"
    "\n"
    "Keys: q quits; any other key refreshes at once. Ctrl-C and SIGTERM quit\n"
    "too, Ctrl-Z suspends; the terminal is restored in every case. Needs a\n"
    "terminal on stdin and stdout, unless --once. The table is opened read-only.\n"
    "\n"
    "Options:\n"
    "  --interval DURATION  time between refreshes, e.g. 500ms, 2s (default 1s)\n"
    "  --once               print one frame as plain text (no escape codes; 80x24\n"
    "                       unless stdout is a terminal) and exit\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 after q or --once, 3 usage error, 4 error (no table; no\n"
    "terminal without --once), 5 permission denied.\n";

static const struct option options[] = {{"interval", required_argument, NULL, 'i'},
                                        {"once", no_argument, NULL, 'o'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

#define REMAIN_W 6
#define NEXT_W   6
#define GAP      2 /* before each rule */
#define BAR_MIN  5 /* the narrowest bar worth the space of the rule text */

struct watch {
    const char *pattern;
    uint64_t interval_ns;
    bool live; /* full screen with escape codes, else one plain frame */
    bool utf8;
};

/* The output of one line: what is written and how many columns it takes. */
struct out {
    FILE *f;
    int width, col;
    const struct watch *w;
};

static void out_esc(struct out *o, const char *code)
{
    if (o->w->live)
        fprintf(o->f, "\033[%sm", code);
}

static void out_repeat(struct out *o, char ch, int n)
{
    for (; n > 0 && o->col < o->width; n--, o->col++)
        fputc(ch, o->f);
}

/* s in exactly n columns (fewer at the end of the line), cut with an ellipsis if longer. */
static void out_cell(struct out *o, const char *s, int n, bool right)
{
    int len = (int)strlen(s), room = o->width - o->col;
    n = n < room ? n : room;
    if (n <= 0)
        return;
    if (len > n)
        fprintf(o->f, "%.*s%s", n - 1, s, o->w->utf8 ? "\u2026" : "~");
    else
        fprintf(o->f, right ? "%*s" : "%-*s", n, s);
    o->col += n;
}

static void out_text(struct out *o, const char *s)
{
    out_cell(o, s, (int)strlen(s), false);
}

static void out_line_end(struct out *o, bool last)
{
    if (o->w->live)
        fputs("\033[K", o->f); /* erase what the last frame left there */
    if (!last || !o->w->live)
        fputc('\n', o->f);
    o->col = 0;
}

static void bar(struct out *o, uint64_t used, uint64_t cap, uint64_t remaining, int n)
{
    int filled = 0;
    if (used && cap)
        filled = used >= cap ? n : (int)((used * (uint64_t)n + cap - 1) / cap);
    out_text(o, "[");
    out_esc(o, remaining == 0 ? "31" : used * 5 >= cap * 4 ? "33" : "32");
    out_repeat(o, '#', filled);
    out_esc(o, "0");
    out_repeat(o, '.', n - filled);
    out_text(o, "]");
}

/* The columns a rule takes with its text and a bar of the least useful width. */
static int text_width(const struct rl_rule_state *rs)
{
    char text[CTL_POLICY_MAX], used[CTL_HUMAN_MAX], cap[CTL_HUMAN_MAX];
    ctl_rule_text(&rs->rule, text, sizeof(text));
    return (int)(strlen(text) + strlen(" [] /") + BAR_MIN +
                 strlen(ctl_human_count(used, sizeof(used), rs->used)) +
                 strlen(ctl_human_count(cap, sizeof(cap), ctl_rule_capacity(&rs->rule))));
}

/* One rule in n columns: "200/1m [####......] 12/200", without the text if it does not fit
 * (with_text), without the bar if that does not either; the last one is not padded. */
static void rule_segment(struct out *o, const struct rl_rule_state *rs, int n, bool with_text,
                         bool last)
{
    char text[CTL_POLICY_MAX], used[CTL_HUMAN_MAX], cap[CTL_HUMAN_MAX], ul[2 * CTL_HUMAN_MAX];
    uint64_t capacity = ctl_rule_capacity(&rs->rule);
    int start = o->col;
    ctl_rule_text(&rs->rule, text, sizeof(text));
    snprintf(ul, sizeof(ul), "%s/%s", ctl_human_count(used, sizeof(used), rs->used),
             ctl_human_count(cap, sizeof(cap), capacity));
    if (with_text) {
        out_text(o, text);
        out_text(o, " ");
    }
    int b = n - (o->col - start) - (int)strlen(ul) - 3;
    if (b >= 3) {
        bar(o, rs->used, capacity, rs->remaining, b);
        out_text(o, " ");
    }
    out_cell(o, ul, last ? (int)strlen(ul) : n - (o->col - start), false);
}

/* A template has rules but no state of its own: "-", "-", "template: 10/1m". */
static void template_row(struct out *o, const struct rl_bucket_info *bi)
{
    char text[CTL_POLICY_MAX];
    rl_policy_format(&bi->policy, text, sizeof(text));
    out_cell(o, "-", REMAIN_W, true);
    out_text(o, " ");
    out_cell(o, "-", NEXT_W, true);
    out_repeat(o, ' ', GAP);
    out_text(o, "template: ");
    out_text(o, text);
}

static void bucket_row(struct out *o, const rl_bucket *b, int name_w)
{
    struct rl_bucket_info bi;
    struct ctl_summary sum;
    char remain[CTL_HUMAN_MAX], next[CTL_HUMAN_MAX], text[512];
    out_cell(o, ctl_visible(text, sizeof(text), rl_bucket_name(b)), name_w, false);
    out_text(o, " ");
    if (rl_bucket_info(b, &bi) < 0) {
        out_esc(o, "31");
        out_text(o, ctl_visible(text, sizeof(text), rl_errdetail()));
        out_esc(o, "0");
        return;
    }
    if (bi.is_template) {
        template_row(o, &bi);
        return;
    }
    ctl_summarize(&bi, &sum);
    out_cell(o, ctl_human_count(remain, sizeof(remain), sum.remaining), REMAIN_W, true);
    out_text(o, " ");
    out_cell(o, ctl_human_wait(next, sizeof(next), sum.next_free_ns), NEXT_W, true);
    int nr = (int)bi.policy.nrules, seg = (o->width - o->col - GAP * nr) / nr;
    bool with_text = true;
    for (int i = 0; i < nr; i++)
        with_text = with_text && text_width(&bi.rules[i]) <= seg;
    for (int i = 0; i < nr; i++) {
        out_repeat(o, ' ', GAP);
        rule_segment(o, &bi.rules[i], seg, with_text, i + 1 == nr);
    }
}

static void title(struct out *o, rl_table *t, size_t n)
{
    char line[512], clock[16];
    time_t now = time(NULL);
    strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&now));
    snprintf(line, sizeof(line), "ratelimitctl watch  %s  %zu bucket%s%s%s  %s%s", rl_table_path(t),
             n, n == 1 ? "" : "s", o->w->pattern ? " matching " : "",
             o->w->pattern ? o->w->pattern : "", clock, o->w->live ? "  (q quits)" : "");
    out_esc(o, "7"); /* reverse video, across the whole line */
    out_cell(o, line, o->w->live ? o->width : (int)strlen(line), false);
    out_esc(o, "0");
    out_line_end(o, false);
}

static int name_width(const struct ctl_buckets *all, size_t shown, int cols)
{
    char name[CTL_VISIBLE_MAX];
    int w = 4, most = cols / 3 > 8 ? cols / 3 : 8;
    for (size_t i = 0; i < shown; i++) {
        int len = (int)strlen(ctl_visible(name, sizeof(name), rl_bucket_name(all->v[i])));
        w = len > w ? len : w;
    }
    return w < most ? w : most;
}

static void rows(struct out *o, const struct ctl_buckets *all, int height)
{
    char more[64];
    size_t avail = height > 3 ? (size_t)height - 2 : 1;
    size_t shown = all->n <= avail ? all->n : avail - 1;
    int name_w = name_width(all, shown, o->width);
    out_cell(o, "NAME", name_w, false);
    out_text(o, " ");
    out_cell(o, "REMAIN", REMAIN_W, true);
    out_text(o, " ");
    out_cell(o, "NEXT", NEXT_W, true);
    out_text(o, "  RULE [USAGE] USED/LIMIT");
    out_line_end(o, false);
    if (all->n == 0) {
        out_text(o, o->w->pattern ? "no bucket matches the pattern" : "no buckets");
        out_line_end(o, true);
    }
    for (size_t i = 0; i < shown; i++) {
        bucket_row(o, all->v[i], name_w);
        out_line_end(o, i + 1 == all->n);
    }
    if (shown < all->n) {
        snprintf(more, sizeof(more), "%s %zu more", o->w->utf8 ? "\u2026" : "...", all->n - shown);
        out_text(o, more);
        out_line_end(o, true);
    }
}

/* Draw one frame into f, sized rows x cols. */
static int frame(FILE *f, rl_table *t, const struct watch *w, int height, int width)
{
    struct ctl_buckets all;
    struct out o = {f, width, 0, w};
    if (ctl_collect_quiet(t, w->pattern, &all))
        return RL_ENOMEM;
    if (w->live)
        fputs("\033[H", f); /* home: each line overwrites the last frame's */
    title(&o, t, all.n);
    rows(&o, &all, height);
    if (w->live)
        fputs("\033[J", f); /* erase below */
    free(all.v);
    return 0;
}

/* Build the frame in memory, then write it at once: no flicker. */
static int draw(rl_table *t, const struct watch *w)
{
    char *buf = NULL;
    size_t len = 0;
    int height, width;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return RL_ENOMEM;
    ctl_term_size(STDOUT_FILENO, &height, &width);
    /* One column short: at the last column \033[K would erase the character written there. */
    int err = frame(f, t, w, height, width - 1);
    if (fclose(f) != 0)
        err = RL_ENOMEM;
    if (!err)
        fwrite(buf, 1, len, stdout);
    fflush(stdout);
    free(buf);
    return err;
}

/* Follow the path: a table deleted or replaced meanwhile gives way to the file the path now
 * names (at most one check a second); while the path names none, the old table is shown. */
static void follow(rl_table **t)
{
    rl_table *fresh;
    if (rl_table_reopen_if_replaced(*t, &fresh) == 1) {
        rl_table_close(*t);
        *t = fresh;
    }
}

static int watch_live(const struct ctl *c, rl_table **t, const struct watch *w)
{
    int err = 0;
    if (ctl_term_enter() < 0)
        return ctl_error(c, "cannot set up the terminal: %s", strerror(errno));
    do {
        follow(t);
        err = draw(*t, w);
    } while (!err && !ctl_term_wait(w->interval_ns));
    ctl_term_leave();
    ctl_term_reraise();
    return err ? ctl_error(c, "out of memory") : CTL_OK;
}

static int watch_once(const struct ctl *c, rl_table *t, const struct watch *w)
{
    int height = 24, width = 80;
    if (isatty(STDOUT_FILENO))
        ctl_term_size(STDOUT_FILENO, &height, &width);
    return frame(stdout, t, w, height, width) ? ctl_error(c, "out of memory") : CTL_OK;
}

int ctl_watch_run(struct ctl *c, int argc, char **argv)
{
    struct watch w = {NULL, 1000000000ULL, true, false};
    int opt;
    while ((opt = ctl_getopt(c, argc, argv)) != -1) {
        switch (opt) {
        case 'i':
            if (ctl_parse_duration(c, "--interval", optarg, &w.interval_ns))
                return CTL_USAGE;
            if (w.interval_ns == 0)
                return ctl_usage(c, "--interval must be longer than 0");
            break;
        case 'o':
            w.live = false;
            break;
        default:
            return ctl_option_end(opt);
        }
    }
    if (argc - optind > 1)
        return ctl_usage(c, "expected at most one PATTERN");
    w.pattern = optind < argc ? argv[optind] : NULL;
    if (w.live && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
        return ctl_error(c, "needs a terminal on stdin and stdout (use --once for one frame)");
    setlocale(LC_CTYPE, "");
    w.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    rl_table *t;
    int rc = ctl_open(c, RL_OPEN_READONLY, &t);
    if (rc)
        return rc;
    rc = w.live ? watch_live(c, &t, &w) : watch_once(c, t, &w);
    rl_table_close(t);
    return rc;
}

const struct ctl_syntax ctl_watch_syntax = {help, options};
