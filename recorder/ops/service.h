/* service.h — what an operator sees of a running aldrecd: a snapshot of
 * its numbers, the views rendered from it (/metrics, /health, STATUS), the
 * health verdict and the alerts.
 *
 * One snapshot, many views: aldrecd takes every snapshot the same way
 * (svc_collect() for the modules' counters, then its own fields). Once a
 * second it lets the tracker note how long devices and the database link
 * have been down, evaluates health and alerts, and renders /metrics and
 * /health text that the HTTP thread serves (httpd.h); STATUS and METRICS
 * on the control socket render a snapshot taken for the request, with the
 * down times of the last tick (svc_snapshot_carry()). So the views cannot
 * disagree about a number. Nothing here touches live state of another
 * thread: svc_collect() only calls the modules' *_get_stats() snapshots,
 * and everything after it is a pure function of the snapshot.
 *
 * Health (svc_health_eval) — thresholds from [health]:
 *   failing   every device down for device_down_s; the spool is dropping
 *             data (full) or above spool_failing_pct of max_bytes; a spool
 *             write failed and keeps failing; not ready (no parameter map)
 *   degraded  a device down for device_down_s; PostgreSQL out of reach for
 *             database_down_s; the spool above spool_degraded_pct; batches
 *             in quarantine; the parameter map is from the snapshot file or
 *             older than [cache] ttl_s (stale)
 *   ok        none of these
 *
 * Alerts (svc_alerts_eval) — thresholds from [alerts], 0 disables one:
 * each has a state; crossing the threshold raises it (one warning line),
 * going back past it with a margin clears it (one info line with
 * state=cleared), so a value hovering at the threshold does not flap.
 *   flush_p95       spool append p95 over the last window_s above flush_p95_ms
 *                   (clears at 80 % of it); needs 5 flushes in the window
 *   copy_p95        PostgreSQL write p95 above copy_p95_ms, the same way
 *   cache_hit       L1 hit ratio over the window below cache_hit_pct (clears
 *                   2 points above it); needs 20 lookups in the window
 *   spool_pct       spool above spool_pct of max_bytes (clears 5 points below)
 *   device_down     per device: down for device_down_s (clears when it answers)
 *   database_down   PostgreSQL out of reach for database_down_s (clears when
 *                   the link is up again) */
#ifndef ALDREC_SERVICE_H
#define ALDREC_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "acq/device.h"
#include "store/forwarder.h"
#include "common/hist.h"
#include "ops/metrics.h"
#include "cache/pcache.h"
#include "acq/poller.h"
#include "store/spool.h"
#include "store/memstat.h"

typedef struct svc_device {
    device_stats_t st;
    double down_for_s;             /* svc_track(): 0 while up */
} svc_device_t;

typedef struct svc_snapshot {
    int64_t taken_ns;              /* CLOCK_MONOTONIC */
    /* the daemon (filled by aldrecd) */
    char machine[64];              /* [recorder] machine */
    char recorder_id[64];          /* [recorder] id */
    char spool_path[1024];         /* [spool] path */
    int pid;
    bool ready;                    /* map loaded, control socket answering */
    double uptime_s;
    int64_t process_id;            /* 0: not recording */
    uint64_t process_rows;
    uint64_t idle_rows;            /* idle history kept since start (batcher) */
    size_t idle_params;            /* parameters kept while idle */
    double idle_per_s;             /* idle samples kept per s, last 10 s */
    size_t batch_pending_rows;
    uint64_t flushed_batches, flushed_rows;     /* appended to the spool */
    uint64_t flush_errors;
    bool spool_write_failing;
    hist_t flush_us;               /* spool_append() incl. fsync */
    double append_last_ms, append_max_ms;       /* the same: the latest, the slowest */
    /* acquisition (svc_collect) */
    poller_stats_t poll;
    svc_device_t *devices;         /* owned: svc_snapshot_clear() */
    size_t ndevices;
    /* store and forward (svc_collect) */
    bool have_spool, have_fwd;
    spool_stats_t spool;
    double queue_oldest_s;
    forwarder_stats_t fwd;
    double db_down_for_s;          /* svc_track(): since the link was last up */
    /* metadata cache (svc_collect) */
    bool have_cache;
    pcache_stats_t cache;
    int cache_ttl_s;
    /* the daemon's memory as malloc and SQLite count it (svc_collect) */
    memstat_t mem;
} svc_snapshot_t;

/* Fills the modules' part of s (any handle may be NULL: that part stays
 * empty). Frees what s held before. Returns 0, or -1 with errno ENOMEM
 * (the device list is then empty). */
int svc_collect(svc_snapshot_t *s, poller_t *p, forwarder_t *f, spool_t *sp, pcache_t *c);

/* Frees the device list; s is then empty. */
void svc_snapshot_clear(svc_snapshot_t *s);

/* Copies into s, taken after last, what was derived from last once it was
 * taken: the down times (devices matched by label; svc_track()) and
 * cache_ttl_s (ops_tick()), so that a view rendered between two ticks
 * shows them as the tick saw them. */
void svc_snapshot_carry(svc_snapshot_t *s, const svc_snapshot_t *last);

/* Remembers since when each device (by label) and the database link have
 * been down, and fills down_for_s / db_down_for_s of s (at s->taken_ns). */
typedef struct svc_tracker svc_tracker_t;
svc_tracker_t *svc_tracker_new(void);
void svc_tracker_free(svc_tracker_t *t);
void svc_track(svc_tracker_t *t, svc_snapshot_t *s);

/* ---- health ------------------------------------------------------------- */

enum svc_health { SVC_OK, SVC_DEGRADED, SVC_FAILING };

#define SVC_MAX_REASONS 16

typedef struct svc_health_report {
    enum svc_health status;
    size_t nreasons;
    char reasons[SVC_MAX_REASONS][256];    /* failing ones first */
} svc_health_report_t;

/* The verdict on s with the thresholds of cfg ([health], [cache] ttl_s). */
void svc_health_eval(const svc_snapshot_t *s, const aldrec_config_t *cfg,
                     svc_health_report_t *out);

/* "ok", "degraded", "failing". */
const char *svc_health_name(enum svc_health h);

/* "STATUS\n" then "- reason\n" per reason, into buf (truncated). Returns
 * the length. */
size_t svc_health_format(const svc_health_report_t *h, char *buf, size_t cap);

/* ---- alerts ------------------------------------------------------------- */

typedef struct svc_alert_event {
    const char *name;              /* "flush_p95", "device_down", ... */
    const char *subject;           /* device label, or "" */
    bool raised;                   /* false: cleared */
    double value, threshold;
    const char *unit;              /* "ms", "%", "s" */
    const char *text;              /* one sentence for the log */
} svc_alert_event_t;

typedef void (*svc_alert_fn)(void *arg, const svc_alert_event_t *ev);

typedef struct svc_alerts svc_alerts_t;

/* Returns NULL with errno ENOMEM. */
svc_alerts_t *svc_alerts_new(void);
void svc_alerts_free(svc_alerts_t *a);

/* Evaluates every alert on s (call about once a second, with snapshots in
 * time order); calls fn once for each alert raised or cleared now.
 * Returns the number of such events. */
int svc_alerts_eval(svc_alerts_t *a, const svc_snapshot_t *s, const aldrec_config_t *cfg,
                    svc_alert_fn fn, void *arg);

/* Logs an event (the svc_alert_fn aldrecd uses): a warning when raised,
 * an info line with state=cleared when cleared, with key=value fields. */
void svc_alert_log(void *arg, const svc_alert_event_t *ev);

/* Number of alerts raised now; names them ("name" or "name:subject",
 * comma-separated) in buf when buf is not NULL. */
size_t svc_alerts_active(const svc_alerts_t *a, char *buf, size_t cap);

/* ---- rendering ---------------------------------------------------------- */

/* Writes every aldrec_* metric family of s (and of h and a, which may be
 * NULL) into m. The metric list is in docs/operating.md "Metrics". */
void svc_render_metrics(const svc_snapshot_t *s, const svc_health_report_t *h,
                        const svc_alerts_t *a, metrics_t *m);

/* STATUS: what `aldrec status` prints, and what scripts and tests parse.
 *
 * One "KEY: VALUE" line per key, in the order below: KEY, ":", spaces up
 * to column 21 (at least one), VALUE, "\n". Parse a line as the key up to
 * the first ": " and the value after the spaces; devices have one line
 * each, keyed "device LABEL". Numbers are in the C locale: N an unsigned
 * integer, F a decimal with the digits shown (2 after the point for ms,
 * 1 for s). Counters count since aldrecd started unless said otherwise.
 *
 *   machine             text: [recorder] machine
 *   recorder_id         text: [recorder] id
 *   pid                 N: aldrecd's process id
 *   uptime_s            F (1 decimal): seconds since aldrecd started
 *   process             N, the process being recorded, or "none"
 *   process_rows        N: samples recorded for the current process (after
 *                       STOP: for the last one, until the next START)
 *   idle                "N params, N rows, F points/s (last 10 s)": the
 *                       machine's idle history (samples kept outside a
 *                       process, idle.h): parameters the idle policy keeps,
 *                       samples kept since start, and their rate (1 decimal)
 *   parameters          "N polled, N skipped": in the map, unusable ones skipped
 *   devices             "N (N connected)"
 *   requests_per_cycle  N: Modbus requests per poll cycle, over all devices
 *   poll_cycles         "N (N overruns)": cycles skipped because one ran late
 *   requests            "N (N failed)": Modbus requests sent
 *   samples             "N polled, N stored (deadband), N dropped": values
 *                       read, kept after the deadband, lost because the main
 *                       loop fell behind (queue full)
 *   cycle_ms            "p50 F, p99 F, max F": poll cycle duration, all devices
 *   late_ms             "p50 F, p99 F, max F": cycle start after its deadline
 *   device LABEL        per device, LABEL as in /metrics' device label:
 *                       "up|down; N params in N groups, N requests/cycle
 *                       (min N); cycles N (N overruns); requests N (N failed);
 *                       cycle_ms p50 F p95 F p99 F max F; late_ms p50 F p95 F
 *                       p99 F max F" (one line)
 *   batch_rows          "N pending": rows in the open batch
 *   spool_append_ms     "last F, max F": spool append of a batch of points,
 *                       fsync included (0.00 before the first)
 *   database_link       "STATE (for F s)": connecting|up|draining|spooling
 *                       (forwarder.h), and how long it has been so
 *   queue               "N batches, N rows, N bytes, oldest F s": waiting in
 *                       the spool; oldest 0.0 when empty
 *   drain_rate          "N rows/s (last 10 s)": rows stored per second
 *   stored              "N batches, N rows in N transactions": committed to
 *                       PostgreSQL by this aldrecd
 *   duplicates_skipped  "N batches": replays PostgreSQL already had (ledger)
 *   quarantined         "N batches, N rows": refused by PostgreSQL, kept
 *   dropped             "N batches, N rows": lost to a full spool since the
 *                       spool file was made; " (dropping now: spool full)"
 *                       appended while it drops
 *   spool               "PATH (id X, N of N bytes)": X the spool id (16 hex
 *                       digits), bytes used (queue and quarantine) of max_bytes
 *   last_error          the forwarder's last PostgreSQL error, "-" for none
 *   cache_state         "ok", or "degraded: MODE, MODE" naming each degraded
 *                       mode of the metadata cache (pcache_format_stats():
 *                       no parameter map, PostgreSQL unreachable, Redis
 *                       unreachable, map from Redis or the snapshot, stale)
 *   cache_map           "version N, N parameters, from SOURCE, read F s ago":
 *                       SOURCE PostgreSQL|Redis|snapshot|none
 *   cache_links         "PostgreSQL listening|not watched|down|connecting,
 *                       Redis up|down (last contact)"
 *   cache_l1            "N hits, N misses, N stale serves"
 *   cache_l2            "N hits, N misses, N writes, N errors"
 *   cache_refresh       "N done, N failed; ms last F, min F, avg F, max F":
 *                       bulk loads from PostgreSQL and their duration
 *   cache_changes       "N notifications, N maps swapped in"
 *   cache_snapshot      "N saves, N loads": the local snapshot file
 *   health              "ok|degraded|failing", "starting" before the first
 *                       verdict; " (REASON; REASON)" when there are reasons
 *                       (the /health lines, "failing: ..." first)
 *   alerts              "N active", then ": NAME, NAME:SUBJECT" naming them
 *   metrics             the /metrics URL, or "off (WHY)"
 *
 * Written into buf (NUL-terminated, truncated to cap) from s, h (NULL:
 * "starting"), a (NULL: none active) and metrics (the metrics line's
 * value). Returns the length. */
size_t svc_render_status(const svc_snapshot_t *s, const svc_health_report_t *h,
                         const svc_alerts_t *a, const char *metrics, char *buf, size_t cap);

#endif
