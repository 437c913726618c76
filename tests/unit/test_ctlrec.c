/* test_ctlrec.c — set-point events and step markers (store/ctlrec.h):
 * the EVENT/STEP request lines round-trip exactly, every bad field is
 * refused naming it, text PostgreSQL would refuse (not UTF-8, control
 * characters) is refused first; and the COPY rows are stored by pgsink as
 * the recorder role into setpoint_events and process_steps (migrations
 * 0005/0006: the column lists and the grants), read back field by field. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "store/ctlrec.h"
#include "store/pgsink.h"
#include "t.h"

static PGconn *conn;

static void expect_event_error(const char *args, const char *field)
{
    ctlrec_event_t ev;
    char err[256] = "";
    int rc = ctlrec_event_parse(args, &ev, err, sizeof err);
    char what[512];
    snprintf(what, sizeof what, "EVENT \"%s\" refused naming %s (got \"%s\")", args ? args : "(null)",
             field, err);
    t_report(rc == -1 && strncmp(err, field, strlen(field)) == 0, __FILE__, __LINE__, what);
}

static void expect_step_error(const char *args, const char *field)
{
    ctlrec_step_t st;
    char err[256] = "";
    int rc = ctlrec_step_parse(args, &st, err, sizeof err);
    char what[512];
    snprintf(what, sizeof what, "STEP \"%s\" refused naming %s (got \"%s\")", args ? args : "(null)",
             field, err);
    t_report(rc == -1 && strncmp(err, field, strlen(field)) == 0, __FILE__, __LINE__, what);
}

static void test_event_parse(void)
{
    ctlrec_event_t ev;
    char err[256] = "";
    T_EQ_INT(ctlrec_event_parse("17 1763800000123456 250 249.5 0 alice@ctl via aldrec set", &ev,
                                err, sizeof err), 0);
    T_EQ_INT(ev.parameter_id, 17);
    T_EQ_INT(ev.ts_us, 1763800000123456LL);
    T_EQ_DBL(ev.requested, 250, 0);
    T_CHECK(ev.has_readback);
    T_EQ_DBL(ev.readback, 249.5, 0);
    T_EQ_INT(ev.quality, 0);
    T_EQ_STR(ev.requested_by, "alice@ctl via aldrec set");
    T_EQ_INT(ctlrec_event_parse("3 1763800000000000 -1.5e-3 - 3 recipe", &ev, err, sizeof err), 0);
    T_CHECK(!ev.has_readback);
    T_EQ_INT(ev.quality, 3);

    expect_event_error(NULL, "PARAM_ID");
    expect_event_error("", "PARAM_ID");
    expect_event_error("0 1763800000000000 1 1 0 x", "PARAM_ID");
    expect_event_error("2147483648 1763800000000000 1 1 0 x", "PARAM_ID");
    expect_event_error("12a 1763800000000000 1 1 0 x", "PARAM_ID");
    expect_event_error("1  1763800000000000 1 1 0 x", "TS_US");       /* empty field */
    expect_event_error("1 17638000000000001234567890123456789012345678901234567890123456789 1 1 0 x",
                       "TS_US");
    expect_event_error("1 5 1 1 0 x", "TS_US");                        /* 1970 */
    expect_event_error("1 1763800000000000 nan 1 0 x", "REQUESTED");
    expect_event_error("1 1763800000000000 inf 1 0 x", "REQUESTED");
    expect_event_error("1 1763800000000000 1e999 1 0 x", "REQUESTED");
    expect_event_error("1 1763800000000000 1,5 1 0 x", "REQUESTED");
    expect_event_error("1 1763800000000000 1 x 0 x", "READBACK");
    expect_event_error("1 1763800000000000 1", "READBACK");
    expect_event_error("1 1763800000000000 1 1 -1 x", "QUALITY");
    expect_event_error("1 1763800000000000 1 1 32768 x", "QUALITY");
    expect_event_error("1 1763800000000000 1 1 0", "REQUESTED_BY");
    expect_event_error("1 1763800000000000 1 1 0 ", "REQUESTED_BY");
    expect_event_error("1 1763800000000000 1 1 0 bob\t", "REQUESTED_BY");
    expect_event_error("1 1763800000000000 1 1 0 bob ", "REQUESTED_BY");
    expect_event_error("1 1763800000000000 1 1 0 caf\xe9", "REQUESTED_BY");       /* Latin-1 */
    expect_event_error("1 1763800000000000 1 1 0 \xc0\xaf", "REQUESTED_BY");      /* overlong */
    expect_event_error("1 1763800000000000 1 1 0 a\xed\xa0\x80", "REQUESTED_BY"); /* surrogate */
    expect_event_error("1 1763800000000000 1 1 0 \xf4\x90\x80\x80", "REQUESTED_BY"); /* > U+10FFFF */
    expect_event_error("1 1763800000000000 1 1 0 ab\x80", "REQUESTED_BY");       /* stray byte */
    char longer[300];
    snprintf(longer, sizeof longer, "1 1763800000000000 1 1 0 %0201d", 0);
    expect_event_error(longer, "REQUESTED_BY");
    snprintf(longer, sizeof longer, "1 1763800000000000 1 1 0 %0200d", 0);
    T_EQ_INT(ctlrec_event_parse(longer, &ev, err, sizeof err), 0);
    T_EQ_INT(ctlrec_event_parse("1 1763800000000000 1 1 0 Ingeniør Å ✓ 𝄞", &ev, err, sizeof err), 0);
}

static void test_step_parse(void)
{
    ctlrec_step_t st;
    char err[256] = "";
    T_EQ_INT(ctlrec_step_parse("3 ALD cycles", &st, err, sizeof err), 0);
    T_EQ_INT(st.step_no, 3);
    T_EQ_STR(st.name, "ALD cycles");
    T_EQ_INT(ctlrec_step_parse("0 x", &st, err, sizeof err), 0);
    T_EQ_INT(ctlrec_step_parse("2147483647 last", &st, err, sizeof err), 0);
    expect_step_error(NULL, "NUMBER");
    expect_step_error("-1 x", "NUMBER");
    expect_step_error("2147483648 x", "NUMBER");
    expect_step_error("two x", "NUMBER");
    expect_step_error("2", "NAME");
    expect_step_error("2 ", "NAME");
    expect_step_error("2  lead", "NAME");
    expect_step_error("2 a\x7f", "NAME");
    expect_step_error("2 \xff", "NAME");
}

/* Lines made by ctlrec_*_line parse back to the very same record. */
static void test_lines(void)
{
    static const double values[] = { 0.1, -0.0, 1e-300, 123456789.123456789, 5e307, 350 };
    char line[512], err[256];
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        ctlrec_event_t ev = { .parameter_id = 9, .ts_us = 1763800000000001LL,
                              .requested = values[i], .readback = values[i] / 3,
                              .has_readback = i % 2 == 0, .quality = (int16_t)i };
        snprintf(ev.requested_by, sizeof ev.requested_by, "recipe R%zu step 4", i);
        ctlrec_event_t back;
        T_EQ_INT(ctlrec_event_line(&ev, line, sizeof line, err, sizeof err), 0);
        T_CHECK(strncmp(line, "EVENT ", 6) == 0);
        T_EQ_INT(ctlrec_event_parse(line + 6, &back, err, sizeof err), 0);
        T_CHECK(memcmp(&back.requested, &ev.requested, sizeof ev.requested) == 0);
        if (ev.has_readback)
            T_CHECK(memcmp(&back.readback, &ev.readback, sizeof ev.readback) == 0);
        T_EQ_INT(back.has_readback, ev.has_readback);
        T_EQ_INT(back.quality, ev.quality);
        T_EQ_INT(back.ts_us, ev.ts_us);
        T_EQ_STR(back.requested_by, ev.requested_by);
    }
    ctlrec_event_t bad = { .parameter_id = 9, .ts_us = 1763800000000001LL, .quality = -2 };
    snprintf(bad.requested_by, sizeof bad.requested_by, "x");
    errno = 0;
    T_EQ_INT(ctlrec_event_line(&bad, line, sizeof line, err, sizeof err), -1);
    T_EQ_INT(errno, EINVAL);
    T_CHECK(strstr(err, "QUALITY") != NULL);
    char tiny[16];
    bad.quality = 0;
    T_EQ_INT(ctlrec_event_line(&bad, tiny, sizeof tiny, err, sizeof err), -1);
    T_EQ_INT(errno, ENOSPC);

    ctlrec_step_t st = { .step_no = 12 }, sback;
    snprintf(st.name, sizeof st.name, "purge 2 → cool");
    T_EQ_INT(ctlrec_step_line(&st, line, sizeof line, err, sizeof err), 0);
    T_EQ_STR(line, "STEP 12 purge 2 → cool");
    T_EQ_INT(ctlrec_step_parse(line + 5, &sback, err, sizeof err), 0);
    T_EQ_STR(sback.name, st.name);
    st.step_no = -1;
    T_EQ_INT(ctlrec_step_line(&st, line, sizeof line, err, sizeof err), -1);
}

static char *q_text(const char *sql)
{
    static char out[1024];
    PGresult *r = PQexec(conn, sql);
    out[0] = '\0';
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    else
        printf("# query failed: %s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return out;
}

static pgsink_result_t store(pgsink_t *sink, enum batch_kind kind, int64_t seq, int64_t proc,
                             pgcopy_t *p, int64_t ts)
{
    char err[512] = "";
    size_t len;
    uint32_t rows = (uint32_t)pgcopy_rows(p);
    uint8_t *d = pgcopy_take(p, &len);
    batch_t b = { .kind = kind, .spool_id = 77, .seq = seq, .process_id = proc, .rows = rows,
                  .first_ts_us = ts, .last_ts_us = ts, .data = d, .len = len };
    pgsink_result_t r = pgsink_write(sink, &b, 1, err, sizeof err);
    if (r != PGSINK_STORED)
        printf("# pgsink_write: %d %s\n", r, err);
    free(d);
    return r;
}

/* The rows as aldrecd makes them, stored as the recorder role. */
static void test_rows(const char *rec_dsn)
{
    const int64_t ts = 1763800000123456LL;    /* 2025-11-22T08:26:40.123456Z */
    pgsink_t *sink = pgsink_new(rec_dsn, "test-ctlrec", 5000);
    pgcopy_t *p = pgcopy_new();
    char err[256];
    const char *got;

    ctlrec_event_t ev;
    T_EQ_INT(ctlrec_event_parse("31 1763800000123456 250.25 249.5 0 alice via aldrec set", &ev,
                                err, sizeof err), 0);
    T_EQ_INT(ctlrec_event_row(p, 910001, &ev), 0);
    T_EQ_INT(store(sink, BATCH_EVENTS, 1, 910001, p, ts), PGSINK_STORED);
    T_EQ_INT(ctlrec_event_parse("32 1763800000123456 7 - 3 Ingeniør ✓", &ev, err, sizeof err), 0);
    T_EQ_INT(ctlrec_event_row(p, 0, &ev), 0);
    T_EQ_INT(store(sink, BATCH_EVENTS, 2, 0, p, ts), PGSINK_STORED);
    got = q_text("SELECT process_id || '|' || parameter_id || '|' || to_char(ts AT TIME ZONE 'UTC',"
                    " 'YYYY-MM-DD HH24:MI:SS.US') || '|' || requested || '|' || readback || '|' ||"
                    " quality || '|' || requested_by FROM setpoint_events WHERE parameter_id = 31");
    T_EQ_STR(got, "910001|31|2025-11-22 08:26:40.123456|250.25|249.5|0|alice via aldrec set");
    got = q_text("SELECT (process_id IS NULL) || '|' || (readback IS NULL) || '|' || quality"
                    " || '|' || requested_by FROM setpoint_events WHERE parameter_id = 32");
    T_EQ_STR(got, "true|true|3|Ingeniør ✓");

    ctlrec_step_t st;
    T_EQ_INT(ctlrec_step_parse("4 ALD cycles", &st, err, sizeof err), 0);
    T_EQ_INT(ctlrec_step_row(p, 910001, &st, ts), 0);
    T_EQ_INT(store(sink, BATCH_STEPS, 3, 910001, p, ts), PGSINK_STORED);
    got = q_text("SELECT process_id || '|' || step_no || '|' || name || '|' ||"
                    " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
                    " FROM process_steps WHERE process_id = 910001");
    T_EQ_STR(got, "910001|4|ALD cycles|2025-11-22 08:26:40.123456");
    got = q_text("SELECT string_agg(kind::text, ',' ORDER BY batch_seq) FROM ingest_ledger"
                    " WHERE recorder_id = 'test-ctlrec'");
    T_EQ_STR(got, "2,2,3");
    pgcopy_free(p);
    pgsink_free(sink);
}

int main(void)
{
    test_event_parse();
    test_step_parse();
    test_lines();
    const char *dsn = getenv("ALDREC_TEST_DSN");
    const char *rec_dsn = getenv("ALDREC_TEST_REC_DSN");
    if (!dsn || !rec_dsn) {
        printf("not ok - ALDREC_TEST_DSN / ALDREC_TEST_REC_DSN not set (tests/run.sh starts a"
               " database)\n");
        t_failed++;
        return t_done("test_ctlrec");
    }
    conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        printf("not ok - cannot connect: %s", PQerrorMessage(conn));
        t_failed++;
        PQfinish(conn);
        return t_done("test_ctlrec");
    }
    PQclear(PQexec(conn, "DELETE FROM setpoint_events WHERE parameter_id IN (31, 32);"
                         "DELETE FROM process_steps WHERE process_id = 910001;"
                         "DELETE FROM ingest_ledger WHERE recorder_id = 'test-ctlrec'"));
    test_rows(rec_dsn);
    PQfinish(conn);
    return t_done("test_ctlrec");
}
