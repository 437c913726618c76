/* pcache.h — the parameter metadata cache: one library for aldrecd and the
 * aldrec CLI.
 *
 *   L1   the current pmap_t in this process: O(1) lookups by id and by
 *        "component.name", no allocation, never a network wait. Each
 *        entry is fresh for ttl_s after its map was read from PostgreSQL;
 *        after that it is still served (stale-while-revalidate: counted as
 *        a stale serve) while a refresh is requested.
 *   L2   Redis (l2redis.h): the machine's serialised map, shared by every
 *        process on the controller.
 *   PG   PostgreSQL: one query loads every active parameter of the
 *        machine's activated components with the metadata version
 *        (pmapdb_sql) — never one query per component.
 *   snapshot  the last good map in a local SQLite file (snapshot.h), for
 *        a start with PostgreSQL and Redis both unreachable.
 *
 * In aldrecd: pcache_load(PCACHE_PG_FIRST) at start-up, then
 * pcache_start() runs the refresher thread. It holds its own PostgreSQL
 * connection doing LISTEN aldrec_metadata (sql/migrations/0005), refreshes
 * in bulk every refresh_s and within a second of a change notification,
 * swaps the whole map (readers holding the old one keep it: maps are
 * immutable and reference-counted), writes L2 and the snapshot, and hands
 * the new map to the daemon (callback and/or change fd). Every network
 * wait has a deadline; a lookup never waits.
 *
 * In a short-lived tool (aldrec get/set): pcache_fetch() loads lazily in
 * the order L2-if-current → PostgreSQL → L2 (possibly stale) → snapshot.
 * L2 is "current" when the daemon's refresher, which is LISTENing, vouches
 * for the blob's version through the live key (l2redis.h); otherwise the
 * tool reloads from PostgreSQL in one query and refreshes L2, so no process
 * keeps using a limit changed a minute ago.
 *
 * Degraded modes are logged when they start and when they end (log.h
 * complaints), never per lookup: "PostgreSQL unreachable: serving the
 * cached map", "Redis unreachable: running on L1 + PostgreSQL", and the
 * start-up source, said once. */
#ifndef ALDREC_PCACHE_H
#define ALDREC_PCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "acq/pmap.h"

typedef struct pcache pcache_t;

typedef enum pcache_source {
    PCACHE_SRC_NONE,          /* nothing loaded */
    PCACHE_SRC_POSTGRES,
    PCACHE_SRC_REDIS,
    PCACHE_SRC_SNAPSHOT,
} pcache_source_t;

typedef enum pcache_order {
    PCACHE_PG_FIRST,          /* daemon start-up: PostgreSQL → Redis → snapshot */
    PCACHE_L2_FIRST,          /* tools: Redis if current → PostgreSQL → Redis → snapshot */
} pcache_order_t;

typedef enum pcache_result {
    PCACHE_HIT,               /* found, fresh */
    PCACHE_STALE,             /* found, older than ttl_s: served, refresh requested */
    PCACHE_MISS,              /* not in the map (or no map) */
} pcache_result_t;

/* Wall clock in µs since the Unix epoch; tests inject their own. */
typedef int64_t (*pcache_clock_fn)(void *arg);

/* Called on the refresher thread when a map with a different version (or
 * machine id, or parameter count) has replaced the current one. map is a
 * reference the callee owns (pmap_free it). Must not block. */
typedef void (*pcache_change_fn)(void *arg, pmap_t *map);

typedef struct pcache_opts {
    const char *conninfo;            /* PostgreSQL (passwords via passfile) */
    const char *listen_conninfo;     /* the refresher's LISTEN session; NULL/"": conninfo */
    const char *machine;             /* machines.name */
    const char *app_name;            /* application_name; default "aldrec-cache" */
    int pg_timeout_ms;               /* connect and query deadline; default 5000 */
    int ttl_s;                       /* entry freshness; default 300 */
    int refresh_s;                   /* bulk refresh period; default 60 */
    const char *redis_host;          /* default 127.0.0.1 */
    int redis_port;                  /* 0: no L2 */
    int redis_db;
    const char *redis_password_file; /* NULL or "": no AUTH */
    int redis_timeout_ms;            /* connect and command deadline; default 250 */
    const char *snapshot_path;       /* NULL or "": no snapshot */
    bool write_snapshot;             /* save the snapshot after loads from PostgreSQL */
    pcache_clock_fn clock;           /* NULL: CLOCK_REALTIME */
    void *clock_arg;
    pcache_change_fn on_change;      /* NULL: none */
    void *change_arg;
} pcache_opts_t;

typedef struct pcache_stats {
    uint64_t l1_hits, l1_misses, stale_serves;
    uint64_t l2_hits, l2_misses, l2_errors, l2_writes;
    uint64_t pg_loads, pg_errors;      /* bulk loads from PostgreSQL: done / failed */
    uint64_t snapshot_loads, snapshot_saves;
    uint64_t notifications;            /* NOTIFYs received for this machine */
    uint64_t changes;                  /* maps with a new version swapped in */
    double refresh_ms_last, refresh_ms_min, refresh_ms_avg, refresh_ms_max;
    int64_t version;                   /* of the current map; -1: none */
    size_t params;
    double age_s;                      /* since the current map was read from PostgreSQL */
    pcache_source_t source;            /* where the current map came from */
    bool refresher_running, listening, redis_up;
    bool pg_unreachable;               /* the refresher's last attempt failed */
    bool redis_configured;             /* false: no L2 (redis_port 0) */
    int ttl_s;                         /* entries older than this are stale */
} pcache_stats_t;

/* Fills *o from the config's [database], [recorder] and [cache] sections
 * (pointers into cfg: keep it alive until pcache_new). app_name,
 * write_snapshot, clock and on_change are left for the caller. */
void pcache_opts_from_config(pcache_opts_t *o, const aldrec_config_t *cfg);

/* Creates a cache with nothing loaded (copies everything in o). Returns
 * NULL with errno ENOMEM or EINVAL (no conninfo/machine). */
pcache_t *pcache_new(const pcache_opts_t *o);

/* Stops the refresher (if running), clears the live key it kept, frees
 * everything. The maps handed out stay valid until their holders free
 * them. NULL is fine. */
void pcache_free(pcache_t *c);

/* Loads the map in the given order, blocking at most about pg_timeout_ms +
 * 2 × redis_timeout_ms. Says once (log.h) which source was used and, when
 * it is not PostgreSQL, why. Returns the source, or PCACHE_SRC_NONE with
 * err and errno ENOENT (PostgreSQL answered: no such machine — do not fall
 * back, fix the config) or EAGAIN (no source could be used: retry later).
 * Not while the refresher runs (EBUSY). */
pcache_source_t pcache_load(pcache_t *c, pcache_order_t order, char *err, size_t errlen);

/* Starts the refresher thread (see the banner). Returns 0, or -1 with err. */
int pcache_start(pcache_t *c, char *err, size_t errlen);

/* The current map with a new reference (pmap_free it), or NULL if nothing
 * is loaded. */
pmap_t *pcache_map(pcache_t *c);

/* L1 lookup; copies the entry into *out on HIT and STALE. Never blocks,
 * never allocates. STALE and MISS request a refresh (at most one per
 * second reaches PostgreSQL). Thread-safe. */
pcache_result_t pcache_get(pcache_t *c, const char *qualified, param_meta_t *out);
pcache_result_t pcache_get_id(pcache_t *c, int32_t id, param_meta_t *out);

/* For short-lived tools (no refresher): pcache_get, loading first
 * (PCACHE_L2_FIRST) when nothing is loaded, and on MISS or STALE reloading
 * once from PostgreSQL when the map did not come from there in this
 * process (a parameter added a moment ago). May block (bounded). With the
 * refresher running it is pcache_get. MISS with err set means nothing
 * could be loaded at all. */
pcache_result_t pcache_fetch(pcache_t *c, const char *qualified, param_meta_t *out,
                             char *err, size_t errlen);

/* New freshness and refresh period (SIGHUP reload). Entries are judged by
 * the new ttl_s from the next lookup on; the refresh period from the next
 * refresh on (pcache_request_refresh() makes that now). Thread-safe. */
void pcache_set_ttl(pcache_t *c, int ttl_s, int refresh_s);

/* Asks the refresher for a bulk refresh soon (at most one per second).
 * Non-blocking; no effect without a refresher. */
void pcache_request_refresh(pcache_t *c);

/* For an event loop: an fd that becomes readable when a changed map is
 * waiting; pcache_take_change() then returns it (a reference the caller
 * owns) and clears the fd, or NULL when nothing is waiting. Only the newest
 * changed map is kept. */
int pcache_change_fd(const pcache_t *c);
pmap_t *pcache_take_change(pcache_t *c);

/* Counters snapshot. Thread-safe. */
void pcache_get_stats(pcache_t *c, pcache_stats_t *out);

/* Appends "cache_…: …" lines for `aldrec status` to buf (NUL-terminated,
 * truncated to cap). The first, cache_state, is "ok" or "degraded: …"
 * naming each degraded mode in force (PostgreSQL unreachable, Redis
 * unreachable, map from Redis or the snapshot, map stale). Returns the
 * length written. */
size_t pcache_format_stats(const pcache_stats_t *s, char *buf, size_t cap);

/* "none", "PostgreSQL", "Redis", "snapshot". */
const char *pcache_source_name(pcache_source_t s);

#endif
