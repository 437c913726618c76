/* test_clock.c — common/clock.h: the monotonic readings agree with each
 * other and never go back; the wall clock is the system's. */
#include <sys/time.h>
#include <time.h>

#include "common/clock.h"
#include "t.h"

static int64_t tv_us(const struct timeval *tv)
{
    return (int64_t)tv->tv_sec * 1000000 + tv->tv_usec;
}

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
    /* Bracketed by gettimeofday(), which reads the same clock to the
     * microsecond.  Not time(NULL): glibc serves it from the coarse clock,
     * up to a tick behind, so a reading just past a second's edge came out
     * "after" the time() read after it (CI saw it fail). */
    int outside = 0;
    for (int i = 0; i < 1000; i++) {
        struct timeval tb, ta;
        gettimeofday(&tb, NULL);
        int64_t real = clock_real_us();
        gettimeofday(&ta, NULL);
        outside += real < tv_us(&tb) || real > tv_us(&ta);
    }
    T_EQ_INT(outside, 0);
    return t_done("test_clock");
}
