/* test_pgsink.c — binary COPY encoding round-tripped through a real
 * PostgreSQL (ALDREC_TEST_DSN, a migrated database; tests/run.sh starts
 * one), and the exactly-once ledger: a replayed batch is a no-op, a batch
 * with bad data is REJECTED, an unreachable server is RETRY. */
#include <libpq-fe.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pgcopy.h"
#include "pgsink.h"
#include "t.h"

static PGconn *conn;

static long long q_int(const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = atoll(PQgetvalue(r, 0, 0));
    else
        printf("# query failed: %s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return v;
}

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

static pgsink_batch_t make_batch(int64_t seq, int64_t proc, const sample_t *s, size_t n,
                                  uint8_t **owned)
{
    pgcopy_t *p = pgcopy_new();
    for (size_t i = 0; i < n; i++)
        pgcopy_add(p, proc, &s[i]);
    size_t len;
    *owned = pgcopy_take(p, &len);
    pgcopy_free(p);
    return (pgsink_batch_t){ .seq = seq, .process_id = proc, .rows = (uint32_t)n,
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
    pgsink_batch_t b = make_batch(1, 900001, s, N + 1, &data);
    pgsink_t *sink = pgsink_new(dsn, "test-pgsink", 5000);
    char err[256] = "";
    T_EQ_INT(pgsink_write(sink, &b, err, sizeof err), PGSINK_STORED);
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
    T_EQ_INT(pgsink_write(sink, &b, err, sizeof err), PGSINK_DUPLICATE);
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900001"), N + 1);
    T_EQ_INT(q_int("SELECT rows FROM ingest_ledger WHERE recorder_id = 'test-pgsink' AND batch_seq = 1"),
             N + 1);
    int64_t last = -1;
    T_EQ_INT(pgsink_last_seq(sink, &last, err, sizeof err), 0);
    T_EQ_INT(last, 1);

    /* Same rows under a new sequence number: the unique index refuses them;
     * the batch is REJECTED (not retried forever) and nothing is stored. */
    pgsink_batch_t b2 = b;
    b2.seq = 2;
    T_EQ_INT(pgsink_write(sink, &b2, err, sizeof err), PGSINK_REJECTED);
    T_CHECK(strstr(err, "duplicate key") != NULL);
    T_EQ_INT(q_int("SELECT count(*) FROM ingest_ledger WHERE recorder_id = 'test-pgsink' AND batch_seq = 2"), 0);
    T_EQ_INT(q_int("SELECT count(*) FROM process_data_points WHERE process_id = 900001"), N + 1);

    /* The connection is still usable after a rejection. */
    sample_t one = { .parameter_id = 1, .ts_us = t0, .value = 1, .has_value = true };
    uint8_t *d3;
    pgsink_batch_t b3 = make_batch(3, 900002, &one, 1, &d3);
    T_EQ_INT(pgsink_write(sink, &b3, err, sizeof err), PGSINK_STORED);
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

static void test_unreachable(void)
{
    /* Port 1 on loopback: connection refused at once. */
    pgsink_t *sink = pgsink_new("host=127.0.0.1 port=1 dbname=x user=x", "t", 2000);
    sample_t one = { .parameter_id = 1, .ts_us = 1, .value = 1, .has_value = true };
    uint8_t *d;
    pgsink_batch_t b = make_batch(1, 1, &one, 1, &d);
    char err[256] = "";
    T_EQ_INT(pgsink_write(sink, &b, err, sizeof err), PGSINK_RETRY);
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
    PQclear(PQexec(conn, "DELETE FROM process_data_points WHERE process_id IN (900001, 900002);"
                         "DELETE FROM ingest_ledger WHERE recorder_id = 'test-pgsink'"));
    test_round_trip(dsn);
    test_generic_rows();
    test_unreachable();
    PQfinish(conn);
    return t_done("test_pgsink");
}
