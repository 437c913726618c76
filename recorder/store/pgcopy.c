/* pgcopy.c — binary COPY encoder; see pgcopy.h for the wire layout. */
#include "store/pgcopy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PG_EPOCH_OFFSET_US (946684800LL * 1000000LL)

static const uint8_t copy_signature[11] = { 'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0 };

struct pgcopy {
    uint8_t *buf;
    size_t len, cap;
    size_t rows;
};

static int reserve(pgcopy_t *p, size_t more)
{
    if (p->len + more <= p->cap)
        return 0;
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->len + more)
        cap *= 2;
    uint8_t *nb = realloc(p->buf, cap);
    if (!nb) {
        errno = ENOMEM;
        return -1;
    }
    p->buf = nb;
    p->cap = cap;
    return 0;
}

static uint8_t *put16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

static uint8_t *put32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

static uint8_t *put64(uint8_t *o, uint64_t v)
{
    o = put32(o, (uint32_t)(v >> 32));
    return put32(o, (uint32_t)v);
}

static void write_header(pgcopy_t *p)
{
    memcpy(p->buf, copy_signature, sizeof copy_signature);
    uint8_t *o = p->buf + sizeof copy_signature;
    o = put32(o, 0);   /* flags: no OIDs */
    put32(o, 0);       /* header extension length */
    p->len = sizeof copy_signature + 8;
    p->rows = 0;
}

pgcopy_t *pgcopy_new(void)
{
    pgcopy_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (reserve(p, 4096) < 0) {
        free(p);
        return NULL;
    }
    write_header(p);
    return p;
}

void pgcopy_free(pgcopy_t *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p);
}

void pgcopy_reset(pgcopy_t *p)
{
    write_header(p);
}

int64_t pgcopy_pg_time(int64_t unix_us)
{
    return unix_us - PG_EPOCH_OFFSET_US;
}

/* A sample row: (process_id,) parameter_id, ts, value (NULL when there is
 * none), quality. points: 52 bytes with a value; idle: 40. */
static int add_sample(pgcopy_t *p, bool with_process, int64_t process_id, const sample_t *s)
{
    if (reserve(p, 52) < 0)
        return -1;
    uint8_t *o = p->buf + p->len;
    uint64_t bits;

    o = put16(o, with_process ? 5 : 4);
    if (with_process) {
        o = put32(o, 8);
        o = put64(o, (uint64_t)process_id);
    }
    o = put32(o, 4);
    o = put32(o, (uint32_t)s->parameter_id);
    o = put32(o, 8);
    o = put64(o, (uint64_t)pgcopy_pg_time(s->ts_us));
    if (s->has_value) {
        memcpy(&bits, &s->value, sizeof bits);
        o = put32(o, 8);
        o = put64(o, bits);
    } else {
        o = put32(o, 0xffffffffu);   /* -1: NULL */
    }
    o = put32(o, 2);
    o = put16(o, (uint16_t)s->quality);
    p->len = (size_t)(o - p->buf);
    p->rows++;
    return 0;
}

int pgcopy_add(pgcopy_t *p, int64_t process_id, const sample_t *s)
{
    return add_sample(p, true, process_id, s);
}

int pgcopy_add_idle(pgcopy_t *p, const sample_t *s)
{
    return add_sample(p, false, 0, s);
}

int pgcopy_row(pgcopy_t *p, int nfields)
{
    if (reserve(p, 2) < 0)
        return -1;
    put16(p->buf + p->len, (uint16_t)nfields);
    p->len += 2;
    p->rows++;
    return 0;
}

/* A field: its length (-1 for NULL) and len bytes of value to fill in. */
static uint8_t *field(pgcopy_t *p, int32_t len)
{
    size_t body = len > 0 ? (size_t)len : 0;
    if (reserve(p, 4 + body) < 0)
        return NULL;
    uint8_t *o = put32(p->buf + p->len, (uint32_t)len);
    p->len += 4 + body;
    return o;
}

int pgcopy_put_null(pgcopy_t *p)
{
    return field(p, -1) ? 0 : -1;
}

int pgcopy_put_bool(pgcopy_t *p, bool v)
{
    uint8_t *o = field(p, 1);
    if (!o)
        return -1;
    o[0] = v ? 1 : 0;
    return 0;
}

int pgcopy_put_int2(pgcopy_t *p, int16_t v)
{
    uint8_t *o = field(p, 2);
    if (!o)
        return -1;
    put16(o, (uint16_t)v);
    return 0;
}

int pgcopy_put_int4(pgcopy_t *p, int32_t v)
{
    uint8_t *o = field(p, 4);
    if (!o)
        return -1;
    put32(o, (uint32_t)v);
    return 0;
}

int pgcopy_put_int8(pgcopy_t *p, int64_t v)
{
    uint8_t *o = field(p, 8);
    if (!o)
        return -1;
    put64(o, (uint64_t)v);
    return 0;
}

int pgcopy_put_float8(pgcopy_t *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return pgcopy_put_int8(p, (int64_t)bits);
}

int pgcopy_put_ts(pgcopy_t *p, int64_t unix_us)
{
    return pgcopy_put_int8(p, pgcopy_pg_time(unix_us));
}

int pgcopy_put_text(pgcopy_t *p, const char *s, size_t len)
{
    if (len > INT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    uint8_t *o = field(p, (int32_t)len);
    if (!o)
        return -1;
    memcpy(o, s, len);
    return 0;
}

int pgcopy_put_int4_array(pgcopy_t *p, const int32_t *v, size_t n)
{
    /* ndim, has-nulls flag, element type (int4 = OID 23); per dimension
     * its size and lower bound; then each element as a field. An empty
     * array has ndim 0 and nothing after the element type. */
    size_t len = 12 + (n ? 8 : 0) + n * 8;
    if (len > INT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    uint8_t *o = field(p, (int32_t)len);
    if (!o)
        return -1;
    o = put32(o, n ? 1 : 0);
    o = put32(o, 0);
    o = put32(o, 23);
    if (n) {
        o = put32(o, (uint32_t)n);
        o = put32(o, 1);
    }
    for (size_t i = 0; i < n; i++) {
        o = put32(o, 4);
        o = put32(o, (uint32_t)v[i]);
    }
    return 0;
}

size_t pgcopy_rows(const pgcopy_t *p)
{
    return p->rows;
}

uint8_t *pgcopy_take(pgcopy_t *p, size_t *len)
{
    if (reserve(p, 2) < 0)
        return NULL;
    put16(p->buf + p->len, 0xffff);
    p->len += 2;
    uint8_t *out = malloc(p->len);
    if (!out) {
        p->len -= 2;
        errno = ENOMEM;
        return NULL;
    }
    memcpy(out, p->buf, p->len);
    *len = p->len;
    write_header(p);
    return out;
}

int pgcopy_body(const uint8_t *data, size_t len, size_t *body_off, size_t *body_len)
{
    static const uint8_t zero8[8] = { 0 };
    if (!data || len < PGCOPY_HEADER_LEN + PGCOPY_TRAILER_LEN ||
        memcmp(data, copy_signature, sizeof copy_signature) != 0 ||
        memcmp(data + sizeof copy_signature, zero8, sizeof zero8) != 0 ||
        data[len - 2] != 0xff || data[len - 1] != 0xff) {
        errno = EINVAL;
        return -1;
    }
    *body_off = PGCOPY_HEADER_LEN;
    *body_len = len - PGCOPY_HEADER_LEN - PGCOPY_TRAILER_LEN;
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

long pgcopy_points_rows(const uint8_t *data, size_t len,
                        void (*fn)(void *arg, const pgcopy_point_t *row), void *arg)
{
    size_t off, blen;
    long rows = 0;

    if (pgcopy_body(data, len, &off, &blen) < 0)
        return -1;
    const uint8_t *p = data + off, *end = p + blen;
    while (p < end) {
        /* Each row: int16 5 (points) or 4 (idle: no process_id), then
         * (int32 length, bytes) per field: process_id int8, parameter_id
         * int4, ts int8, value float8 (or NULL: length -1), quality int2. */
        static const int32_t want[5] = { 8, 4, 8, 8, 2 };
        if (end - p < 2 || p[0] != 0 || (p[1] != 5 && p[1] != 4))
            goto bad;
        int skip = p[1] == 5 ? 0 : 1;   /* idle rows start at parameter_id */
        p += 2;
        pgcopy_point_t r = { 0 };
        for (int f = skip; f < 5; f++) {
            if (end - p < 4)
                goto bad;
            int32_t flen = (int32_t)get32(p);
            p += 4;
            if (flen == -1 && f == 3)
                continue;
            if (flen != want[f] || end - p < flen)
                goto bad;
            switch (f) {
            case 0: r.process_id = (int64_t)get64(p); break;
            case 1: r.parameter_id = (int32_t)get32(p); break;
            case 2: r.ts_us = (int64_t)get64(p) + PG_EPOCH_OFFSET_US; break;
            case 3: {
                uint64_t u = get64(p);
                memcpy(&r.value, &u, sizeof r.value);
                r.has_value = true;
                break;
            }
            default: r.quality = (int16_t)(uint16_t)(p[0] << 8 | p[1]); break;
            }
            p += flen;
        }
        if (fn)
            fn(arg, &r);
        rows++;
    }
    return rows;
bad:
    errno = EINVAL;
    return -1;
}

struct scan_param {
    void (*fn)(void *arg, int32_t parameter_id);
    void *arg;
};

static void scan_param(void *arg, const pgcopy_point_t *row)
{
    struct scan_param *sp = arg;
    if (sp->fn)
        sp->fn(sp->arg, row->parameter_id);
}

long pgcopy_points_scan(const uint8_t *data, size_t len,
                        void (*fn)(void *arg, int32_t parameter_id), void *arg)
{
    struct scan_param sp = { fn, arg };
    return pgcopy_points_rows(data, len, scan_param, &sp);
}
