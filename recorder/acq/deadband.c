/* deadband.c — see deadband.h. */
#include "acq/deadband.h"

#include <math.h>

bool deadband_keep(const deadband_cfg_t *cfg, deadband_state_t *st, int16_t q,
                   bool has_value, double v, int64_t t_ns)
{
    if (!cfg->enabled)
        return true;
    bool keep = !st->stored || q != st->quality || has_value != st->has_value;
    if (!keep && has_value) {
        double d = fabs(v - st->value);
        /* NaN never compares greater: a NaN is stored when it appears (its
         * quality is "out of range") and when it goes away (quality again) */
        keep = d > cfg->deadband || (isnan(v) != isnan(st->value));
    }
    if (!keep && cfg->max_interval_ms > 0)
        keep = t_ns - st->at_ns >= (int64_t)cfg->max_interval_ms * 1000000LL;
    if (keep)
        *st = (deadband_state_t){ .stored = true, .has_value = has_value, .value = v,
                                  .quality = q, .at_ns = t_ns };
    return keep;
}
