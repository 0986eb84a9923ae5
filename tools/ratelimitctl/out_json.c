/*
 * out_json.c - a small streaming JSON writer: one compact document per line, strings
 * escaped per RFC 8259, every number an unsigned integer.
 */
#include <inttypes.h>

#include "ctl.h"

void json_begin(struct json *j, FILE *f)
{
    j->f = f;
    j->comma = false;
}

void json_end(struct json *j)
{
    fputc('\n', j->f);
}

/* s as a JSON string, ASCII only. Control characters are escaped as JSON wants; so is every
 * byte above 0x7e, read as Latin-1 (\u00XX): bucket names are ASCII, and a stray byte from
 * a damaged or hostile file then neither reaches a terminal nor makes the document
 * invalid UTF-8. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The separator and the key (NULL inside an array) before a value. */
static void put_key(struct json *j, const char *key)
{
    if (j->comma)
        fputc(',', j->f);
    if (key) {
        put_string(j->f, key);
        fputc(':', j->f);
    }
    j->comma = true;
}

void json_open(struct json *j, const char *key, char bracket)
{
    put_key(j, key);
    fputc(bracket, j->f);
    j->comma = false;
}

void json_close(struct json *j, char bracket)
{
    fputc(bracket, j->f);
    j->comma = true;
}

/* A string, or null for NULL. */
void json_str(struct json *j, const char *key, const char *s)
{
    put_key(j, key);
    if (s)
        put_string(j->f, s);
    else
        fputs("null", j->f);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
    put_key(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

void json_bool(struct json *j, const char *key, bool v)
{
    put_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

/* A duration as two members: key_ns in integer nanoseconds, key_human as text ("1.5s"). */
void json_duration(struct json *j, const char *key_ns, const char *key_human, uint64_t ns)
{
    char human[CTL_HUMAN_MAX];
    json_u64(j, key_ns, ns);
    json_str(j, key_human, ctl_human_duration(human, sizeof(human), ns));
}
