/* test_idle.c — the idle policy (daemon/idle.h): which samples outside a
 * process are kept in the machine's idle history. */
#include <stdlib.h>

#include "daemon/idle.h"
#include "t.h"

static sample_t at(int64_t ms, int16_t quality)
{
    return (sample_t){ .parameter_id = 1, .ts_us = ms * 1000, .value = 1, .has_value = true,
                       .quality = quality };
}

static void test_rules(void)
{
    /* NULL (-1): the default; 0: never; the default 0: off */
    T_EQ_INT(idle_rule(-1, 1000, 100, false).interval_us, 1000000);
    T_EQ_INT(idle_rule(2000, 1000, 100, false).interval_us, 2000000);
    T_EQ_INT(idle_rule(0, 1000, 100, false).interval_us, 0);
    T_EQ_INT(idle_rule(-1, 0, 100, false).interval_us, 0);
    T_EQ_INT(idle_rule(500, 0, 100, false).interval_us, 500000);
    /* every N-th poll without a deadband, rounded, at least 1 */
    T_EQ_INT(idle_rule(-1, 1000, 100, false).every, 10);
    T_EQ_INT(idle_rule(-1, 1000, 300, false).every, 3);
    T_EQ_INT(idle_rule(-1, 1000, 5000, false).every, 1);
    T_EQ_INT(idle_rule(-1, 1000, 100, true).every, 0);
}

static void test_keep_every_nth(void)
{
    idle_rule_t r = idle_rule(-1, 1000, 100, false);
    idle_state_t st = { 0 };
    int kept = 0, first = -1, last = -1;
    /* 10 Hz polls for 10 s, responses late by up to 90 ms (jitter): still
     * exactly every 10th poll */
    for (int k = 0; k < 100; k++) {
        sample_t s = at(k * 100 + (k * 37) % 91, 0);
        if (idle_keep(&r, &st, &s)) {
            if (first < 0)
                first = k;
            T_EQ_INT((k - first) % 10, 0);
            kept++;
            last = k;
        }
    }
    T_EQ_INT(kept, 10);
    T_EQ_INT(first, 0);
    T_EQ_INT(last, 90);
    /* a change of quality is kept at once, and restarts the count */
    sample_t bad = at(10000, 3);
    T_CHECK(idle_keep(&r, &st, &bad));
    sample_t same = at(10100, 3);
    T_CHECK(!idle_keep(&r, &st, &same));
}

static void test_keep_deadband_by_time(void)
{
    idle_rule_t r = idle_rule(-1, 1000, 100, true);
    idle_state_t st = { 0 };
    sample_t s = at(0, 0);
    T_CHECK(idle_keep(&r, &st, &s));           /* the first */
    s = at(300, 0);
    T_CHECK(!idle_keep(&r, &st, &s));          /* a change 300 ms later: too soon */
    s = at(949, 0);
    T_CHECK(!idle_keep(&r, &st, &s));
    s = at(950, 0);
    T_CHECK(idle_keep(&r, &st, &s));           /* interval - slack (50 ms) */
    s = at(5000, 0);
    T_CHECK(idle_keep(&r, &st, &s));           /* the next change, much later */
    idle_rule_t never = idle_rule(0, 1000, 100, true);
    idle_state_t st2 = { 0 };
    T_CHECK(!idle_keep(&never, &st2, &s));
}

int main(void)
{
    test_rules();
    test_keep_every_nth();
    test_keep_deadband_by_time();
    return t_done("test_idle");
}
