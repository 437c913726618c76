/* forwarder.h — the thread that moves spooled batches to PostgreSQL.
 *
 * aldrecd's main loop appends every flushed batch to the spool (spool.h)
 * and calls forwarder_wake(); this thread — the only place in aldrecd that
 * waits on PostgreSQL for data — sends the spool's batches oldest first
 * through pgsink and deletes each from the spool only after PostgreSQL
 * committed it (or its ledger row shows it was committed before).
 *
 * A backlog is drained several consecutive batches per transaction (one
 * ledger insert + one COPY for all of them), which is what lets a backlog
 * shrink while live batches keep arriving. When such a transaction fails
 * on a duplicate or on refused data, those batches are written one by one
 * to find the culprit: a DUPLICATE is deleted, a REJECTED batch goes to
 * the spool's quarantine with PostgreSQL's error, and the batches behind
 * it keep flowing. Anything else (connection refused, black hole, server
 * restarting) is retried after a capped exponential backoff with jitter
 * while the batches wait in the spool.
 *
 * With drain_connections = 2 a backlog of two full groups or more
 * (2 x drain_rows rows or 2 x drain_batches batches) drains over two
 * connections, two
 * groups in flight at once (two lane threads, each with its own
 * connection; the forwarder thread claims and settles): while PostgreSQL
 * inserts one group's rows on one backend, it inserts the next group's
 * on another, so a drain can use a second core of the server. The groups
 * still commit in their order: the second one's COMMIT waits until the
 * first is stored, and when the first is not (a refused batch, a broken
 * link, a COMMIT in doubt) the second is rolled back (WITHDRAWN) and
 * claimed again later. The first lane borrows the forwarder's connection;
 * the second lane's is open only while a backlog drains. When the second
 * connection is refused or fails, drains go over one for 30 s.
 *
 * Known limits: a sample (or step) stored twice across the boundary of
 * two groups in flight makes the first wait on the second's row lock,
 * which waits for the first to commit; PostgreSQL cannot see that wait,
 * so it ends at timeout_ms (a RETRY: the groups go one by one and the
 * duplicate is refused as it would be without the lanes; nothing is lost,
 * the link shows a failure). A batch moved back from quarantine keeps its
 * (lower) seq and is claimed once no claim is in flight, i.e. after the
 * drain.
 *
 *   LINK_CONNECTING ──ok──▶ LINK_UP ◀──backlog gone── LINK_DRAINING
 *         ▲  │                 │ └────backlog found────▶ │
 *         │  └─fail─▶ LINK_SPOOLING ◀──write failed──────┘
 *         └─backoff over─────┘
 *
 * Test hook: with ALDREC_TEST_CRASH_AFTER_COMMIT=N in the environment the
 * process exits (status 137, like kill -9) right after the N-th COMMIT,
 * before the batches are deleted from the spool — the moment at which a
 * crash makes a replay certain (tests/integration/spool_kill.sh). */
#ifndef ALDREC_FORWARDER_H
#define ALDREC_FORWARDER_H

#include <stddef.h>
#include <stdint.h>

#include "common/hist.h"
#include "store/spool.h"

typedef struct forwarder forwarder_t;

enum link_state {
    LINK_CONNECTING,   /* opening a connection */
    LINK_UP,           /* connected; only live batches are waiting */
    LINK_DRAINING,     /* connected; sending a backlog, oldest first */
    LINK_SPOOLING,     /* PostgreSQL out of reach: batches wait in the spool */
};

typedef struct forwarder_opts {
    const char *conninfo;
    const char *recorder_id;
    int timeout_ms;            /* pgsink's deadline for every wait */
    size_t drain_batches;      /* most batches in one transaction */
    size_t drain_rows;         /* most rows in one transaction */
    int drain_connections;     /* 1, or 2 (0: the default, 2): see above */
} forwarder_opts_t;

typedef struct forwarder_stats {
    enum link_state link;
    double link_for_s;                  /* seconds in this state */
    uint64_t stored_batches, stored_rows;       /* since start */
    uint64_t stored_rows_kind[BATCH_KIND_MAX + 1];  /* stored_rows by record kind */
    hist_t write_us;                    /* stored transactions: ledger + COPY + COMMIT, µs */
    /* stored batches of points, at their COMMIT (wall clock, µs): since
     * their last sample (the batch is ready then, or one flush interval
     * later: spool append, queue, write) and since their first (polled) */
    hist_t commit_delay_us, commit_lag_us;
    uint64_t transactions;
    uint64_t overlapped;                /* ... of them written while the one before was */
    uint64_t duplicate_batches;
    uint64_t quarantined_batches, quarantined_rows;
    double rows_per_s;                  /* stored, over the last 10 s */
    char last_error[512];               /* latest failure, "" if none */
} forwarder_stats_t;

/* Starts the thread; it keeps sp (which must outlive it) and makes its own
 * connection when there is something to send. Returns NULL with err. */
forwarder_t *forwarder_start(const forwarder_opts_t *o, spool_t *sp, char *err, size_t errlen);

/* Tells the thread that a batch was appended. Never blocks. */
void forwarder_wake(forwarder_t *f);

/* A descriptor that becomes readable whenever batches have left the
 * spool; call forwarder_drain_notify() when it does. */
int forwarder_notify_fd(const forwarder_t *f);
void forwarder_drain_notify(forwarder_t *f);

/* Snapshot of the counters. */
void forwarder_get_stats(forwarder_t *f, forwarder_stats_t *out);

/* "connecting", "up", "draining", "spooling". */
const char *forwarder_link_name(enum link_state s);

/* Keeps forwarding until the spool is empty or drain_ms have passed, then
 * cuts short whatever wait is under way, stops the thread and frees f.
 * What was not sent stays in the spool. NULL is fine. */
void forwarder_stop(forwarder_t *f, int drain_ms);

#endif
