/* summary.h — `aldrec summary`: per parameter, for the whole run and for
 * each step, what SQL function process_summary() (0006_queries.sql)
 * computes: samples, min, max, mean, stddev, non-good quality count, time
 * outside the parameter's [min, max] limits, gaps. As a table for people
 * or as one JSON document:
 *   {"process":…, "run":{"parameters":[…]},
 *    "steps":[{"step":1,"name":…,"started_at":…,"ended_at":…,"parameters":[…]}]} */
#ifndef ALDREC_SUMMARY_H
#define ALDREC_SUMMARY_H

#include <libpq-fe.h>
#include <stdio.h>

#include "query/qsel.h"

typedef enum summary_format { SUMMARY_TABLE, SUMMARY_JSON } summary_format_t;

/* Summarises s (its parameters; its step when one was chosen, else the run
 * and every step) to out. Returns 0, or -1 with err. */
int summary_run(PGconn *conn, const qsel_t *s, summary_format_t fmt, FILE *out,
                char *err, size_t errlen);

#endif
