/* test_clock.c — common/clock.h: the monotonic readings agree with each
 * other and never go back; the wall clock is the system's. */
#include <time.h>

#include "common/clock.h"
#include "t.h"

int main(void)
{
    int64_t ns = clock_mono_ns(), us = clock_mono_us(), ms = clock_mono_ms();
    T_CHECK(us >= ns / 1000 && us - ns / 1000 < 1000000);   /* read within a second */
    T_CHECK(ms >= ns / 1000000 && ms - ns / 1000000 < 1000);
    int64_t prev = clock_mono_ns();
    int back = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t now = clock_mono_ns();
        back += now < prev;
        prev = now;
    }
    T_EQ_INT(back, 0);
    time_t before = time(NULL);
    int64_t real = clock_real_us();
    time_t after = time(NULL);
    T_CHECK(real / 1000000 >= (int64_t)before && real / 1000000 <= (int64_t)after);
    return t_done("test_clock");
}
