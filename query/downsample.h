/* downsample.h — reduce a time series to what a plot can show: min/max per
 * pixel column, keeping each column's first, lowest, highest and last
 * sample in time order (the "M4" reduction), so the drawn line covers
 * exactly the pixels the full series would — a one-sample spike included —
 * with at most 4 points per column however long the run.
 *
 * Samples arrive in time order (one pass, no buffering of the series).
 * Where the series has no good value — a sample with bad quality, or two
 * samples further apart than gap_us — the line is broken (the next point
 * has move = true) and the time is reported as a span, so a plot can shade
 * it. Breaks and spans narrower than one column are merged, which bounds
 * both lists by the number of columns. */
#ifndef ALDREC_DOWNSAMPLE_H
#define ALDREC_DOWNSAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ds ds_t;

typedef struct ds_point {
    int64_t t;       /* sample time (µs) */
    double v;
    bool move;       /* starts a new line segment */
} ds_point_t;

typedef enum ds_span_kind { DS_BAD_QUALITY, DS_NO_DATA } ds_span_kind_t;

typedef struct ds_span {
    int64_t from, to;
    ds_span_kind_t kind;
} ds_span_t;

/* A reducer for the window [t0, t1) drawn over `columns` columns; two
 * samples more than gap_us apart (gap_us > 0) break the line. Returns NULL
 * on bad arguments (EINVAL) or ENOMEM. */
ds_t *ds_new(int64_t t0, int64_t t1, int columns, int64_t gap_us);

/* Frees d; NULL is fine. */
void ds_free(ds_t *d);

/* Adds one sample (times non-decreasing); good = a value with quality 0.
 * Samples outside the window are ignored. Returns 0, or -1 (ENOMEM). */
int ds_add(ds_t *d, int64_t t, double v, bool good);

/* Ends the series (flushes the last column). Returns 0, or -1 (ENOMEM). */
int ds_finish(ds_t *d);

/* The reduced line and the spans without good data, borrowed from d. */
const ds_point_t *ds_points(const ds_t *d, size_t *n);
const ds_span_t *ds_spans(const ds_t *d, size_t *n);

/* Samples added inside the window; good ones; lowest and highest good
 * value (meaningless when there were no good samples). */
size_t ds_samples(const ds_t *d);
size_t ds_good(const ds_t *d);
double ds_min(const ds_t *d);
double ds_max(const ds_t *d);

#endif
