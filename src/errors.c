/*
 * errors.c - error codes to text, and the thread's detail for the last error.
 * One X-macro list in ratelimit.h generates both tables.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char errdetail[512];

const char *rl_errdetail(void)
{
    return errdetail;
}

int rl__fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errdetail, sizeof(errdetail), fmt, ap);
    va_end(ap);
    return err;
}

const char *rl_strerror(int err)
{
    switch (err) {
    case RL_OK:
        return "success";
#define RL_ERROR_TEXT(name, value, msg)                                                            \
    case name:                                                                                     \
        return msg;
        RL_ERRORS(RL_ERROR_TEXT)
#undef RL_ERROR_TEXT
    }
    return "unknown error";
}

const char *rl_err_name(int err)
{
    switch (err) {
    case RL_OK:
        return "RL_OK";
#define RL_ERROR_NAME(name, value, msg)                                                            \
    case name:                                                                                     \
        return #name;
        RL_ERRORS(RL_ERROR_NAME)
#undef RL_ERROR_NAME
    }
    return "RL_EUNKNOWN";
}
