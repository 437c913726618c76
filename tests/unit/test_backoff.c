/* test_backoff.c — common/backoff.h: the steps double up to the cap and
 * start over after a reset; each jitter stays in its range, varies, and is
 * the same for the same seed. */
#include "common/backoff.h"
#include "t.h"

static void test_steps(void)
{
    backoff_t b;
    backoff_init(&b, 500, 5000, BACKOFF_JITTER_NONE, 1);
    static const int want[] = { 500, 1000, 2000, 4000, 5000, 5000 };
    for (int i = 0; i < 6; i++)
        T_EQ_INT(backoff_next(&b), want[i]);
    backoff_reset(&b);
    T_EQ_INT(backoff_next(&b), 500);
    T_EQ_INT(b.step_ms, 1000);
    /* a step at half the cap or more goes to the cap */
    backoff_init(&b, 2500, 5000, BACKOFF_JITTER_NONE, 1);
    T_EQ_INT(backoff_next(&b), 2500);
    T_EQ_INT(backoff_next(&b), 5000);
    /* min == max: always the same */
    backoff_init(&b, 1000, 1000, BACKOFF_JITTER_NONE, 1);
    T_EQ_INT(backoff_next(&b), 1000);
    T_EQ_INT(backoff_next(&b), 1000);
    /* near INT_MAX the doubling does not overflow */
    backoff_init(&b, 1 << 29, 2147483000, BACKOFF_JITTER_NONE, 1);
    for (int i = 0; i < 5; i++)
        T_CHECK(backoff_next(&b) > 0);
    T_EQ_INT(b.step_ms, 2147483000);
}

/* Every wait of 2000 tries at step 1000 lies in [lo, hi]; both ends are
 * reached nearly, and the waits vary. */
static void check_range(enum backoff_jitter j, int lo, int hi)
{
    int min = 1 << 30, max = -1, out = 0;
    for (unsigned seed = 1; seed <= 2000; seed++) {
        backoff_t b;
        backoff_init(&b, 1000, 8000, j, seed);
        int w = backoff_next(&b);
        out += w < lo || w > hi;
        min = w < min ? w : min;
        max = w > max ? w : max;
    }
    T_EQ_INT(out, 0);
    T_CHECK(min < lo + 50 && max > hi - 50);
}

static void test_jitter(void)
{
    check_range(BACKOFF_JITTER_EQUAL, 500, 1000);
    check_range(BACKOFF_JITTER_QUARTER, 750, 1250);
    /* jitter spreads the wait, not the step */
    backoff_t b;
    backoff_init(&b, 1000, 8000, BACKOFF_JITTER_QUARTER, 7);
    backoff_next(&b);
    T_EQ_INT(b.step_ms, 2000);
    /* the same seed, the same waits */
    backoff_t x, y;
    backoff_init(&x, 200, 5000, BACKOFF_JITTER_EQUAL, 42);
    backoff_init(&y, 200, 5000, BACKOFF_JITTER_EQUAL, 42);
    int same = 0;
    for (int i = 0; i < 8; i++)
        same += backoff_next(&x) == backoff_next(&y);
    T_EQ_INT(same, 8);
}

int main(void)
{
    test_steps();
    test_jitter();
    return t_done("test_backoff");
}
