/* qdb.h — reading from PostgreSQL for the query commands: rows streamed
 * through a binary cursor (a run is never loaded whole into memory) and
 * decoders for binary result fields. */
#ifndef ALDREC_QDB_H
#define ALDREC_QDB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called once per row of a chunk; returns 0 to go on, -1 to stop (the
 * stream then fails with the callback's message in err). */
typedef int (*qdb_row_fn)(void *arg, const PGresult *res, int row, char *err, size_t errlen);

/* Runs sql (text parameters params[0..nparams)) through a read-only
 * transaction and a binary cursor, fetching chunk rows at a time, calling
 * fn for every row. Memory stays bounded by one chunk. Returns 0, or -1
 * with err ("what failed: server message"). */
int qdb_stream(PGconn *conn, const char *sql, int nparams, const char *const *params,
               int chunk, qdb_row_fn fn, void *arg, char *err, size_t errlen);

/* Runs sql with text parameters, text results. Returns the result (caller
 * PQclear()s it) or NULL with err; on error *sqlstate (if not NULL) gets the
 * SQLSTATE ("" when the connection failed). */
PGresult *qdb_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    char *err, size_t errlen, char sqlstate[6]);

/* Binary field decoders (the column must have that type). */
bool qdb_null(const PGresult *res, int row, int col);
int64_t qdb_int8(const PGresult *res, int row, int col);
int32_t qdb_int4(const PGresult *res, int row, int col);
int16_t qdb_int2(const PGresult *res, int row, int col);
double qdb_float8(const PGresult *res, int row, int col);
/* timestamptz as Unix-epoch µs. */
int64_t qdb_ts(const PGresult *res, int row, int col);

/* A sample row (parameter_id, ts, value, quality) as the reducer takes it:
 * good = a value with quality 0; v is 0 when the value is NULL. */
typedef struct qdb_sample {
    int32_t parameter_id;
    int64_t t;
    double v;
    bool good;
} qdb_sample_t;
qdb_sample_t qdb_sample(const PGresult *res, int row);

#endif
