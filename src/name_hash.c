/*
 * name_hash.c - the hash of a bucket name, which places it in the index (shm_index.c). On
 * its own, so that the benchmarks can replay it with no other internal object.
 */
#include "internal.h"

uint64_t rl__name_hash(const char *name)
{
    /* FNV-1a, then a final mix so the low bits (slot) and high bits (tag) both vary. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}
