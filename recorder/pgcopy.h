/* pgcopy.h — encode samples as PostgreSQL binary COPY data for
 *   COPY process_data_points (process_id, parameter_id, ts, value, quality)
 *   FROM STDIN (FORMAT binary)
 *
 * Layout (PostgreSQL docs, "COPY ... Binary Format"): an 11-byte signature,
 * int32 flags, int32 header-extension length; per row an int16 field count
 * and, per field, an int32 length (-1 = NULL) and the value in network byte
 * order; an int16 -1 trailer. timestamptz is int64 µs since 2000-01-01 UTC.
 * Each row here takes 52 bytes (44 when value is NULL). */
#ifndef ALDREC_PGCOPY_H
#define ALDREC_PGCOPY_H

#include <stddef.h>
#include <stdint.h>

#include "sample.h"

typedef struct pgcopy pgcopy_t;

#define PGCOPY_COLUMNS "process_id, parameter_id, ts, value, quality"

/* Returns an empty encoder with the header written, or NULL (ENOMEM). */
pgcopy_t *pgcopy_new(void);

/* Frees p; NULL is fine. */
void pgcopy_free(pgcopy_t *p);

/* Empties p and writes a fresh header; keeps the allocation. */
void pgcopy_reset(pgcopy_t *p);

/* Appends one row. Returns 0, or -1 with errno ENOMEM. */
int pgcopy_add(pgcopy_t *p, int64_t process_id, const sample_t *s);

/* Rows added since the last reset. */
size_t pgcopy_rows(const pgcopy_t *p);

/* Appends the trailer and hands the buffer to the caller (free() it) with
 * its length; p is reset for the next batch. Returns NULL with errno ENOMEM. */
uint8_t *pgcopy_take(pgcopy_t *p, size_t *len);

/* Unix-epoch µs -> PostgreSQL-epoch µs (2000-01-01 00:00:00 UTC). */
int64_t pgcopy_pg_time(int64_t unix_us);

#endif
