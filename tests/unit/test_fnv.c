/* test_fnv.c — common/fnv.h against the published FNV-1a 64 test vectors
 * (Fowler/Noll/Vo, "FNV test vectors": "", "a", "foobar"), and hashing in
 * pieces. */
#include <string.h>

#include "common/fnv.h"
#include "t.h"

static uint64_t of(const char *s)
{
    return fnv1a64(FNV1A64_INIT, s, strlen(s));
}

int main(void)
{
    T_CHECK(of("") == UINT64_C(0xcbf29ce484222325));
    T_CHECK(of("a") == UINT64_C(0xaf63dc4c8601ec8c));
    T_CHECK(of("foobar") == UINT64_C(0x85944171f73967e8));
    /* in pieces: the hash of the whole */
    T_CHECK(fnv1a64(fnv1a64(FNV1A64_INIT, "foo", 3), "bar", 3) == of("foobar"));
    T_CHECK(fnv1a64(of("foobar"), NULL, 0) == of("foobar"));
    /* every byte counts, NUL included */
    const uint8_t z[2] = { 0, 0 };
    T_CHECK(fnv1a64(FNV1A64_INIT, z, 1) != fnv1a64(FNV1A64_INIT, z, 2));
    return t_done("test_fnv");
}
