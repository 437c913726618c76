/* pgconn.h — PostgreSQL connect, wait and query with a deadline: the one
 * deadline-bounded libpq connection of every layer (the batch writer, the
 * metadata cache, start-up checks, short-lived CLIs).
 *
 * Everything uses libpq's non-blocking API and poll(): a server that
 * refuses costs one round trip, one that black-holes (packets vanish, no
 * error ever comes) costs at most the deadline — the connect handshake
 * included. TCP keepalives and tcp_user_timeout are set on our end and,
 * through "options", on the server's, so an established session that goes
 * silent is noticed by both kernels too. An optional wake_fd (readable =
 * give up now; -1: none) lets a thread that is being stopped leave at once.
 * Host names are resolved by libpq before the deadline applies: configure
 * addresses where a resolver may hang. Server notices are dropped (libpq
 * would print them on stderr); errors are reported as usual.
 *
 * Deadlines are clock_mono_ms() values (common/clock.h). */
#ifndef ALDREC_PGCONN_H
#define ALDREC_PGCONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Connects to conninfo as application_name app within timeout_ms. Our
 * connection defaults come first, conninfo last, so a site may override
 * any of them. Returns the connection (non-blocking mode; PQfinish it), or
 * NULL with err ("connecting to PostgreSQL: ...") and errno ETIMEDOUT (no
 * answer within timeout_ms), ECANCELED (wake_fd became readable) or
 * ECONNREFUSED (any other failure: refused, authentication, bad conninfo). */
PGconn *pgconn_connect(const char *conninfo, const char *app, int timeout_ms, int wake_fd,
                       char *err, size_t errlen);

/* Waits until conn's socket is readable (for_read) or writable
 * (for_write), until deadline_ms, or until wake_fd is readable. Returns 0,
 * or -1 with errno ETIMEDOUT, ECANCELED or poll's error. */
int pgconn_wait(PGconn *conn, bool for_read, bool for_write, int64_t deadline_ms, int wake_fd);

/* Pushes libpq's output buffer out before deadline_ms. Returns 0, or -1
 * with errno from pgconn_wait (the wait gave up) or EIO (the connection
 * broke: PQerrorMessage says why). */
int pgconn_flush(PGconn *conn, int64_t deadline_ms, int wake_fd);

/* The next result of the command in flight, waiting until deadline_ms.
 * Returns 0 with *res (NULL: the command has no results left; PQclear
 * the others), or -1 with errno from pgconn_wait or EIO as above. */
int pgconn_next_result(PGconn *conn, int64_t deadline_ms, int wake_fd, PGresult **res);

/* Sends sql with nparams text parameters and collects its results within
 * timeout_ms. Returns the last result (the caller checks its status and
 * PQclears it), or NULL with err ("PostgreSQL: ...") and errno ETIMEDOUT,
 * ECANCELED (woken) or EIO (connection broken). After NULL the connection
 * is in an unknown state: PQfinish it. */
PGresult *pgconn_query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params, int timeout_ms, int wake_fd,
                       char *err, size_t errlen);

/* The first line of conn's error message ("out of memory" for NULL), in
 * buf. Returns buf. */
const char *pgconn_errmsg(const PGconn *conn, char *buf, size_t cap);

#endif
