/* pgconn.c — deadline-bounded PostgreSQL connect, wait and query; see
 * pgconn.h. */
#include "common/pgconn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"

const char *pgconn_errmsg(const PGconn *conn, char *buf, size_t cap)
{
    const char *m = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(buf, cap, "%.*s", (int)strcspn(m, "\n"), m);
    return buf;
}

int pgconn_wait(PGconn *conn, bool for_read, bool for_write, int64_t deadline_ms, int wake_fd)
{
    struct pollfd pfd[2] = {
        { .fd = PQsocket(conn),
          .events = (short)((for_read ? POLLIN : 0) | (for_write ? POLLOUT : 0)) },
        { .fd = wake_fd, .events = POLLIN },
    };
    for (;;) {
        int64_t left = deadline_ms - clock_mono_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int rc = poll(pfd, wake_fd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left);
        if (rc > 0 && wake_fd >= 0 && pfd[1].revents) {
            errno = ECANCELED;
            return -1;
        }
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* Server notices ("terminating connection due to administrator command"
 * and the like) precede an error reported anyway. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *pgconn_connect(const char *conninfo, const char *app, int timeout_ms, int wake_fd,
                       char *err, size_t errlen)
{
    char timeout_s[16], user_timeout[16], options[160], msg[256];
    snprintf(timeout_s, sizeof timeout_s, "%d", (timeout_ms + 999) / 1000);
    snprintf(user_timeout, sizeof user_timeout, "%d", timeout_ms);
    /* The server's end of the session gets the same dead-peer detection. */
    snprintf(options, sizeof options,
             "-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1"
             " -c tcp_keepalives_count=3 -c tcp_user_timeout=%d", timeout_ms);
    /* Our defaults first; the configured conninfo (expanded from "dbname")
     * comes last so that a site can override any of them. */
    const char *keys[] = {
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "application_name", "options", "dbname", NULL,
    };
    const char *vals[] = {
        timeout_s, "1", "2", "1", "3", user_timeout, app, options, conninfo, NULL,
    };
    int64_t deadline = clock_mono_ms() + timeout_ms;

    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        goto refused;
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    /* libpq's handshake: wait for what PQconnectPoll asks for, then poll
     * again; every wait ends at the one deadline. */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED)
            goto refused;
        if (pgconn_wait(conn, st == PGRES_POLLING_READING, st == PGRES_POLLING_WRITING,
                        deadline, wake_fd) < 0) {
            int e = errno;
            if (e == ETIMEDOUT)
                snprintf(err, errlen, "connecting to PostgreSQL: no answer within %d ms",
                         timeout_ms);
            else if (e == ECANCELED)
                snprintf(err, errlen, "connecting to PostgreSQL: cancelled");
            else
                snprintf(err, errlen, "connecting to PostgreSQL: %s", strerror(e));
            PQfinish(conn);
            errno = e;
            return NULL;
        }
        st = PQconnectPoll(conn);
    }
    if (PQsetnonblocking(conn, 1) != 0)
        goto refused;
    return conn;
refused:
    snprintf(err, errlen, "connecting to PostgreSQL: %s", pgconn_errmsg(conn, msg, sizeof msg));
    PQfinish(conn);
    errno = ECONNREFUSED;
    return NULL;
}

int pgconn_flush(PGconn *conn, int64_t deadline_ms, int wake_fd)
{
    for (;;) {
        int rc = PQflush(conn);
        if (rc == 0)
            return 0;
        if (rc < 0)
            break;
        /* Readable too: the server may answer (an error) before it has
         * read everything, and libpq must consume that to go on. */
        if (pgconn_wait(conn, true, true, deadline_ms, wake_fd) < 0)
            return -1;
        if (!PQconsumeInput(conn))
            break;
    }
    errno = EIO;
    return -1;
}

int pgconn_next_result(PGconn *conn, int64_t deadline_ms, int wake_fd, PGresult **res)
{
    *res = NULL;
    while (PQisBusy(conn)) {
        if (pgconn_wait(conn, true, false, deadline_ms, wake_fd) < 0)
            return -1;
        if (!PQconsumeInput(conn)) {
            errno = EIO;
            return -1;
        }
    }
    *res = PQgetResult(conn);
    return 0;
}

PGresult *pgconn_query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params, int timeout_ms, int wake_fd,
                       char *err, size_t errlen)
{
    char msg[256];
    int64_t deadline = clock_mono_ms() + timeout_ms;
    PGresult *last = NULL, *res;

    if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
        errno = EIO;
        goto failed;
    }
    if (pgconn_flush(conn, deadline, wake_fd) < 0)
        goto failed;
    for (;;) {
        if (pgconn_next_result(conn, deadline, wake_fd, &res) < 0)
            goto failed;
        if (!res)
            break;
        PQclear(last);
        last = res;
    }
    if (last)
        return last;
    errno = EIO;
failed:;
    int e = errno;
    PQclear(last);
    if (e == ETIMEDOUT)
        snprintf(err, errlen, "PostgreSQL: no answer within %d ms", timeout_ms);
    else if (e == ECANCELED)
        snprintf(err, errlen, "PostgreSQL: cancelled");
    else
        snprintf(err, errlen, "PostgreSQL: %s", pgconn_errmsg(conn, msg, sizeof msg));
    errno = e == ETIMEDOUT || e == ECANCELED ? e : EIO;
    return NULL;
}
