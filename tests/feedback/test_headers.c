/* Hostile and well-formed rate-limit header values (src/headers.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <time.h>

#include "internal.h"

static void imf_date(int64_t epoch, char *buf, size_t len)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

Test(headers, integers_are_plain_digits)
{
    uint64_t v;
    cr_assert(rl__header_uint("42", &v) && v == 42);
    cr_assert(rl__header_uint("  7 \t", &v) && v == 7);
    cr_assert(rl__header_uint("0", &v) && v == 0);
    cr_assert(rl__header_uint("1234567890123456789", &v) && v == 1234567890123456789ULL);
    const char *bad[] = {"",
                         " ",
                         "-5",
                         "+5",
                         "5s",
                         "0x10",
                         "1.5",
                         "1e9",
                         "12 34",
                         "99999999999999999999",
                         "18446744073709551616",
                         "\x01",
                         "５"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(rl__header_uint(bad[i], &v), "accepted '%s'", bad[i]);
}

Test(headers, retry_after_delta_seconds)
{
    uint64_t d;
    cr_assert(rl__header_retry_after("32", &d));
    cr_assert_eq(d, 32000000000ULL);
    cr_assert(rl__header_retry_after("0", &d) && d == 0);
    cr_assert(rl__header_retry_after("1844674407370955161", &d));
    cr_assert_eq(d, UINT64_MAX, "a huge delay saturates; rl_report caps it");
    cr_assert_not(rl__header_retry_after("-1", &d));
    cr_assert_not(rl__header_retry_after("soon", &d));
}

Test(headers, retry_after_http_dates)
{
    char buf[64];
    uint64_t d;
    int64_t now = rl__wall_now_ns() / 1000000000LL;
    imf_date(now + 120, buf, sizeof(buf));
    cr_assert(rl__header_retry_after(buf, &d), "IMF-fixdate '%s'", buf);
    cr_assert(d > 110000000000ULL && d <= 120000000000ULL, "delay %llu", (unsigned long long)d);
    imf_date(now - 3600, buf, sizeof(buf));
    cr_assert(rl__header_retry_after(buf, &d) && d == 0, "a past date means now");
    int64_t epoch;
    cr_assert(rl__header_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &epoch));
    cr_assert_eq(epoch, 784111777);
    cr_assert(rl__header_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &epoch));
    cr_assert_eq(epoch, 784111777);
    const char *bad[] = {"Sun, 06 Nov 1994 08:49:37 PST",
                         "Sun, 06 Foo 1994 08:49:37 GMT",
                         "Sun, 32 Nov 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 25:49:37 GMT",
                         "Sun, 06 Nov 1994 08:49:37 GMT trailing",
                         "Sun, 06 Nov 1994",
                         "06 Nov 1994 08:49:37 GMT"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(rl__header_retry_after(bad[i], &d), "accepted '%s'", bad[i]);
}

/* A reset naming the epoch instant `at_ns`: its delay, taken between two clock readings. */
static void check_epoch(const char *text, int64_t at_ns, uint64_t unit)
{
    uint64_t d, known;
    int64_t before = rl__wall_now_ns();
    cr_assert(rl__header_reset(text, &d, &known), "%s", text);
    int64_t after = rl__wall_now_ns();
    cr_assert((int64_t)d <= at_ns - before && (int64_t)d >= at_ns - after,
              "%s: delay %llu, not to the instant it names", text, (unsigned long long)d);
    cr_assert_eq(known, d - unit, "%s: known to last one unit less", text);
}

Test(headers, reset_epoch_or_delta)
{
    uint64_t d, known;
    int64_t now = rl__wall_now_ns() / 1000000000LL;
    char buf[32];
    cr_assert(rl__header_reset("60", &d, &known) && d == 60000000000ULL, "small values are deltas");
    cr_assert_eq(known, 59000000000ULL, "a whole-second delta may come up to 1 s earlier");
    cr_assert(rl__header_reset("1", &d, &known) && d == 1000000000ULL && known == 0);
    cr_assert(rl__header_reset("0", &d, &known) && d == 0 && known == 0);
    snprintf(buf, sizeof(buf), "%lld", (long long)now + 30);
    check_epoch(buf, (now + 30) * 1000000000LL, 1000000000ULL);
    /* Milliseconds keep their fraction of a second, and are rounded to 1 ms only. */
    snprintf(buf, sizeof(buf), "%lld", (long long)(now + 30) * 1000 + 123);
    check_epoch(buf, (now + 30) * 1000000000LL + 123000000LL, 1000000ULL);
    snprintf(buf, sizeof(buf), "%lld", (long long)now - 100);
    cr_assert(rl__header_reset(buf, &d, &known) && d == 0 && known == 0, "a past epoch means now");
    cr_assert_not(rl__header_reset("-3", &d, &known));
    cr_assert_not(rl__header_reset("tomorrow", &d, &known));
}

Test(headers, ietf_fields)
{
    uint64_t r, t, k, q, w;
    cr_assert(rl__header_ratelimit("\"default\";r=50;t=30", &r, &t, &k));
    cr_assert(r == 50 && t == 30000000000ULL);
    cr_assert_eq(k, 29000000000ULL, "t= is whole seconds: known to last 1 s less");
    cr_assert(rl__header_ratelimit("limit=100, remaining=7, reset=12", &r, &t, &k));
    cr_assert(r == 7 && t == 12000000000ULL && k == 11000000000ULL);
    cr_assert(rl__header_ratelimit("r=0;t=1", &r, &t, &k) && k == 0, "nothing known beyond now");
    cr_assert_not(rl__header_ratelimit("\"default\";r=50", &r, &t, &k), "t= is required");
    cr_assert_not(rl__header_ratelimit("\"default\";r=-1;t=3", &r, &t, &k));
    cr_assert_not(rl__header_ratelimit("r=1;t=99999999999999999999", &r, &t, &k));
    cr_assert(rl__header_policy("\"default\";q=100;w=60", &q, &w));
    cr_assert(q == 100 && w == 60000000000ULL);
    cr_assert_not(rl__header_policy("\"default\";q=0;w=60", &q, &w));
    char longer[400];
    memset(longer, 'r', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    cr_assert_not(rl__header_ratelimit(longer, &r, &t, &k), "overlong values are refused");
}
