/* metrics.h — Prometheus text exposition (format 0.0.4), written into a
 * growing buffer.
 *
 *   # HELP aldrec_points_total Samples ...
 *   # TYPE aldrec_points_total counter
 *   aldrec_points_total{stage="polled"} 48120
 *   aldrec_poll_cycle_seconds{device="10.0.0.7:502 unit 1",quantile="0.95"} 0.0021
 *   aldrec_poll_cycle_seconds_sum{device="10.0.0.7:502 unit 1"} 12.5
 *   aldrec_poll_cycle_seconds_count{device="10.0.0.7:502 unit 1"} 6012
 *
 * Counters, gauges and summaries; a summary's quantiles (0.5, 0.95, 0.99)
 * come from a log-linear histogram (hist.h, within ~3 %), its _sum and
 * _count from the same. Label values are escaped (\\ \" \n), HELP text too
 * (\\ \n); metric and label names must match [a-zA-Z_][a-zA-Z0-9_]* (a bad
 * one is a programming error: the sample is skipped and metrics_failed()
 * says so). Values: integers print exactly, others with 17 significant
 * digits; NaN and ±Inf as Prometheus spells them.
 *
 * The caller collects its numbers from snapshots and writes them here
 * (families in order, each family's samples together): the exposition is
 * a pure rendering, never a live view of another thread's state. */
#ifndef ALDREC_METRICS_H
#define ALDREC_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/hist.h"

typedef struct metrics metrics_t;

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_SUMMARY };

typedef struct metric_label {
    const char *name;
    const char *value;
} metric_label_t;

/* An empty exposition. Returns NULL with errno ENOMEM. */
metrics_t *metrics_new(void);

/* NULL is fine. */
void metrics_free(metrics_t *m);

/* Starts family name: its HELP and TYPE lines. */
void metrics_family(metrics_t *m, const char *name, enum metric_type type, const char *help);

/* One sample "name{labels} value" (labels may be NULL with n 0). */
void metrics_sample(metrics_t *m, const char *name, const metric_label_t *labels, size_t n,
                    double value);

/* A summary's samples from h: quantiles 0.5, 0.95 and 0.99 (label
 * "quantile" appended to labels), name_sum and name_count. Values are
 * multiplied by scale (1e-6 turns µs into seconds). */
void metrics_summary(metrics_t *m, const char *name, const metric_label_t *labels, size_t n,
                     const hist_t *h, double scale);

/* The text so far (NUL-terminated, borrowed) and its length. */
const char *metrics_text(const metrics_t *m, size_t *len);

/* True when something could not be written (out of memory, bad name). */
bool metrics_failed(const metrics_t *m);

/* Appends the escaped form of a label value (or HELP text when help is
 * true) of s to out (NUL-terminated, truncated to cap). For tests and for
 * formatting labels elsewhere. Returns the length it needs. */
size_t metrics_escape(char *out, size_t cap, const char *s, bool help);

#endif
