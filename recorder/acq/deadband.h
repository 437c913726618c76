/* deadband.h — on-change recording of one parameter.
 *
 * With a deadband, a polled value is stored when
 *   - nothing was stored yet, or
 *   - its quality differs from the last stored one (a read that starts or
 *     stops failing is always visible), or
 *   - it moved by more than the deadband from the last STORED value (not the
 *     last polled one: a slow drift is stored once it adds up), or
 *   - max_interval_ms (> 0) has passed since the last stored one, so a flat
 *     signal still shows it was alive.
 * Without a deadband every poll is stored. Pure: the caller keeps the state
 * and passes the time (its cycle's scheduled CLOCK_MONOTONIC deadline, so
 * that scheduling jitter does not shift the forced stores by a cycle). */
#ifndef ALDREC_DEADBAND_H
#define ALDREC_DEADBAND_H

#include <stdbool.h>
#include <stdint.h>

typedef struct deadband_cfg {
    bool enabled;
    double deadband;          /* engineering units, >= 0 */
    int max_interval_ms;      /* 0: never forced */
} deadband_cfg_t;

typedef struct deadband_state {
    bool stored;              /* something was stored */
    bool has_value;
    double value;
    int16_t quality;
    int64_t at_ns;
} deadband_state_t;

/* True when the sample (quality q, value v when has_value) taken for the
 * cycle due at t_ns must be stored; then st is updated to it. */
bool deadband_keep(const deadband_cfg_t *cfg, deadband_state_t *st, int16_t q,
                   bool has_value, double v, int64_t t_ns);

#endif
