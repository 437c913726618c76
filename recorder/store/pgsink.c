/* pgsink.c — exactly-once batch writer over libpq's non-blocking API. */
#include "store/pgsink.h"

#include "common/pgconn.h"
#include "store/pgcopy.h"
#include "store/rollup.h"
#include "store/records.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

/* The COPY statement of each record kind, built once from its table and
 * columns (records.h, docs/ARCH.md "Record kinds"). */
static char copy_sql[BATCH_KIND_MAX + 1][512];
static pthread_once_t copy_sql_once = PTHREAD_ONCE_INIT;

static void build_copy_sql(void)
{
    for (int k = BATCH_KIND_MIN; k <= BATCH_KIND_MAX; k++) {
        const record_kind_t *rk = records_kind(k);
        snprintf(copy_sql[k], sizeof copy_sql[k], "COPY %s (%s) FROM STDIN (FORMAT binary)",
                 rk->table, rk->columns);
    }
}

struct pgsink {
    PGconn *conn;
    char *conninfo;
    char *recorder_id;
    char *rid_literal;      /* recorder_id quoted for SQL, made at connect */
    int timeout_ms;
    int cancel_fd;
    bool answered;          /* the last command got at least one result */
    void (*busy)(void *);   /* pgsink_set_busy_hook() */
    void *busy_arg;
    bool (*commit_ok)(void *);  /* pgsink_set_commit_hook() */
    void *commit_arg;
    struct {                /* pgsink_prepare(): a group's rollup, worked out ahead */
        int64_t spool_id, first_seq, last_seq;
        size_t n;
        long rows;          /* rollup_payload()'s answer; -1: it failed */
        int err;            /* its errno then */
        uint8_t *roll;
        size_t len;
    } prep;
};

void pgsink_set_busy_hook(pgsink_t *s, void (*fn)(void *), void *arg)
{
    s->busy = fn;
    s->busy_arg = arg;
}

void pgsink_set_commit_hook(pgsink_t *s, bool (*fn)(void *), void *arg)
{
    s->commit_ok = fn;
    s->commit_arg = arg;
}

const char *pgsink_copy_sql(enum batch_kind kind)
{
    if (!records_known((int)kind))
        return NULL;
    pthread_once(&copy_sql_once, build_copy_sql);
    return copy_sql[kind];
}

pgsink_t *pgsink_new(const char *conninfo, const char *recorder_id, int timeout_ms)
{
    pgsink_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conninfo = strdup(conninfo);
    s->recorder_id = strdup(recorder_id);
    s->timeout_ms = timeout_ms;
    s->cancel_fd = -1;
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
    free(s->prep.roll);
    free(s->conninfo);
    free(s->recorder_id);
    free(s);
}

void pgsink_set_cancel_fd(pgsink_t *s, int fd)
{
    s->cancel_fd = fd;
}

bool pgsink_connected(const pgsink_t *s)
{
    return s->conn != NULL;
}

int pgsink_socket(const pgsink_t *s)
{
    return s->conn ? PQsocket(s->conn) : -1;
}

void pgsink_disconnect(pgsink_t *s)
{
    /* The socket is non-blocking: PQfinish's goodbye never waits. */
    PQfinish(s->conn);
    s->conn = NULL;
    PQfreemem(s->rid_literal);
    s->rid_literal = NULL;
}

/* First line of libpq's message, without the trailing newline. */
static void conn_error(pgsink_t *s, const char *what, char *err, size_t errlen)
{
    const char *msg = s->conn ? PQerrorMessage(s->conn) : "no connection";
    size_t n = strcspn(msg, "\n");
    snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

/* "WHAT: no answer within N ms" and the like, for a failed wait. */
static void wait_error(pgsink_t *s, const char *what, char *err, size_t errlen)
{
    if (errno == ETIMEDOUT)
        snprintf(err, errlen, "%s: no answer within %d ms", what, s->timeout_ms);
    else if (errno == ECANCELED)
        snprintf(err, errlen, "%s: cancelled (aldrecd is stopping)", what);
    else
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
}

int pgsink_connect(pgsink_t *s, char *err, size_t errlen)
{
    if (s->conn)
        return 0;
    s->conn = pgconn_connect(s->conninfo, "aldrecd", s->timeout_ms, s->cancel_fd, err, errlen);
    if (!s->conn) {
        if (errno == ETIMEDOUT || errno == ECANCELED)
            wait_error(s, "connecting to PostgreSQL", err, errlen);
        return -1;
    }
    s->rid_literal = PQescapeLiteral(s->conn, s->recorder_id, strlen(s->recorder_id));
    if (!s->rid_literal) {
        conn_error(s, "escaping the recorder id", err, errlen);
        pgsink_disconnect(s);
        return -1;
    }
    return 0;
}

int pgsink_check(pgsink_t *s, char *err, size_t errlen)
{
    if (!s->conn) {
        snprintf(err, errlen, "not connected");
        return -1;
    }
    if (!PQconsumeInput(s->conn) || PQstatus(s->conn) != CONNECTION_OK) {
        conn_error(s, "PostgreSQL connection lost", err, errlen);
        pgsink_disconnect(s);
        return -1;
    }
    /* An idle session gets nothing but notices; drop anything else. */
    PGresult *res;
    while (!PQisBusy(s->conn) && (res = PQgetResult(s->conn)) != NULL)
        PQclear(res);
    return 0;
}

/* Next result of the running command, or NULL when it has none left.
 * *failed_wait is set (errno kept) when the wait gave up first. */
static PGresult *next_result(pgsink_t *s, int64_t deadline, bool *failed_wait)
{
    PGresult *res;
    *failed_wait = pgconn_next_result(s->conn, deadline, s->cancel_fd, &res) < 0 &&
                   errno != EIO;
    return res;
}

/* Flushes libpq's output buffer within the deadline. Returns 0, or -1 with
 * *failed_wait telling whether the wait gave up (errno kept). */
static int flush_out(pgsink_t *s, int64_t deadline, bool *failed_wait)
{
    int rc = pgconn_flush(s->conn, deadline, s->cancel_fd);
    *failed_wait = rc < 0 && errno != EIO;
    return rc;
}

static bool is_data_error(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* 22: data exception, 23: integrity constraint violation. Everything
     * else (connection, shutdown, permissions, missing table, disk full) is
     * not the batch's fault and is retried. */
    return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

enum step { STEP_OK, STEP_RETRY, STEP_REJECT, STEP_DUPLICATE };

/* A ledger row of this transaction exists: committed before. */
static bool is_ledger_conflict(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    return state && cons && strcmp(state, "23505") == 0 &&
           strcmp(cons, "ingest_ledger_pkey") == 0;
}

/* Collects every result of a sent command (up to a COPY IN, which hands
 * control back). Succeeds when none is an error; *in_copy tells whether the
 * server now waits for COPY data; *cmd_status gets the last command tag. */
static enum step finish_command(pgsink_t *s, int64_t deadline, const char *what, bool *in_copy,
                                char *cmd_status, size_t cslen, char *err, size_t errlen)
{
    enum step st = STEP_OK;
    bool failed_wait;
    PGresult *res;

    if (in_copy)
        *in_copy = false;
    s->answered = false;
    if (flush_out(s, deadline, &failed_wait) < 0) {
        if (failed_wait)
            wait_error(s, what, err, errlen);
        else
            conn_error(s, what, err, errlen);
        return STEP_RETRY;
    }
    while ((res = next_result(s, deadline, &failed_wait)) != NULL) {
        ExecStatusType got = PQresultStatus(res);
        s->answered = true;
        if (got != PGRES_COMMAND_OK && got != PGRES_COPY_IN && st == STEP_OK) {
            st = is_ledger_conflict(res) ? STEP_DUPLICATE
                 : is_data_error(res)     ? STEP_REJECT
                                          : STEP_RETRY;
            const char *msg = PQresultErrorMessage(res);
            snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
        }
        if (cmd_status)
            snprintf(cmd_status, cslen, "%s", PQcmdStatus(res));
        PQclear(res);
        if (got == PGRES_COPY_IN) {
            if (in_copy)
                *in_copy = true;
            return st;
        }
    }
    if (failed_wait) {
        wait_error(s, what, err, errlen);
        return STEP_RETRY;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        conn_error(s, what, err, errlen);
        return STEP_RETRY;
    }
    return st;
}

static enum step send_and_finish(pgsink_t *s, const char *sql, const char *what, bool *in_copy,
                                 char *cmd_status, size_t cslen, char *err, size_t errlen)
{
    if (!PQsendQuery(s->conn, sql)) {
        conn_error(s, what, err, errlen);
        return STEP_RETRY;
    }
    return finish_command(s, clock_mono_ms() + s->timeout_ms, what, in_copy, cmd_status, cslen, err,
                          errlen);
}

static void rollback(pgsink_t *s)
{
    char ignore[128];
    if (send_and_finish(s, "ROLLBACK", "ROLLBACK", NULL, NULL, 0, ignore, sizeof ignore) !=
        STEP_OK)
        pgsink_disconnect(s);
}

/* Queues len bytes of COPY data; a stall of timeout_ms gives up. */
static enum step put_bytes(pgsink_t *s, const uint8_t *p, size_t len, char *err, size_t errlen)
{
    const size_t chunk = 256 * 1024;
    bool failed_wait;

    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        int rc = PQputCopyData(s->conn, (const char *)p, (int)n);
        if (rc < 0) {
            conn_error(s, "sending COPY data", err, errlen);
            return STEP_RETRY;
        }
        if (rc == 1) {
            p += n;
            len -= n;
            continue;
        }
        /* rc == 0: libpq's buffer is full; wait until the socket drains. */
        if (flush_out(s, clock_mono_ms() + s->timeout_ms, &failed_wait) < 0) {
            if (failed_wait)
                wait_error(s, "sending COPY data", err, errlen);
            else
                conn_error(s, "sending COPY data", err, errlen);
            return STEP_RETRY;
        }
    }
    return STEP_OK;
}

/* Ends the COPY whose data went out (st: how sending it went) and
 * collects its result; *in_copy: the next statement is a COPY too (NULL:
 * none is). */
static enum step end_copy(pgsink_t *s, enum step st, const char *what, bool *in_copy, bool busy,
                          char *err, size_t errlen)
{
    if (st != STEP_OK)
        return st;
    if (PQputCopyEnd(s->conn, NULL) < 0) {
        conn_error(s, "ending COPY", err, errlen);
        return STEP_RETRY;
    }
    if (busy && s->busy) {
        /* All the rows are on their way and the server has them to
         * insert: the caller's work fits in that time. */
        bool failed_wait;
        int64_t deadline = clock_mono_ms() + s->timeout_ms;
        if (flush_out(s, deadline, &failed_wait) < 0) {
            if (failed_wait)
                wait_error(s, "ending COPY", err, errlen);
            else
                conn_error(s, "ending COPY", err, errlen);
            return STEP_RETRY;
        }
        s->busy(s->busy_arg);
    }
    return finish_command(s, clock_mono_ms() + s->timeout_ms, what, in_copy, NULL, 0, err,
                          errlen);
}

/* The batches' rows as one COPY stream: the first header, every body, one
 * trailer (all were checked with pgcopy_body()); the busy hook runs once
 * they are sent. */
static enum step put_copy_data(pgsink_t *s, const batch_t *b, size_t n, bool *in_copy,
                               char *err, size_t errlen)
{
    enum step st = put_bytes(s, b[0].data, PGCOPY_HEADER_LEN, err, errlen);
    for (size_t i = 0; i < n && st == STEP_OK; i++)
        st = put_bytes(s, b[i].data + PGCOPY_HEADER_LEN,
                       b[i].len - PGCOPY_HEADER_LEN - PGCOPY_TRAILER_LEN, err, errlen);
    if (st == STEP_OK)
        st = put_bytes(s, b[0].data + b[0].len - PGCOPY_TRAILER_LEN, PGCOPY_TRAILER_LEN, err,
                       errlen);
    return end_copy(s, st, "COPY", in_copy, true, err, errlen);
}

/* A growing SQL text. */
struct sqlbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sql_add(struct sqlbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sql_add(struct sqlbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = b->p ? vsnprintf(b->p + b->len, room, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        if (n >= 0 && cap < b->len + (size_t)n + 1)
            cap = b->len + (size_t)n + 1;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

void pgsink_prepare(pgsink_t *s, const batch_t *b, size_t n)
{
    free(s->prep.roll);
    s->prep.roll = NULL;
    s->prep.n = 0;
    if (n == 0 || b[0].kind != BATCH_POINTS)
        return;
    s->prep.rows = rollup_payload(b, n, &s->prep.roll, &s->prep.len);
    s->prep.err = errno;
    s->prep.spool_id = b[0].spool_id;
    s->prep.first_seq = b[0].seq;
    s->prep.last_seq = b[n - 1].seq;
    s->prep.n = n;
}

/* rollup_payload() of b[0..n), from pgsink_prepare() if it worked out
 * this very group (the seqs of a spool are never reused). */
static long take_rollup(pgsink_t *s, const batch_t *b, size_t n, uint8_t **out, size_t *len)
{
    if (s->prep.n == n && s->prep.spool_id == b[0].spool_id &&
        s->prep.first_seq == b[0].seq && s->prep.last_seq == b[n - 1].seq) {
        *out = s->prep.roll;
        *len = s->prep.len;
        s->prep.roll = NULL;
        s->prep.n = 0;
        errno = s->prep.err;
        return s->prep.rows;
    }
    free(s->prep.roll);
    s->prep.roll = NULL;
    s->prep.n = 0;
    return rollup_payload(b, n, out, len);
}

pgsink_result_t pgsink_write(pgsink_t *s, const batch_t *b, size_t n, char *err, size_t errlen)
{
    struct sqlbuf sql = { 0 };
    enum step st;
    bool in_copy = false;
    char tag[64] = "";

    err[0] = '\0';
    /* The data is checked before anything is sent: a damaged payload is the
     * batch's fault, not the network's. */
    const char *copy = n > 0 ? pgsink_copy_sql(b[0].kind) : NULL;
    if (!copy) {
        snprintf(err, errlen, "batch %lld: unknown kind %d", n ? (long long)b[0].seq : 0LL,
                 n ? (int)b[0].kind : 0);
        return PGSINK_REJECTED;
    }
    for (size_t i = 0; i < n; i++) {
        size_t off, blen;
        if (b[i].kind != b[0].kind || pgcopy_body(b[i].data, b[i].len, &off, &blen) < 0) {
            snprintf(err, errlen, "batch %lld: %s", (long long)b[i].seq,
                     b[i].kind != b[0].kind ? "mixed kinds in one write"
                                            : "malformed binary COPY data");
            return PGSINK_REJECTED;
        }
    }
    /* Points carry their rollup rows (rollup.h), stored by a second COPY
     * in the same transaction. */
    uint8_t *roll = NULL;
    size_t roll_len = 0;
    if (b[0].kind == BATCH_POINTS && take_rollup(s, b, n, &roll, &roll_len) < 0) {
        if (errno == ENOMEM) {
            snprintf(err, errlen, "out of memory");
            return PGSINK_RETRY;
        }
        snprintf(err, errlen, "batch %lld: malformed points (rollup)", (long long)b[0].seq);
        return PGSINK_REJECTED;
    }
    if (pgsink_connect(s, err, errlen) < 0) {
        free(roll);
        return PGSINK_RETRY;
    }

    /* One round trip: the server runs BEGIN and the ledger insert, then
     * waits for COPY data. If a ledger row exists the insert fails on its
     * primary key, the COPY never starts, and the write is a DUPLICATE. */
    sql_add(&sql, "BEGIN; INSERT INTO ingest_ledger (recorder_id, spool_id, batch_seq, kind,"
                  " rows, process_id, first_ts, last_ts) VALUES ");
    for (size_t i = 0; i < n; i++) {
        char pid[32] = "NULL";
        if (b[i].process_id)
            snprintf(pid, sizeof pid, "%lld", (long long)b[i].process_id);
        sql_add(&sql, "%s(%s, %lld, %lld, %d, %u, %s,"
                " 'epoch'::timestamptz + %lld * interval '1 microsecond',"
                " 'epoch'::timestamptz + %lld * interval '1 microsecond')",
                i ? ", " : "", s->rid_literal, (long long)b[i].spool_id, (long long)b[i].seq,
                (int)b[i].kind, b[i].rows, pid, (long long)b[i].first_ts_us,
                (long long)b[i].last_ts_us);
    }
    sql_add(&sql, "; %s", copy);
    if (roll)
        sql_add(&sql, "; %s", ROLLUP_COPY_SQL);
    if (sql.oom) {
        free(sql.p);
        free(roll);
        snprintf(err, errlen, "out of memory");
        return PGSINK_RETRY;
    }
    st = send_and_finish(s, sql.p, "ledger insert + COPY", &in_copy, NULL, 0, err, errlen);
    free(sql.p);
    if (st == STEP_DUPLICATE) {
        free(roll);
        rollback(s);
        return PGSINK_DUPLICATE;
    }
    if (st != STEP_OK || !in_copy) {
        free(roll);
        roll = NULL;
        if (st == STEP_OK) {
            snprintf(err, errlen, "COPY: server did not enter COPY IN");
            st = STEP_RETRY;
        }
        goto fail;
    }
    st = put_copy_data(s, b, n, roll ? &in_copy : NULL, err, errlen);
    if (st == STEP_OK && roll && in_copy) {
        st = end_copy(s, put_bytes(s, roll, roll_len, err, errlen), "rollup COPY", NULL, false,
                      err, errlen);
    } else if (st == STEP_OK && roll) {
        snprintf(err, errlen, "rollup COPY: server did not enter COPY IN");
        st = STEP_RETRY;
    }
    free(roll);
    roll = NULL;
    if (st != STEP_OK)
        goto fail;
    if (s->commit_ok && !s->commit_ok(s->commit_arg)) {
        snprintf(err, errlen, "not committed: the transaction before it did not store its"
                 " batches");
        rollback(s);
        return PGSINK_WITHDRAWN;
    }
    st = send_and_finish(s, "COMMIT", "COMMIT", NULL, tag, sizeof tag, err, errlen);
    /* A COMMIT of a failed transaction answers "ROLLBACK", not an error. */
    if (st == STEP_OK && strcmp(tag, "COMMIT") != 0) {
        snprintf(err, errlen, "COMMIT: server rolled back");
        st = STEP_RETRY;
    }
    if (st == STEP_RETRY && !s->answered) {
        /* COMMIT went out (or may have) and no answer came back. */
        pgsink_disconnect(s);
        return PGSINK_IN_DOUBT;
    }
    if (st != STEP_OK)
        goto fail;
    return PGSINK_STORED;

fail:
    if (st == STEP_REJECT && PQstatus(s->conn) == CONNECTION_OK) {
        rollback(s);
        return PGSINK_REJECTED;
    }
    pgsink_disconnect(s);
    return PGSINK_RETRY;
}
