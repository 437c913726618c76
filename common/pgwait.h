/* pgwait.h — PostgreSQL connect and query with a deadline, for the
 * metadata cache (start-up load, the refresher thread, short-lived CLIs).
 *
 * Both use libpq's non-blocking API and poll(): a server that refuses
 * costs one round trip, one that black-holes costs at most timeout_ms.
 * TCP keepalives and tcp_user_timeout are set as well, so an established
 * connection that goes silent is noticed by the kernel too. An optional
 * wake_fd (readable = give up now) lets a thread that is being stopped
 * leave at once. Host names are resolved by libpq before the deadline
 * applies; configure addresses where a resolver may hang. */
#ifndef ALDREC_PGWAIT_H
#define ALDREC_PGWAIT_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects to conninfo as application_name app. Returns the connection
 * (non-blocking mode), or NULL with err and errno ETIMEDOUT (deadline),
 * EINTR (wake_fd became readable), ECONNREFUSED (any other failure). */
PGconn *pgwait_connect(const char *conninfo, const char *app, int timeout_ms, int wake_fd,
                       char *err, size_t errlen);

/* Sends sql with nparams text parameters and collects its results.
 * Returns the last result (the caller checks its status and PQclears it),
 * or NULL with err and errno ETIMEDOUT, EINTR (woken) or EIO (connection
 * broken). After NULL the connection is in an unknown state: PQfinish it. */
PGresult *pgwait_query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params, int timeout_ms, int wake_fd,
                       char *err, size_t errlen);

/* First line of conn's error message (static storage of libpq). */
const char *pgwait_errmsg(const PGconn *conn, char *buf, size_t cap);

#endif
