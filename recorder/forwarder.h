/* forwarder.h — the thread that moves flushed batches to PostgreSQL.
 *
 * The poll loop hands each flushed batch to forwarder_submit() and goes on;
 * only this thread ever waits on the network, so a slow or black-holed
 * database can never delay a Modbus poll. Batches are written in submission
 * order; a batch leaves the queue only when pgsink reports it STORED or
 * DUPLICATE (already in the ledger), or REJECTED (logged and counted).
 * Transient failures are retried with capped exponential backoff + jitter.
 *
 * The queue is in memory and bounded (queue_batches); when it is full the
 * oldest batch is dropped, counted and logged. A durable on-disk queue
 * replaces it in the store-and-forward work (issue 4). */
#ifndef ALDREC_FORWARDER_H
#define ALDREC_FORWARDER_H

#include <stddef.h>
#include <stdint.h>

#include "pgsink.h"

typedef struct forwarder forwarder_t;

enum link_state { LINK_DOWN, LINK_UP };

typedef struct forwarder_stats {
    enum link_state link;
    uint64_t stored_batches, stored_rows;
    uint64_t duplicate_batches;
    uint64_t rejected_batches, rejected_rows;
    uint64_t dropped_batches, dropped_rows;
    size_t queued_batches, queued_rows;
    int64_t last_done_seq;      /* highest seq that left the queue */
    char last_error[256];       /* latest failure, "" if none */
} forwarder_stats_t;

/* Starts the thread with its own connection (made lazily). Returns NULL
 * with err on failure. */
forwarder_t *forwarder_start(const char *conninfo, const char *recorder_id,
                             int timeout_ms, size_t max_batches,
                             char *err, size_t errlen);

/* Queues a batch; takes ownership of data (malloc'd, freed after use).
 * Returns 0, or -1 with errno ENOMEM (data freed, batch lost and counted). */
int forwarder_submit(forwarder_t *f, const pgsink_batch_t *b, uint8_t *data);

/* A descriptor that becomes readable whenever a batch has left the queue;
 * call forwarder_drain_notify() when it does. */
int forwarder_notify_fd(const forwarder_t *f);
void forwarder_drain_notify(forwarder_t *f);

/* Snapshot of the counters. */
void forwarder_get_stats(forwarder_t *f, forwarder_stats_t *out);

/* Waits up to drain_ms for the queue to empty, stops the thread and frees
 * f. Returns the number of batches still queued (lost), 0 when all stored. */
size_t forwarder_stop(forwarder_t *f, int drain_ms);

#endif
