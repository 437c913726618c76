/* pmapdb.h — the machine's parameter map (acq/pmap.h) read from
 * PostgreSQL in one statement: every active parameter of every activated
 * component with its device's settings, and the metadata version, from
 * one snapshot. Here, in the cache layer, rather than beside pmap.c, so
 * that the acquisition layer needs no libpq. */
#ifndef ALDREC_PMAPDB_H
#define ALDREC_PMAPDB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/pmap.h"

/* The single load query: $1 = machines.name. One row per parameter (or one
 * row of NULL parameter columns for a machine with none), each carrying the
 * machine id and metadata version. For callers that run it themselves
 * (the cache's refresher, with its own deadline); see pmapdb_from_result. */
const char *pmapdb_sql(void);

/* Builds a map from a PGRES_TUPLES_OK result of pmapdb_sql() for machine
 * `machine`, stamped loaded_at_us; every row is checked (pmap_validate).
 * Returns the map (one reference, owned by the caller), or NULL with a
 * message in err: no row ("unknown machine", errno ENOENT), too many
 * parameters or a duplicate id or name (EINVAL), out of memory (ENOMEM). */
pmap_t *pmapdb_from_result(const PGresult *res, const char *machine, int64_t loaded_at_us,
                           char *err, size_t errlen);

/* Loads machine `machine` in one round trip (blocking; pmapdb_from_result
 * with the wall clock). Returns the map (one reference, owned by the
 * caller, pmap_free it), or NULL with a message in err: unknown machine
 * (errno ENOENT), query failure (EIO). A machine with no active parameters
 * gives an empty map. */
pmap_t *pmapdb_load(PGconn *conn, const char *machine, char *err, size_t errlen);

#endif
