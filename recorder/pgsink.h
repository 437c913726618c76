/* pgsink.h — store one batch in PostgreSQL, exactly once.
 *
 * One transaction per batch, two round trips:
 *   BEGIN; INSERT INTO ingest_ledger (recorder_id, batch_seq, ...);
 *          COPY process_data_points (...) FROM STDIN (FORMAT binary)
 *   ... binary COPY data ...; COMMIT
 * If the ledger row exists (primary-key violation) the batch was stored
 * before: the COPY never runs, ROLLBACK, DUPLICATE.
 * A batch whose COMMIT outcome is unknown (connection lost, deadline) is
 * simply written again later: the ledger turns the replay into a no-op.
 *
 * Every network wait has a deadline: the connection uses connect_timeout,
 * TCP keepalives and tcp_user_timeout, and each statement and the COPY data
 * are driven through libpq's non-blocking API with poll() bounded by
 * timeout_ms, so a black-holed network turns into PGSINK_RETRY, not a hang. */
#ifndef ALDREC_PGSINK_H
#define ALDREC_PGSINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pgsink pgsink_t;

typedef enum pgsink_result {
    PGSINK_STORED,      /* committed now */
    PGSINK_DUPLICATE,   /* the ledger already has it: stored earlier */
    PGSINK_RETRY,       /* transient: connection, timeout, server shutting down */
    PGSINK_REJECTED,    /* the data itself was refused (SQLSTATE class 22/23) */
} pgsink_result_t;

/* A batch as it travels: ready-made binary COPY data plus its identity. */
typedef struct pgsink_batch {
    int64_t seq;            /* ingest_ledger.batch_seq, > 0, per recorder */
    int64_t process_id;
    uint32_t rows;
    int64_t first_ts_us;    /* Unix-epoch µs of the first and last sample */
    int64_t last_ts_us;
    const uint8_t *data;    /* pgcopy_take() output */
    size_t len;
} pgsink_batch_t;

/* New, unconnected sink. conninfo is a libpq connection string (it is never
 * logged); timeout_ms bounds connect and every statement. Returns NULL on
 * ENOMEM. */
pgsink_t *pgsink_new(const char *conninfo, const char *recorder_id, int timeout_ms);

/* Closes and frees s; NULL is fine. */
void pgsink_free(pgsink_t *s);

/* Connects if not connected. Returns 0, or -1 with the reason in err. */
int pgsink_connect(pgsink_t *s, char *err, size_t errlen);

/* True while a connection is open (it may still turn out dead). */
bool pgsink_connected(const pgsink_t *s);

/* Drops the connection. */
void pgsink_disconnect(pgsink_t *s);

/* Stores b (connecting first if needed). On anything but STORED/DUPLICATE
 * the reason is in err; on RETRY the connection has been dropped. */
pgsink_result_t pgsink_write(pgsink_t *s, const pgsink_batch_t *b, char *err, size_t errlen);

/* Highest batch_seq in the ledger for this recorder (0 if none).
 * Returns 0, or -1 with err. */
int pgsink_last_seq(pgsink_t *s, int64_t *seq, char *err, size_t errlen);

#endif
