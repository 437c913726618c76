/* hist.h — a small fixed-size histogram of non-negative integers (e.g.
 * durations in microseconds) with percentiles.
 *
 * Log-linear buckets: values below 32 have a bucket each; above, every
 * power of two is split into 32 buckets, so a reported percentile is within
 * about 3 % of the true one. Values from 2^36 on (19 hours in µs) share the
 * last bucket. A hist_t is a plain value (4 KiB, no pointers): copy it under
 * whatever lock protects it and read the copy at leisure; hist_merge()
 * combines histograms of several sources. */
#ifndef ALDREC_HIST_H
#define ALDREC_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_MAX_BITS 36
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct hist {
    uint64_t count;
    uint64_t sum;                 /* of the values added (saturating) */
    uint64_t max;
    uint32_t bucket[HIST_BUCKETS];
} hist_t;

/* Empties h (a zero-initialised hist_t is empty too). */
void hist_reset(hist_t *h);

/* Adds one value. */
void hist_add(hist_t *h, uint64_t v);

/* Adds every value of src to dst. */
void hist_merge(hist_t *dst, const hist_t *src);

/* dst = now - then, where then is an earlier copy of the same histogram:
 * the values added in between (bucket counts and sum; max stays now's, an
 * upper bound). Buckets that went down (a reset) count as 0. */
void hist_diff(hist_t *dst, const hist_t *now, const hist_t *then);

/* The value below which a fraction q (0..1) of the values lie: the middle
 * of the bucket holding the ceil(q * count)-th smallest value, never above
 * the largest value added. 0 for an empty histogram. */
uint64_t hist_quantile(const hist_t *h, double q);

#endif
