/* plan.c — greedy request planning over items sorted by table and address.
 *
 * Greedy is optimal here: whether a run of consecutive (sorted) items fits
 * in one request — same table, every hole at most max_gap and free of
 * no_bridge addresses, total span within the limit, no `alone` item shared —
 * holds for every sub-run of a run that fits. Any plan must start a request
 * at the first item, and taking as many items as fit leaves a suffix that is
 * no harder to cover, so greedy's count is the minimum. */
#include "acq/plan.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_items(const void *a, const void *b, void *ctx)
{
    const plan_item_t *items = ctx;
    const plan_item_t *x = &items[*(const size_t *)a];
    const plan_item_t *y = &items[*(const size_t *)b];
    if (x->table != y->table)
        return x->table < y->table ? -1 : 1;
    if (x->address != y->address)
        return x->address < y->address ? -1 : 1;
    if (x->count != y->count)
        return x->count < y->count ? -1 : 1;
    /* stable for equal keys: keep input order */
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    return ia < ib ? -1 : ia > ib;
}

static int table_limit(const plan_limits_t *lim, regtype_t t)
{
    return (t == REG_COIL || t == REG_DISCRETE) ? lim->max_bits : lim->max_registers;
}

bool plan_excluded(const plan_limits_t *lim, regtype_t t, long first, long end)
{
    for (size_t i = 0; i < lim->n_no_bridge; i++) {
        const plan_range_t *r = &lim->no_bridge[i];
        if (r->table == t && r->first < end && (long)r->last >= first)
            return true;
    }
    return false;
}

const char *plan_item_check(const plan_item_t *it, const plan_limits_t *lim,
                            char *buf, size_t len)
{
    int max = table_limit(lim, it->table);
    if (it->count > max) {
        snprintf(buf, len, "needs %u %s, more than the device's limit of %d per request",
                 it->count, (it->table == REG_COIL || it->table == REG_DISCRETE)
                                ? "bits" : "registers", max);
        return buf;
    }
    if ((long)it->address + it->count > 65536)
        return "runs past address 65535";
    if (plan_excluded(lim, it->table, it->address, (long)it->address + it->count)) {
        snprintf(buf, len, "%s %u..%u lies in the device's no_bridge ranges",
                 regcodec_regtype_name(it->table), it->address, it->address + it->count - 1u);
        return buf;
    }
    return NULL;
}

size_t plan_build(const plan_item_t *items, size_t n, const plan_limits_t *lim,
                  size_t *order, plan_req_t *reqs)
{
    size_t nreq = 0;
    bool last_alone = false;

    for (size_t i = 0; i < n; i++)
        order[i] = i;
    /* qsort_r (glibc): device threads re-plan concurrently, so the
     * comparator's context cannot live in a global */
    qsort_r(order, n, sizeof *order, cmp_items, (void *)items);

    for (size_t k = 0; k < n; k++) {
        const plan_item_t *it = &items[order[k]];
        long end = (long)it->address + it->count;
        if (nreq > 0 && !it->alone && !last_alone) {
            plan_req_t *r = &reqs[nreq - 1];
            long rend = (long)r->start + r->count;
            long new_end = end > rend ? end : rend;
            if (r->table == it->table && (long)it->address <= rend + lim->max_gap &&
                new_end - r->start <= table_limit(lim, it->table) &&
                !plan_excluded(lim, it->table, rend, it->address)) {
                r->count = (uint16_t)(new_end - r->start);
                r->n++;
                continue;
            }
        }
        reqs[nreq++] = (plan_req_t){
            .table = it->table,
            .start = it->address,
            .count = it->count,
            .first = k,
            .n = 1,
        };
        last_alone = it->alone;
    }
    return nreq;
}

static const char *skip_space(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

static int parse_addr(const char **s, long *out)
{
    char *end;
    if (!isdigit((unsigned char)**s))
        return -1;
    long v = strtol(*s, &end, 10);
    if (v < 0 || v > 65535)
        return -1;
    *out = v;
    *s = end;
    return 0;
}

int plan_parse_ranges(const char *s, plan_range_t *out, size_t cap, size_t *n,
                      char *err, size_t errlen)
{
    *n = 0;
    s = skip_space(s);
    while (*s) {
        const char *item = s;
        size_t itemlen = strcspn(item, ",");
        const char *colon = memchr(item, ':', itemlen);
        char table[16];
        long first, last;
        plan_range_t r;

        if (!colon || (size_t)(colon - item) >= sizeof table)
            goto bad;
        size_t tl = (size_t)(colon - item);
        memcpy(table, item, tl);
        table[tl] = '\0';
        while (tl > 0 && isspace((unsigned char)table[tl - 1]))
            table[--tl] = '\0';
        if (regcodec_parse_regtype(table, &r.table) < 0)
            goto bad;
        s = skip_space(colon + 1);
        if (parse_addr(&s, &first) < 0)
            goto bad;
        last = first;
        s = skip_space(s);
        if (*s == '-') {
            s = skip_space(s + 1);
            if (parse_addr(&s, &last) < 0 || last < first)
                goto bad;
            s = skip_space(s);
        }
        if (*s != ',' && *s != '\0')
            goto bad;
        if (*n == cap) {
            snprintf(err, errlen, "more than %zu ranges", cap);
            return -1;
        }
        r.first = (uint16_t)first;
        r.last = (uint16_t)last;
        out[(*n)++] = r;
        if (*s == ',')
            s = skip_space(s + 1);
        continue;
bad:
        snprintf(err, errlen, "bad range \"%.*s\" (expected TABLE:FIRST[-LAST] with"
                 " TABLE coil, discrete, holding or input, addresses 0..65535)",
                 (int)(itemlen > 60 ? 60 : itemlen), item);
        return -1;
    }
    return 0;
}
