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

typedef enum transport { TR_TCP, TR_RTU } transport_t;

typedef struct param_meta {
    int32_t id;                  /* component_parameters.id */
    char component[64];
    char name[64];
    char qualified[128];         /* "component.name" */
    char units[32];
    /* The component's Modbus device (sql/migrations/0003_acquisition.sql).
     * Settings that are NULL in the database are 0 here (-1 for max_gap):
     * "use the [modbus] default of the config". */
    transport_t transport;
    char host[256];              /* TCP endpoint */
    int port;
    char serial_port[128];       /* RTU line, e.g. /dev/ttyUSB0 */
    int baud;
    char parity;                 /* 'N', 'E', 'O'; 0 = default */
    int data_bits, stop_bits;
    int unit_id;
    int dev_max_registers;       /* per FC3/FC4 request */
    int dev_max_bits;            /* per FC1/FC2 request */
    int dev_max_gap;             /* -1 = default */
    int dev_response_timeout_ms;
    char no_bridge[256];         /* "holding:16-19,input:26-29" or "" */
    regtype_t table;
    dtype_t type;
    worder_t order;
    int address;
    double scale, offset;
    double min, max, set_value;
    bool has_min, has_max, has_set;
    bool writable;
    int poll_ms;
    double deadband;             /* on-change recording, when has_deadband */
    bool has_deadband;
    int max_interval_ms;         /* with a deadband: store at least this often; 0 = never forced */
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
