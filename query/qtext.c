/* qtext.c — parsing and formatting for the query commands; see qtext.h. */
#include "query/qtext.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/utc.h"

int qtext_duration_us(const char *s, int64_t *us)
{
    static const struct { const char *unit; double us; } units[] = {
        { "us", 1 }, { "ms", 1e3 }, { "s", 1e6 }, { "m", 60e6 }, { "min", 60e6 },
        { "h", 3600e6 }, { "d", 86400e6 },
    };
    char *end;
    if (!s || !*s || !(*s >= '0' && *s <= '9'))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v <= 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        double t = v * units[i].us;
        if (t < 1 || t > 366 * 86400e6)
            return -1;
        *us = (int64_t)llround(t);
        return 0;
    }
    return -1;
}

int qtext_int(const char *s, long long lo, long long hi, long long *v)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end != '\0' || x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

char *qtext_ts(int64_t t, int frac, char *buf, size_t len)
{
    return utc_format(t, frac == 6 ? UTC_ISO_US : frac == 3 ? UTC_ISO_MS : UTC_ISO, buf, len);
}

char *qtext_num(double v, char *buf, size_t len)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

char *qtext_human_s(double s, char *buf, size_t len)
{
    if (s < 1)
        snprintf(buf, len, "%.0f ms", s * 1000);
    else if (s < 60)
        snprintf(buf, len, "%.1f s", s);
    else if (s < 3600)
        snprintf(buf, len, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, len, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
    return buf;
}

void qtext_csv_str(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void qtext_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void qtext_xml_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

void qtext_json_num(FILE *f, double v)
{
    char b[40];
    fputs(isfinite(v) ? qtext_num(v, b, sizeof b) : "null", f);
}
