/* pgwait.c — deadline-bounded PostgreSQL connect and query; see pgwait.h. */
#include "common/pgwait.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"

const char *pgwait_errmsg(const PGconn *conn, char *buf, size_t cap)
{
    const char *m = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(buf, cap, "%.*s", (int)strcspn(m, "\n"), m);
    return buf;
}

/* Waits for events on fd until deadline, or until wake_fd is readable.
 * Returns 1 ready, 0 timed out, -1 woken (or poll failed). */
static int wait_fd(int fd, short events, int64_t deadline, int wake_fd)
{
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd[2] = {
            { .fd = fd, .events = events },
            { .fd = wake_fd, .events = POLLIN },
        };
        int rc = poll(pfd, wake_fd >= 0 ? 2 : 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (wake_fd >= 0 && (pfd[1].revents & POLLIN))
            return -1;
        if (rc > 0)
            return 1;
    }
}

PGconn *pgwait_connect(const char *conninfo, const char *app, int timeout_ms, int wake_fd,
                       char *err, size_t errlen)
{
    char tmo[16], user_tmo[16], msg[256];
    snprintf(tmo, sizeof tmo, "%d", (timeout_ms + 999) / 1000);
    snprintf(user_tmo, sizeof user_tmo, "%d", timeout_ms);
    /* Our defaults first; the configured conninfo (expanded from "dbname")
     * comes last so that a site can override any of them. */
    const char *keys[] = {
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "application_name", "dbname", NULL,
    };
    const char *vals[] = { tmo, "1", "2", "1", "3", user_tmo, app, conninfo, NULL };
    int64_t deadline = clock_mono_ms() + timeout_ms;

    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        goto refused;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED)
            goto refused;
        int w = wait_fd(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                        deadline, wake_fd);
        if (w <= 0) {
            snprintf(err, errlen, "connecting to PostgreSQL: %s",
                     w == 0 ? "no answer before the deadline" : "interrupted");
            PQfinish(conn);
            errno = w == 0 ? ETIMEDOUT : EINTR;
            return NULL;
        }
        st = PQconnectPoll(conn);
    }
    if (PQsetnonblocking(conn, 1) != 0)
        goto refused;
    return conn;
refused:
    snprintf(err, errlen, "connecting to PostgreSQL: %s", pgwait_errmsg(conn, msg, sizeof msg));
    PQfinish(conn);
    errno = ECONNREFUSED;
    return NULL;
}

PGresult *pgwait_query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params, int timeout_ms, int wake_fd,
                       char *err, size_t errlen)
{
    char msg[256];
    int64_t deadline = clock_mono_ms() + timeout_ms;
    PGresult *last = NULL;
    int w = 1;

    if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0))
        goto broken;
    for (;;) {   /* push the query out */
        int f = PQflush(conn);
        if (f == 0)
            break;
        if (f < 0)
            goto broken;
        if ((w = wait_fd(PQsocket(conn), POLLIN | POLLOUT, deadline, wake_fd)) <= 0)
            goto waited;
        if (!PQconsumeInput(conn))
            goto broken;
    }
    for (;;) {
        while (PQisBusy(conn)) {
            if ((w = wait_fd(PQsocket(conn), POLLIN, deadline, wake_fd)) <= 0)
                goto waited;
            if (!PQconsumeInput(conn))
                goto broken;
        }
        PGresult *res = PQgetResult(conn);
        if (!res)
            break;
        PQclear(last);
        last = res;
    }
    if (!last)
        goto broken;
    return last;
waited:
    PQclear(last);
    snprintf(err, errlen, "PostgreSQL: %s",
             w == 0 ? "no answer before the deadline" : "interrupted");
    errno = w == 0 ? ETIMEDOUT : EINTR;
    return NULL;
broken:
    PQclear(last);
    snprintf(err, errlen, "PostgreSQL: %s", pgwait_errmsg(conn, msg, sizeof msg));
    errno = EIO;
    return NULL;
}
