/* hist.c — log-linear histogram; see hist.h for the bucket layout. */
#include "common/hist.h"

#include <string.h>

/* Bucket of v: below HIST_SUB, v itself; above, (octave, top HIST_SUB_BITS
 * bits below the leading one). Contiguous: 31 -> 31, 32 -> 32, 63 -> 63,
 * 64 -> 64 (octave 6, mantissa 32). */
static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);   /* floor(log2 v) >= HIST_SUB_BITS */
    if (e >= HIST_MAX_BITS)
        return HIST_BUCKETS - 1;
    unsigned m = (unsigned)(v >> (e - HIST_SUB_BITS));  /* HIST_SUB .. 2*HIST_SUB-1 */
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + (m - HIST_SUB);
}

/* Smallest value that falls in bucket b, and the width of b. */
static void bucket_range(unsigned b, uint64_t *lo, uint64_t *width)
{
    if (b < HIST_SUB) {
        *lo = b;
        *width = 1;
        return;
    }
    unsigned e = b / HIST_SUB + HIST_SUB_BITS - 1;
    uint64_t m = HIST_SUB + b % HIST_SUB;
    *lo = m << (e - HIST_SUB_BITS);
    *width = (uint64_t)1 << (e - HIST_SUB_BITS);
}

void hist_reset(hist_t *h)
{
    memset(h, 0, sizeof *h);
}

void hist_add(hist_t *h, uint64_t v)
{
    h->count++;
    h->sum = h->sum + v < h->sum ? UINT64_MAX : h->sum + v;
    if (v > h->max)
        h->max = v;
    uint32_t *b = &h->bucket[bucket_of(v)];
    if (*b < UINT32_MAX)
        (*b)++;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    dst->count += src->count;
    dst->sum = dst->sum + src->sum < dst->sum ? UINT64_MAX : dst->sum + src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t s = (uint64_t)dst->bucket[i] + src->bucket[i];
        dst->bucket[i] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
    }
}

void hist_diff(hist_t *dst, const hist_t *now, const hist_t *then)
{
    uint64_t count = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        dst->bucket[i] = now->bucket[i] > then->bucket[i] ? now->bucket[i] - then->bucket[i] : 0;
        count += dst->bucket[i];
    }
    dst->count = count;
    dst->sum = now->sum > then->sum ? now->sum - then->sum : 0;
    dst->max = count ? now->max : 0;
}

uint64_t hist_quantile(const hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* rank of the value wanted, 1-based; buckets may have saturated, so
     * walk their own total rather than trusting count */
    uint64_t total = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        total += h->bucket[i];
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t lo, width;
            bucket_range(i, &lo, &width);
            uint64_t mid = lo + width / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
