/*
 * report.c - section headings, CSV files, and the summary table printed at the end (in
 * markdown, ready for the README): every measurement that has a target says whether the
 * run met it.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"

#define SUMMARY_MAX 64

struct summary_line {
    char what[80], result[96], target[48];
    enum verdict verdict;
};

static struct summary_line summary[SUMMARY_MAX];
static unsigned summary_n;

FILE *csv_open(const char *name, const char *header)
{
    if (!bench_csv)
        return NULL;
    if (mkdir(bench_csv, 0755) < 0 && errno != EEXIST)
        die(bench_csv, strerror(errno));
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.csv", bench_csv, name);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, strerror(errno));
    fprintf(f, "%s\n", header);
    return f;
}

void csv_row(FILE *f, const char *fmt, ...)
{
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

void csv_close(FILE *f)
{
    if (f && fclose(f) != 0)
        die("csv", strerror(errno));
}

const char *verdict_text(enum verdict v)
{
    return v == MET ? "yes" : v == MISSED ? "**no**" : "";
}

enum verdict verdict_of(bool met)
{
    return met ? MET : MISSED;
}

void summary_add(const char *what, const char *target, enum verdict v, const char *fmt, ...)
{
    if (summary_n == SUMMARY_MAX)
        die("summary", "too many lines");
    struct summary_line *l = &summary[summary_n++];
    snprintf(l->what, sizeof(l->what), "%s", what);
    snprintf(l->target, sizeof(l->target), "%s", target);
    l->verdict = v;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->result, sizeof(l->result), fmt, ap);
    va_end(ap);
}

void section(const char *title, ...)
{
    va_list ap;
    va_start(ap, title);
    printf("\n== ");
    vprintf(title, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

void summary_print(void)
{
    printf("| measurement | result | target | met |\n|---|---|---|---|\n");
    for (unsigned i = 0; i < summary_n; i++)
        printf("| %s | %s | %s | %s |\n", summary[i].what, summary[i].result, summary[i].target,
               verdict_text(summary[i].verdict));
}
