/* utc.c — UTC timestamps as text; see utc.h. */
#include "common/utc.h"

#include <stdio.h>
#include <time.h>

char *utc_format(int64_t us, enum utc_form form, char *buf, size_t len)
{
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {          /* floor: -1 µs is 23:59:59.999999 of the day before */
        frac += 1000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    char day[24];
    if (len == 0)
        return buf;
    gmtime_r(&t, &tm);
    switch (form) {
    case UTC_ISO:
        strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, len, "%sZ", day);
        break;
    case UTC_ISO_MS:
        strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, len, "%s.%03dZ", day, (int)(frac / 1000));
        break;
    case UTC_ISO_US:
        strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, len, "%s.%06dZ", day, (int)frac);
        break;
    case UTC_TABLE_MS:
        strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
        snprintf(buf, len, "%s.%03d", day, (int)(frac / 1000));
        break;
    case UTC_COMPACT:
        strftime(day, sizeof day, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(buf, len, "%s", day);
        break;
    }
    return buf;
}
