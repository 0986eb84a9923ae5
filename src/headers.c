/*
 * headers.c - parse rate-limit response headers, trusting nothing.
 *
 * Every value from a server is hostile until proven otherwise: only plain decimal digits
 * (after optional spaces) are numbers, at most 19 of them; dates must be complete
 * IMF-fixdates (or the obsolete RFC 850 form); anything else is "malformed" and ignored.
 * The wall clock appears only here, to turn an HTTP-date or an epoch into a delay, once.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Digits only, surrounded by optional whitespace; false on anything else or overflow. */
bool rl__header_uint(const char *text, uint64_t *out)
{
    const char *p = skip_ows(text);
    uint64_t v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 19)
            return false; /* beyond any sane value: 10^19 s is 300 billion years */
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (digits == 0 || *skip_ows(p) != '\0')
        return false;
    *out = v;
    return true;
}

static int month_of(const char *m)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const char *at = strstr(names, m);
    return strlen(m) == 3 && at && (at - names) % 3 == 0 ? (int)(at - names) / 3 : -1;
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" or RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT". */
bool rl__header_http_date(const char *text, int64_t *epoch)
{
    char wday[16], mon[4], zone[4];
    int day, year, h, m, s, end = 0;
    struct tm tm = {0};
    const char *p = skip_ows(text);
    if (sscanf(p, "%15[A-Za-z], %2d %3s %4d %2d:%2d:%2d %3s%n", wday, &day, mon, &year, &h, &m, &s,
               zone, &end) != 8 &&
        sscanf(p, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s%n", wday, &day, mon, &year, &h, &m, &s,
               zone, &end) != 8)
        return false;
    if (*skip_ows(p + end) != '\0' || strcmp(zone, "GMT") != 0 || month_of(mon) < 0 || day < 1 ||
        day > 31 || h > 23 || m > 59 || s > 60 || year < 0)
        return false;
    tm.tm_year = (year < 100 ? year + (year < 70 ? 2000 : 1900) : year) - 1900;
    tm.tm_mon = month_of(mon);
    tm.tm_mday = day;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = s;
    *epoch = (int64_t)timegm(&tm);
    return *epoch >= 0;
}

int64_t rl__wall_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Delay until the epoch instant v * unit ns (0 if past). */
static uint64_t delay_until(uint64_t v, uint64_t unit)
{
    int64_t now = rl__wall_now_ns();
    if (v > (uint64_t)INT64_MAX / unit)
        return UINT64_MAX;
    int64_t at = (int64_t)(v * unit);
    return at > now ? (uint64_t)(at - now) : 0;
}

bool rl__header_retry_after(const char *text, uint64_t *delay_ns)
{
    uint64_t secs;
    int64_t epoch;
    if (rl__header_uint(text, &secs)) {
        *delay_ns = secs > UINT64_MAX / 1000000000ULL ? UINT64_MAX : secs * 1000000000ULL;
        return true;
    }
    if (!rl__header_http_date(text, &epoch))
        return false;
    *delay_ns = delay_until((uint64_t)epoch, 1000000000ULL);
    return true;
}

/* A reset in whole units of `unit` ns names an instant rounded to that unit: the true reset
 * may be up to one unit earlier, so the state the header describes is known to last `delay`
 * less one unit only (0 if that is all). */
static uint64_t known_of(uint64_t delay, uint64_t unit)
{
    return delay > unit ? delay - unit : 0;
}

bool rl__header_reset(const char *text, uint64_t *delay_ns, uint64_t *known_ns)
{
    uint64_t v, unit = 1000000000ULL;
    if (!rl__header_uint(text, &v))
        return false;
    if (v > 1000000000000ULL) /* epoch milliseconds */
        unit = 1000000ULL;
    if (v > 1000000000ULL) /* epoch seconds (after 2001-09-09) or milliseconds */
        *delay_ns = delay_until(v, unit);
    else /* delta seconds */
        *delay_ns = v * unit;
    *known_ns = known_of(*delay_ns, unit);
    return true;
}

/* Find `key=NUMBER` (or one of two spellings) in a structured-field-like list. */
static bool find_param(const char *text, const char *key, const char *alt, uint64_t *out)
{
    char buf[256];
    if (strlen(text) >= sizeof(buf))
        return false;
    strcpy(buf, text);
    for (char *save = NULL, *tok = strtok_r(buf, ";, \t", &save); tok;
         tok = strtok_r(NULL, ";, \t", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcmp(tok, key) == 0 || strcmp(tok, alt) == 0)
            return rl__header_uint(eq + 1, out);
    }
    return false;
}

bool rl__header_ratelimit(const char *text, uint64_t *remaining, uint64_t *reset_ns,
                          uint64_t *known_ns)
{
    uint64_t r, t;
    if (!find_param(text, "r", "remaining", &r) || !find_param(text, "t", "reset", &t) ||
        t > UINT64_MAX / 1000000000ULL)
        return false;
    *remaining = r;
    *reset_ns = t * 1000000000ULL; /* delta seconds: rounded, as a whole-second reset is */
    *known_ns = known_of(*reset_ns, 1000000000ULL);
    return true;
}

bool rl__header_policy(const char *text, uint64_t *quota, uint64_t *window_ns)
{
    uint64_t q, w;
    if (!find_param(text, "q", "limit", &q) || !find_param(text, "w", "window", &w) || q == 0 ||
        w == 0 || w > UINT64_MAX / 1000000000ULL)
        return false;
    *quota = q;
    *window_ns = w * 1000000000ULL;
    return true;
}
