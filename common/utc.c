/* utc.c — UTC timestamps as text; see utc.h. */
#include "common/utc.h"

#include <stdio.h>
#include <time.h>

static const struct form {
    const char *date;       /* strftime() of the whole seconds */
    int digits;             /* of the fraction: 0, 3 or 6 */
    const char *suffix;
} forms[] = {
    [UTC_ISO] = { "%Y-%m-%dT%H:%M:%S", 0, "Z" },
    [UTC_ISO_MS] = { "%Y-%m-%dT%H:%M:%S", 3, "Z" },
    [UTC_ISO_US] = { "%Y-%m-%dT%H:%M:%S", 6, "Z" },
    [UTC_TABLE_MS] = { "%Y-%m-%d %H:%M:%S", 3, "" },
    [UTC_COMPACT] = { "%Y%m%dT%H%M%SZ", 0, "" },
};

char *utc_format(int64_t us, enum utc_form form, char *buf, size_t len)
{
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {          /* floor: -1 µs is 23:59:59.999999 of the day before */
        frac += 1000000;
        sec--;
    }
    if (len == 0)
        return buf;
    const struct form *f = &forms[(unsigned)form < sizeof forms / sizeof forms[0] ? form : UTC_ISO];
    time_t t = (time_t)sec;
    struct tm tm;
    char date[24];
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, f->date, &tm);
    if (f->digits == 0)
        snprintf(buf, len, "%s%s", date, f->suffix);
    else
        snprintf(buf, len, "%s.%0*d%s", date, f->digits,
                 (int)(f->digits == 3 ? frac / 1000 : frac), f->suffix);
    return buf;
}
