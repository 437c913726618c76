/* rollup.c — a batch group's rollup rows; see rollup.h. */
#include "store/rollup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/pgcopy.h"

const char ROLLUP_COPY_SQL[] =
    "COPY process_data_rollup (process_id, parameter_id, bucket, samples, bad, first_ts, first_v,"
    " min_ts, min_v, max_ts, max_v, last_ts, last_v, bad_first, bad_last)"
    " FROM STDIN (FORMAT binary)";

struct agg {
    int64_t process_id, bucket;
    int32_t parameter_id;
    bool used, good_seen, bad_seen;
    int32_t samples, bad;
    int64_t first_ts, min_ts, max_ts, last_ts, bad_first, bad_last;
    double first_v, min_v, max_v, last_v;
};

struct table {
    struct agg *v;
    size_t cap, n;   /* cap a power of two, more than twice n */
    size_t limit;    /* the rows the batches claim: more keys than that is damage */
    bool oom;        /* damaged, or out of memory: err says which */
    int err;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static struct agg *slot(struct table *t, int64_t pid, int32_t param, int64_t bucket)
{
    uint64_t h = (uint64_t)pid * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uint32_t)param * 0xC2B2AE3D27D4EB4FULL
                 ^ (uint64_t)bucket * 0x165667B19E3779F9ULL;
    for (size_t i = (size_t)(h ^ h >> 29) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        struct agg *a = &t->v[i];
        if (!a->used) {
            *a = (struct agg){ .used = true, .process_id = pid, .parameter_id = param,
                               .bucket = bucket };
            t->n++;
            return a;
        }
        if (a->process_id == pid && a->parameter_id == param && a->bucket == bucket)
            return a;
    }
}

/* Doubles the table: a group holds far fewer keys (parameter x bucket)
 * than rows, so it starts small and grows with the keys it meets. */
static int grow(struct table *t)
{
    if (t->n >= t->limit) {   /* more keys than the batches claim rows: damaged */
        t->err = EINVAL;
        t->oom = true;
        return -1;
    }
    struct table g = { .cap = t->cap * 2, .limit = t->limit };
    g.v = calloc(g.cap, sizeof *g.v);
    if (!g.v) {
        t->err = ENOMEM;
        t->oom = true;
        return -1;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->v[i].used)
            *slot(&g, t->v[i].process_id, t->v[i].parameter_id, t->v[i].bucket) = t->v[i];
    }
    free(t->v);
    *t = g;
    return 0;
}

static void add_row(void *arg, const pgcopy_point_t *r)
{
    struct table *t = arg;
    if (t->oom)
        return;
    if (t->n >= t->cap / 2 && grow(t) < 0)
        return;
    int64_t bucket = floor_div(r->ts_us, ROLLUP_BUCKET_US) * ROLLUP_BUCKET_US;
    struct agg *a = slot(t, r->process_id, r->parameter_id, bucket);
    a->samples++;
    if (!r->has_value || r->quality != 0) {   /* what a plot shades as bad */
        if (!a->bad_seen || r->ts_us < a->bad_first)
            a->bad_first = r->ts_us;
        if (!a->bad_seen || r->ts_us > a->bad_last)
            a->bad_last = r->ts_us;
        a->bad_seen = true;
        a->bad++;
        return;
    }
    double v = r->value;
    if (!a->good_seen) {
        a->first_ts = a->min_ts = a->max_ts = a->last_ts = r->ts_us;
        a->first_v = a->min_v = a->max_v = a->last_v = v;
        a->good_seen = true;
        return;
    }
    /* Rows of one parameter come in time order within a batch, not always
     * across the batches of a group: compare times, keep the earliest of
     * equal extremes. */
    if (r->ts_us < a->first_ts)
        a->first_ts = r->ts_us, a->first_v = v;
    if (r->ts_us >= a->last_ts)
        a->last_ts = r->ts_us, a->last_v = v;
    if (v < a->min_v || (v == a->min_v && r->ts_us < a->min_ts))
        a->min_ts = r->ts_us, a->min_v = v;
    if (v > a->max_v || (v == a->max_v && r->ts_us < a->max_ts))
        a->max_ts = r->ts_us, a->max_v = v;
}

static int put_ts_or_null(pgcopy_t *p, bool has, int64_t us)
{
    return has ? pgcopy_put_ts(p, us) : pgcopy_put_null(p);
}

static int put_v_or_null(pgcopy_t *p, bool has, double v)
{
    return has ? pgcopy_put_float8(p, v) : pgcopy_put_null(p);
}

long rollup_payload(const batch_t *b, size_t n, uint8_t **out, size_t *len)
{
    size_t rows = 0;
    *out = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++)
        rows += b[i].rows;
    struct table t = { .cap = 16, .limit = rows };
    while (t.cap < 1024 && t.cap < 2 * rows + 2)
        t.cap *= 2;
    t.v = calloc(t.cap, sizeof *t.v);
    if (!t.v) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        /* A damaged batch may hold more rows than it claims: add_row
         * stops at half the table, which always has a free slot. */
        if (b[i].kind != BATCH_POINTS ||
            pgcopy_points_rows(b[i].data, b[i].len, add_row, &t) < 0 || t.oom) {
            int e = t.oom ? t.err : EINVAL;
            free(t.v);
            errno = e;
            return -1;
        }
    }
    pgcopy_t *p = pgcopy_new();
    if (!p) {
        free(t.v);
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < t.cap && rc == 0; i++) {
        const struct agg *a = &t.v[i];
        if (!a->used)
            continue;
        rc |= pgcopy_row(p, 15);
        rc |= pgcopy_put_int8(p, a->process_id);
        rc |= pgcopy_put_int4(p, a->parameter_id);
        rc |= pgcopy_put_ts(p, a->bucket);
        rc |= pgcopy_put_int4(p, a->samples);
        rc |= pgcopy_put_int4(p, a->bad);
        rc |= put_ts_or_null(p, a->good_seen, a->first_ts);
        rc |= put_v_or_null(p, a->good_seen, a->first_v);
        rc |= put_ts_or_null(p, a->good_seen, a->min_ts);
        rc |= put_v_or_null(p, a->good_seen, a->min_v);
        rc |= put_ts_or_null(p, a->good_seen, a->max_ts);
        rc |= put_v_or_null(p, a->good_seen, a->max_v);
        rc |= put_ts_or_null(p, a->good_seen, a->last_ts);
        rc |= put_v_or_null(p, a->good_seen, a->last_v);
        rc |= put_ts_or_null(p, a->bad_seen, a->bad_first);
        rc |= put_ts_or_null(p, a->bad_seen, a->bad_last);
    }
    free(t.v);
    long nrows = (long)pgcopy_rows(p);
    *out = rc == 0 ? pgcopy_take(p, len) : NULL;
    pgcopy_free(p);
    if (!*out) {
        errno = ENOMEM;
        return -1;
    }
    return nrows;
}
