/* pmap.h — the machine's parameter map: every active parameter of every
 * activated component, with its Modbus endpoint and register description.
 *
 * Loaded from PostgreSQL in ONE query for the whole machine (never one per
 * component). Parameters whose definition the recorder cannot use (unknown
 * data type, a type that does not fit its table, a value running past
 * register 65535, scale 0) are kept in the map with valid = false and the
 * reason in why[], so callers can skip them with a warning naming them.
 *
 * The metadata cache (L1/L2, TTL, invalidation) builds on this module. */
#ifndef ALDREC_PMAP_H
#define ALDREC_PMAP_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "regcodec.h"

typedef struct param_meta {
    int32_t id;                  /* component_parameters.id */
    char component[64];
    char name[64];
    char qualified[128];         /* "component.name" */
    char units[32];
    char host[256];              /* Modbus endpoint of the component */
    int port;
    int unit_id;
    regtype_t table;
    dtype_t type;
    worder_t order;
    int address;
    double scale, offset;
    double min, max, set_value;
    bool has_min, has_max, has_set;
    bool writable;
    int poll_ms;
    bool valid;                  /* false: skip this parameter, see why */
    char why[160];
} param_meta_t;

typedef struct pmap pmap_t;

/* Loads machine `machine` in one round trip. Returns the map (owned by the
 * caller, pmap_free it), or NULL with a message in err: unknown machine,
 * query failure. A machine with no active parameters gives an empty map. */
pmap_t *pmap_load(PGconn *conn, const char *machine, char *err, size_t errlen);

/* Frees m; NULL is fine. */
void pmap_free(pmap_t *m);

/* machines.id of the loaded machine. */
int32_t pmap_machine_id(const pmap_t *m);

/* Number of parameters (valid or not) and the i-th one, borrowed. */
size_t pmap_count(const pmap_t *m);
const param_meta_t *pmap_at(const pmap_t *m, size_t i);

/* Parameter by "component.name", borrowed; NULL if absent. */
const param_meta_t *pmap_find(const pmap_t *m, const char *qualified);

#endif
