/* errors.c - error codes to text; one X-macro list in ratelimit.h generates both tables. */
#include "ratelimit.h"

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
