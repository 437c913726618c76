/* export.h — `aldrec export`: a run's samples as CSV or JSON, streamed
 * from a binary cursor to a FILE (memory stays bounded by one fetch chunk
 * plus one output row, whatever the run's size).
 *
 * Layouts:
 *   long  one line per sample (or per parameter and bucket with --every):
 *         ts,parameter,units,value,quality
 *         ts,parameter,units,samples,min,mean,max,bad_quality
 *   wide  one line per timestamp (or per bucket), one column per parameter
 *         (with --every three: min, mean, max); units in the header:
 *         ts,heater1.temperature [degC],...
 * Timestamps are ISO 8601 UTC with µs; a bucket's ts is its start (buckets
 * are aligned to the process start). A NULL value (the read failed; the
 * quality code says why) is an empty CSV field / JSON null.
 * JSON is one document: {"process":…, "parameters":[{"name","units"}…],
 * "columns":[…], "rows":[[…],…]} with the same columns as the CSV. */
#ifndef ALDREC_EXPORT_H
#define ALDREC_EXPORT_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

#include "query/qsel.h"

typedef enum export_format { EXPORT_CSV, EXPORT_JSON } export_format_t;
typedef enum export_layout { EXPORT_WIDE, EXPORT_LONG } export_layout_t;

typedef struct export_opts {
    export_format_t format;
    export_layout_t layout;
    int64_t every_us;          /* bucket width; 0 = every sample */
} export_opts_t;

/* Writes the selection s to out. Returns 0, or -1 with err (database or
 * write error). */
int export_run(PGconn *conn, const qsel_t *s, const export_opts_t *o, FILE *out,
               char *err, size_t errlen);

#endif
