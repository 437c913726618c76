/* pmap.h — the machine's parameter map: every active parameter of every
 * activated component, with its Modbus endpoint and register description.
 *
 * Loaded from PostgreSQL in ONE query for the whole machine (never one per
 * component), together with the machine's metadata version
 * (sql/migrations/0005_metadata_cache.sql). Parameters whose definition the
 * recorder cannot use (unknown data type, a type that does not fit its
 * table, a value running past register 65535, scale 0) are kept in the map
 * with valid = false and the reason in why[], so callers can skip them with
 * a warning naming them.
 *
 * A map is immutable once built and reference-counted: the metadata cache
 * (pcache.h) swaps in a whole new map on refresh while other threads still
 * hold the old one (pmap_ref / pmap_free). Lookups by id and by
 * "component.name" are O(1) (open-addressing hash indexes built with the
 * map) and never allocate.
 *
 * Serialised form (pmap_encode / pmap_decode) — stored in Redis (L2) and in
 * the SQLite snapshot, so it is read back by other processes and other
 * builds and must be validated, never trusted:
 *
 *   All integers little-endian; doubles as IEEE-754 binary64 bit patterns.
 *   offset size  header (PMAP_BLOB_HEADER = 48 bytes)
 *     0     8    magic "ALDPMAP\0"
 *     8     2    format version, PMAP_BLOB_FORMAT (2); other values: rejected
 *                (a map written by an older build is a miss, not an error)
 *    10     2    flags, 0 (others rejected)
 *    12     4    parameter count N (<= PMAP_MAX_PARAMS)
 *    16     4    machines.id (i32)
 *    20     4    body length B; the blob is exactly 48 + B bytes
 *    24     8    metadata version (i64)
 *    32     8    loaded_at: when the map was read from PostgreSQL (i64, µs
 *                since the Unix epoch)
 *    40     8    FNV-1a 64 over bytes 0..39 followed by the B body bytes
 *   body
 *     str machine name, then N parameter records:
 *     i32 id, str component, str name, str units, u8 transport,
 *     str host, i32 port, str serial_port, i32 baud, u8 parity (0,'N','E','O'),
 *     i32 data_bits, i32 stop_bits, i32 unit_id, i32 dev_max_registers,
 *     i32 dev_max_bits, i32 dev_max_gap, i32 dev_response_timeout_ms,
 *     str no_bridge, u8 table, u8 type, u8 order, i32 address,
 *     f64 scale, f64 offset, f64 min, f64 max, f64 set_value,
 *     u8 flags (1 has_min, 2 has_max, 4 has_set, 8 writable, 16 has_deadband,
 *               32 valid; other bits rejected),
 *     i32 poll_ms, f64 deadband, i32 max_interval_ms,
 *     i32 stale_after_ms (>= 0; format 2),
 *     i32 idle_interval_ms (>= -1; format 3), str why
 *   str = u16 length + that many bytes, no NUL, shorter than the field it
 *   fills; "qualified" is rebuilt from component and name.
 *
 *   A reader rejects (and the caller treats as a miss) anything that does
 *   not match exactly: short or long input, bad magic/format/flags/hash,
 *   out-of-range enums or string lengths, duplicate ids or names, and a
 *   parameter marked valid that fails the loader's own validation.
 *   Changing the layout means a new format number. */
#ifndef ALDREC_PMAP_H
#define ALDREC_PMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/regcodec.h"

typedef enum transport { TR_TCP, TR_RTU } transport_t;

typedef struct param_meta {
    int32_t id;                  /* component_parameters.id */
    char component[64];
    char name[64];
    char qualified[128];         /* "component.name" */
    char units[32];
    /* The component's Modbus device (sql/migrations/0003_acquisition.sql).
     * Settings that are NULL in the database are 0 here (-1 for max_gap):
     * "use the [modbus] default of the config" (devconn_resolve). */
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
    int stale_after_ms;          /* registers unchanged this long: quality stale; 0 = never */
    int idle_interval_ms;        /* outside a process: keep one sample per this many ms;
                                  * -1 (NULL) = [recorder] idle_interval_ms, 0 = never */
    bool valid;                  /* false: skip this parameter, see why */
    char why[160];
} param_meta_t;

typedef struct pmap pmap_t;

#define PMAP_BLOB_FORMAT 3
#define PMAP_BLOB_HEADER 48
#define PMAP_MAX_PARAMS 100000

/* Parses a parameter's type, word order and register table by their names
 * in the database and checks the rest is usable: sets p->valid, or clears
 * it with the reason in p->why. The loader (cache/pmapdb.h) runs it on
 * every row. */
void pmap_validate(param_meta_t *p, const char *type, const char *order, const char *table);

/* Builds a map from copies of params[0..n) (qualified names are rebuilt).
 * Returns it with one reference, or NULL with errno ENOMEM, or EINVAL when
 * two parameters share an id or a qualified name, or n > PMAP_MAX_PARAMS. */
pmap_t *pmap_new(int32_t machine_id, const char *machine, int64_t version,
                 int64_t loaded_at_us, const param_meta_t *params, size_t n);

/* Takes another reference to m and returns m. Thread-safe. */
pmap_t *pmap_ref(pmap_t *m);

/* Drops one reference; the last one frees the map. NULL is fine.
 * Thread-safe. */
void pmap_free(pmap_t *m);

/* machines.id and machines.name of the loaded machine. */
int32_t pmap_machine_id(const pmap_t *m);
const char *pmap_machine(const pmap_t *m);

/* machine_metadata.version when the map was read (0: no version row). */
int64_t pmap_version(const pmap_t *m);

/* When the map was read from PostgreSQL, µs since the Unix epoch (kept when
 * the map travels through Redis or the snapshot). */
int64_t pmap_loaded_at(const pmap_t *m);

/* Number of parameters (valid or not) and the i-th one, borrowed. */
size_t pmap_count(const pmap_t *m);
const param_meta_t *pmap_at(const pmap_t *m, size_t i);

/* Parameter by "component.name" / by component_parameters.id, borrowed
 * (valid while the caller holds its reference); NULL if absent. O(1), no
 * allocation. */
const param_meta_t *pmap_find(const pmap_t *m, const char *qualified);
const param_meta_t *pmap_find_id(const pmap_t *m, int32_t id);

/* Serialises m (format above). Returns a malloc'd buffer the caller frees,
 * with its size in *len, or NULL with errno ENOMEM. */
uint8_t *pmap_encode(const pmap_t *m, size_t *len);

/* Parses and validates a serialised map. Returns the map (one reference),
 * or NULL with the reason in err (errno EINVAL for bad input, ENOMEM).
 * Never reads outside buf[0..len). */
pmap_t *pmap_decode(const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
