/* sample.h — one sampled value and its quality code.
 *
 * Quality codes (stored in process_data_points.quality, smallint):
 *     0        good
 *     1        out of range: read fine, outside [min_value, max_value]
 *     2        communication error (connection refused/reset, bad frame)
 *     3        timeout: the device did not answer in time
 *     4        stale: read fine, but its registers have not changed for the
 *              parameter's stale_after_ms (a frozen device; value kept)
 *   100+N      the device answered Modbus exception N
 *              (101 illegal function, 102 illegal data address,
 *               103 illegal data value, 104 server device failure, ...)
 * A value is NULL (has_value false) whenever the read itself failed. */
#ifndef ALDREC_SAMPLE_H
#define ALDREC_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

enum quality {
    Q_GOOD = 0,
    Q_OUT_OF_RANGE = 1,
    Q_COMM_ERROR = 2,
    Q_TIMEOUT = 3,
    Q_STALE = 4,
    Q_EXCEPTION_BASE = 100,
};

typedef struct sample {
    int32_t parameter_id;
    int64_t ts_us;        /* wall clock at the response, µs since the Unix epoch */
    double value;         /* engineering value (raw * scale + offset) */
    int16_t quality;      /* enum quality */
    bool has_value;       /* false: SQL NULL */
} sample_t;

#endif
