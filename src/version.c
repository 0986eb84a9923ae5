/*
 * version.c - the version of the library a program runs with.
 */
#include "ratelimit.h"

const char *rl_version(void)
{
    return RATELIMIT_VERSION_STRING;
}
