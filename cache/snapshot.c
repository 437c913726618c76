/* snapshot.c — the local SQLite snapshot of the parameter map; see
 * snapshot.h. Opened per call: saves happen when the map changes, loads at
 * start-up only. */
#include "cache/snapshot.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 2000

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS pmap_snapshot ("
    " machine TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " loaded_at_us INTEGER NOT NULL, saved_at_us INTEGER NOT NULL, blob BLOB NOT NULL)";

static int db_error(sqlite3 *db, const char *path, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "snapshot %s: %s: %s", path, what,
             db ? sqlite3_errmsg(db) : "out of memory");
    return -1;
}

int snapshot_save(const char *path, const char *machine, const uint8_t *blob, size_t len,
                  int64_t version, int64_t loaded_at_us, int64_t saved_at_us,
                  char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        db_error(db, path, "open", err, errlen);
        goto out;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        db_error(db, path, "schema", err, errlen);
        goto out;
    }
    if (sqlite3_prepare_v2(db,
            "INSERT OR REPLACE INTO pmap_snapshot (machine, version, loaded_at_us, saved_at_us, blob)"
            " VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st, NULL) != SQLITE_OK) {
        db_error(db, path, "prepare", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, machine, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    sqlite3_bind_int64(st, 3, loaded_at_us);
    sqlite3_bind_int64(st, 4, saved_at_us);
    sqlite3_bind_blob64(st, 5, blob, len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_error(db, path, "write", err, errlen);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int snapshot_load(const char *path, const char *machine, uint8_t **blob, size_t *len,
                  int64_t *saved_at_us, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;

    *blob = NULL;
    *len = 0;
    if (access(path, F_OK) < 0 && errno == ENOENT)
        return 1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        db_error(db, path, "open", err, errlen);
        goto out;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (sqlite3_prepare_v2(db, "SELECT blob, saved_at_us FROM pmap_snapshot WHERE machine = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        db_error(db, path, "not a snapshot file", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, machine, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = 1;
        goto out;
    }
    if (step != SQLITE_ROW) {
        db_error(db, path, "read", err, errlen);
        goto out;
    }
    int n = sqlite3_column_bytes(st, 0);
    const void *data = sqlite3_column_blob(st, 0);
    *blob = malloc(n > 0 ? (size_t)n : 1);
    if (!*blob) {
        snprintf(err, errlen, "snapshot %s: out of memory", path);
        goto out;
    }
    if (n > 0)
        memcpy(*blob, data, (size_t)n);
    *len = (size_t)n;
    *saved_at_us = sqlite3_column_int64(st, 1);
    rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
