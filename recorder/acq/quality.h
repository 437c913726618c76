/* quality.h — the quality code of a value (sample.h): from a failed
 * libmodbus call, or from a decoded value and its parameter's limits; and
 * the codes' names. One place for the rules, used by the poller's device
 * threads and by `aldrec get/set`. */
#ifndef ALDREC_QUALITY_H
#define ALDREC_QUALITY_H

#include <stdbool.h>
#include <stdint.h>

#include "acq/pmap.h"

/* True when errnum (libmodbus errno) is a Modbus exception the device
 * answered (EMBXILFUN .. EMBXGTAR). */
bool quality_is_exception(int errnum);

/* Quality of a failed read or write, from libmodbus' errno: 100 + N for
 * exception N, Q_TIMEOUT for ETIMEDOUT, Q_COMM_ERROR otherwise. */
int16_t quality_of_errno(int errnum);

/* Quality of value v read fine for p: Q_OUT_OF_RANGE when it is not
 * finite or outside p's [min, max] (each bound only when it is set),
 * else Q_GOOD. */
int16_t quality_of_value(const param_meta_t *p, double v);

/* Same, for callers that keep the limits apart from a param_meta_t. */
int16_t quality_of_limits(double v, bool has_min, double min, bool has_max, double max);

/* "good", "out of range", "communication error", "timeout", "stale",
 * "Modbus exception", or "unknown". */
const char *quality_name(int q);

#endif
