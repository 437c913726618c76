/* plan.c — greedy request planning over items sorted by table and address.
 *
 * Greedy is optimal here: with items sorted by start address, extending the
 * current request whenever the limits allow never increases the total count
 * (any plan must start a request at the first item, and taking as many items
 * as fit leaves a suffix that is no harder to cover). */
#include "plan.h"

#include <stdlib.h>

static const plan_item_t *sort_items;

static int cmp_items(const void *a, const void *b)
{
    const plan_item_t *x = &sort_items[*(const size_t *)a];
    const plan_item_t *y = &sort_items[*(const size_t *)b];
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

size_t plan_build(const plan_item_t *items, size_t n, const plan_limits_t *lim,
                  size_t *order, plan_req_t *reqs)
{
    size_t nreq = 0;

    for (size_t i = 0; i < n; i++)
        order[i] = i;
    /* qsort's comparator has no context argument; planning happens on one
     * thread at start-up and on map changes, so a file-scope pointer is fine. */
    sort_items = items;
    qsort(order, n, sizeof *order, cmp_items);
    sort_items = NULL;

    for (size_t k = 0; k < n; k++) {
        const plan_item_t *it = &items[order[k]];
        long end = (long)it->address + it->count;
        if (nreq > 0) {
            plan_req_t *r = &reqs[nreq - 1];
            long rend = (long)r->start + r->count;
            int max = (r->table == REG_COIL || r->table == REG_DISCRETE)
                          ? lim->max_bits : lim->max_registers;
            long new_end = end > rend ? end : rend;
            if (r->table == it->table && (long)it->address <= rend + lim->max_gap &&
                new_end - r->start <= max) {
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
    }
    return nreq;
}
