/* pgsink.c — exactly-once batch writer over libpq's non-blocking API. */
#include "pgsink.h"

#include "pgcopy.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pgsink {
    PGconn *conn;
    char *conninfo;
    char *recorder_id;
    int timeout_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pgsink_t *pgsink_new(const char *conninfo, const char *recorder_id, int timeout_ms)
{
    pgsink_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conninfo = strdup(conninfo);
    s->recorder_id = strdup(recorder_id);
    s->timeout_ms = timeout_ms;
    if (!s->conninfo || !s->recorder_id) {
        pgsink_free(s);
        return NULL;
    }
    return s;
}

void pgsink_free(pgsink_t *s)
{
    if (!s)
        return;
    pgsink_disconnect(s);
    free(s->conninfo);
    free(s->recorder_id);
    free(s);
}

bool pgsink_connected(const pgsink_t *s)
{
    return s->conn != NULL;
}

void pgsink_disconnect(pgsink_t *s)
{
    PQfinish(s->conn);
    s->conn = NULL;
}

/* First line of libpq's message, without the trailing newline. */
static void conn_error(pgsink_t *s, const char *what, char *err, size_t errlen)
{
    const char *msg = s->conn ? PQerrorMessage(s->conn) : "no connection";
    size_t n = strcspn(msg, "\n");
    snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

int pgsink_connect(pgsink_t *s, char *err, size_t errlen)
{
    char timeout_s[16], user_timeout[16];

    if (s->conn)
        return 0;
    snprintf(timeout_s, sizeof timeout_s, "%d", (s->timeout_ms + 999) / 1000);
    snprintf(user_timeout, sizeof user_timeout, "%d", s->timeout_ms);
    /* Our defaults first; the configured conninfo (expanded from "dbname")
     * comes last so that a site can override any of them. */
    const char *keys[] = {
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "application_name", "dbname", NULL,
    };
    const char *vals[] = {
        timeout_s, "1", "2", "1", "3", user_timeout, "aldrecd", s->conninfo, NULL,
    };
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        conn_error(s, "connecting to PostgreSQL", err, errlen);
        pgsink_disconnect(s);
        return -1;
    }
    if (PQsetnonblocking(s->conn, 1) != 0) {
        conn_error(s, "setting non-blocking mode", err, errlen);
        pgsink_disconnect(s);
        return -1;
    }
    return 0;
}

/* Waits until the socket is readable (or writable) or the deadline passes.
 * Returns 0, or -1 with errno ETIMEDOUT. */
static int wait_socket(pgsink_t *s, bool for_write, int64_t deadline)
{
    struct pollfd pfd = {
        .fd = PQsocket(s->conn),
        .events = (short)(POLLIN | (for_write ? POLLOUT : 0)),
    };
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* Next result of the running command, or NULL when it has none left.
 * *timed_out is set when the deadline passed first. */
static PGresult *next_result(pgsink_t *s, int64_t deadline, bool *timed_out)
{
    *timed_out = false;
    while (PQisBusy(s->conn)) {
        if (wait_socket(s, false, deadline) < 0) {
            *timed_out = true;
            return NULL;
        }
        if (!PQconsumeInput(s->conn))
            return NULL;
    }
    return PQgetResult(s->conn);
}

/* Flushes libpq's output buffer within the deadline. Returns 0 or -1. */
static int flush_out(pgsink_t *s, int64_t deadline, bool *timed_out)
{
    *timed_out = false;
    for (;;) {
        int rc = PQflush(s->conn);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return -1;
        if (wait_socket(s, true, deadline) < 0) {
            *timed_out = true;
            return -1;
        }
        if (!PQconsumeInput(s->conn))
            return -1;
    }
}

static bool is_data_error(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* 22: data exception, 23: integrity constraint violation. Everything
     * else (connection, shutdown, permissions, disk full) is not the batch's
     * fault and is retried. */
    return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

enum step { STEP_OK, STEP_RETRY, STEP_REJECT, STEP_DUPLICATE };

/* The ledger row of this batch exists: it was committed before. */
static bool is_ledger_conflict(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    return state && cons && strcmp(state, "23505") == 0 &&
           strcmp(cons, "ingest_ledger_pkey") == 0;
}

/* Collects every result of a sent command. Succeeds when each has the
 * expected status; the last result is returned through *last if asked. */
static enum step finish_command(pgsink_t *s, ExecStatusType want, int64_t deadline,
                                const char *what, PGresult **last, char *err,
                                size_t errlen)
{
    enum step st = STEP_OK;
    bool timed_out;
    PGresult *res;
    bool first_err = true;

    if (last)
        *last = NULL;
    if (flush_out(s, deadline, &timed_out) < 0) {
        snprintf(err, errlen, "%s: %s", what,
                 timed_out ? "no answer before the deadline" : "send failed");
        return STEP_RETRY;
    }
    while ((res = next_result(s, deadline, &timed_out)) != NULL) {
        ExecStatusType got = PQresultStatus(res);
        if (got != want && got != PGRES_COMMAND_OK && st == STEP_OK) {
            st = is_ledger_conflict(res) ? STEP_DUPLICATE
                 : is_data_error(res)     ? STEP_REJECT
                                          : STEP_RETRY;
            if (first_err) {
                const char *msg = PQresultErrorMessage(res);
                snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
                first_err = false;
            }
        }
        if (got == PGRES_COPY_IN) {
            /* COPY is waiting for data: hand control back to the caller. */
            if (last) {
                PQclear(*last);
                *last = res;
            }
            else
                PQclear(res);
            return st;
        }
        if (last) {
            PQclear(*last);
            *last = res;
        } else {
            PQclear(res);
        }
    }
    if (timed_out) {
        snprintf(err, errlen, "%s: no answer within %d ms", what, s->timeout_ms);
        return STEP_RETRY;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        conn_error(s, what, err, errlen);
        return STEP_RETRY;
    }
    return st;
}

static enum step send_and_finish(pgsink_t *s, const char *sql, ExecStatusType want,
                                 int64_t deadline, const char *what, PGresult **last,
                                 char *err, size_t errlen)
{
    if (!PQsendQuery(s->conn, sql)) {
        conn_error(s, what, err, errlen);
        return STEP_RETRY;
    }
    return finish_command(s, want, deadline, what, last, err, errlen);
}

static void rollback(pgsink_t *s)
{
    char ignore[128];
    int64_t deadline = mono_ms() + s->timeout_ms;
    if (send_and_finish(s, "ROLLBACK", PGRES_COMMAND_OK, deadline, "ROLLBACK", NULL,
                        ignore, sizeof ignore) != STEP_OK)
        pgsink_disconnect(s);
}

static enum step put_copy_data(pgsink_t *s, const pgsink_batch_t *b, int64_t deadline,
                               char *err, size_t errlen)
{
    const size_t chunk = 256 * 1024;
    bool timed_out;

    for (size_t off = 0; off < b->len;) {
        size_t n = b->len - off < chunk ? b->len - off : chunk;
        int rc = PQputCopyData(s->conn, (const char *)b->data + off, (int)n);
        if (rc < 0) {
            conn_error(s, "sending COPY data", err, errlen);
            return STEP_RETRY;
        }
        if (rc == 1) {
            off += n;
            continue;
        }
        /* rc == 0: libpq's buffer is full; wait until the socket drains. */
        if (flush_out(s, deadline, &timed_out) < 0) {
            snprintf(err, errlen, "sending COPY data: %s",
                     timed_out ? "no progress before the deadline" : "send failed");
            return STEP_RETRY;
        }
    }
    if (PQputCopyEnd(s->conn, NULL) < 0) {
        conn_error(s, "ending COPY", err, errlen);
        return STEP_RETRY;
    }
    return finish_command(s, PGRES_COMMAND_OK, deadline, "COPY", NULL, err, errlen);
}

pgsink_result_t pgsink_write(pgsink_t *s, const pgsink_batch_t *b, char *err, size_t errlen)
{
    char sql[512];
    char *rid = NULL;
    PGresult *res = NULL;
    enum step st;

    if (pgsink_connect(s, err, errlen) < 0)
        return PGSINK_RETRY;
    int64_t deadline = mono_ms() + s->timeout_ms;

    rid = PQescapeLiteral(s->conn, s->recorder_id, strlen(s->recorder_id));
    if (!rid) {
        conn_error(s, "escaping recorder id", err, errlen);
        goto retry;
    }
    /* One round trip: the server runs BEGIN and the ledger insert, then
     * waits for COPY data. If the ledger row exists the insert fails on its
     * primary key, the COPY never starts, and the batch is a DUPLICATE. */
    snprintf(sql, sizeof sql,
             "BEGIN; INSERT INTO ingest_ledger"
             " (recorder_id, batch_seq, rows, process_id, first_ts, last_ts)"
             " VALUES (%s, %lld, %u, %lld,"
             " 'epoch'::timestamptz + %lld * interval '1 microsecond',"
             " 'epoch'::timestamptz + %lld * interval '1 microsecond');"
             " COPY process_data_points (" PGCOPY_COLUMNS ") FROM STDIN (FORMAT binary)",
             rid, (long long)b->seq, b->rows, (long long)b->process_id,
             (long long)b->first_ts_us, (long long)b->last_ts_us);
    PQfreemem(rid);

    st = send_and_finish(s, sql, PGRES_COPY_IN, deadline, "ledger insert + COPY", &res,
                         err, errlen);
    bool in_copy = res && PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    res = NULL;
    if (st == STEP_DUPLICATE) {
        err[0] = '\0';
        rollback(s);
        return PGSINK_DUPLICATE;
    }
    if (st != STEP_OK || !in_copy) {
        if (st == STEP_OK) {
            snprintf(err, errlen, "COPY: server did not enter COPY IN");
            st = STEP_RETRY;
        }
        goto fail;
    }
    st = put_copy_data(s, b, deadline, err, errlen);
    if (st != STEP_OK)
        goto fail;
    st = send_and_finish(s, "COMMIT", PGRES_COMMAND_OK, deadline, "COMMIT", &res, err, errlen);
    /* A COMMIT of a failed transaction answers "ROLLBACK", not an error. */
    if (st == STEP_OK && res && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(err, errlen, "COMMIT: server rolled back");
        st = STEP_RETRY;
    }
    PQclear(res);
    if (st != STEP_OK)
        goto fail;
    return PGSINK_STORED;

fail:
    if (st == STEP_REJECT && PQstatus(s->conn) == CONNECTION_OK) {
        rollback(s);
        return PGSINK_REJECTED;
    }
retry:
    pgsink_disconnect(s);
    return PGSINK_RETRY;
}

int pgsink_last_seq(pgsink_t *s, int64_t *seq, char *err, size_t errlen)
{
    const char *params[1] = { s->recorder_id };
    if (pgsink_connect(s, err, errlen) < 0)
        return -1;
    /* Start-up only; a blocking call bounded by the keepalive and
     * tcp_user_timeout settings is acceptable here. */
    PQsetnonblocking(s->conn, 0);
    PGresult *res = PQexecParams(s->conn,
                                 "SELECT coalesce(max(batch_seq), 0) FROM ingest_ledger"
                                 " WHERE recorder_id = $1",
                                 1, NULL, params, NULL, NULL, 0);
    PQsetnonblocking(s->conn, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        conn_error(s, "reading the ingest ledger", err, errlen);
        PQclear(res);
        return -1;
    }
    *seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}
