/* snapshot.h — the last good parameter map on local disk, so that a
 * controller that boots with PostgreSQL and Redis both unreachable still
 * records.
 *
 * The file is a SQLite database with one table:
 *
 *   CREATE TABLE pmap_snapshot (
 *       machine      TEXT PRIMARY KEY,   -- machines.name
 *       version      INTEGER NOT NULL,   -- metadata version of the blob
 *       loaded_at_us INTEGER NOT NULL,   -- when the map was read from PostgreSQL
 *       saved_at_us  INTEGER NOT NULL,   -- when this row was written
 *       blob         BLOB NOT NULL       -- pmap_encode() format (pmap.h)
 *   );
 *
 * A save replaces the machine's row in one transaction (rollback journal,
 * synchronous=FULL): a crash leaves the previous row or the new one, never
 * a mix. The blob is validated again by pmap_decode when read; the columns
 * beside it are for people looking at the file with sqlite3. */
#ifndef ALDREC_SNAPSHOT_H
#define ALDREC_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

/* Stores blob as machine's snapshot at path (created if missing, with its
 * directory's permissions). Returns 0, or -1 with err. */
int snapshot_save(const char *path, const char *machine, const uint8_t *blob, size_t len,
                  int64_t version, int64_t loaded_at_us, int64_t saved_at_us,
                  char *err, size_t errlen);

/* Reads machine's snapshot from path. Returns 0 with a malloc'd blob (the
 * caller frees it) and when it was saved; 1 when the file or the row does
 * not exist; -1 with err (unreadable or not a snapshot file). */
int snapshot_load(const char *path, const char *machine, uint8_t **blob, size_t *len,
                  int64_t *saved_at_us, char *err, size_t errlen);

#endif
