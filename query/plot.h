/* plot.h — `aldrec plot`: a self-contained SVG chart of a run.
 *
 * One panel per unit (parameters with the same units share a panel and its
 * y axis), a common time axis (time since the start of the process, or of
 * the step with --step), recipe steps as a band on top with a dashed line at
 * each step start, min/max limits as dashed lines in the series' colour,
 * shaded spans where a series had no good data (bad quality: red; no
 * samples: grey), and set-point events as markers (what was requested,
 * read back, by whom). Each series is reduced to at most 4 points per pixel
 * column (downsample.h) while it streams from the database, so a 10-hour
 * run at 10 Hz draws as fast as a short one and the file stays small.
 *
 * The SVG carries what a program needs to read it back (tests do):
 *   <g class="panel" data-units data-x data-y data-width data-height
 *      data-ymin data-ymax>, <g class="series" data-param data-samples
 *   data-points> holding one <path>, <g class="step" data-step data-t-us>,
 *   <line class="limit" data-param data-limit="min|max" data-value>,
 *   <rect class="gap bad|nodata" data-param>, <path class="setpoint"
 *   data-param data-t-us data-requested data-readback> (a set-point event:
 *   a triangle pointing at the requested value); the root has data-t0-us
 *   and data-t1-us (the time axis' window, Unix µs). */
#ifndef ALDREC_PLOT_H
#define ALDREC_PLOT_H

#include <libpq-fe.h>
#include <stdio.h>

#include "query/qsel.h"

typedef struct plot_opts {
    int width;                 /* SVG width in px (default 1200) */
} plot_opts_t;

/* Streams s's parameters over its window (default: the whole process or
 * step, up to its end or now) and writes the SVG to out. Returns 0, or -1
 * with err. */
int plot_run(PGconn *conn, const qsel_t *s, const plot_opts_t *o, FILE *out,
             char *err, size_t errlen);

#endif
