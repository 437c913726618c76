/* batcher.h — the open batch of points and the rules that flush it into
 * the spool; set-point events and step markers as batches of their own.
 *
 * The main loop passes every sample the device threads queued to
 * batcher_on_sample() (poller_drain()'s callback). While a process is
 * being recorded the sample becomes a binary COPY row of the open batch
 * (pgcopy.h); while none is, the idle policy (idle.h) decides whether it is
 * kept in the machine's idle history, a second open batch (record kind
 * IDLE) with the same flush rules. Which of the two a sample goes to is
 * decided by the process at the moment it is drained: START and STOP drain
 * the poller first (ctlsrv.c), so the samples of cycles completed before
 * START are idle history, those after it the run's, until STOP; a sample
 * is in exactly one of them. The open batches are flushed
 * into the spool (durable when the flush returns, spool.h) when
 *   - it holds batch_rows rows: at once, from batcher_on_sample();
 *   - flush_interval_ms have passed since its first row: the loop polls
 *     until batcher_deadline() and calls batcher_flush_due();
 *   - the process changes (batcher_set_process()), a reload lowers
 *     batch_rows (batcher_set_limits()), STOP, or aldrecd stops
 *     (batcher_flush()).
 * Every batch stored wakes the forwarder.
 *
 * A batch the spool cannot take is counted (flush_errors) and its rows are
 * lost (the spool records a gap); the failure is logged when it starts and
 * when writes work again, not per batch. When the spool is full it drops
 * batches by its policy; the batcher logs when dropping starts and when it
 * ends, with the count, and batcher_close_gaps() queues the gap records
 * for a hole that has an end.
 *
 * Main loop only: nothing here locks. */
#ifndef ALDREC_BATCHER_H
#define ALDREC_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "acq/sample.h"
#include "common/hist.h"
#include "acq/pmap.h"
#include "store/ctlrec.h"
#include "store/forwarder.h"
#include "store/spool.h"

typedef struct batcher batcher_t;

typedef struct batcher_opts {
    spool_t *spool;              /* borrowed: every batch goes here */
    forwarder_t *fwd;            /* borrowed, may be NULL: woken when a batch is stored */
    int batch_rows;              /* [recorder] batch_rows */
    int flush_interval_ms;       /* [recorder] flush_interval_ms */
    enum spool_policy policy;    /* the spool's, named when dropping starts */
} batcher_opts_t;

/* Plain values, copied out by batcher_get_stats(). */
typedef struct batcher_stats {
    int64_t process_id;          /* 0: not recording */
    uint64_t process_rows;       /* samples of the current (or last) process */
    size_t pending_rows;         /* in the open batches (points and idle) */
    uint64_t idle_rows;          /* idle samples kept since start */
    double idle_per_s;           /* ... per second over the last 10 complete seconds */
    size_t idle_params;          /* parameters kept while idle */
    uint64_t flushed_batches, flushed_rows;    /* points appended to the spool */
    uint64_t flush_errors;       /* appends the spool refused */
    bool spool_write_failing;    /* the last append failed */
    hist_t flush_us;             /* spool_append() of a points batch, fsync included */
    double append_last_ms, append_max_ms;
} batcher_stats_t;

/* Not recording until batcher_set_process(). Returns NULL with errno
 * ENOMEM. */
batcher_t *batcher_new(const batcher_opts_t *opts);

/* Frees b and the open batch, which is NOT flushed (batcher_flush()
 * first). NULL is fine. */
void batcher_free(batcher_t *b);

/* poller_sample_fn (poller.h), arg the batcher: adds s to the open batch
 * of the process being recorded; flushes when it holds batch_rows. */
void batcher_on_sample(void *arg, const sample_t *s);

/* Flushes the open batch into the spool now (nothing when it is empty). */
void batcher_flush(batcher_t *b);

/* When the open batch is due (CLOCK_MONOTONIC ns, as clock_mono_ns()),
 * INT64_MAX when nothing is pending. */
int64_t batcher_deadline(const batcher_t *b);

/* Flushes the open batch if its deadline is at or before now_ns. */
void batcher_flush_due(batcher_t *b, int64_t now_ns);

/* New limits after a reload: a shorter flush interval brings the open
 * batch's deadline forward, a batch_rows it already reaches flushes it. */
void batcher_set_limits(batcher_t *b, int batch_rows, int flush_interval_ms);

/* The idle policy from map (borrowed, not kept) under [recorder]
 * idle_interval_ms default_ms; parameters of the previous policy keep their
 * state. Without a call nothing is kept while idle. Returns 0, or -1 with
 * errno ENOMEM (the previous policy stays). */
int batcher_set_idle(batcher_t *b, const pmap_t *map, int default_ms);

/* The process being recorded, 0 for none. */
int64_t batcher_process(const batcher_t *b);

/* Samples from now on belong to process_id (0: none, they are discarded).
 * A pending batch of the previous process is flushed first; a new process
 * (not 0) counts its rows from 0, while after a stop the last one's count
 * stays readable. Does not touch the spool's note of the process. */
void batcher_set_process(batcher_t *b, int64_t process_id);

/* Appends a set-point event of the process being recorded (or none) as a
 * batch of its own. Returns 0 once it is durable in the spool, or -1 with
 * err: "out of memory" (nothing written), or "cannot write to the spool:
 * WHY" (logged here). */
int batcher_add_event(batcher_t *b, const ctlrec_event_t *ev, char *err, size_t errlen);

/* The same for a step marker stamped ts_us; the spool notes step_no as
 * used by the process in the same transaction. */
int batcher_add_step(batcher_t *b, const ctlrec_step_t *st, int64_t ts_us, char *err,
                     size_t errlen);

/* Call about once a second while the spool is dropping (its stats say
 * so): queues the gap record of a hole that has an end, and logs the end
 * of the episode. */
void batcher_close_gaps(batcher_t *b);

void batcher_get_stats(const batcher_t *b, batcher_stats_t *out);

#endif
