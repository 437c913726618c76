/* plan.h — group a device's parameters into the fewest Modbus read requests.
 *
 * Items are sorted by (table, address); a request grows while the next item
 * is in the same table, the hole before it is at most max_gap registers (or
 * bits), and the request stays within max_registers (max_bits for coil and
 * discrete tables). Overlapping items share a request. Pure: no I/O. */
#ifndef ALDREC_PLAN_H
#define ALDREC_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "regcodec.h"

typedef struct plan_item {
    regtype_t table;
    uint16_t address;
    uint16_t count;          /* registers (or bits) the value occupies, >= 1 */
} plan_item_t;

typedef struct plan_limits {
    int max_registers;       /* 1..125 per FC3/FC4 request */
    int max_bits;            /* 1..2000 per FC1/FC2 request */
    int max_gap;             /* unused registers/bits bridged, >= 0 */
} plan_limits_t;

typedef struct plan_req {
    regtype_t table;
    uint16_t start;          /* first register/bit read */
    uint16_t count;          /* registers/bits read */
    size_t first;            /* this request serves order[first .. first+n) */
    size_t n;
} plan_req_t;

/* Plans reads for items[0..n). Writes the item indexes sorted by table and
 * address to order[0..n) and the requests to reqs (room for n needed; a plan
 * never has more requests than items). Items larger than the table's limit
 * or running past address 65535 must have been rejected by the caller.
 * Returns the number of requests. */
size_t plan_build(const plan_item_t *items, size_t n, const plan_limits_t *lim,
                  size_t *order, plan_req_t *reqs);

#endif
