/* pgwait.h — the former names of common/pgconn.h, kept only for the
 * callers not yet moved to it (recorder/daemon/aldrecd.c,
 * tests/unit/test_pcache.c). New code includes "common/pgconn.h"; delete
 * this header once nothing includes it.
 *
 * Same contracts as pgconn_connect, pgconn_query and pgconn_errmsg: a
 * wait ended by wake_fd now sets errno ECANCELED (it was EINTR). */
#ifndef ALDREC_PGWAIT_H
#define ALDREC_PGWAIT_H

#include "common/pgconn.h"

static inline PGconn *pgwait_connect(const char *conninfo, const char *app, int timeout_ms,
                                     int wake_fd, char *err, size_t errlen)
{
    return pgconn_connect(conninfo, app, timeout_ms, wake_fd, err, errlen);
}

static inline PGresult *pgwait_query(PGconn *conn, const char *sql, int nparams,
                                     const char *const *params, int timeout_ms, int wake_fd,
                                     char *err, size_t errlen)
{
    return pgconn_query(conn, sql, nparams, params, timeout_ms, wake_fd, err, errlen);
}

static inline const char *pgwait_errmsg(const PGconn *conn, char *buf, size_t cap)
{
    return pgconn_errmsg(conn, buf, cap);
}

#endif
