/* webapi.h — the JSON (and CSV) answers of aldrec web, one function per
 * endpoint, each given a reader connection and the request's arguments:
 *
 *   /api/runs?machine=&recipe=&lot=&limit=     runs, newest first
 *   /api/run?run=N                             one run: steps, parameters
 *                                              (units, limits), set points
 *   /api/series?run=N&param=A,B&from=&to=&width=PX
 *                                              each series reduced to at most
 *                                              4 points per pixel column
 *                                              (first/min/max/last, every
 *                                              extreme kept) and the spans
 *                                              without good data
 *   /api/compare?runs=A,B,..&param=P&step=N&k=K&bucket=S
 *                                              runs aligned at a step's start,
 *                                              each run's difference to the
 *                                              first, the envelope mean ± k·σ
 *                                              of the reference runs
 *   /api/export.csv?run=N&param=&from=&to=     the window as `aldrec export`
 *
 * Arguments are the decoded query string values (NULL: absent). Every one
 * reaches SQL as a bound parameter. */
#ifndef ALDREC_WEBAPI_H
#define ALDREC_WEBAPI_H

#include <libpq-fe.h>
#include <stddef.h>

/* Most series one request may ask for. */
#define WEBAPI_MAX_SERIES 16

typedef const char *(*webapi_arg_fn)(void *ctx, const char *name);

typedef struct webapi_reply {
    int status;              /* HTTP status */
    const char *type;        /* Content-Type */
    char *body;              /* malloc'd; the caller frees it */
    size_t len;
} webapi_reply_t;

/* Answers the API request `path` ("/api/runs", ...). On 4xx/5xx the body is
 * {"error": "FIELD: why"} naming the argument at fault. A failed connection
 * gives 503 (the caller reconnects). Returns 0, or -1 (out of memory). */
int webapi_handle(PGconn *conn, const char *path, webapi_arg_fn arg, void *ctx,
                  webapi_reply_t *r);

/* Prepares the hot statements on a new connection. Returns 0 or -1. */
int webapi_prepare(PGconn *conn, char *err, size_t errlen);

#endif
