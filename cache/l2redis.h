/* l2redis.h — the metadata cache's L2: the machine's serialised parameter
 * map in Redis, shared by every process on the controller (hiredis).
 *
 * Keys (per machine, in the configured database):
 *   aldrec:MACHINE:pmap   the blob (pmap.h format; carries its version and
 *                         load time), SET with an expiry (EX ttl_s)
 *   aldrec:MACHINE:live   the version the daemon's refresher holds while it
 *                         is LISTENing to PostgreSQL, SET with a short expiry
 *                         (PX) and renewed every second; deleted as soon as a
 *                         change notification arrives, rewritten once the new
 *                         map is in Redis. "live present and equal to the
 *                         blob's version" means: the blob is current.
 *   channel aldrec:MACHINE:pmap   PUBLISHed with the new version after every
 *                         write of a changed map, for long-lived readers.
 *
 * Every wait is bounded: connect and each command time out after
 * timeout_ms (a dead or black-holed Redis costs at most that), and after a
 * failure the connection is dropped and not retried before a back-off
 * (0.5 s doubling to 5 s) has passed — calls in between fail at once.
 *
 * AUTH: the password is read from password_file (first line) at each
 * connect; it never appears in argv, the config text or a log line. A
 * password file readable by others is refused.
 *
 * Not thread-safe: one handle per thread. */
#ifndef ALDREC_L2REDIS_H
#define ALDREC_L2REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct l2redis l2redis_t;

typedef struct l2redis_opts {
    const char *host;
    int port;
    int db;                       /* SELECT db after connecting; 0 = default */
    const char *password_file;    /* NULL or "": no AUTH */
    int timeout_ms;               /* connect and per-command deadline */
} l2redis_opts_t;

/* Creates a handle (copies opts; connects on first use). Returns NULL with
 * errno ENOMEM. */
l2redis_t *l2redis_new(const l2redis_opts_t *opts);

/* Closes the connection and frees r; NULL is fine. */
void l2redis_free(l2redis_t *r);

/* True while a connection is established and its last command worked. */
bool l2redis_up(const l2redis_t *r);

/* Reads the blob and the live key of machine in one round trip.
 * Returns 0 with a malloc'd copy in *blob and *len (the caller frees it) and
 * *live_version (-1 when the live key is absent or not a number); 1 when
 * there is no blob; -1 on failure with the reason in err. */
int l2redis_get(l2redis_t *r, const char *machine, uint8_t **blob, size_t *len,
                int64_t *live_version, char *err, size_t errlen);

/* Stores blob (expiring after ttl_s) and, when publish is set, publishes
 * version on the machine's channel — one round trip. Returns 0, or -1 with
 * err. */
int l2redis_put(l2redis_t *r, const char *machine, const uint8_t *blob, size_t len,
                int64_t version, int ttl_s, bool publish, char *err, size_t errlen);

/* Sets the live key to version, expiring after ttl_ms. Returns 0 or -1. */
int l2redis_set_live(l2redis_t *r, const char *machine, int64_t version, int ttl_ms,
                     char *err, size_t errlen);

/* Deletes the live key. Returns 0 or -1. */
int l2redis_clear_live(l2redis_t *r, const char *machine, char *err, size_t errlen);

#endif
