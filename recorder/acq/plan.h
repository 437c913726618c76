/* plan.h — group a device's parameters into the fewest Modbus read requests.
 *
 * Items are sorted by (table, address); a request grows while the next item
 * is in the same table, the hole before it is at most max_gap registers (or
 * bits) and holds no address of a no_bridge range, and the request stays
 * within max_registers (max_bits for coil and discrete tables). Overlapping
 * items share a request. An item marked `alone` gets a request of its own
 * (the poller isolates a value the device answers with an exception so that
 * its neighbours are not marked with it). Pure: no I/O, no allocation. */
#ifndef ALDREC_PLAN_H
#define ALDREC_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/regcodec.h"

typedef struct plan_item {
    regtype_t table;
    uint16_t address;
    uint16_t count;          /* registers (or bits) the value occupies, >= 1 */
    bool alone;              /* never share a request */
} plan_item_t;

/* Addresses first..last (inclusive) of one table. */
typedef struct plan_range {
    regtype_t table;
    uint16_t first, last;
} plan_range_t;

typedef struct plan_limits {
    int max_registers;       /* 1..125 per FC3/FC4 request */
    int max_bits;            /* 1..2000 per FC1/FC2 request */
    int max_gap;             /* unused registers/bits bridged, >= 0 */
    const plan_range_t *no_bridge;   /* never read, not even inside a gap; borrowed */
    size_t n_no_bridge;
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
 * never has more requests than items). Items larger than the table's limit,
 * running past address 65535 or touching a no_bridge range must have been
 * rejected by the caller (plan_item_check). Returns the number of requests,
 * which is the fewest possible under these rules (see plan.c). */
size_t plan_build(const plan_item_t *items, size_t n, const plan_limits_t *lim,
                  size_t *order, plan_req_t *reqs);

/* Why item cannot be planned under lim, or NULL when it can: wider than the
 * table's request limit, past 65535, or inside a no_bridge range. The
 * message is static or written to buf. */
const char *plan_item_check(const plan_item_t *item, const plan_limits_t *lim,
                            char *buf, size_t len);

/* True when [first, end) of table t holds an address of a no_bridge range. */
bool plan_excluded(const plan_limits_t *lim, regtype_t t, long first, long end);

/* Parses a no_bridge list: "holding:16-19,input:26-29,coil:5" (tables coil,
 * discrete, holding, input; a single address or first-last; spaces allowed
 * around items). Writes up to cap ranges to out and their number to *n.
 * Returns 0, or -1 with a message naming the bad item in err. "" is an
 * empty list. */
int plan_parse_ranges(const char *s, plan_range_t *out, size_t cap, size_t *n,
                      char *err, size_t errlen);

#endif
