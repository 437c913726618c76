/* test_batcher.c — the batcher's flush rules on a real spool file (no
 * servers, no forwarder): discarded while not recording, flushed at
 * batch_rows, at the deadline and not before it, on a process change and
 * on a reload that lowers the limits; events and step markers as batches
 * of their own; a full spool logged once when dropping starts and once
 * when it ends. Batches are read back with spool_claim(). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "acq/poller.h"
#include "common/log.h"
#include "daemon/batcher.h"
#include "store/spool.h"
#include "t.h"
#include "tcapture.h"

static char dir[256];

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static spool_t *open_spool(const char *name, int64_t max_bytes, enum spool_policy pol)
{
    char p[512], err[512] = "";
    snprintf(p, sizeof p, "%s/%s", dir, name);
    spool_opts_t o = { .path = p, .max_bytes = max_bytes, .policy = pol };
    spool_open_info_t info;
    spool_t *sp = spool_open(&o, &info, err, sizeof err);
    if (!sp)
        printf("# spool_open %s: %s\n", p, err);
    return sp;
}

/* n samples of parameters 1, 2, 3, ... stamped ts0, ts0 + 1, ... */
static void feed(batcher_t *b, int n, int64_t ts0)
{
    for (int i = 0; i < n; i++) {
        sample_t s = { .parameter_id = i % 4 + 1, .ts_us = ts0 + i, .value = i,
                       .has_value = true };
        batcher_on_sample(b, &s);
    }
}

static size_t pending(const batcher_t *b)
{
    batcher_stats_t st;
    batcher_get_stats(b, &st);
    return st.pending_rows;
}

/* Takes every queued batch out of the spool into out (up to max). */
static size_t take(spool_t *sp, batch_t *out, size_t max)
{
    batch_t *got = NULL;
    size_t n = 0;
    char err[512];
    if (spool_claim(sp, 100, 1u << 30, &got, &n, NULL, err, sizeof err) < 0) {
        printf("# spool_claim: %s\n", err);
        return 0;
    }
    if (n && spool_remove(sp, got, n, err, sizeof err) < 0)
        printf("# spool_remove: %s\n", err);
    if (n && spool_unclaim(sp, got, 0, false, err, sizeof err) < 0)
        printf("# spool_unclaim: %s\n", err);
    for (size_t i = 0; i < n && i < max; i++) {
        out[i] = got[i];
        out[i].data = NULL;
        out[i].len = 0;
    }
    spool_batches_free(got, n);
    return n;
}

static void test_flush_rules(void)
{
    spool_t *sp = open_spool("rules.db", 1 << 30, SPOOL_DROP_OLDEST);
    if (!sp)
        return;
    batcher_opts_t o = { .spool = sp, .batch_rows = 5, .flush_interval_ms = 300,
                         .policy = SPOOL_DROP_OLDEST };
    batcher_t *b = batcher_new(&o);
    T_CHECK(b != NULL);
    if (!b)
        return;
    batch_t got[8];
    batcher_stats_t st;

    /* not recording: samples are discarded, nothing is due */
    T_EQ_INT(batcher_process(b), 0);
    feed(b, 12, 1000);
    T_EQ_INT(pending(b), 0);
    T_CHECK(batcher_deadline(b) == INT64_MAX);
    batcher_flush(b);
    T_EQ_INT(take(sp, got, 8), 0);

    /* the deadline: flush_interval_ms after the first row, not before */
    batcher_set_process(b, 7);
    T_EQ_INT(batcher_process(b), 7);
    int64_t before = clock_mono_ns();
    feed(b, 4, 2000);
    int64_t after = clock_mono_ns();
    int64_t due = batcher_deadline(b);
    T_EQ_INT(pending(b), 4);
    T_CHECK(due >= before + 300 * 1000000LL && due <= after + 300 * 1000000LL);
    batcher_flush_due(b, due - 1);
    T_EQ_INT(pending(b), 4);
    T_EQ_INT(take(sp, got, 8), 0);
    batcher_flush_due(b, due);
    T_EQ_INT(pending(b), 0);
    T_CHECK(batcher_deadline(b) == INT64_MAX);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].kind, BATCH_POINTS);
    T_EQ_INT(got[0].process_id, 7);
    T_EQ_INT(got[0].rows, 4);
    T_EQ_INT(got[0].first_ts_us, 2000);
    T_EQ_INT(got[0].last_ts_us, 2003);

    /* batch_rows: the row that fills the batch flushes it at once */
    feed(b, 4, 3000);
    T_EQ_INT(take(sp, got, 8), 0);
    feed(b, 1, 3004);
    T_EQ_INT(pending(b), 0);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].rows, 5);
    T_EQ_INT(got[0].first_ts_us, 3000);
    T_EQ_INT(got[0].last_ts_us, 3004);
    feed(b, 7, 4000);   /* 5 flushed, 2 open */
    T_EQ_INT(pending(b), 2);
    T_EQ_INT(take(sp, got, 8), 1);

    /* a reload: a batch_rows the open batch reaches flushes it; a shorter
     * interval brings its deadline forward, a longer one never back */
    batcher_set_limits(b, 2, 300);
    T_EQ_INT(pending(b), 0);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].rows, 2);
    feed(b, 1, 5000);
    due = batcher_deadline(b);
    before = clock_mono_ns();
    batcher_set_limits(b, 2, 50);
    after = clock_mono_ns();
    T_CHECK(batcher_deadline(b) >= before + 50 * 1000000LL &&
            batcher_deadline(b) <= after + 50 * 1000000LL);
    T_CHECK(batcher_deadline(b) < due);
    due = batcher_deadline(b);
    batcher_set_limits(b, 2, 5000);
    T_EQ_INT(batcher_deadline(b), due);
    T_EQ_INT(pending(b), 1);

    /* a process change flushes what belongs to the one before; the rows
     * of a stopped process stay readable until the next one starts */
    batcher_get_stats(b, &st);
    T_EQ_INT(st.process_rows, 4 + 5 + 7 + 1);
    batcher_set_process(b, 0);
    T_EQ_INT(pending(b), 0);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].process_id, 7);
    T_EQ_INT(got[0].rows, 1);
    batcher_get_stats(b, &st);
    T_EQ_INT(st.process_id, 0);
    T_EQ_INT(st.process_rows, 17);
    T_EQ_INT(st.flushed_batches, 5);
    T_EQ_INT(st.flushed_rows, 17);
    T_EQ_INT(st.flush_errors, 0);
    T_CHECK(!st.spool_write_failing);
    T_EQ_INT(st.flush_us.count, 5);
    T_CHECK(st.append_max_ms >= st.append_last_ms && st.append_last_ms > 0);
    batcher_set_process(b, 8);
    batcher_get_stats(b, &st);
    T_EQ_INT(st.process_rows, 0);
    feed(b, 1, 6000);
    batcher_flush(b);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].process_id, 8);

    batcher_free(b);
    spool_close(sp);
}

static void test_records(void)
{
    spool_t *sp = open_spool("records.db", 1 << 30, SPOOL_DROP_OLDEST);
    if (!sp)
        return;
    batcher_opts_t o = { .spool = sp, .batch_rows = 100, .flush_interval_ms = 300 };
    batcher_t *b = batcher_new(&o);
    if (!b)
        return;
    batch_t got[8];
    char err[600];

    /* a set-point event with no process running is recorded too */
    ctlrec_event_t ev = { .parameter_id = 3, .ts_us = 1700000000000000LL, .requested = 1.5,
                          .quality = 0, .requested_by = "test" };
    T_EQ_INT(batcher_add_event(b, &ev, err, sizeof err), 0);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].kind, BATCH_EVENTS);
    T_EQ_INT(got[0].process_id, 0);
    T_EQ_INT(got[0].rows, 1);
    T_EQ_INT(got[0].first_ts_us, ev.ts_us);

    /* a step marker: its own batch, beside an open batch of points that
     * stays open, and its number noted in the spool */
    batcher_set_process(b, 9);
    feed(b, 3, 7000);
    ctlrec_step_t step = { .step_no = 4, .name = "purge" };
    T_EQ_INT(batcher_add_step(b, &step, 1700000000500000LL, err, sizeof err), 0);
    T_EQ_INT(pending(b), 3);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].kind, BATCH_STEPS);
    T_EQ_INT(got[0].process_id, 9);
    T_EQ_INT(got[0].first_ts_us, 1700000000500000LL);
    int32_t *steps = NULL;
    size_t nsteps = 0;
    T_EQ_INT(spool_get_steps(sp, 9, &steps, &nsteps, err, sizeof err), 0);
    T_EQ_INT(nsteps, 1);
    T_EQ_INT(nsteps ? steps[0] : -1, 4);
    free(steps);
    /* the points are not counted as flushed by a record */
    batcher_stats_t st;
    batcher_get_stats(b, &st);
    T_EQ_INT(st.flushed_batches, 0);

    batcher_free(b);
    spool_close(sp);
}

/* A full spool (drop_newest): the batch that does not fit is dropped, not
 * a write error; one line when dropping starts, one when a gap record
 * closes the hole, none for the batches in between. */
static void test_spool_full(void)
{
    /* two batches of 20 rows fit (test_spool.c's numbers), a third does not */
    spool_t *sp = open_spool("full.db", 2 * 1061 + 10, SPOOL_DROP_NEWEST);
    if (!sp)
        return;
    batcher_opts_t o = { .spool = sp, .batch_rows = 20, .flush_interval_ms = 300,
                         .policy = SPOOL_DROP_NEWEST };
    batcher_t *b = batcher_new(&o);
    if (!b)
        return;
    batch_t got[8];
    batcher_set_process(b, 5);
    capture_begin();
    feed(b, 20, 1000000);
    feed(b, 20, 2000000);
    feed(b, 20, 3000000);
    feed(b, 20, 4000000);
    batcher_close_gaps(b);      /* still full: the hole stays open */
    T_EQ_INT(take(sp, got, 8), 2);
    batcher_close_gaps(b);      /* room again: the gap record, the end */
    const char *out = capture_end();
    T_EQ_INT(count(out, "spool full ("), 1);
    T_EQ_INT(count(out, "dropping new batches"), 1);
    T_EQ_INT(count(out, "spool has room again: 40 points in 2 batches were dropped;"
                        " 1 gap record(s) queued"), 1);
    T_EQ_INT(count(out, "cannot write to the spool"), 0);
    batcher_stats_t st;
    batcher_get_stats(b, &st);
    T_EQ_INT(st.flush_errors, 0);
    T_EQ_INT(st.flushed_batches, 4);
    T_EQ_INT(st.pending_rows, 0);
    T_EQ_INT(take(sp, got, 8), 1);
    T_EQ_INT(got[0].kind, BATCH_GAPS);

    batcher_free(b);
    spool_close(sp);
}

int main(void)
{
    log_init("test_batcher", LL_INFO);
    snprintf(dir, sizeof dir, "%s/aldrec-test-batcher.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_flush_rules();
    test_records();
    test_spool_full();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return t_done("test_batcher");
}
