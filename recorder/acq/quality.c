/* quality.c — quality codes from what happened; see quality.h. */
#include "acq/quality.h"

#include <errno.h>
#include <math.h>
#include <modbus.h>

#include "acq/sample.h"

bool quality_is_exception(int errnum)
{
    return errnum >= EMBXILFUN && errnum <= EMBXGTAR;
}

int16_t quality_of_errno(int errnum)
{
    if (quality_is_exception(errnum))
        return (int16_t)(Q_EXCEPTION_BASE + (errnum - MODBUS_ENOBASE));
    if (errnum == ETIMEDOUT)
        return Q_TIMEOUT;
    return Q_COMM_ERROR;
}

int16_t quality_of_limits(double v, bool has_min, double min, bool has_max, double max)
{
    if (!isfinite(v) || (has_min && v < min) || (has_max && v > max))
        return Q_OUT_OF_RANGE;
    return Q_GOOD;
}

int16_t quality_of_value(const param_meta_t *p, double v)
{
    return quality_of_limits(v, p->has_min, p->min, p->has_max, p->max);
}

const char *quality_name(int q)
{
    switch (q) {
    case Q_GOOD:
        return "good";
    case Q_OUT_OF_RANGE:
        return "out of range";
    case Q_COMM_ERROR:
        return "communication error";
    case Q_TIMEOUT:
        return "timeout";
    case Q_STALE:
        return "stale";
    default:
        return q >= Q_EXCEPTION_BASE ? "Modbus exception" : "unknown";
    }
}
