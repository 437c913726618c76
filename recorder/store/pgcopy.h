/* pgcopy.h — encode rows as PostgreSQL binary COPY data: samples as
 * process_data_points rows (record kind BATCH_POINTS, records.h, for its
 * columns) through pgcopy_add(), and rows of any other table field by
 * field through pgcopy_row() and the pgcopy_put_*() functions.
 *
 * Layout (PostgreSQL docs, "COPY ... Binary Format"): an 11-byte signature,
 * int32 flags, int32 header-extension length; per row an int16 field count
 * and, per field, an int32 length (-1 = NULL) and the value in network byte
 * order; an int16 -1 trailer. timestamptz is int64 µs since 2000-01-01 UTC.
 * Each row here takes 52 bytes (44 when value is NULL). */
#ifndef ALDREC_PGCOPY_H
#define ALDREC_PGCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/sample.h"

typedef struct pgcopy pgcopy_t;

/* Returns an empty encoder with the header written, or NULL (ENOMEM). */
pgcopy_t *pgcopy_new(void);

/* Frees p; NULL is fine. */
void pgcopy_free(pgcopy_t *p);

/* Empties p and writes a fresh header; keeps the allocation. */
void pgcopy_reset(pgcopy_t *p);

/* Appends one row. Returns 0, or -1 with errno ENOMEM. */
int pgcopy_add(pgcopy_t *p, int64_t process_id, const sample_t *s);

/* Appends one machine_history row (record kind BATCH_IDLE: parameter_id,
 * ts, value, quality; 40 bytes, 32 when value is NULL). Returns 0, or -1
 * with errno ENOMEM. Do not mix with pgcopy_add() rows in one stream. */
int pgcopy_add_idle(pgcopy_t *p, const sample_t *s);

/* Generic rows (set-point events, step markers, gap records, ...): start
 * a row of nfields fields with pgcopy_row(), then put exactly nfields
 * values in the table's column order. Timestamps are Unix-epoch µs and are
 * converted to timestamptz; text is UTF-8 of len bytes (no NUL inside).
 * Each returns 0, or -1 with errno ENOMEM. */
int pgcopy_row(pgcopy_t *p, int nfields);
int pgcopy_put_null(pgcopy_t *p);
int pgcopy_put_bool(pgcopy_t *p, bool v);
int pgcopy_put_int2(pgcopy_t *p, int16_t v);
int pgcopy_put_int4(pgcopy_t *p, int32_t v);
int pgcopy_put_int8(pgcopy_t *p, int64_t v);
int pgcopy_put_float8(pgcopy_t *p, double v);
int pgcopy_put_ts(pgcopy_t *p, int64_t unix_us);
int pgcopy_put_text(pgcopy_t *p, const char *s, size_t len);
/* A one-dimensional int4[] (lower bound 1) of n elements, none NULL. */
int pgcopy_put_int4_array(pgcopy_t *p, const int32_t *v, size_t n);

/* Rows added since the last reset. */
size_t pgcopy_rows(const pgcopy_t *p);

/* Appends the trailer and hands the buffer to the caller (free() it) with
 * its length; p is reset for the next batch. Returns NULL with errno ENOMEM. */
uint8_t *pgcopy_take(pgcopy_t *p, size_t *len);

/* Checks that data[0..len) is one complete binary COPY stream as
 * pgcopy_take() makes it (signature, no flags, no header extension, the
 * -1 trailer at the end) and gives the byte range of its rows in
 * [*body_off, *body_off + *body_len). Streams checked this way can be sent
 * back to back as one COPY: the first header, every body, one trailer.
 * Returns 0, or -1 with errno EINVAL. */
int pgcopy_body(const uint8_t *data, size_t len, size_t *body_off, size_t *body_len);

#define PGCOPY_HEADER_LEN 19
#define PGCOPY_TRAILER_LEN 2

/* Walks the rows of a process_data_points stream (pgcopy_add() output)
 * or of a machine_history stream (pgcopy_add_idle() output),
 * calling fn with each row's parameter id. Returns the number of rows, or
 * -1 with errno EINVAL when the data is not such a stream. */
long pgcopy_points_scan(const uint8_t *data, size_t len,
                        void (*fn)(void *arg, int32_t parameter_id), void *arg);

/* One row of such a stream, decoded (process_id 0 in an idle stream). */
typedef struct pgcopy_point {
    int64_t process_id;
    int32_t parameter_id;
    int64_t ts_us;          /* Unix epoch */
    double value;
    bool has_value;         /* false: NULL */
    int16_t quality;
} pgcopy_point_t;

/* Walks the rows of such a stream, calling fn with each row decoded.
 * Returns the number of rows, or -1 with errno EINVAL (not such a stream,
 * or a field of the wrong width). */
long pgcopy_points_rows(const uint8_t *data, size_t len,
                        void (*fn)(void *arg, const pgcopy_point_t *row), void *arg);

/* Unix-epoch µs -> PostgreSQL-epoch µs (2000-01-01 00:00:00 UTC). */
int64_t pgcopy_pg_time(int64_t unix_us);

#endif
