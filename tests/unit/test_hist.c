/* test_hist.c — histogram percentiles (common/hist.h): exact for small
 * values, within the stated relative error above, and merging. */
#include <stdlib.h>

#include "common/hist.h"
#include "t.h"

static void test_exact_small(void)
{
    hist_t h = { 0 };
    T_EQ_INT(hist_quantile(&h, 0.5), 0);
    for (uint64_t v = 1; v <= 20; v++)
        hist_add(&h, v);
    T_EQ_INT(h.count, 20);
    T_EQ_INT(h.max, 20);
    T_EQ_INT(h.sum, 210);
    T_EQ_INT(hist_quantile(&h, 0.5), 10);    /* 10th of 20 */
    T_EQ_INT(hist_quantile(&h, 0.95), 19);
    T_EQ_INT(hist_quantile(&h, 1.0), 20);
    T_EQ_INT(hist_quantile(&h, 0.0), 1);
}

static void test_relative_error(void)
{
    /* uniform 1..1,000,000: every percentile within 3.2 % of the truth */
    hist_t h = { 0 };
    for (uint64_t v = 1; v <= 1000000; v++)
        hist_add(&h, v);
    static const double qs[] = { 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999 };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double want = qs[i] * 1e6;
        double got = (double)hist_quantile(&h, qs[i]);
        T_CHECK(fabs(got - want) / want < 0.032);
    }
    /* huge values share the last bucket but max stays exact */
    hist_add(&h, UINT64_C(1) << 50);
    T_EQ_INT(h.max, (long long)(UINT64_C(1) << 50));
    /* A quantile never exceeds the largest value seen: 128 alone sits in
     * the bucket 128..131, whose middle (130) is clamped to the max. (With
     * 2^50 above, the last bucket's middle is far below it, so that case
     * cannot show the clamp.) */
    hist_t one = { 0 };
    hist_add(&one, 128);
    T_EQ_INT(hist_quantile(&one, 1.0), 128);
    T_EQ_INT(hist_quantile(&one, 0.5), 128);
}

static void test_merge(void)
{
    hist_t a = { 0 }, b = { 0 }, all = { 0 };
    srand(7);
    for (int i = 0; i < 10000; i++) {
        uint64_t v = (uint64_t)(rand() % 100000);
        hist_add(i % 3 ? &a : &b, v);
        hist_add(&all, v);
    }
    hist_merge(&a, &b);
    T_EQ_INT(a.count, all.count);
    T_EQ_INT(a.sum, all.sum);
    T_EQ_INT(a.max, all.max);
    T_EQ_INT(hist_quantile(&a, 0.99), hist_quantile(&all, 0.99));
    T_EQ_INT(memcmp(a.bucket, all.bucket, sizeof a.bucket), 0);
    hist_reset(&a);
    T_EQ_INT(a.count, 0);
    T_EQ_INT(hist_quantile(&a, 0.99), 0);
}

int main(void)
{
    test_exact_small();
    test_relative_error();
    test_merge();
    return t_done("test_hist");
}
