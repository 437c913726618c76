/* rollup.h — the coarse copy of the process data that long views read:
 * per process, parameter and 10-second bucket, the samples' count, the bad
 * ones' count and time range, and the first, lowest, highest and last good
 * sample with their times (process_data_rollup, 0013_rollup.sql). pgsink
 * writes a group's rollup rows in the transaction that stores its points,
 * so they are stored exactly once with them. A bucket's samples may arrive
 * in several groups: each adds a row (partial aggregates; readers merge
 * them), so writing never updates a row. */
#ifndef ALDREC_ROLLUP_H
#define ALDREC_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "common/rollup.h"
#include "store/batch.h"

/* The COPY statement rollup_payload's stream is for. */
extern const char ROLLUP_COPY_SQL[];

/* The rollup rows of the POINTS batches b[0..n) as one binary COPY stream
 * (*out, *len; free it). Returns the number of rows, or -1 with errno
 * (EINVAL: a batch is not a points stream; ENOMEM). */
long rollup_payload(const batch_t *b, size_t n, uint8_t **out, size_t *len);

#endif
