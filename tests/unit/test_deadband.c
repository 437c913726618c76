/* test_deadband.c — on-change recording decisions (acq/deadband.h):
 * held back within the deadband of the last stored value, stored at the
 * maximum interval, and every change of quality stored. */
#include <math.h>
#include <stdlib.h>

#include "acq/deadband.h"
#include "acq/sample.h"
#include "t.h"

#define MS 1000000LL   /* ns */

static void test_deadband(void)
{
    deadband_cfg_t off = { .enabled = false };
    deadband_cfg_t db = { .enabled = true, .deadband = 0.5, .max_interval_ms = 1000 };
    deadband_state_t st = { 0 };

    T_CHECK(deadband_keep(&off, &st, Q_GOOD, true, 1.0, 0));
    T_CHECK(deadband_keep(&off, &st, Q_GOOD, true, 1.0, 1));
    T_CHECK(!st.stored);   /* no deadband: state untouched */

    /* 10 Hz polls of a flat value: stored at t=0, then every 1000 ms */
    int stored = 0;
    for (int k = 0; k <= 30; k++)
        stored += deadband_keep(&db, &st, Q_GOOD, true, 20.0, k * 100 * MS);
    T_EQ_INT(stored, 4);   /* 0, 1000, 2000, 3000 ms */
    /* within the deadband of the last STORED value: held back, even as it
     * creeps (20.3, 20.4, ...) until the drift adds up to more than 0.5 */
    T_CHECK(!deadband_keep(&db, &st, Q_GOOD, true, 20.3, 3100 * MS));
    T_CHECK(!deadband_keep(&db, &st, Q_GOOD, true, 20.5, 3200 * MS));
    T_CHECK(deadband_keep(&db, &st, Q_GOOD, true, 20.51, 3300 * MS));
    T_EQ_DBL(st.value, 20.51, 0);
    /* a step is stored at once, also downwards */
    T_CHECK(deadband_keep(&db, &st, Q_GOOD, true, 10.0, 3400 * MS));
    /* quality changes are always stored, both ways; a failing read with
     * the same quality is held like a flat value */
    T_CHECK(deadband_keep(&db, &st, Q_TIMEOUT, false, 0, 3500 * MS));
    T_CHECK(!deadband_keep(&db, &st, Q_TIMEOUT, false, 0, 3600 * MS));
    T_CHECK(deadband_keep(&db, &st, Q_COMM_ERROR, false, 0, 3700 * MS));
    T_CHECK(deadband_keep(&db, &st, Q_GOOD, true, 10.0, 3800 * MS));
    T_CHECK(deadband_keep(&db, &st, Q_OUT_OF_RANGE, true, 10.0, 3900 * MS));
    T_CHECK(deadband_keep(&db, &st, Q_OUT_OF_RANGE, true, NAN, 4000 * MS));
    T_CHECK(!deadband_keep(&db, &st, Q_OUT_OF_RANGE, true, NAN, 4100 * MS));
    T_CHECK(deadband_keep(&db, &st, Q_OUT_OF_RANGE, true, 10.0, 4200 * MS));
    /* deadband 0: every change is stored, equal values only at max interval */
    deadband_cfg_t zero = { .enabled = true, .deadband = 0, .max_interval_ms = 0 };
    deadband_state_t z = { 0 };
    T_CHECK(deadband_keep(&zero, &z, Q_GOOD, true, 1.0, 0));
    T_CHECK(!deadband_keep(&zero, &z, Q_GOOD, true, 1.0, 3600000 * MS));
    T_CHECK(deadband_keep(&zero, &z, Q_GOOD, true, 1.0000001, 3600001 * MS));
}

int main(void)
{
    test_deadband();
    return t_done("test_deadband");
}
