/* webd.h — aldrec web: the trend pages and their JSON, served over HTTP
 * (libmicrohttpd, a thread per connection, GET and HEAD only) from the
 * recorded data, read through a small pool of reader connections.
 *
 *   /                      runs page        (root/index.html)
 *   /run.html?run=N...     run page         (root/run.html)
 *   /compare.html?runs=..  compare page     (root/compare.html)
 *   /static files          root/ (app.js, style.css, vendor/uPlot.*)
 *   /api/...               JSON and CSV     (webapi.h)
 *   /health                "ok", or 503 "database unreachable: why"
 *
 * The server never writes: its connections belong to the aldrec_reader
 * role and every request runs in a read-only transaction. Requests are
 * bounded (URL length, series per request, connections at once). */
#ifndef ALDREC_WEBD_H
#define ALDREC_WEBD_H

#include <stddef.h>

typedef struct webd webd_t;

typedef struct webd_opts {
    const char *host;        /* numeric IPv4/IPv6 or "localhost" */
    int port;                /* 0: any free one (webd_port) */
    const char *conninfo;    /* reader role */
    int connect_timeout_s;
    int pool;                /* connections kept open, 1.. */
    const char *root;        /* the pages */
} webd_opts_t;

/* Listens and starts serving. Connections to PostgreSQL are made when
 * first needed, so a database that is down does not stop the server (its
 * answers say so). Returns NULL with the reason in err. */
webd_t *webd_start(const webd_opts_t *o, char *err, size_t errlen);

/* The port actually bound. */
int webd_port(const webd_t *w);

/* Stops serving (waits for requests in flight), closes every connection,
 * frees w. NULL is fine. */
void webd_stop(webd_t *w);

#endif
