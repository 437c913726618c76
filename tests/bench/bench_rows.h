/* bench_rows.h — the synthetic rows every writer benchmark uses, so that
 * ours and the psql \copy reference load exactly the same data: row i is
 * parameter i % BENCH_PARAMS, polled every 100 ms, a smooth signal. */
#ifndef ALDREC_BENCH_ROWS_H
#define ALDREC_BENCH_ROWS_H

#include <math.h>
#include <time.h>

#include "common/clock.h"
#include "acq/sample.h"

#define BENCH_PARAMS 100

static inline sample_t bench_row(long i)
{
    long poll = i / BENCH_PARAMS;
    int param = (int)(i % BENCH_PARAMS);
    return (sample_t){
        .parameter_id = 1 + param,
        .ts_us = 1763800000000000LL + poll * 100000LL,
        .value = 100.0 * sin((double)poll / 50.0 + param),
        .quality = 0,
        .has_value = true,
    };
}

#endif
