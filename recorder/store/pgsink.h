/* pgsink.h — store batches in PostgreSQL, exactly once.
 *
 * One transaction for one batch, or for several consecutive batches of the
 * same kind (draining a backlog), in two round trips:
 *   BEGIN; INSERT INTO ingest_ledger (recorder_id, spool_id, batch_seq, kind,
 *          rows, ...) VALUES (...), ...;
 *          COPY <table of the kind> (...) FROM STDIN (FORMAT binary)
 *   ... the batches' binary COPY data as one stream ...; COMMIT
 * If a ledger row exists (primary-key violation) that batch was stored
 * before: the COPY never runs, ROLLBACK, DUPLICATE. A batch whose COMMIT
 * outcome is unknown (connection lost, deadline) is simply written again
 * later: the ledger turns the replay into DUPLICATE.
 *
 * Every network wait has a deadline of timeout_ms: connecting (non-blocking,
 * whole handshake), each statement, each chunk of COPY data (measured from
 * the last progress), the COPY's end and COMMIT. The socket also has TCP
 * keepalives (idle 2 s, then 3 probes 1 s apart) and tcp_user_timeout =
 * timeout_ms, and the server side of the session gets the same settings so
 * that a session orphaned by a black hole is ended by the server too (it
 * holds the batch's ledger key until then). A black-holed network therefore
 * turns into PGSINK_RETRY at most timeout_ms after the last byte that got
 * an answer, never into a hang. A cancel descriptor (see
 * pgsink_set_cancel_fd) cuts any wait short. */
#ifndef ALDREC_PGSINK_H
#define ALDREC_PGSINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/batch.h"

typedef struct pgsink pgsink_t;

typedef enum pgsink_result {
    PGSINK_STORED,      /* committed now */
    PGSINK_DUPLICATE,   /* a ledger row exists: stored earlier */
    PGSINK_RETRY,       /* transient: connection, deadline, server shutting down;
                           nothing was stored */
    PGSINK_IN_DOUBT,    /* the link failed after COMMIT was sent: stored or not,
                           only a later write can tell (its ledger row) */
    PGSINK_REJECTED,    /* the data was refused (SQLSTATE class 22/23, or
                           malformed COPY data) */
    PGSINK_WITHDRAWN,   /* the commit hook said no: rolled back, nothing stored */
} pgsink_result_t;

/* New, unconnected sink. conninfo is a libpq connection string (it is never
 * logged); timeout_ms bounds each wait (see above). Returns NULL on ENOMEM. */
pgsink_t *pgsink_new(const char *conninfo, const char *recorder_id, int timeout_ms);

/* Closes and frees s; NULL is fine. */
void pgsink_free(pgsink_t *s);

/* While fd is readable every wait gives up at once (RETRY, "cancelled").
 * -1 (the default) for none. The caller keeps the descriptor. */
void pgsink_set_cancel_fd(pgsink_t *s, int fd);

/* Connects if not connected (non-blocking, within timeout_ms). Returns 0,
 * or -1 with the reason in err. */
int pgsink_connect(pgsink_t *s, char *err, size_t errlen);

/* True while a connection is open (it may still turn out dead). */
bool pgsink_connected(const pgsink_t *s);

/* The connection's socket for poll(), or -1 when not connected. */
int pgsink_socket(const pgsink_t *s);

/* For an idle connection whose socket became readable: reads what the
 * server sent. Returns 0 while the connection is fine, -1 with err when it
 * is gone (the sink is then disconnected). */
int pgsink_check(pgsink_t *s, char *err, size_t errlen);

/* Drops the connection. */
void pgsink_disconnect(pgsink_t *s);

/* Stores b[0..n) — n >= 1 batches of the same kind, in one transaction
 * (connecting first if needed). With n > 1, DUPLICATE or REJECTED means at
 * least one of them is affected and nothing was stored: write them one by
 * one to find out which. On anything but STORED/DUPLICATE the reason is in
 * err; on RETRY and IN_DOUBT the connection has been dropped. */
pgsink_result_t pgsink_write(pgsink_t *s, const batch_t *b, size_t n, char *err, size_t errlen);

/* fn(arg) is called once in every pgsink_write() that gets that far, on
 * the writing thread, right after the group's rows were sent: while the
 * server inserts them and before their COPY's answer is read. What fn
 * does there costs the write no time if it takes less than the server
 * does. NULL: none. */
void pgsink_set_busy_hook(pgsink_t *s, void (*fn)(void *), void *arg);

/* fn(arg) is called in every pgsink_write() that gets that far, on the
 * writing thread, right before COMMIT is sent, and may wait: with false
 * the transaction is rolled back and the write is WITHDRAWN. For a drain
 * over two connections, whose transactions commit in their order (the
 * second only once the first is stored). NULL: none. */
void pgsink_set_commit_hook(pgsink_t *s, bool (*fn)(void *), void *arg);

/* Works out what pgsink_write() of b[0..n) will need before it sends
 * anything (the rollup rows of points), to be used by that write if it
 * comes next; for the busy hook, with the group to be written after the
 * one in flight. b need not outlive the call. */
void pgsink_prepare(pgsink_t *s, const batch_t *b, size_t n);

/* The COPY statement for a kind, built from its table and columns
 * (records.h; static storage), or NULL if the kind is unknown. */
const char *pgsink_copy_sql(enum batch_kind kind);

#endif
