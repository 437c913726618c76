/* test_utc.c — common/utc.h: every form of a known instant, the epoch,
 * times before it, and truncation to a short buffer. */
#include "common/utc.h"
#include "t.h"

int main(void)
{
    char b[UTC_LEN];
    const int64_t t = 1763800000123456LL;   /* 2025-11-22 08:26:40.123456 UTC */
    T_EQ_STR(utc_format(t, UTC_ISO, b, sizeof b), "2025-11-22T08:26:40Z");
    T_EQ_STR(utc_format(t, UTC_ISO_MS, b, sizeof b), "2025-11-22T08:26:40.123Z");
    T_EQ_STR(utc_format(t, UTC_ISO_US, b, sizeof b), "2025-11-22T08:26:40.123456Z");
    T_EQ_STR(utc_format(t, UTC_TABLE_MS, b, sizeof b), "2025-11-22 08:26:40.123");
    T_EQ_STR(utc_format(t, UTC_COMPACT, b, sizeof b), "20251122T082640Z");
    T_EQ_STR(utc_format(0, UTC_ISO_US, b, sizeof b), "1970-01-01T00:00:00.000000Z");
    /* before the epoch: floor, so the fraction stays in 0..999999 */
    T_EQ_STR(utc_format(-1, UTC_ISO_US, b, sizeof b), "1969-12-31T23:59:59.999999Z");
    T_EQ_STR(utc_format(-1500000, UTC_ISO_MS, b, sizeof b), "1969-12-31T23:59:58.500Z");
    /* a leap day and the last µs of a year */
    T_EQ_STR(utc_format(1709164800000000LL, UTC_ISO, b, sizeof b), "2024-02-29T00:00:00Z");
    T_EQ_STR(utc_format(1735689599999999LL, UTC_TABLE_MS, b, sizeof b), "2024-12-31 23:59:59.999");
    /* truncated, still NUL-terminated; len 0 leaves buf alone */
    char small[11];
    T_EQ_STR(utc_format(t, UTC_ISO_US, small, sizeof small), "2025-11-22");
    b[0] = 'x';
    utc_format(t, UTC_ISO, b, 0);
    T_EQ_INT(b[0], 'x');
    return t_done("test_utc");
}
