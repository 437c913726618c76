/* idle.h — which samples are kept while no process is being recorded (the
 * machine's idle history, table machine_history, migration 0010).
 *
 * A parameter's idle interval is component_parameters.idle_interval_ms, or,
 * where that is NULL, [recorder] idle_interval_ms; 0 means "not kept while
 * idle". Outside a process a sample of a parameter with an interval is kept
 * when
 *   - nothing was kept yet since the idle time began (the first sample after
 *     STOP, or after aldrecd starts), or
 *   - its quality differs from the last kept one (a read that starts or
 *     stops failing is always visible), or
 *   - for a parameter without a deadband (a sample every poll): it is the
 *     interval / poll interval'th sample since the last kept one, so that
 *     with a poll every 100 ms and an interval of 1000 ms exactly every
 *     10th poll is kept however late a response comes (a response's
 *     timestamp jitters by tens of ms on a busy machine; a rule on time
 *     alone then keeps the 9th and the 11th);
 *   - for a parameter with a deadband (samples only on change): at least
 *     interval - slack has passed since the last kept one, slack being
 *     half the poll interval (at most half the idle interval).
 * The deadband (deadband.h) has already been applied by the device thread,
 * so a parameter recorded on change keeps only changes (and its
 * max_interval_ms heartbeat) while idle too, rate-limited as above.
 *
 * idle_keep() is pure: no clock, no I/O. The table idle_policy_t holds the
 * per-parameter intervals and states; main loop only, nothing locks. */
#ifndef ALDREC_IDLE_H
#define ALDREC_IDLE_H

#include <stdbool.h>
#include <stdint.h>

#include "acq/pmap.h"
#include "acq/sample.h"

typedef struct idle_rule {
    int64_t interval_us;      /* 0: not kept while idle */
    int64_t slack_us;
    uint32_t every;           /* > 0: keep every this many samples (no deadband) */
} idle_rule_t;

typedef struct idle_state {
    bool kept;                /* something was kept since the idle time began */
    int16_t quality;
    int64_t at_us;            /* ts of the last kept sample */
    uint32_t seen;            /* samples since the last kept one */
} idle_state_t;

/* The rule of a parameter polled every poll_ms (with a deadband or not)
 * whose own idle interval is param_ms (-1: NULL, use default_ms; 0: never)
 * under the machine-wide default_ms (0: off). */
idle_rule_t idle_rule(int param_ms, int default_ms, int poll_ms, bool deadband);

/* True when s is to be kept in idle history under rule; then st is updated
 * to it. */
bool idle_keep(const idle_rule_t *rule, idle_state_t *st, const sample_t *s);

typedef struct idle_policy idle_policy_t;

/* The rules of every parameter of map under default_ms ([recorder]
 * idle_interval_ms). States of parameters that old (may be NULL) knew are
 * carried over, so a map change does not restart their interval. Returns
 * the table (idle_policy_free it), or NULL with errno ENOMEM. */
idle_policy_t *idle_policy_new(const pmap_t *map, int default_ms, const idle_policy_t *old);

/* Frees p; NULL is fine. */
void idle_policy_free(idle_policy_t *p);

/* idle_keep() for s under its parameter's rule; false for a parameter
 * the table does not know. p NULL: false. */
bool idle_policy_keep(idle_policy_t *p, const sample_t *s);

/* Forgets every state: the next sample of each parameter is kept (called
 * when a process starts, so that idle time after it begins afresh). */
void idle_policy_reset(idle_policy_t *p);

/* Parameters the table keeps while idle (interval > 0). */
size_t idle_policy_count(const idle_policy_t *p);

#endif
