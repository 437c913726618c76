/* ctlrec.c — set-point events and step markers: request lines, validation,
 * COPY rows; see ctlrec.h. */
#include "store/ctlrec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/records.h"

/* Timestamps outside [2000-01-01, 2100-01-01) are a broken clock or a
 * broken caller, never a set point. */
#define TS_MIN_US 946684800000000LL
#define TS_MAX_US 4102444800000000LL

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when it is
 * not one (overlong forms, surrogates and code points past U+10FFFF
 * included: PostgreSQL refuses them). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

int ctlrec_check_text(const char *what, const char *s, char *err, size_t errlen)
{
    size_t len = strlen(s);
    if (len == 0 || len > CTLREC_TEXT_MAX) {
        snprintf(err, errlen, "%s must be 1..%d bytes, got %zu", what, CTLREC_TEXT_MAX, len);
        return -1;
    }
    for (size_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)s + i;
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(err, errlen, "%s contains a control character (byte %zu)", what, i + 1);
            return -1;
        }
        size_t n = utf8_len(p);
        if (n == 0) {
            snprintf(err, errlen, "%s is not valid UTF-8 (byte %zu)", what, i + 1);
            return -1;
        }
        i += n;
    }
    if (s[0] == ' ' || s[len - 1] == ' ') {
        snprintf(err, errlen, "%s must not begin or end with a space: \"%s\"", what, s);
        return -1;
    }
    return 0;
}

/* Cuts the next space-separated field off *rest into buf. Returns buf, or
 * NULL when there is none. A field too long for buf ends in "..." there,
 * which no number parses. */
static const char *next_field(const char **rest, char *buf, size_t cap)
{
    const char *s = *rest;
    if (!s || !*s)
        return NULL;
    size_t n = strcspn(s, " ");
    if (n < cap)
        snprintf(buf, cap, "%.*s", (int)n, s);
    else
        snprintf(buf, cap, "%.*s...", (int)(cap - 4), s);
    *rest = s[n] ? s + n + 1 : s + n;
    return buf;
}

static int bad(char *err, size_t errlen, const char *field, const char *want, const char *got)
{
    if (got)
        snprintf(err, errlen, "%s must be %s, got \"%.40s\"", field, want, got);
    else
        snprintf(err, errlen, "%s missing (expected %s)", field, want);
    return -1;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (!s || !*s || *s == ' ')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno == ERANGE || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    if (!s || !*s || *s == ' ')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* The last field: the rest of the line, free text, into buf. */
static int take_text(const char *rest, const char *field, const char *want, char *buf,
                     size_t cap, char *err, size_t errlen)
{
    if (!rest || !*rest)
        return bad(err, errlen, field, want, NULL);
    if (ctlrec_check_text(field, rest, err, errlen) < 0)
        return -1;
    snprintf(buf, cap, "%s", rest);
    return 0;
}

int ctlrec_event_parse(const char *args, ctlrec_event_t *out, char *err, size_t errlen)
{
    char f[64];
    const char *rest = args, *s;
    long long v;
    *out = (ctlrec_event_t){ 0 };

    s = next_field(&rest, f, sizeof f);
    if (parse_int(s, 1, INT32_MAX, &v) < 0)
        return bad(err, errlen, "PARAM_ID", "a parameter id (1..2147483647)", s);
    out->parameter_id = (int32_t)v;
    s = next_field(&rest, f, sizeof f);
    if (parse_int(s, TS_MIN_US, TS_MAX_US - 1, &v) < 0)
        return bad(err, errlen, "TS_US", "microseconds since 1970 (years 2000..2099)", s);
    out->ts_us = v;
    s = next_field(&rest, f, sizeof f);
    if (parse_double(s, &out->requested) < 0)
        return bad(err, errlen, "REQUESTED", "a finite number", s);
    s = next_field(&rest, f, sizeof f);
    if (s && strcmp(s, "-") == 0)
        out->has_readback = false;
    else if (parse_double(s, &out->readback) == 0)
        out->has_readback = true;
    else
        return bad(err, errlen, "READBACK", "a finite number or \"-\"", s);
    s = next_field(&rest, f, sizeof f);
    if (parse_int(s, 0, INT16_MAX, &v) < 0)
        return bad(err, errlen, "QUALITY", "a quality code (0..32767)", s);
    out->quality = (int16_t)v;
    return take_text(rest, "REQUESTED_BY", "who or what asked (text)", out->requested_by,
                     sizeof out->requested_by, err, errlen);
}

int ctlrec_step_parse(const char *args, ctlrec_step_t *out, char *err, size_t errlen)
{
    char f[64];
    const char *rest = args, *s;
    long long v;
    *out = (ctlrec_step_t){ 0 };

    s = next_field(&rest, f, sizeof f);
    if (parse_int(s, 0, INT32_MAX, &v) < 0)
        return bad(err, errlen, "NUMBER", "a step number (0..2147483647)", s);
    out->step_no = (int32_t)v;
    return take_text(rest, "NAME", "the step's name (text)", out->name, sizeof out->name, err,
                     errlen);
}

static int line_fits(int n, size_t cap, char *err, size_t errlen)
{
    if (n >= 0 && (size_t)n < cap)
        return 0;
    snprintf(err, errlen, "request line longer than %zu bytes", cap);
    errno = ENOSPC;
    return -1;
}

int ctlrec_event_line(const ctlrec_event_t *ev, char *buf, size_t cap, char *err,
                      size_t errlen)
{
    char rb[40] = "-";
    ctlrec_event_t back;
    if (ev->has_readback)
        snprintf(rb, sizeof rb, "%.17g", ev->readback);
    int n = snprintf(buf, cap, "EVENT %d %lld %.17g %s %d %s", ev->parameter_id,
                     (long long)ev->ts_us, ev->requested, rb, ev->quality, ev->requested_by);
    if (line_fits(n, cap, err, errlen) < 0)
        return -1;
    /* What the daemon would refuse is refused here, before anything is sent. */
    if (ctlrec_event_parse(buf + 6, &back, err, errlen) < 0) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int ctlrec_step_line(const ctlrec_step_t *st, char *buf, size_t cap, char *err, size_t errlen)
{
    ctlrec_step_t back;
    int n = snprintf(buf, cap, "STEP %d %s", st->step_no, st->name);
    if (line_fits(n, cap, err, errlen) < 0)
        return -1;
    if (ctlrec_step_parse(buf + 5, &back, err, errlen) < 0) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int ctlrec_event_row(pgcopy_t *p, int64_t process_id, const ctlrec_event_t *ev)
{
    if (pgcopy_row(p, records_ncolumns(BATCH_EVENTS)) < 0 ||
        (process_id > 0 ? pgcopy_put_int8(p, process_id) : pgcopy_put_null(p)) < 0 ||
        pgcopy_put_int4(p, ev->parameter_id) < 0 ||
        pgcopy_put_ts(p, ev->ts_us) < 0 ||
        pgcopy_put_float8(p, ev->requested) < 0 ||
        (ev->has_readback ? pgcopy_put_float8(p, ev->readback) : pgcopy_put_null(p)) < 0 ||
        pgcopy_put_int2(p, ev->quality) < 0 ||
        pgcopy_put_text(p, ev->requested_by, strlen(ev->requested_by)) < 0)
        return -1;
    return 0;
}

int ctlrec_step_row(pgcopy_t *p, int64_t process_id, const ctlrec_step_t *st,
                    int64_t started_us)
{
    if (pgcopy_row(p, records_ncolumns(BATCH_STEPS)) < 0 ||
        pgcopy_put_int8(p, process_id) < 0 ||
        pgcopy_put_int4(p, st->step_no) < 0 ||
        pgcopy_put_text(p, st->name, strlen(st->name)) < 0 ||
        pgcopy_put_ts(p, started_us) < 0)
        return -1;
    return 0;
}
