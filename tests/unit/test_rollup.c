/* test_rollup.c — store/rollup.h: the rollup rows of a batch group worked
 * out by hand. Two batches of process 7: parameter 1 across two buckets
 * (a bad sample, a NULL one, equal extremes), parameter 2 with only bad
 * samples, and the second batch holding a sample of parameter 1 older than
 * the first batch's last (groups need not be in time order across
 * batches). The output stream is decoded here field by field. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/pgcopy.h"
#include "store/rollup.h"
#include "t.h"

#define T0 1767571200000000LL   /* 2026-01-05 00:00:00 UTC: a bucket boundary */

struct row {
    int64_t pid, bucket;
    int32_t param, samples, bad;
    bool has[10];   /* first_ts, first_v, min_ts, min_v, max_ts, max_v, last_ts, last_v, bad_first, bad_last */
    int64_t ts[10];
    double v[10];
};

static const uint8_t *p;

static uint64_t be(int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | *p++;
    return v;
}

static int32_t field_len(void) { return (int32_t)(uint32_t)be(4); }

/* Decodes the 15-field rows of out; returns how many (at most max). */
static int decode(const uint8_t *out, size_t len, struct row *r, int max)
{
    size_t off, blen;
    if (pgcopy_body(out, len, &off, &blen) < 0)
        return -1;
    p = out + off;
    const uint8_t *end = p + blen;
    int n = 0;
    while (p < end && n < max) {
        struct row *x = &r[n++];
        memset(x, 0, sizeof *x);
        if (be(2) != 15)
            return -1;
        if (field_len() != 8) return -1;
        x->pid = (int64_t)be(8);
        if (field_len() != 4) return -1;
        x->param = (int32_t)be(4);
        if (field_len() != 8) return -1;
        x->bucket = (int64_t)be(8) + 946684800000000LL;
        if (field_len() != 4) return -1;
        x->samples = (int32_t)be(4);
        if (field_len() != 4) return -1;
        x->bad = (int32_t)be(4);
        for (int f = 0; f < 10; f++) {
            int32_t l = field_len();
            if (l == -1)
                continue;
            if (l != 8)
                return -1;
            uint64_t u = be(8);
            x->has[f] = true;
            bool is_v = f < 8 && f % 2 == 1;
            if (is_v)
                memcpy(&x->v[f], &u, sizeof(double));
            else
                x->ts[f] = (int64_t)u + 946684800000000LL;
        }
    }
    return n;
}

static const struct row *find(const struct row *r, int n, int32_t param, int64_t bucket)
{
    for (int i = 0; i < n; i++)
        if (r[i].param == param && r[i].bucket == bucket)
            return &r[i];
    return NULL;
}

static batch_t points(const sample_t *s, size_t n, uint8_t **data)
{
    pgcopy_t *pc = pgcopy_new();
    for (size_t i = 0; i < n; i++)
        pgcopy_add(pc, 7, &s[i]);
    size_t len;
    *data = pgcopy_take(pc, &len);
    pgcopy_free(pc);
    return (batch_t){ .kind = BATCH_POINTS, .process_id = 7, .rows = (uint32_t)n,
                      .first_ts_us = s[0].ts_us, .last_ts_us = s[n - 1].ts_us,
                      .data = *data, .len = len };
}

#define S(param, dt_ms, v, q, has) \
    { .parameter_id = (param), .ts_us = T0 + (dt_ms) * 1000LL, .value = (v), .quality = (q), \
      .has_value = (has) }

int main(void)
{
    const sample_t a[] = {
        S(1, 0, 5.0, 0, true),        /* bucket 0: first good */
        S(1, 1000, 2.0, 0, true),     /* lowest (first of two 2.0s) */
        S(1, 2000, 9.0, 1, true),     /* bad (out of range): not the highest */
        S(1, 3000, 2.0, 0, true),     /* equal lowest, later: not taken */
        S(2, 3000, 1.0, 3, true),     /* parameter 2: bad only */
        S(1, 12000, 4.0, 0, true),    /* bucket 1 */
    };
    const sample_t b[] = {
        S(1, 9000, 8.0, 0, true),     /* bucket 0, later batch, older than 12 s: highest, last */
        S(1, 9500, 0.0, 0, false),    /* NULL value: bad */
        S(2, 4000, 1.0, 3, true),
        S(1, 19999, -1.0, 0, true),   /* bucket 1: lowest and last */
    };
    uint8_t *da, *db;
    batch_t g[2] = { points(a, 6, &da), points(b, 4, &db) };
    uint8_t *out;
    size_t len;
    T_EQ_INT(rollup_payload(g, 2, &out, &len), 3);
    struct row r[8];
    T_EQ_INT(decode(out, len, r, 8), 3);
    free(out);

    const struct row *x = find(r, 3, 1, T0);
    T_CHECK(x != NULL);
    if (x) {
        T_EQ_INT(x->pid, 7);
        T_EQ_INT(x->samples, 6);
        T_EQ_INT(x->bad, 2);
        T_EQ_INT(x->ts[0], T0);                 /* first good */
        T_EQ_DBL(x->v[1], 5.0, 0);
        T_EQ_INT(x->ts[2], T0 + 1000000);       /* lowest: the earlier 2.0 */
        T_EQ_DBL(x->v[3], 2.0, 0);
        T_EQ_INT(x->ts[4], T0 + 9000000);       /* highest: 8.0, not the bad 9.0 */
        T_EQ_DBL(x->v[5], 8.0, 0);
        T_EQ_INT(x->ts[6], T0 + 9000000);       /* last good */
        T_EQ_DBL(x->v[7], 8.0, 0);
        T_EQ_INT(x->ts[8], T0 + 2000000);       /* bad: 2 s and the NULL at 9.5 s */
        T_EQ_INT(x->ts[9], T0 + 9500000);
    }
    x = find(r, 3, 1, T0 + 10000000);
    T_CHECK(x != NULL);
    if (x) {
        T_EQ_INT(x->samples, 2);
        T_EQ_INT(x->bad, 0);
        T_EQ_DBL(x->v[1], 4.0, 0);
        T_EQ_INT(x->ts[2], T0 + 19999000);
        T_EQ_DBL(x->v[3], -1.0, 0);
        T_EQ_DBL(x->v[5], 4.0, 0);
        T_EQ_DBL(x->v[7], -1.0, 0);
        T_CHECK(!x->has[8] && !x->has[9]);
    }
    x = find(r, 3, 2, T0);
    T_CHECK(x != NULL);
    if (x) {
        T_EQ_INT(x->samples, 2);
        T_EQ_INT(x->bad, 2);
        for (int f = 0; f < 8; f++)
            T_CHECK(!x->has[f]);   /* no good sample: NULL */
        T_EQ_INT(x->ts[8], T0 + 3000000);
        T_EQ_INT(x->ts[9], T0 + 4000000);
    }

    /* Not a points stream; a damaged one. */
    batch_t bad = g[0];
    bad.kind = BATCH_GAPS;
    errno = 0;
    T_EQ_INT(rollup_payload(&bad, 1, &out, &len), -1);
    T_EQ_INT(errno, EINVAL);
    bad = g[0];
    bad.len -= 3;
    T_EQ_INT(rollup_payload(&bad, 1, &out, &len), -1);
    free(da);
    free(db);
    return t_done("test_rollup");
}
