/* fnv.c — 64-bit FNV-1a; see fnv.h. */
#include "common/fnv.h"

#define FNV1A64_PRIME UINT64_C(0x100000001b3)

uint64_t fnv1a64(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV1A64_PRIME;
    }
    return h;
}
