/* batch.h — the unit that travels from aldrecd's main loop through the spool
 * to PostgreSQL: ready-made binary COPY data for one table plus its identity.
 *
 * The kind says which table the rows are for (records.h: its table and
 * columns, docs/ARCH.md "Record kinds"). The identity (spool_id, seq) is
 * the batch's ingest_ledger key together with the recorder id: unique for
 * ever, so a replay is detected. */
#ifndef ALDREC_BATCH_H
#define ALDREC_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/records.h"

typedef struct batch {
    enum batch_kind kind;
    int64_t spool_id;       /* the spool file's identity (ingest_ledger.spool_id) */
    int64_t seq;            /* ingest_ledger.batch_seq: > 0, unique in its spool */
    int64_t process_id;     /* 0: none (NULL in the ledger) */
    uint32_t rows;
    int64_t first_ts_us;    /* Unix-epoch µs of the first and last row */
    int64_t last_ts_us;
    const uint8_t *data;    /* binary COPY data, header and trailer included */
    size_t len;
    /* A BATCH_STEPS batch with marks_step set notes step_no as marked for
     * its process in the same spool transaction (spool_get_steps). */
    bool marks_step;
    int32_t step_no;
} batch_t;

#endif
