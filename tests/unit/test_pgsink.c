/* test_pgsink.c — binary COPY encoding round-tripped through a real
 * PostgreSQL (ALDREC_TEST_DSN, a migrated database; tests/run.sh starts
 * one), and the exactly-once ledger: a replayed batch is a no-op, a batch
 * with bad data is REJECTED, an unreachable server is RETRY; several
 * batches in one transaction; every kind's COPY (and RETRY while its table
 * is missing); deadlines and cancel. */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "store/pgcopy.h"
#include "store/pgsink.h"
#include "t.h"
#include "tpg.h"

static PGconn *conn;

static long long q_int(const char *sql) { return tpg_int(conn, sql); }

static void test_layout(void)
{
    pgcopy_t *p = pgcopy_new();
    size_t len;
    sample_t s = { .parameter_id = 7, .ts_us = 946684800000000LL + 1, .value = 1.5,
                   .quality = 3, .has_value = true };
    pgcopy_add(p, 42, &s);
    s.has_value = false;
    pgcopy_add(p, 42, &s);
    T_EQ_INT(pgcopy_rows(p), 2);
    uint8_t *d = pgcopy_take(p, &len);
    T_EQ_INT(len, 19 + 52 + 44 + 2);
    T_CHECK(memcmp(d, "PGCOPY\n\377\r\n\0", 11) == 0);
    T_EQ_INT(d[19], 0);
    T_EQ_INT(d[20], 5);                 /* field count */
    T_EQ_INT(d[19 + 2 + 4 + 7], 42);    /* int8 process id, big-endian */
    /* ts: 1 µs after the PostgreSQL epoch */
    T_EQ_INT(d[19 + 2 + 12 + 8 + 4 + 7], 1);
    T_EQ_INT(d[len - 2], 0xff);
    T_EQ_INT(d[len - 1], 0xff);
    T_EQ_INT(pgcopy_rows(p), 0);        /* take resets */
    free(d);
    pgcopy_free(p);
    T_EQ_INT(pgcopy_pg_time(946684800000000LL), 0);
}

#define SPOOL_ID 4242

static batch_t make_batch(int64_t seq, int64_t proc, const sample_t *s, size_t n,
                          uint8_t **owned)
{
    pgcopy_t *p = pgcopy_new();
    for (size_t i = 0; i < n; i++)
        pgcopy_add(p, proc, &s[i]);
    size_t len;
    *owned = pgcopy_take(p, &len);
    pgcopy_free(p);
    return (batch_t){ .kind = BATCH_POINTS, .spool_id = SPOOL_ID, .seq = seq,
                      .process_id = proc, .rows = (uint32_t)n,
                             .first_ts_us = s[0].ts_us, .last_ts_us = s[n - 1].ts_us,
                             .data = *owned, .len = len };
}

static void test_round_trip(const char *dsn)
{
    /* Values chosen to catch byte-order, sign and precision mistakes. */
    static const double values[] = { 0.0, -1.0, 3.141592653589793, -2.5e-300, 1e300,
                                     123456789.123456789, -0.0025, 65535.0 };
    enum { N = sizeof values / sizeof values[0] };
    sample_t s[N + 1];
    int64_t t0 = 1763800000123456LL;   /* 2025-11-22 08:26:40.123456 UTC */
    for (int i = 0; i < N; i++)
        s[i] = (sample_t){ .parameter_id = 1000 + i, .ts_us = t0 + i, .value = values[i],
                           .quality = (int16_t)(i == 3 ? 102 : 0), .has_value = true };
    s[N] = (sample_t){ .parameter_id = 2000, .ts_us = t0 + 99, .quality = 3, .has_value = false };

    uint8_t *data;
    batch_t b = make_batch(1, 900001, s, N + 1, &data);
    pgsink_t *sink = pgsink_new(dsn, "test-pgsink", 5000);
    char err[256] = "";
    T_EQ_INT(pgsink_write(sink, &b, 1, err, sizeof err), PGSINK_STORED);
    T_EQ_STR(err, "");
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900001"), N + 1);

    PGresult *r = PQexec(conn, "SELECT parameter_id, extract(epoch FROM ts)::numeric * 1000000,"
                               " value, quality, value IS NULL FROM process_data_points"
                               " WHERE process_id = 900001 ORDER BY ts");
    T_EQ_INT(PQntuples(r), N + 1);
    for (int i = 0; i < N && i < PQntuples(r); i++) {
        T_EQ_INT(atoi(PQgetvalue(r, i, 0)), 1000 + i);
        T_EQ_INT(atoll(PQgetvalue(r, i, 1)), t0 + i);
        T_EQ_DBL(strtod(PQgetvalue(r, i, 2), NULL), values[i], fabs(values[i]) * 1e-15);
        T_EQ_INT(atoi(PQgetvalue(r, i, 3)), i == 3 ? 102 : 0);
    }
    if (PQntuples(r) == N + 1) {
        T_EQ_STR(PQgetvalue(r, N, 4), "t");
        T_EQ_INT(atoi(PQgetvalue(r, N, 3)), 3);
    }
    PQclear(r);

    /* Replaying the same batch is a no-op thanks to the ledger. */
    T_EQ_INT(pgsink_write(sink, &b, 1, err, sizeof err), PGSINK_DUPLICATE);
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900001"), N + 1);
    T_EQ_INT(q_int("SELECT rows FROM ingest_ledger WHERE recorder_id = 'test-pgsink' AND batch_seq = 1"),
             N + 1);
    T_EQ_INT(q_int("SELECT spool_id * 10 + kind FROM ingest_ledger WHERE recorder_id = 'test-pgsink'"
                   " AND batch_seq = 1"), SPOOL_ID * 10 + BATCH_POINTS);

    /* Same rows under a new sequence number: the unique index refuses them;
     * the batch is REJECTED (not retried forever) and nothing is stored. */
    batch_t b2 = b;
    b2.seq = 2;
    T_EQ_INT(pgsink_write(sink, &b2, 1, err, sizeof err), PGSINK_REJECTED);
    T_CHECK(strstr(err, "duplicate key") != NULL);
    T_EQ_INT(q_int("SELECT count(*) FROM ingest_ledger WHERE recorder_id = 'test-pgsink' AND batch_seq = 2"), 0);
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900001"), N + 1);

    /* The connection is still usable after a rejection. */
    sample_t one = { .parameter_id = 1, .ts_us = t0, .value = 1, .has_value = true };
    uint8_t *d3;
    batch_t b3 = make_batch(3, 900002, &one, 1, &d3);
    T_EQ_INT(pgsink_write(sink, &b3, 1, err, sizeof err), PGSINK_STORED);
    free(d3);
    free(data);
    pgsink_free(sink);
}

/* pgcopy's generic row API, round-tripped through a real COPY into a
 * temporary table holding every type it can put. */
static void test_generic_rows(void)
{
    static const int32_t ids[] = { 7, -3, 2147483647 };
    pgcopy_t *p = pgcopy_new();
    int64_t t = 1763800000123456LL;

    T_EQ_INT(pgcopy_row(p, 9), 0);
    pgcopy_put_bool(p, true);
    pgcopy_put_int2(p, -12345);
    pgcopy_put_int4(p, -123456789);
    pgcopy_put_int8(p, -9000000000000000001LL);
    pgcopy_put_float8(p, -0.0025);
    pgcopy_put_ts(p, t);
    const char *label = "Heizzone 2 \xc2\xb0" "C";
    pgcopy_put_text(p, label, strlen(label));
    pgcopy_put_int4_array(p, ids, 3);
    pgcopy_put_null(p);
    T_EQ_INT(pgcopy_row(p, 9), 0);   /* second row: empty array and text, NULLs */
    pgcopy_put_null(p);
    pgcopy_put_null(p);
    pgcopy_put_null(p);
    pgcopy_put_null(p);
    pgcopy_put_null(p);
    pgcopy_put_null(p);
    pgcopy_put_text(p, "", 0);
    pgcopy_put_int4_array(p, NULL, 0);
    pgcopy_put_int8(p, 1);
    T_EQ_INT(pgcopy_rows(p), 2);
    size_t len;
    uint8_t *d = pgcopy_take(p, &len);
    pgcopy_free(p);

    PQclear(PQexec(conn, "CREATE TEMP TABLE g (b bool, s int2, i int4, l int8, f float8,"
                         " t timestamptz, x text, a int4[], n int8)"));
    PGresult *r = PQexec(conn, "COPY g FROM STDIN (FORMAT binary)");
    T_EQ_INT(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    T_EQ_INT(PQputCopyData(conn, (const char *)d, (int)len), 1);
    T_EQ_INT(PQputCopyEnd(conn, NULL), 1);
    r = PQgetResult(conn);
    T_EQ_INT(PQresultStatus(r), PGRES_COMMAND_OK);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        printf("# %s", PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(conn)) != NULL)
        PQclear(r);
    free(d);

    r = PQexec(conn, "SELECT b, s, i, l, f, (extract(epoch FROM t) * 1000000)::bigint, x,"
                     " a::text, n IS NULL, coalesce(cardinality(a), -1) FROM g ORDER BY n NULLS FIRST");
    T_EQ_INT(PQntuples(r), 2);
    if (PQntuples(r) == 2) {
        T_EQ_STR(PQgetvalue(r, 0, 0), "t");
        T_EQ_STR(PQgetvalue(r, 0, 1), "-12345");
        T_EQ_STR(PQgetvalue(r, 0, 2), "-123456789");
        T_EQ_STR(PQgetvalue(r, 0, 3), "-9000000000000000001");
        T_EQ_DBL(strtod(PQgetvalue(r, 0, 4), NULL), -0.0025, 0);
        T_EQ_INT(atoll(PQgetvalue(r, 0, 5)), t);
        T_EQ_STR(PQgetvalue(r, 0, 6), "Heizzone 2 \xc2\xb0" "C");
        T_EQ_STR(PQgetvalue(r, 0, 7), "{7,-3,2147483647}");
        T_EQ_STR(PQgetvalue(r, 0, 8), "t");
        T_CHECK(PQgetisnull(r, 1, 0) && PQgetisnull(r, 1, 5));
        T_EQ_STR(PQgetvalue(r, 1, 6), "");
        T_EQ_STR(PQgetvalue(r, 1, 7), "{}");
        T_EQ_STR(PQgetvalue(r, 1, 9), "0");
    }
    PQclear(r);
}

/* Rows 0..n-1 of process proc, parameter 1, one per µs from t0. */
static batch_t make_run(int64_t seq, int64_t proc, int64_t t0, size_t n, uint8_t **owned)
{
    sample_t *s = calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++)
        s[i] = (sample_t){ .parameter_id = 1, .ts_us = t0 + (int64_t)i, .value = (double)i,
                           .has_value = true };
    batch_t b = make_batch(seq, proc, s, n, owned);
    free(s);
    return b;
}

/* Several batches in one transaction, and how a failure in one of them
 * fails them all (the forwarder then writes them one by one). */
static void test_many(const char *dsn)
{
    pgsink_t *sink = pgsink_new(dsn, "test-many", 5000);
    char err[512] = "";
    uint8_t *d[6];
    batch_t b[6];
    int64_t t0 = 1763800000000000LL;
    for (int i = 0; i < 6; i++)
        b[i] = make_run(10 + i, 900010, t0 + i * 1000, (size_t)(5 + i), &d[i]);

    T_EQ_INT(pgsink_write(sink, b, 3, err, sizeof err), PGSINK_STORED);
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900010"), 5 + 6 + 7);
    T_EQ_INT(q_int("SELECT count(*) FROM ingest_ledger WHERE recorder_id = 'test-many'"), 3);
    T_EQ_INT(q_int("SELECT sum(rows) FROM ingest_ledger WHERE recorder_id = 'test-many'"), 18);

    /* b[3], b[2] (stored), b[4]: the ledger refuses, nothing is stored. */
    batch_t mix[3] = { b[3], b[2], b[4] };
    T_EQ_INT(pgsink_write(sink, mix, 3, err, sizeof err), PGSINK_DUPLICATE);
    T_EQ_INT(q_int("SELECT count(*) FROM ingest_ledger WHERE recorder_id = 'test-many'"), 3);
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900010"), 18);

    /* b[5], and b[0]'s rows under a new seq: the unique index refuses. */
    batch_t again = b[0];
    again.seq = 99;
    batch_t bad[2] = { b[5], again };
    T_EQ_INT(pgsink_write(sink, bad, 2, err, sizeof err), PGSINK_REJECTED);
    T_CHECK(strstr(err, "duplicate key") != NULL);
    T_EQ_INT(q_int("SELECT count(*) FROM ingest_ledger WHERE recorder_id = 'test-many'"), 3);

    /* The same seq from another spool file is another batch. */
    batch_t other = b[3];
    other.spool_id = SPOOL_ID + 1;
    other.seq = b[0].seq;
    T_EQ_INT(pgsink_write(sink, &other, 1, err, sizeof err), PGSINK_STORED);
    T_EQ_INT(pgsink_write(sink, &b[4], 1, err, sizeof err), PGSINK_STORED);
    T_EQ_INT(pgsink_write(sink, &b[5], 1, err, sizeof err), PGSINK_STORED);
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900010"),
             18 + 8 + 9 + 10);

    /* Damaged COPY data is refused before anything is sent. */
    batch_t broken = b[0];
    uint8_t junk[64];
    memset(junk, 0x55, sizeof junk);
    broken.data = junk;
    broken.len = sizeof junk;
    T_EQ_INT(pgsink_write(sink, &broken, 1, err, sizeof err), PGSINK_REJECTED);
    T_CHECK(strstr(err, "malformed binary COPY data") != NULL);
    for (int i = 0; i < 6; i++)
        free(d[i]);
    pgsink_free(sink);
}

static const char *q_text(const char *sql)
{
    static char out[1024];
    PGresult *r = PQexec(conn, sql);
    snprintf(out, sizeof out, "(query failed)");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    else
        printf("# query failed: %s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return out;
}

static batch_t take_batch(pgcopy_t *p, enum batch_kind kind, int64_t seq, int64_t proc,
                          int64_t first_us, int64_t last_us, uint8_t **owned)
{
    size_t len;
    uint32_t rows = (uint32_t)pgcopy_rows(p);
    *owned = pgcopy_take(p, &len);
    return (batch_t){ .kind = kind, .spool_id = SPOOL_ID, .seq = seq, .process_id = proc,
                      .rows = rows, .first_ts_us = first_us, .last_ts_us = last_us,
                      .data = *owned, .len = len };
}

/* Every kind's COPY through pgsink into its table, read back from SQL. The
 * rows are put together here, field by field, from the columns of the
 * migrations (0004 data_gaps, 0005 setpoint_events, 0006 process_steps), so
 * a column list in pgsink.c that does not match its table fails here;
 * test_ctlrec stores the rows ctlrec.c makes the same way. */
static void test_kinds(const char *dsn)
{
    static const int32_t ids[] = { 3, 5, 8 };
    pgsink_t *sink = pgsink_new(dsn, "test-kinds", 5000);
    char err[512] = "";
    uint8_t *d;
    T_CHECK(strstr(pgsink_copy_sql(BATCH_POINTS), "process_data_points") != NULL);
    T_CHECK(strstr(pgsink_copy_sql(BATCH_EVENTS), "setpoint_events (process_id, parameter_id,"
                                                  " ts, requested, readback, quality,"
                                                  " requested_by)") != NULL);
    T_CHECK(strstr(pgsink_copy_sql(BATCH_STEPS), "process_steps (process_id, step_no, name,"
                                                 " started_at)") != NULL);
    T_CHECK(strstr(pgsink_copy_sql(BATCH_GAPS), "data_gaps (process_id, first_ts, last_ts,"
                                                " points, batches, parameter_ids, reason)") != NULL);
    T_CHECK(strstr(pgsink_copy_sql(BATCH_IDLE), "machine_history (parameter_id, ts, value,"
                                                " quality)") != NULL);
    T_CHECK(pgsink_copy_sql((enum batch_kind)0) == NULL);
    T_CHECK(pgsink_copy_sql((enum batch_kind)(BATCH_KIND_MAX + 1)) == NULL);

    pgcopy_t *p = pgcopy_new();
    int64_t t = 1763800000000000LL;   /* 2025-11-22 08:26:40 UTC */
    pgcopy_row(p, 7);
    pgcopy_put_int8(p, 900020);
    pgcopy_put_ts(p, t);
    pgcopy_put_ts(p, t + 5000000);
    pgcopy_put_int8(p, 1234);
    pgcopy_put_int4(p, 3);
    pgcopy_put_int4_array(p, ids, 3);
    pgcopy_put_text(p, "spool full", 10);
    batch_t g = take_batch(p, BATCH_GAPS, 1, 900020, t, t + 5000000, &d);
    T_EQ_INT(pgsink_write(sink, &g, 1, err, sizeof err), PGSINK_STORED);
    T_EQ_INT(q_int("SELECT points * 10 + batches FROM data_gaps WHERE process_id = 900020"
                   " AND parameter_ids = '{3,5,8}' AND reason = 'spool full'"
                   " AND last_ts - first_ts = interval '5 s'"), 12343);
    free(d);

    /* Set-point events: one of run 900020 with its read-back, one outside
     * any run (process NULL) whose read-back failed (NULL, quality 3). */
    const char *who = "Ingeni\xc3\xb8r \xe2\x9c\x93";   /* "Ingeniør ✓" */
    pgcopy_row(p, 7);
    pgcopy_put_int8(p, 900020);
    pgcopy_put_int4(p, 900021);
    pgcopy_put_ts(p, t + 1);
    pgcopy_put_float8(p, 250.25);
    pgcopy_put_float8(p, 249.5);
    pgcopy_put_int2(p, 0);
    pgcopy_put_text(p, "alice via aldrec set", 20);
    pgcopy_row(p, 7);
    pgcopy_put_null(p);
    pgcopy_put_int4(p, 900022);
    pgcopy_put_ts(p, t + 2);
    pgcopy_put_float8(p, -0.0025);
    pgcopy_put_null(p);
    pgcopy_put_int2(p, 3);
    pgcopy_put_text(p, who, strlen(who));
    batch_t e = take_batch(p, BATCH_EVENTS, 2, 900020, t + 1, t + 2, &d);
    T_EQ_INT(e.rows, 2);
    T_EQ_INT(pgsink_write(sink, &e, 1, err, sizeof err), PGSINK_STORED);
    T_EQ_STR(err, "");
    const char *got, *want;
    got = q_text("SELECT string_agg(coalesce(process_id::text, 'NULL') || '|' || parameter_id"
                 " || '|' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
                 " || '|' || requested || '|' || coalesce(readback::text, 'NULL') || '|' ||"
                 " quality || '|' || requested_by, ';' ORDER BY parameter_id)"
                 " FROM setpoint_events WHERE parameter_id IN (900021, 900022)");
    want = "900020|900021|2025-11-22 08:26:40.000001|250.25|249.5|0|alice via aldrec set;"
           "NULL|900022|2025-11-22 08:26:40.000002|-0.0025|NULL|3|Ingeni\xc3\xb8r \xe2\x9c\x93";
    T_EQ_STR(got, want);
    T_EQ_INT(pgsink_write(sink, &e, 1, err, sizeof err), PGSINK_DUPLICATE);
    T_EQ_INT(q_int("SELECT count(*) FROM setpoint_events WHERE parameter_id IN (900021, 900022)"),
             2);

    /* Step markers of run 900020. */
    pgcopy_row(p, 4);
    pgcopy_put_int8(p, 900020);
    pgcopy_put_int4(p, 0);
    pgcopy_put_text(p, "pump down", 9);
    pgcopy_put_ts(p, t);
    pgcopy_row(p, 4);
    pgcopy_put_int8(p, 900020);
    pgcopy_put_int4(p, 7);
    pgcopy_put_text(p, "ALD cycles", 10);
    pgcopy_put_ts(p, t + 3000000);
    uint8_t *d2;
    batch_t st = take_batch(p, BATCH_STEPS, 3, 900020, t, t + 3000000, &d2);
    T_EQ_INT(pgsink_write(sink, &st, 1, err, sizeof err), PGSINK_STORED);
    T_EQ_STR(err, "");
    got = q_text("SELECT string_agg(process_id || '|' || step_no || '|' || name || '|' ||"
                 " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), ';'"
                 " ORDER BY step_no) FROM process_steps WHERE process_id = 900020");
    want = "900020|0|pump down|2025-11-22 08:26:40.000000;"
           "900020|7|ALD cycles|2025-11-22 08:26:43.000000";
    T_EQ_STR(got, want);
    /* A step number stored twice is the data's fault: REJECTED. */
    batch_t st2 = st;
    st2.seq = 4;
    T_EQ_INT(pgsink_write(sink, &st2, 1, err, sizeof err), PGSINK_REJECTED);
    T_CHECK(strstr(err, "duplicate key") != NULL);
    got = q_text("SELECT string_agg(batch_seq || ':' || kind || ':' || rows, ','"
                 " ORDER BY batch_seq) FROM ingest_ledger WHERE recorder_id = 'test-kinds'");
    T_EQ_STR(got, "1:4:1,2:2:2,3:3:2");

    /* A database from before migration 0005/0006 has no setpoint_events or
     * process_steps: such a batch waits for the migration (RETRY), it is
     * never REJECTED. Simulated by a schema that holds only a ledger, as
     * the whole search path. */
    PQclear(PQexec(conn, "DROP SCHEMA IF EXISTS test_pgsink_old CASCADE"));
    PGresult *r = PQexec(conn, "CREATE SCHEMA test_pgsink_old; CREATE TABLE"
                               " test_pgsink_old.ingest_ledger (LIKE public.ingest_ledger"
                               " INCLUDING ALL)");
    T_EQ_INT(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    char old_dsn[600];
    snprintf(old_dsn, sizeof old_dsn, "%s options='-c search_path=test_pgsink_old'", dsn);
    pgsink_t *old = pgsink_new(old_dsn, "test-kinds-old", 5000);
    e.seq = 5;
    T_EQ_INT(pgsink_write(old, &e, 1, err, sizeof err), PGSINK_RETRY);
    T_CHECK(strstr(err, "relation \"setpoint_events\" does not exist") != NULL);
    st.seq = 6;
    T_EQ_INT(pgsink_write(old, &st, 1, err, sizeof err), PGSINK_RETRY);
    T_CHECK(strstr(err, "relation \"process_steps\" does not exist") != NULL);
    /* Their ledger rows went with the rollback. */
    T_EQ_INT(q_int("SELECT count(*) FROM test_pgsink_old.ingest_ledger"), 0);
    pgsink_free(old);
    PQclear(PQexec(conn, "DROP SCHEMA test_pgsink_old CASCADE"));
    free(d2);
    free(d);
    pgcopy_free(p);
    pgsink_free(sink);
}

/* A server that accepts the TCP connection and then says nothing: the
 * connect gives up after timeout_ms; the cancel descriptor ends it at once. */
static void test_black_hole(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    T_EQ_INT(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    T_EQ_INT(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    char dsn[128];
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d dbname=x user=x sslmode=disable",
             ntohs(sa.sin_port));

    pgsink_t *sink = pgsink_new(dsn, "t", 1500);
    char err[512] = "";
    int64_t t0 = clock_mono_ms();
    T_EQ_INT(pgsink_connect(sink, err, sizeof err), -1);
    int64_t took = clock_mono_ms() - t0;
    T_CHECK(took >= 1400 && took < 3500);
    T_CHECK(strstr(err, "no answer within 1500 ms") != NULL);

    int pfd[2];
    T_EQ_INT(pipe(pfd), 0);
    T_EQ_INT(write(pfd[1], "x", 1), 1);
    pgsink_set_cancel_fd(sink, pfd[0]);
    t0 = clock_mono_ms();
    T_EQ_INT(pgsink_connect(sink, err, sizeof err), -1);
    T_CHECK(clock_mono_ms() - t0 < 500);
    T_CHECK(strstr(err, "cancelled") != NULL);
    pgsink_free(sink);
    close(pfd[0]);
    close(pfd[1]);
    close(lfd);
}

static void test_unreachable(void)
{
    /* Port 1 on loopback: connection refused at once. */
    pgsink_t *sink = pgsink_new("host=127.0.0.1 port=1 dbname=x user=x", "t", 2000);
    sample_t one = { .parameter_id = 1, .ts_us = 1, .value = 1, .has_value = true };
    uint8_t *d;
    batch_t b = make_batch(1, 1, &one, 1, &d);
    char err[256] = "";
    T_EQ_INT(pgsink_write(sink, &b, 1, err, sizeof err), PGSINK_RETRY);
    T_CHECK(strstr(err, "connecting to PostgreSQL") != NULL);
    T_CHECK(strstr(err, "password") == NULL);
    T_CHECK(!pgsink_connected(sink));
    free(d);
    pgsink_free(sink);
}

int main(void)
{
    const char *dsn = getenv("ALDREC_TEST_DSN");
    test_layout();
    if (!dsn) {
        printf("not ok - ALDREC_TEST_DSN is not set (tests/run.sh starts a database)\n");
        t_failed++;
        return t_done("test_pgsink");
    }
    conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        printf("not ok - cannot connect: %s", PQerrorMessage(conn));
        t_failed++;
        PQfinish(conn);
        return t_done("test_pgsink");
    }
    PQclear(PQexec(conn, "DELETE FROM process_data_points WHERE process_id IN"
                         " (900001, 900002, 900010);"
                         "DELETE FROM data_gaps WHERE process_id = 900020;"
                         "DELETE FROM setpoint_events WHERE parameter_id IN (900021, 900022);"
                         "DELETE FROM process_steps WHERE process_id = 900020;"
                         "DELETE FROM ingest_ledger WHERE recorder_id LIKE 'test-%'"));
    test_round_trip(dsn);
    test_generic_rows();
    test_many(dsn);
    test_kinds(dsn);
    test_unreachable();
    test_black_hole();
    PQfinish(conn);
    return t_done("test_pgsink");
}
