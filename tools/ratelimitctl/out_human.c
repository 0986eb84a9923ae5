/*
 * out_human.c - durations, counts and sizes for people: "1.5s", "2m30s", "12k", "4.5 MiB";
 * and text from files made visible: "\x1b]0;title".
 *
 * Durations are rounded to the precision shown (two units at most: "1h5m"), counts down (a
 * budget is never shown larger than it is).
 */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

#define US   1000ULL
#define MS   1000000ULL
#define SEC  1000000000ULL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)

/* a / b rounded to the nearest, halves up; never 0 for a > 0. */
static uint64_t round_div(uint64_t a, uint64_t b)
{
    uint64_t q = a / b + (a % b >= b - b / 2);
    return q ? q : a > 0;
}

/* "2m30s", or "2m" when the smaller unit is 0. */
static char *two_units(char *buf, size_t len, uint64_t big, const char *bu, uint64_t small,
                       const char *su)
{
    if (small)
        snprintf(buf, len, "%" PRIu64 "%s%" PRIu64 "%s", big, bu, small, su);
    else
        snprintf(buf, len, "%" PRIu64 "%s", big, bu);
    return buf;
}

char *ctl_human_duration(char *buf, size_t len, uint64_t ns)
{
    uint64_t v;
    if (ns == UINT64_MAX)
        snprintf(buf, len, "never");
    else if (ns == 0)
        snprintf(buf, len, "0s");
    else if ((v = round_div(ns, US)) < 1000)
        snprintf(buf, len, "%" PRIu64 "us", v);
    else if ((v = round_div(ns, MS)) < 1000)
        snprintf(buf, len, "%" PRIu64 "ms", v);
    else if ((v = round_div(ns, SEC / 10)) < 100 && v % 10)
        snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "s", v / 10, v % 10);
    else if ((v = round_div(ns, SEC)) < 60)
        snprintf(buf, len, "%" PRIu64 "s", v);
    else if (v < 3600)
        two_units(buf, len, v / 60, "m", v % 60, "s");
    else if ((v = round_div(ns, MIN)) < 1440)
        two_units(buf, len, v / 60, "h", v % 60, "m");
    else
        two_units(buf, len, round_div(ns, HOUR) / 24, "d", round_div(ns, HOUR) % 24, "h");
    return buf;
}

/* A wait: "now" for none, else as ctl_human_duration. Returns buf. */
char *ctl_human_wait(char *buf, size_t len, uint64_t ns)
{
    if (ns == 0) {
        snprintf(buf, len, "now");
        return buf;
    }
    return ctl_human_duration(buf, len, ns);
}

char *ctl_human_count(char *buf, size_t len, uint64_t n)
{
    static const char units[] = "kMGTPE";
    if (n < 1000) {
        snprintf(buf, len, "%" PRIu64, n);
        return buf;
    }
    uint64_t scale = 1000;
    unsigned u = 0;
    while (n / scale >= 1000 && u + 1 < sizeof(units) - 1)
        scale *= 1000, u++;
    uint64_t whole = n / scale, tenth = n % scale / (scale / 10);
    if (whole < 10 && tenth)
        snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%c", whole, tenth, units[u]);
    else
        snprintf(buf, len, "%" PRIu64 "%c", whole, units[u]);
    return buf;
}

char *ctl_human_bytes(char *buf, size_t len, uint64_t n)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (n < 1024) {
        snprintf(buf, len, "%" PRIu64 " B", n);
        return buf;
    }
    double v = (double)n / 1024;
    unsigned u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0]))
        v /= 1024, u++;
    snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

const char *ctl_plural(size_t n)
{
    return n == 1 ? "" : "s";
}

/* The visible form of byte ch in out; returns its length (at most 4). */
static size_t visible_byte(unsigned char ch, char out[5])
{
    if (ch == '\\')
        return (size_t)snprintf(out, 5, "\\\\");
    if (ch >= 0x20 && ch < 0x7f)
        return (size_t)snprintf(out, 5, "%c", ch);
    return (size_t)snprintf(out, 5, "\\x%02x", ch);
}

/* The visible form of s in buf, cut before an escape that does not fit. Returns buf. */
char *ctl_visible(char *buf, size_t len, const char *s)
{
    char one[5];
    size_t at = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        size_t n = visible_byte(*p, one);
        if (at + n >= len)
            break;
        memcpy(buf + at, one, n);
        at += n;
    }
    if (len)
        buf[at] = '\0';
    return buf;
}

/* The visible form of the n bytes at s, to f. */
void ctl_put_visible(FILE *f, const char *s, size_t n)
{
    char one[5];
    for (size_t i = 0; i < n; i++) {
        visible_byte((unsigned char)s[i], one);
        fputs(one, f);
    }
}
