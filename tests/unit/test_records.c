/* test_records.c — store/records.h: the kind numbers never change, names
 * and tables map both ways, every row's column count matches its column
 * list, each kind's encoder writes exactly that many fields per row,
 * pgsink's COPY statements come from the table, and the spool refuses a
 * kind that is not in it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/ctlrec.h"
#include "store/pgcopy.h"
#include "store/pgsink.h"
#include "store/records.h"
#include "store/spool.h"
#include "t.h"

/* Fields of the first row of a pgcopy_take() stream (int16 after the
 * 19-byte header), or -1. */
static int first_row_fields(const uint8_t *d, size_t len)
{
    if (!d || len < PGCOPY_HEADER_LEN + 2)
        return -1;
    return (int16_t)(d[PGCOPY_HEADER_LEN] << 8 | d[PGCOPY_HEADER_LEN + 1]);
}

static int commas_plus_one(const char *s)
{
    int n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

static void test_table(void)
{
    /* stored in spool files and ingest_ledger.kind: never renumbered */
    T_EQ_INT(BATCH_POINTS, 1);
    T_EQ_INT(BATCH_EVENTS, 2);
    T_EQ_INT(BATCH_STEPS, 3);
    T_EQ_INT(BATCH_GAPS, 4);
    T_EQ_INT(BATCH_IDLE, 5);
    static const char *const names[] = { NULL, "points", "events", "steps", "gaps", "idle" };
    static const char *const tables[] = { NULL, "process_data_points", "setpoint_events",
                                          "process_steps", "data_gaps", "machine_history" };
    for (int k = BATCH_KIND_MIN; k <= BATCH_KIND_MAX; k++) {
        const record_kind_t *r = records_kind(k);
        T_CHECK(r != NULL && (int)r->kind == k);
        T_EQ_STR(records_name(k), names[k]);
        T_EQ_STR(r->table, tables[k]);
        T_EQ_INT(records_by_name(names[k]), k);
        T_EQ_INT(r->ncolumns, commas_plus_one(r->columns));
        T_EQ_INT(records_ncolumns((enum batch_kind)k), r->ncolumns);
        T_CHECK(r->encoder && r->encoder[0]);
        char want[600];
        snprintf(want, sizeof want, "COPY %s (%s) FROM STDIN (FORMAT binary)", r->table,
                 r->columns);
        T_EQ_STR(pgsink_copy_sql((enum batch_kind)k), want);
        T_CHECK(records_known(k));
    }
    T_CHECK(records_kind(0) == NULL && records_kind(6) == NULL && records_kind(-1) == NULL);
    T_CHECK(!records_known(0) && !records_known(BATCH_KIND_MAX + 1));
    T_EQ_STR(records_name(9), "?");
    T_EQ_INT(records_by_name("rows"), 0);
    T_CHECK(pgsink_copy_sql((enum batch_kind)0) == NULL);
}

static void test_encoders(void)
{
    size_t len;
    uint8_t *d;
    pgcopy_t *p = pgcopy_new();

    sample_t s = { .parameter_id = 7, .ts_us = 1, .value = 2.5, .has_value = true };
    T_EQ_INT(pgcopy_add(p, 1, &s), 0);
    d = pgcopy_take(p, &len);
    T_EQ_INT(first_row_fields(d, len), records_ncolumns(BATCH_POINTS));
    free(d);

    ctlrec_event_t ev = { .parameter_id = 7, .ts_us = 1, .requested = 1, .quality = 0,
                          .requested_by = "test" };
    T_EQ_INT(ctlrec_event_row(p, 1, &ev), 0);
    d = pgcopy_take(p, &len);
    T_EQ_INT(first_row_fields(d, len), records_ncolumns(BATCH_EVENTS));
    free(d);

    ctlrec_step_t st = { .step_no = 1, .name = "purge" };
    T_EQ_INT(ctlrec_step_row(p, 1, &st, 1), 0);
    d = pgcopy_take(p, &len);
    T_EQ_INT(first_row_fields(d, len), records_ncolumns(BATCH_STEPS));
    free(d);
    pgcopy_free(p);
}

/* The spool's gap records (its own encoder) and its refusal of unknown
 * kinds. */
static void test_spool(void)
{
    char dir[] = "/tmp/test_records.XXXXXX", path[300], err[512] = "";
    if (!mkdtemp(dir)) {
        T_CHECK(!"mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/spool.db", dir);
    spool_opts_t o = { .path = path, .max_bytes = 64, .policy = SPOOL_DROP_NEWEST };
    spool_open_info_t info;
    spool_t *sp = spool_open(&o, &info, err, sizeof err);
    T_CHECK(sp != NULL);
    if (!sp) {
        printf("# %s\n", err);
        return;
    }
    T_EQ_INT(spool_set_process(sp, 5, err, sizeof err), 0);

    pgcopy_t *p = pgcopy_new();
    for (int i = 0; i < 4; i++) {
        sample_t s = { .parameter_id = 7 + i, .ts_us = 1000 + i, .value = i, .has_value = true };
        pgcopy_add(p, 5, &s);
    }
    size_t len;
    uint8_t *d = pgcopy_take(p, &len);
    pgcopy_free(p);
    batch_t b = { .kind = BATCH_POINTS, .process_id = 5, .rows = 4, .first_ts_us = 1000,
                  .last_ts_us = 1003, .data = d, .len = len };
    spool_append_result_t res;
    T_EQ_INT(spool_append(sp, &b, &res, err, sizeof err), 0);   /* over the cap: dropped */
    T_CHECK(!res.stored);
    T_EQ_INT(spool_close_gaps(sp, -1, false, NULL, err, sizeof err), 0);
    batch_t *got = NULL;
    size_t n = 0;
    uint32_t bad = 0;
    T_EQ_INT(spool_claim(sp, 8, 1000, &got, &n, &bad, err, sizeof err), 0);
    T_EQ_INT(n, 1);
    if (n == 1) {
        T_EQ_INT(got[0].kind, BATCH_GAPS);
        T_EQ_INT(first_row_fields(got[0].data, got[0].len), records_ncolumns(BATCH_GAPS));
        T_EQ_INT(spool_unclaim(sp, got, n, false, err, sizeof err), 0);
    }
    spool_batches_free(got, n);

    b.kind = (enum batch_kind)9;
    err[0] = '\0';
    T_EQ_INT(spool_append(sp, &b, &res, err, sizeof err), -1);
    T_CHECK(strstr(err, "9 is not a record kind") != NULL);
    free(d);
    spool_close(sp);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    T_EQ_INT(system(cmd), 0);
}

int main(void)
{
    test_table();
    test_encoders();
    test_spool();
    return t_done("test_records");
}
