/* test_pgcopy.c — the binary COPY encoder (store/pgcopy.h) against bytes
 * spelled out by hand from PostgreSQL's "COPY ... Binary Format" page, so
 * the encoder is never checked against itself. No server: that every kind
 * is accepted by a real PostgreSQL is test_pgsink's and the integration
 * tests' job. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pgcopy.h"
#include "t.h"

/* Signature "PGCOPY\n\377\r\n\0", flags 0, header extension length 0. */
static const uint8_t header[19] = {
    'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0x00,
    0, 0, 0, 0,
    0, 0, 0, 0,
};

/* 2000-01-01 00:00:00 UTC in Unix µs: PostgreSQL's epoch. */
#define PG_EPOCH_UNIX_US 946684800000000LL

static int bytes_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    return memcmp(a, b, n) == 0;
}

static void test_pg_time(void)
{
    T_EQ_INT(pgcopy_pg_time(PG_EPOCH_UNIX_US), 0);
    T_EQ_INT(pgcopy_pg_time(PG_EPOCH_UNIX_US + 1), 1);
    T_EQ_INT(pgcopy_pg_time(0), -PG_EPOCH_UNIX_US);
}

/* One point row: process 42, parameter 7, 1 µs after the PostgreSQL
 * epoch, value 1.5 (IEEE-754 0x3FF8000000000000), quality 3; then the
 * same with a NULL value. 52 and 44 bytes, as pgcopy.h says. */
static void test_point_rows(void)
{
    static const uint8_t row_value[52] = {
        0x00, 0x05,                                                 /* 5 fields */
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0x2a,                      /* int8 42 */
        0, 0, 0, 4, 0, 0, 0, 7,                                     /* int4 7 */
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1,                         /* ts 1 µs */
        0, 0, 0, 8, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,                   /* 1.5 */
        0, 0, 0, 2, 0, 3,                                           /* int2 3 */
    };
    static const uint8_t row_null[44] = {
        0x00, 0x05,
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0x2a,
        0, 0, 0, 4, 0, 0, 0, 7,
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1,
        0xff, 0xff, 0xff, 0xff,                                     /* NULL */
        0, 0, 0, 2, 0, 3,
    };
    pgcopy_t *p = pgcopy_new();
    T_CHECK(p != NULL);
    if (!p)
        return;
    sample_t s = { .parameter_id = 7, .ts_us = PG_EPOCH_UNIX_US + 1, .value = 1.5,
                   .quality = 3, .has_value = true };
    T_EQ_INT(pgcopy_add(p, 42, &s), 0);
    s.has_value = false;
    T_EQ_INT(pgcopy_add(p, 42, &s), 0);
    T_EQ_INT(pgcopy_rows(p), 2);
    size_t len = 0;
    uint8_t *d = pgcopy_take(p, &len);
    T_CHECK(d != NULL);
    T_EQ_INT(len, 19 + 52 + 44 + 2);
    if (d && len == 19 + 52 + 44 + 2) {
        T_CHECK(bytes_eq(d, header, 19));
        T_CHECK(bytes_eq(d + 19, row_value, 52));
        T_CHECK(bytes_eq(d + 19 + 52, row_null, 44));
        T_EQ_INT(d[len - 2], 0xff);     /* trailer: int16 -1 */
        T_EQ_INT(d[len - 1], 0xff);
        size_t off = 0, blen = 0;
        T_EQ_INT(pgcopy_body(d, len, &off, &blen), 0);
        T_EQ_INT(off, 19);
        T_EQ_INT(blen, 52 + 44);
    }
    T_EQ_INT(pgcopy_rows(p), 0);        /* take resets */
    free(d);
    pgcopy_free(p);
}

static void count_param(void *arg, int32_t id)
{
    int32_t *sum = arg;
    *sum += id;
}

/* A generic row of every field type: bool true, int2 -2, int4 -3, int8
 * 2^32, float8 -0.5 (0xBFE0000000000000), the epoch as ts, text "hé"
 * (UTF-8 68 C3 A9), int4[] {5, 6}, NULL. */
static void test_generic_row(void)
{
    static const uint8_t row[] = {
        0x00, 0x09,                                                 /* 9 fields */
        0, 0, 0, 1, 1,                                              /* bool */
        0, 0, 0, 2, 0xff, 0xfe,                                     /* int2 -2 */
        0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfd,                         /* int4 -3 */
        0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0,                         /* int8 2^32 */
        0, 0, 0, 8, 0xbf, 0xe0, 0, 0, 0, 0, 0, 0,                   /* -0.5 */
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0,                         /* ts 0 */
        0, 0, 0, 3, 0x68, 0xc3, 0xa9,                               /* text */
        0, 0, 0, 36,                                                /* int4[] */
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23,                        /* ndim, flags, oid */
        0, 0, 0, 2, 0, 0, 0, 1,                                     /* size 2, lb 1 */
        0, 0, 0, 4, 0, 0, 0, 5,
        0, 0, 0, 4, 0, 0, 0, 6,
        0xff, 0xff, 0xff, 0xff,                                     /* NULL */
    };
    pgcopy_t *p = pgcopy_new();
    T_CHECK(p != NULL);
    if (!p)
        return;
    static const int32_t arr[2] = { 5, 6 };
    T_EQ_INT(pgcopy_row(p, 9), 0);
    T_EQ_INT(pgcopy_put_bool(p, true), 0);
    T_EQ_INT(pgcopy_put_int2(p, -2), 0);
    T_EQ_INT(pgcopy_put_int4(p, -3), 0);
    T_EQ_INT(pgcopy_put_int8(p, 4294967296LL), 0);
    T_EQ_INT(pgcopy_put_float8(p, -0.5), 0);
    T_EQ_INT(pgcopy_put_ts(p, PG_EPOCH_UNIX_US), 0);
    T_EQ_INT(pgcopy_put_text(p, "h\xc3\xa9", 3), 0);
    T_EQ_INT(pgcopy_put_int4_array(p, arr, 2), 0);
    T_EQ_INT(pgcopy_put_null(p), 0);
    size_t len = 0;
    uint8_t *d = pgcopy_take(p, &len);
    T_EQ_INT(len, 19 + sizeof row + 2);
    if (d && len == 19 + sizeof row + 2) {
        T_CHECK(bytes_eq(d, header, 19));
        T_CHECK(bytes_eq(d + 19, row, sizeof row));
    }
    free(d);
    pgcopy_free(p);
}

/* pgcopy_body and pgcopy_points_scan refuse what is not one stream. */
static void test_validation(void)
{
    pgcopy_t *p = pgcopy_new();
    T_CHECK(p != NULL);
    if (!p)
        return;
    sample_t s = { .parameter_id = 11, .ts_us = PG_EPOCH_UNIX_US, .value = 2, .has_value = true };
    pgcopy_add(p, 1, &s);
    s.parameter_id = 31;
    pgcopy_add(p, 1, &s);
    size_t len = 0;
    uint8_t *d = pgcopy_take(p, &len);
    T_CHECK(d != NULL);
    if (d) {
        int32_t sum = 0;
        T_EQ_INT(pgcopy_points_scan(d, len, count_param, &sum), 2);
        T_EQ_INT(sum, 42);
        size_t off, blen;
        T_EQ_INT(pgcopy_body(d, len - 1, &off, &blen), -1);        /* no trailer */
        T_EQ_INT(pgcopy_points_scan(d, len - 3, count_param, &sum), -1);
        d[0] = 'X';                                                 /* signature */
        T_EQ_INT(pgcopy_body(d, len, &off, &blen), -1);
        d[0] = 'P';
        d[12] = 1;                                                  /* flags set */
        T_EQ_INT(pgcopy_body(d, len, &off, &blen), -1);
    }
    T_EQ_INT(pgcopy_body(header, 10, &(size_t){ 0 }, &(size_t){ 0 }), -1);
    free(d);
    pgcopy_free(p);
}

int main(void)
{
    test_pg_time();
    test_point_rows();
    test_generic_row();
    test_validation();
    return t_done("test_pgcopy");
}
