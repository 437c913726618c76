/* downsample.c — M4 reduction per pixel column with gap spans; see
 * downsample.h. */
#include "query/downsample.h"

#include <errno.h>
#include <stdlib.h>

struct acc {
    size_t n;
    bool move;                 /* the column's first point starts a segment */
    ds_point_t first, last, lo, hi;
};

struct ds {
    int64_t t0, t1, gap_us;
    int columns;
    double col_us;             /* width of a column in µs */
    int col;                   /* column being accumulated, -1 none */
    struct acc a;
    bool break_pending;        /* no good data since the last good sample */
    bool have_prev;
    int64_t prev_t;            /* last sample, any quality */
    bool in_bad;
    int64_t bad_from;
    size_t samples, good;
    double vmin, vmax;
    ds_point_t *pts;
    size_t npts, cap_pts;
    ds_span_t *spans;
    size_t nspans, cap_spans;
};

ds_t *ds_new(int64_t t0, int64_t t1, int columns, int64_t gap_us)
{
    if (t1 <= t0 || columns < 1 || gap_us < 0) {
        errno = EINVAL;
        return NULL;
    }
    ds_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->t0 = t0;
    d->t1 = t1;
    d->columns = columns;
    d->gap_us = gap_us;
    d->col_us = (double)(t1 - t0) / columns;
    d->col = -1;
    return d;
}

void ds_free(ds_t *d)
{
    if (!d)
        return;
    free(d->pts);
    free(d->spans);
    free(d);
}

/* Room for one more element in arr (n used of *cap): returns arr or its
 * reallocation, or NULL (ENOMEM; arr is still valid). */
static void *grow(void *arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : 64;
    void *na = realloc(arr, c * size);
    if (na)
        *cap = c;
    return na;
}

static int push_point(ds_t *d, ds_point_t p)
{
    ds_point_t *np = grow(d->pts, d->npts, &d->cap_pts, sizeof *np);
    if (!np)
        return -1;
    d->pts = np;
    d->pts[d->npts++] = p;
    return 0;
}

static int add_span(ds_t *d, int64_t from, int64_t to, ds_span_kind_t kind)
{
    if (d->nspans > 0) {
        ds_span_t *last = &d->spans[d->nspans - 1];
        if (last->kind == kind && (double)(from - last->to) < d->col_us) {
            if (to > last->to)
                last->to = to;
            return 0;
        }
    }
    ds_span_t *ns = grow(d->spans, d->nspans, &d->cap_spans, sizeof *ns);
    if (!ns)
        return -1;
    d->spans = ns;
    d->spans[d->nspans++] = (ds_span_t){ .from = from, .to = to, .kind = kind };
    return 0;
}

/* Emits the column's first/lowest/highest/last samples in time order,
 * each once. */
static int flush_column(ds_t *d)
{
    struct acc *a = &d->a;
    if (a->n == 0)
        return 0;
    ds_point_t c[4] = { a->first, a->lo, a->hi, a->last };
    /* sort the four by time (insertion sort) */
    for (int i = 1; i < 4; i++)
        for (int j = i; j > 0 && c[j].t < c[j - 1].t; j--) {
            ds_point_t tmp = c[j];
            c[j] = c[j - 1];
            c[j - 1] = tmp;
        }
    for (int i = 0; i < 4; i++) {
        if (i > 0 && c[i].t == c[i - 1].t && c[i].v == c[i - 1].v)
            continue;
        c[i].move = i == 0 && a->move;
        if (push_point(d, c[i]) < 0)
            return -1;
    }
    a->n = 0;
    return 0;
}

int ds_add(ds_t *d, int64_t t, double v, bool good)
{
    if (t < d->t0 || t >= d->t1)
        return 0;
    d->samples++;
    if (d->have_prev && d->gap_us > 0 && t - d->prev_t > d->gap_us) {
        if (add_span(d, d->prev_t, t, DS_NO_DATA) < 0)
            return -1;
        d->break_pending = true;
    }
    d->have_prev = true;
    d->prev_t = t;
    if (!good) {
        d->break_pending = true;
        if (!d->in_bad) {
            d->in_bad = true;
            d->bad_from = t;
        }
        return 0;
    }
    if (d->in_bad) {
        d->in_bad = false;
        if (add_span(d, d->bad_from, t, DS_BAD_QUALITY) < 0)
            return -1;
    }
    d->good++;
    if (d->good == 1 || v < d->vmin)
        d->vmin = v;
    if (d->good == 1 || v > d->vmax)
        d->vmax = v;

    int col = (int)((double)(t - d->t0) / d->col_us);
    if (col >= d->columns)
        col = d->columns - 1;
    struct acc *a = &d->a;
    if (col != d->col) {
        if (flush_column(d) < 0)
            return -1;
        d->col = col;
        a->move = d->break_pending && d->npts > 0;
    }
    /* A break within one column is narrower than a pixel: the line goes on
     * (the span still marks it); only a break reaching into another column
     * lifts the pen. */
    d->break_pending = false;
    ds_point_t p = { .t = t, .v = v };
    if (a->n == 0) {
        a->first = a->lo = a->hi = p;
    } else {
        if (v < a->lo.v)
            a->lo = p;
        if (v > a->hi.v)
            a->hi = p;
    }
    a->last = p;
    a->n++;
    return 0;
}

int ds_finish(ds_t *d)
{
    if (d->in_bad) {
        d->in_bad = false;
        if (add_span(d, d->bad_from, d->prev_t, DS_BAD_QUALITY) < 0)
            return -1;
    }
    return flush_column(d);
}

const ds_point_t *ds_points(const ds_t *d, size_t *n)
{
    *n = d->npts;
    return d->pts;
}

const ds_span_t *ds_spans(const ds_t *d, size_t *n)
{
    *n = d->nspans;
    return d->spans;
}

size_t ds_samples(const ds_t *d)
{
    return d->samples;
}

size_t ds_good(const ds_t *d)
{
    return d->good;
}

double ds_min(const ds_t *d)
{
    return d->vmin;
}

double ds_max(const ds_t *d)
{
    return d->vmax;
}
