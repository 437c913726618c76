/* batcher.c — the open batch and its flush rules, and the one-row batches
 * of set-point events and step markers; see batcher.h. */
#include "daemon/batcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "acq/poller.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/idle.h"
#include "store/batch.h"
#include "store/pgcopy.h"
#include "store/records.h"

#define IDLE_SECS 11   /* 10 complete seconds and the current one */

struct batcher {
    spool_t *spool;
    forwarder_t *fwd;
    int batch_rows, flush_interval_ms;
    enum spool_policy policy;
    int64_t process_id;          /* 0: not recording */
    uint64_t process_rows;
    /* the open batch */
    pgcopy_t *enc;
    int64_t first_ts, last_ts;
    int64_t flush_deadline_ns;   /* INT64_MAX: nothing pending */
    /* idle history: samples kept by the idle policy while no process is
     * being recorded, in a batch of their own (record kind IDLE) */
    idle_policy_t *idle;
    pgcopy_t *idle_enc;
    int64_t idle_first_ts, idle_last_ts;
    int64_t idle_deadline_ns;    /* INT64_MAX: nothing pending */
    uint64_t idle_rows;          /* idle samples kept since start */
    /* idle samples kept per monotonic second, the last IDLE_SECS seconds:
     * slot s % IDLE_SECS counts second s (idle_sec[] says which) */
    uint32_t idle_count[IDLE_SECS];
    int64_t idle_sec[IDLE_SECS];
    /* set-point events and step markers: one row per batch */
    pgcopy_t *rec;
    /* what flushing cost and how it went */
    hist_t flush_us;
    uint64_t flushed_batches, flushed_rows, flush_errors;
    double append_last_ms, append_max_ms;     /* spool_append(), fsync included */
    complain_t spool_write;
    /* dropping (spool full): logged when it starts and when it ends */
    bool dropping;
    uint64_t drop_points, drop_batches;
};

batcher_t *batcher_new(const batcher_opts_t *opts)
{
    batcher_t *b = calloc(1, sizeof *b);
    if (!b)
        goto fail;
    b->spool = opts->spool;
    b->fwd = opts->fwd;
    b->batch_rows = opts->batch_rows;
    b->flush_interval_ms = opts->flush_interval_ms;
    b->policy = opts->policy;
    b->flush_deadline_ns = INT64_MAX;
    b->idle_deadline_ns = INT64_MAX;
    b->enc = pgcopy_new();
    b->idle_enc = pgcopy_new();
    b->rec = pgcopy_new();
    if (!b->enc || !b->idle_enc || !b->rec)
        goto fail;
    return b;
fail:
    batcher_free(b);
    errno = ENOMEM;
    return NULL;
}

void batcher_free(batcher_t *b)
{
    if (!b)
        return;
    pgcopy_free(b->enc);
    pgcopy_free(b->idle_enc);
    pgcopy_free(b->rec);
    idle_policy_free(b->idle);
    free(b);
}

static void wake_forwarder(batcher_t *b)
{
    if (b->fwd)
        forwarder_wake(b->fwd);
}

/* Start and end of an episode of dropping, from what an append reported. */
static void note_drops(batcher_t *b, const spool_append_result_t *res)
{
    if (res->dropped_batches) {
        if (!b->dropping) {
            spool_stats_t ss;
            spool_get_stats(b->spool, &ss);
            log_msg(LL_ERROR, "spool full (%llu of max_bytes %lld bytes): dropping %s"
                    " batches until PostgreSQL takes data again; every dropped point is"
                    " counted and a gap record (data_gaps) will say which",
                    (unsigned long long)(ss.bytes + ss.q_bytes), (long long)ss.max_bytes,
                    b->policy == SPOOL_DROP_OLDEST ? "the oldest" : "new");
            b->dropping = true;
        }
        b->drop_points += res->dropped_points;
        b->drop_batches += res->dropped_batches;
    } else if (b->dropping && res->gaps_closed) {
        log_msg(LL_WARN, "spool has room again: %llu points in %llu batches were dropped;"
                " %u gap record(s) queued for PostgreSQL", (unsigned long long)b->drop_points,
                (unsigned long long)b->drop_batches, res->gaps_closed);
        b->dropping = false;
        b->drop_points = b->drop_batches = 0;
    }
}

/* Flushes the open batch of enc (kind POINTS of process_id, or IDLE) into
 * the spool. */
static void flush_enc(batcher_t *b, pgcopy_t *enc, enum batch_kind kind, int64_t process_id,
                      int64_t first_ts, int64_t last_ts)
{
    size_t rows = pgcopy_rows(enc);
    if (rows == 0)
        return;
    size_t len;
    uint8_t *data = pgcopy_take(enc, &len);
    if (!data) {
        log_msg(LL_ERROR, "out of memory encoding a batch of %zu rows; rows lost", rows);
        pgcopy_reset(enc);
        return;
    }
    batch_t batch = {
        .kind = kind,
        .process_id = process_id,
        .rows = (uint32_t)rows,
        .first_ts_us = first_ts,
        .last_ts_us = last_ts,
        .data = data,
        .len = len,
    };
    spool_append_result_t res;
    char err[512];
    int64_t t0 = clock_mono_ns();
    int rc = spool_append(b->spool, &batch, &res, err, sizeof err);
    double ms = (double)(clock_mono_ns() - t0) / 1e6;
    b->append_last_ms = ms;
    if (ms > b->append_max_ms)
        b->append_max_ms = ms;
    hist_add(&b->flush_us, (uint64_t)(ms * 1000.0));
    if (rc < 0) {
        b->flush_errors++;
    } else {
        b->flushed_batches++;
        b->flushed_rows += rows;
    }
    free(data);
    if (rc < 0)
        log_complain(&b->spool_write, LL_ERROR, "cannot write to the spool: %s; the rows are"
                     " counted as dropped and a gap record follows", err);
    else
        log_release(&b->spool_write, LL_INFO, "spool writable again");
    note_drops(b, &res);
    if (rc == 0 && res.stored)
        wake_forwarder(b);
}

void batcher_flush(batcher_t *b)
{
    if (pgcopy_rows(b->enc)) {
        b->flush_deadline_ns = INT64_MAX;
        flush_enc(b, b->enc, BATCH_POINTS, b->process_id, b->first_ts, b->last_ts);
    }
    if (pgcopy_rows(b->idle_enc)) {
        b->idle_deadline_ns = INT64_MAX;
        flush_enc(b, b->idle_enc, BATCH_IDLE, 0, b->idle_first_ts, b->idle_last_ts);
    }
}

/* A sample outside a process: into the idle batch if the policy keeps it. */
static void on_idle_sample(batcher_t *b, const sample_t *s)
{
    if (!idle_policy_keep(b->idle, s))
        return;
    if (pgcopy_rows(b->idle_enc) == 0) {
        b->idle_first_ts = s->ts_us;
        b->idle_deadline_ns = clock_mono_ns() + (int64_t)b->flush_interval_ms * 1000000LL;
    }
    if (pgcopy_add_idle(b->idle_enc, s) < 0) {
        log_msg(LL_ERROR, "out of memory adding an idle sample of parameter %d", s->parameter_id);
        return;
    }
    b->idle_last_ts = s->ts_us;
    b->idle_rows++;
    int64_t sec = clock_mono_ns() / 1000000000LL;
    size_t slot = (size_t)(sec % IDLE_SECS);
    if (b->idle_sec[slot] != sec) {
        b->idle_sec[slot] = sec;
        b->idle_count[slot] = 0;
    }
    b->idle_count[slot]++;
    if (pgcopy_rows(b->idle_enc) >= (size_t)b->batch_rows) {
        b->idle_deadline_ns = INT64_MAX;
        flush_enc(b, b->idle_enc, BATCH_IDLE, 0, b->idle_first_ts, b->idle_last_ts);
    }
}

void batcher_on_sample(void *arg, const sample_t *s)
{
    batcher_t *b = arg;
    if (b->process_id == 0) {
        on_idle_sample(b, s);
        return;
    }
    if (pgcopy_rows(b->enc) == 0) {
        b->first_ts = s->ts_us;
        b->flush_deadline_ns = clock_mono_ns() + (int64_t)b->flush_interval_ms * 1000000LL;
    }
    if (pgcopy_add(b->enc, b->process_id, s) < 0) {
        log_msg(LL_ERROR, "out of memory adding a sample of parameter %d", s->parameter_id);
        return;
    }
    b->last_ts = s->ts_us;
    b->process_rows++;
    if (pgcopy_rows(b->enc) >= (size_t)b->batch_rows)
        batcher_flush(b);
}

int64_t batcher_deadline(const batcher_t *b)
{
    return b->flush_deadline_ns < b->idle_deadline_ns ? b->flush_deadline_ns
                                                      : b->idle_deadline_ns;
}

void batcher_flush_due(batcher_t *b, int64_t now_ns)
{
    if (now_ns >= b->flush_deadline_ns || now_ns >= b->idle_deadline_ns)
        batcher_flush(b);
}

void batcher_set_limits(batcher_t *b, int batch_rows, int flush_interval_ms)
{
    if (flush_interval_ms != b->flush_interval_ms && pgcopy_rows(b->enc) > 0) {
        /* the open batch: its deadline by the new interval, if sooner */
        int64_t d = clock_mono_ns() + (int64_t)flush_interval_ms * 1000000LL;
        if (d < b->flush_deadline_ns)
            b->flush_deadline_ns = d;
    }
    if (flush_interval_ms != b->flush_interval_ms && pgcopy_rows(b->idle_enc) > 0) {
        int64_t d = clock_mono_ns() + (int64_t)flush_interval_ms * 1000000LL;
        if (d < b->idle_deadline_ns)
            b->idle_deadline_ns = d;
    }
    b->batch_rows = batch_rows;
    b->flush_interval_ms = flush_interval_ms;
    if (pgcopy_rows(b->enc) >= (size_t)b->batch_rows ||
        pgcopy_rows(b->idle_enc) >= (size_t)b->batch_rows)
        batcher_flush(b);
}

int batcher_set_idle(batcher_t *b, const pmap_t *map, int default_ms)
{
    idle_policy_t *p = idle_policy_new(map, default_ms, b->idle);
    if (!p)
        return -1;
    idle_policy_free(b->idle);
    b->idle = p;
    return 0;
}

int64_t batcher_process(const batcher_t *b)
{
    return b->process_id;
}

void batcher_set_process(batcher_t *b, int64_t process_id)
{
    if (process_id == b->process_id)
        return;
    batcher_flush(b);
    b->process_id = process_id;
    if (process_id) {
        b->process_rows = 0;
        /* the idle time after this run begins afresh: its first sample is kept */
        idle_policy_reset(b->idle);
    }
}

/* Appends the one row waiting in b->rec as a batch of its own; a step
 * marker (step_no not NULL) is noted as used in the same transaction.
 * Durable in the spool when it returns 0 (forwarded like the points); -1
 * with err. */
static int append_record(batcher_t *b, enum batch_kind kind, int64_t ts_us,
                         const int32_t *step_no, char *err, size_t errlen)
{
    size_t len;
    uint8_t *data = pgcopy_take(b->rec, &len);
    if (!data) {
        pgcopy_reset(b->rec);
        snprintf(err, errlen, "cannot write to the spool: out of memory");
        return -1;
    }
    batch_t batch = {
        .kind = kind,
        .process_id = b->process_id,
        .rows = 1,
        .first_ts_us = ts_us,
        .last_ts_us = ts_us,
        .data = data,
        .len = len,
        .marks_step = step_no != NULL,
        .step_no = step_no ? *step_no : 0,
    };
    spool_append_result_t res;
    char why[512];
    int rc = spool_append(b->spool, &batch, &res, why, sizeof why);
    free(data);
    if (rc < 0) {
        log_msg(LL_ERROR, "cannot write a %s record to the spool: %s (its sender was told)",
                records_name(kind), why);
        snprintf(err, errlen, "cannot write to the spool: %s", why);
        return -1;
    }
    wake_forwarder(b);
    return 0;
}

int batcher_add_event(batcher_t *b, const ctlrec_event_t *ev, char *err, size_t errlen)
{
    if (ctlrec_event_row(b->rec, b->process_id, ev) < 0) {
        pgcopy_reset(b->rec);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return append_record(b, BATCH_EVENTS, ev->ts_us, NULL, err, errlen);
}

int batcher_add_step(batcher_t *b, const ctlrec_step_t *st, int64_t ts_us, char *err,
                     size_t errlen)
{
    if (ctlrec_step_row(b->rec, b->process_id, st, ts_us) < 0) {
        pgcopy_reset(b->rec);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return append_record(b, BATCH_STEPS, ts_us, &st->step_no, err, errlen);
}

void batcher_close_gaps(batcher_t *b)
{
    char err[512];
    spool_append_result_t res = { 0 };
    if (spool_close_gaps(b->spool, -1, true, &res.gaps_closed, err, sizeof err) < 0)
        log_msg(LL_ERROR, "cannot queue a gap record: %s", err);
    note_drops(b, &res);
    if (res.gaps_closed)
        wake_forwarder(b);
}

/* Idle samples kept per second over the last 10 complete seconds. */
static double idle_rate(const batcher_t *b)
{
    int64_t now = clock_mono_ns() / 1000000000LL;
    uint64_t n = 0;
    for (size_t i = 0; i < IDLE_SECS; i++)
        if (b->idle_sec[i] < now && b->idle_sec[i] >= now - (IDLE_SECS - 1))
            n += b->idle_count[i];
    return (double)n / (IDLE_SECS - 1);
}

void batcher_get_stats(const batcher_t *b, batcher_stats_t *out)
{
    *out = (batcher_stats_t){
        .process_id = b->process_id,
        .process_rows = b->process_rows,
        .pending_rows = pgcopy_rows(b->enc) + pgcopy_rows(b->idle_enc),
        .idle_rows = b->idle_rows,
        .idle_per_s = idle_rate(b),
        .idle_params = idle_policy_count(b->idle),
        .flushed_batches = b->flushed_batches,
        .flushed_rows = b->flushed_rows,
        .flush_errors = b->flush_errors,
        .spool_write_failing = b->spool_write.active,
        .flush_us = b->flush_us,
        .append_last_ms = b->append_last_ms,
        .append_max_ms = b->append_max_ms,
    };
}
