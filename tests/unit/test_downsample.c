/* test_downsample.c — the plot's reduction (query/downsample.c): at most 4
 * points per column however many samples, the extremes of every column
 * kept (a one-sample spike survives), points in time order, the line broken
 * where data is missing or bad, and the spans reported and merged. */
#include <stdlib.h>

#include "query/downsample.h"
#include "query/qtext.h"
#include "t.h"

static void test_bound_and_spike(void)
{
    /* 10 h at 10 Hz into 1000 columns */
    int64_t t0 = 1000000000000000LL, n = 360000, dt = 100000;
    ds_t *d = ds_new(t0, t0 + n * dt, 1000, 250000);
    T_CHECK(d != NULL);
    for (int64_t i = 0; i < n; i++)
        ds_add(d, t0 + i * dt, i == 123457 ? 1e4 : (double)(i % 50), true);
    T_EQ_INT(ds_finish(d), 0);
    size_t np, ns;
    const ds_point_t *p = ds_points(d, &np);
    ds_spans(d, &ns);
    T_CHECK(np <= 4000);
    T_CHECK(np >= 1000);
    T_EQ_INT(ns, 0);
    T_EQ_INT(ds_samples(d), n);
    T_EQ_DBL(ds_max(d), 1e4, 0);
    int spike = 0, ordered = 1, moves = 0;
    for (size_t i = 0; i < np; i++) {
        spike += p[i].v == 1e4 && p[i].t == t0 + 123457 * dt;
        ordered &= i == 0 || p[i].t > p[i - 1].t;
        moves += p[i].move;
    }
    T_EQ_INT(spike, 1);
    T_CHECK(ordered);
    T_EQ_INT(moves, 0);
    ds_free(d);
}

static void test_breaks_and_spans(void)
{
    /* 100 columns of 1 s; samples every 100 ms; bad quality at 20.0..20.4 s,
     * nothing between 50 and 53 s, one bad sample inside column 70. */
    int64_t t0 = 0, s = 1000000;
    ds_t *d = ds_new(t0, 100 * s, 100, 250000);
    for (int64_t i = 0; i < 1000; i++) {
        int64_t t = i * s / 10;
        if (i > 500 && i < 530)
            continue;
        ds_add(d, t, 1.0, !(i >= 200 && i <= 204) && i != 705);
    }
    ds_finish(d);
    size_t np, ns;
    const ds_point_t *p = ds_points(d, &np);
    const ds_span_t *sp = ds_spans(d, &ns);
    T_EQ_INT(ns, 3);
    T_EQ_INT(sp[0].kind, DS_BAD_QUALITY);
    T_EQ_INT(sp[0].from, 20 * s);
    T_EQ_INT(sp[0].to, 205 * s / 10);
    T_EQ_INT(sp[1].kind, DS_NO_DATA);
    T_EQ_INT(sp[1].from, 50 * s);
    T_EQ_INT(sp[1].to, 53 * s);
    T_EQ_INT(sp[2].kind, DS_BAD_QUALITY);
    T_EQ_INT(sp[2].from, 705 * s / 10);
    /* The pen is lifted where the next good sample lies in another column
     * than the last good one (19.9 s → 20.5 s, 50 s → 53 s), not for the bad
     * sample at 70.5 s, inside column 70 (narrower than a pixel). */
    int moves = 0;
    int64_t move_at[4] = { 0 };
    for (size_t i = 0; i < np; i++)
        if (p[i].move && moves < 4)
            move_at[moves++] = p[i].t;
    T_EQ_INT(moves, 2);
    T_EQ_INT(move_at[0], 205 * s / 10);
    T_EQ_INT(move_at[1], 53 * s);
    ds_free(d);
}

static void test_merge_and_window(void)
{
    /* Bad every other sample: spans merge into one per stretch, bounded by
     * the columns; samples outside the window are ignored. */
    ds_t *d = ds_new(0, 1000, 10, 0);
    for (int64_t t = -50; t < 1100; t++)
        ds_add(d, t, (double)t, t % 2 == 0);
    ds_finish(d);
    size_t np, ns;
    ds_points(d, &np);
    ds_spans(d, &ns);
    T_EQ_INT(ds_samples(d), 1000);
    T_EQ_INT(ns, 1);
    T_CHECK(np <= 40);
    T_CHECK(ds_new(10, 10, 5, 0) == NULL);
    T_CHECK(ds_new(0, 10, 0, 0) == NULL);
    ds_free(d);
    ds_free(NULL);
}

static void test_text(void)
{
    int64_t us;
    char b[64];
    T_EQ_INT(qtext_duration_us("1s", &us), 0);
    T_EQ_INT(us, 1000000);
    T_EQ_INT(qtext_duration_us("250ms", &us), 0);
    T_EQ_INT(us, 250000);
    T_EQ_INT(qtext_duration_us("1.5m", &us), 0);
    T_EQ_INT(us, 90000000);
    T_EQ_INT(qtext_duration_us("2h", &us), 0);
    T_EQ_INT(us, 7200000000LL);
    T_EQ_INT(qtext_duration_us("0s", &us), -1);
    T_EQ_INT(qtext_duration_us("-1s", &us), -1);
    T_EQ_INT(qtext_duration_us("1", &us), -1);
    T_EQ_INT(qtext_duration_us("fast", &us), -1);
    T_EQ_INT(qtext_duration_us("1 s", &us), -1);
    T_EQ_INT(qtext_duration_us("0.1us", &us), -1);
    T_EQ_STR(qtext_ts(1763800000123456LL, 6, b, sizeof b), "2025-11-22T08:26:40.123456Z");
    T_EQ_STR(qtext_ts(-1, 6, b, sizeof b), "1969-12-31T23:59:59.999999Z");
    T_EQ_STR(qtext_num(0.1, b, sizeof b), "0.1");
    T_EQ_STR(qtext_num(3.1415927410125732, b, sizeof b), "3.1415927410125732");
    T_EQ_STR(qtext_num(199.5, b, sizeof b), "199.5");
}

int main(void)
{
    test_bound_and_spike();
    test_breaks_and_spans();
    test_merge_and_window();
    test_text();
    return t_done("test_downsample");
}
