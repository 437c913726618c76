/* aldrecd.c — the recorder daemon: start-up in order, the main loop,
 * shutdown in reverse.
 *
 * One event loop on the main thread (poll(2) on CLOCK_MONOTONIC deadlines):
 * it drains the samples that the device threads (poller.h) queued into the
 * batcher (batcher.h), which appends them to the current batch while a
 * process is active and flushes it on batch_rows or flush_interval_ms into
 * the spool (durable before the flush returns); and it answers the control
 * socket (ctlsrv.h). The forwarder thread, the only place that waits on
 * PostgreSQL, sends spooled batches on. Polling itself never waits for
 * this loop. Set-point events (EVENT) and step markers (STEP) from the
 * control socket go into the spool the same way, each as its own batch,
 * answered "OK" once it is durable there.
 *
 *   device threads --queue--> batcher (pgcopy) --flush--> spool (SQLite) --forwarder--> PostgreSQL
 *   control socket (EVENT, STEP) --------------------------^
 *
 * The parameter map comes from the metadata cache (cache/pcache.h): at
 * start-up from PostgreSQL, else Redis, else the local snapshot; then its
 * refresher thread (LISTEN/NOTIFY + periodic bulk refresh) hands changed
 * maps to this loop through a change fd, and poller_update() applies them
 * (devices that did not change keep polling).
 *
 * Once a second the loop also takes a snapshot of every module's numbers
 * and hands it to ops.h: health, alerts (one log line per change), the
 * /metrics and /health texts the HTTP thread serves, sd_notify (READY=1
 * once the map is loaded and the control socket answers, WATCHDOG=1 from
 * this loop, STATUS=, STOPPING=1). STATUS and METRICS on the control
 * socket render a snapshot taken by the same function (take_snapshot()).
 *
 * Signals only set a flag. SIGTERM/SIGINT: flush the open batch to the
 * spool, give the forwarder a short bounded chance to send, exit 0; what
 * is still spooled is sent after the next start. SIGHUP: re-read the
 * config, apply what can change safely (flush settings, log level, cache
 * TTLs, health and alert thresholds; poll intervals through a map
 * refresh) and log which changed keys need a restart. The process being
 * recorded is kept in the spool, so a restart (even after kill -9, even
 * with PostgreSQL down) goes on recording it. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "acq/devconn.h"
#include "acq/pmap.h"
#include "acq/poller.h"
#include "cache/pcache.h"
#include "common/config.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "daemon/batcher.h"
#include "daemon/ctlsrv.h"
#include "ops/ops.h"
#include "ops/service.h"
#include "store/forwarder.h"
#include "store/spool.h"

#define SHUTDOWN_DRAIN_MS 2000
#define TICK_NS 1000000000LL
#define TRIM_TICKS 60                  /* malloc_trim() at most once a minute ... */
#define TRIM_MIN_FREE (256u * 1024u)   /* ... when malloc holds more than this free */

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

/* What the main loop owns. The process being recorded and the open batch
 * belong to the batcher, the control connections to ctlsrv. */
struct recorder {
    aldrec_config_t cfg;
    const char *config_path;
    int64_t started_ns, next_tick_ns;
    unsigned ticks;              /* since start */
    bool ready;                  /* READY=1 sent */
    svc_snapshot_t snap;         /* the last tick's */
    ctlsrv_t *ctl;
    ops_t *ops;                  /* health, alerts, metrics endpoint, sd_notify */
    spool_t *spool;
    forwarder_t *fwd;
    pcache_t *cache;             /* metadata cache with its refresher */
    pmap_t *map;                 /* the map the poller runs */
    poller_t *poller;
    batcher_t *batcher;
};

/* Logs each line of a multi-line message (config errors, warnings). */
static void log_lines(enum log_level level, const char *prefix, const char *text)
{
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "\n");
        log_msg(level, "%s%.*s", prefix, (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static enum spool_policy spool_policy(const aldrec_config_t *cfg)
{
    return cfg->spool_full_policy == CONFIG_DROP_NEWEST ? SPOOL_DROP_NEWEST : SPOOL_DROP_OLDEST;
}

/* ---- the snapshot every view renders -------------------------------------- */

/* The daemon's numbers now: the modules' counters (svc_collect), the
 * batcher's and the daemon's own, with the down times the last tick saw.
 * The once-a-second tick, STATUS and METRICS all render what this fills
 * in (ctlsrv_env_t's snapshot). */
static void take_snapshot(void *arg, svc_snapshot_t *s)
{
    struct recorder *r = arg;
    if (svc_collect(s, r->poller, r->fwd, r->spool, r->cache) < 0)
        log_msg(LL_WARN, "metrics: out of memory collecting device statistics");
    svc_snapshot_carry(s, &r->snap);
    snprintf(s->machine, sizeof s->machine, "%s", r->cfg.machine);
    snprintf(s->recorder_id, sizeof s->recorder_id, "%s", r->cfg.recorder_id);
    snprintf(s->spool_path, sizeof s->spool_path, "%s", r->cfg.spool_path);
    s->pid = (int)getpid();
    s->ready = r->ready;
    s->uptime_s = (double)(clock_mono_ns() - r->started_ns) / 1e9;
    batcher_stats_t bs = { 0 };
    if (r->batcher)
        batcher_get_stats(r->batcher, &bs);
    s->process_id = bs.process_id;
    s->process_rows = bs.process_rows;
    s->idle_rows = bs.idle_rows;
    s->idle_params = bs.idle_params;
    s->idle_per_s = bs.idle_per_s;
    s->batch_pending_rows = bs.pending_rows;
    s->flushed_batches = bs.flushed_batches;
    s->flushed_rows = bs.flushed_rows;
    s->flush_errors = bs.flush_errors;
    s->spool_write_failing = bs.spool_write_failing;
    s->flush_us = bs.flush_us;
    s->append_last_ms = bs.append_last_ms;
    s->append_max_ms = bs.append_max_ms;
}

/* Once a second: health, alerts, metrics, watchdog (ops.h). */
static void service_tick(struct recorder *r)
{
    svc_snapshot_t s = { 0 };
    take_snapshot(r, &s);
    svc_snapshot_clear(&r->snap);
    r->snap = s;
    ops_tick(r->ops, &r->snap);
}

/* Once a second, after service_tick(): a hole in the data that has an end
 * gets its gap record (the snapshot just taken says whether one is open). */
static void tick(struct recorder *r)
{
    if (r->snap.spool.dropping)
        batcher_close_gaps(r->batcher);
    /* Every thread frees what it allocates for a poll cycle, a batch or a
     * transaction, but malloc keeps the freed pages of its arenas (one
     * per thread) as they were touched, and over days the holes left
     * between blocks of different sizes add up (the soak saw its free
     * memory grow by megabytes an hour). Hand back every free page once
     * a minute: malloc_trim walks each arena's free lists (well under a
     * millisecond at this heap's size). */
    if (++r->ticks % TRIM_TICKS == 0 && r->snap.mem.heap_free > TRIM_MIN_FREE)
        malloc_trim(0);
}

/* ---- start-up, in the order main() runs it ---------------------------------- */

/* Returns 0, or -1 (told on stderr: exit 2). */
static int load_config(struct recorder *r)
{
    char err[512];
    if (config_load(&r->cfg, r->config_path, err, sizeof err) < 0) {
        fprintf(stderr, "aldrecd: %s\n", err);
        return -1;
    }
    log_init("aldrecd", r->cfg.log_level);
    if (config_file_warnings(r->config_path, err, sizeof err) > 0)
        log_lines(LL_WARN, "", err);
    return 0;
}

static void catch_signals(void)
{
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The control socket listens from here on; it is answered from the main
 * loop's first turn (announce_ready()). */
static int start_control(struct recorder *r)
{
    char err[512];
    r->ctl = ctlsrv_new(r->cfg.socket_path, r->cfg.socket_group, err, sizeof err);
    if (!r->ctl)
        log_msg(LL_ERROR, "control socket: %s", err);
    return r->ctl ? 0 : -1;
}

static int start_ops(struct recorder *r)
{
    r->ops = ops_new(&r->cfg);
    if (!r->ops)
        log_msg(LL_ERROR, "start-up failed: out of memory");
    return r->ops ? 0 : -1;
}

/* Opens the spool; a bad file was moved aside: say so loudly. */
static int open_spool(struct recorder *r)
{
    char err[512];
    spool_opts_t so = {
        .path = r->cfg.spool_path,
        .max_bytes = r->cfg.spool_max_bytes,
        .policy = spool_policy(&r->cfg),
    };
    spool_open_info_t info;
    r->spool = spool_open(&so, &info, err, sizeof err);
    if (!r->spool) {
        log_msg(LL_ERROR, "%s", err);
        return -1;
    }
    spool_stats_t ss;
    spool_get_stats(r->spool, &ss);
    if (info.replaced)
        log_msg(LL_ERROR, "SPOOL FILE DAMAGED: %s: %s. Moved it (with its -wal/-shm) to %s"
                " and started a fresh spool (id %016llx); batches in the old file were NOT"
                " forwarded and are kept there for inspection", r->cfg.spool_path, info.reason,
                info.moved_to, (unsigned long long)ss.spool_id);
    else if (info.created)
        log_msg(LL_INFO, "new spool %s (id %016llx)", r->cfg.spool_path,
                (unsigned long long)ss.spool_id);
    if (info.process_file_error[0])
        log_msg(LL_WARN, "ignoring %s", info.process_file_error);
    if (info.process_restored)
        log_msg(LL_INFO, "the new spool takes the process being recorded from %s.process:"
                " %s%lld", r->cfg.spool_path, info.process_id ? "process " : "none, ",
                (long long)info.process_id);
    if (ss.batches || ss.q_batches)
        log_msg(LL_INFO, "spool %s holds %llu batches (%llu rows) to forward and %llu"
                " quarantined from an earlier run", r->cfg.spool_path,
                (unsigned long long)ss.batches, (unsigned long long)ss.rows,
                (unsigned long long)ss.q_batches);
    return 0;
}

/* The process being recorded when aldrecd last stopped, as the spool
 * knows it: *known false when the spool cannot say (a fresh spool).
 * Returns 0, or -1. */
static int process_from_spool(struct recorder *r, int64_t *pid, bool *known)
{
    char err[512];
    if (spool_get_process(r->spool, pid, known, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "%s", err);
        return -1;
    }
    if (*known && *pid) {
        int32_t *steps;
        size_t nsteps;
        if (spool_get_steps(r->spool, *pid, &steps, &nsteps, err, sizeof err) < 0) {
            log_msg(LL_ERROR, "%s", err);
            return -1;
        }
        free(steps);
        log_msg(LL_INFO, "resuming process %lld, which was being recorded when aldrecd last"
                " stopped (from the spool; %zu steps marked)", (long long)*pid, nsteps);
    }
    return 0;
}

/* The forwarder starts before anything else waits: a backlog from the
 * last run goes out as soon as PostgreSQL answers. */
static int start_forwarder(struct recorder *r)
{
    char err[512];
    forwarder_opts_t fo = {
        .conninfo = r->cfg.conninfo,
        .recorder_id = r->cfg.recorder_id,
        .timeout_ms = r->cfg.connect_timeout_s * 1000,
        .drain_batches = (size_t)r->cfg.drain_batches,
        .drain_rows = (size_t)r->cfg.drain_rows,
        .drain_connections = r->cfg.drain_connections,
    };
    r->fwd = forwarder_start(&fo, r->spool, err, sizeof err);
    if (!r->fwd)
        log_msg(LL_ERROR, "start-up failed: %s", err);
    return r->fwd ? 0 : -1;
}

/* Start-up with a fresh spool file and no PATH.process beside it (the first
 * start, or both were lost; a damaged spool alone is covered by the process
 * file): the spool cannot say which process was being recorded, so
 * PostgreSQL must: a process of this recorder still marked running. Retries
 * until it answers or we are told to stop (nothing could be recorded for
 * the right process meanwhile). Returns 0 with *pid (0: none), or -1:
 * stopping, or the machine is unknown. */
static int process_from_database(struct recorder *r, int64_t *pid)
{
    complain_t down = { 0 };
    int backoff_ms = 500;

    while (!stop_requested) {
        char err[512] = "";
        int tmo_ms = r->cfg.connect_timeout_s * 1000;
        /* Every wait has a deadline: a black-holed database costs
         * connect_timeout_s per attempt, never a hang. */
        PGconn *conn = pgconn_connect(r->cfg.conninfo, "aldrecd", tmo_ms, -1, err, sizeof err);
        if (conn) {
            const char *p[2] = { r->cfg.machine, r->cfg.recorder_id };
            PGresult *res = pgconn_query(conn,
                "SELECT (SELECT p.id FROM processes p WHERE p.machine_id = m.id"
                "        AND p.recorder_id = $2 AND p.status = 'running'"
                "        ORDER BY p.id DESC LIMIT 1)"
                " FROM machines m WHERE m.name = $1", 2, p, tmo_ms, -1, err, sizeof err);
            if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
                int rows = PQntuples(res);
                if (rows == 1 && !PQgetisnull(res, 0, 0)) {
                    *pid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                    log_msg(LL_INFO, "resuming process %lld, which PostgreSQL shows"
                            " running for this recorder", (long long)*pid);
                }
                PQclear(res);
                PQfinish(conn);
                log_release(&down, LL_INFO, "PostgreSQL reachable");
                if (rows == 0) {
                    log_msg(LL_ERROR, "unknown machine \"%s\": check [recorder] machine in"
                            " the config", r->cfg.machine);
                    return -1;
                }
                return 0;
            }
            if (res)
                snprintf(err, sizeof err, "reading processes: %s", PQresultErrorMessage(res));
            PQclear(res);
            PQfinish(conn);
        }
        err[strcspn(err, "\n")] = '\0';
        log_complain(&down, LL_WARN, "new spool: asking PostgreSQL whether a process of this"
                     " recorder is running: %s; retrying", err);
        /* Start-up goes on while it keeps trying: tell systemd why. */
        char st[600];
        snprintf(st, sizeof st, "starting: waiting for PostgreSQL (%s)", err);
        ops_notify_status(st);
        ops_notify_extend(backoff_ms / 1000 + r->cfg.connect_timeout_s + 10);
        for (int waited = 0; waited < backoff_ms && !stop_requested; waited += 100)
            poll(NULL, 0, 100);
        backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
    }
    return -1;
}

/* The start-up parameter map: PostgreSQL, else Redis, else the snapshot
 * (pcache_load says which, once, and why). With none of them aldrecd runs
 * with an empty map — the control socket answers, the forwarder sends the
 * backlog — until the refresher brings the first map. Then starts the
 * refresher. Returns 0, or -1 (unknown machine, out of memory). */
static int load_map(struct recorder *r)
{
    char err[1024];
    pcache_opts_t o;
    pcache_opts_from_config(&o, &r->cfg);
    o.app_name = "aldrecd";
    o.write_snapshot = true;
    r->cache = pcache_new(&o);
    if (!r->cache) {
        log_msg(LL_ERROR, "metadata cache: %s", strerror(errno));
        return -1;
    }
    if (pcache_load(r->cache, PCACHE_PG_FIRST, err, sizeof err) == PCACHE_SRC_NONE) {
        if (errno == ENOENT) {
            log_msg(LL_ERROR, "%s: check [recorder] machine in the config", err);
            return -1;
        }
        log_msg(LL_WARN, "%s; polling starts when a parameter map arrives", err);
    }
    if (pcache_start(r->cache, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "%s", err);
        return -1;
    }
    r->map = pcache_map(r->cache);
    if (!r->map)
        r->map = pmap_new(0, r->cfg.machine, 0, 0, NULL, 0);
    return r->map ? 0 : -1;
}

/* A fresh spool: note the process PostgreSQL named (or none). */
static int note_process(struct recorder *r, int64_t pid)
{
    char err[512];
    if (spool_set_process(r->spool, pid, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "%s", err);
        return -1;
    }
    return 0;
}

/* The poller on the map, and the batcher its samples go to, recording pid
 * (0: none). */
static int start_recording(struct recorder *r, int64_t pid)
{
    poller_opts_t po = {
        .modbus = devconn_defaults_from_config(&r->cfg),
        .limits = { .max_registers = r->cfg.max_registers, .max_bits = r->cfg.max_bits,
                    .max_gap = r->cfg.max_gap },
        .reconnect_min_ms = 100, .reconnect_max_ms = r->cfg.reconnect_max_ms,
    };
    batcher_opts_t bo = {
        .spool = r->spool,
        .fwd = r->fwd,
        .batch_rows = r->cfg.batch_rows,
        .flush_interval_ms = r->cfg.flush_interval_ms,
        .policy = spool_policy(&r->cfg),
    };
    r->poller = poller_new(r->map, &po);
    r->batcher = batcher_new(&bo);
    if (!r->poller || !r->batcher) {
        log_msg(LL_ERROR, "start-up failed: out of memory");
        return -1;
    }
    if (batcher_set_idle(r->batcher, r->map, r->cfg.idle_interval_ms) < 0) {
        log_msg(LL_ERROR, "start-up failed: out of memory");
        return -1;
    }
    batcher_set_process(r->batcher, pid);
    poller_stats_t ps;
    poller_get_stats(r->poller, &ps);
    log_msg(LL_INFO, "machine %s: %zu parameters on %zu device(s), %zu requests per cycle"
            " (%zu skipped); batch %d rows / %d ms; control socket %s",
            r->cfg.machine, ps.params, ps.devices, ps.requests_per_cycle, ps.params_skipped,
            r->cfg.batch_rows, r->cfg.flush_interval_ms, r->cfg.socket_path);
    return 0;
}

/* The map is loaded and the control socket answers from the loop's first
 * turn on: READY=1. */
static void announce_ready(struct recorder *r)
{
    ctlsrv_env_t env = {
        .cfg = &r->cfg,
        .batcher = r->batcher,
        .poller = r->poller,
        .spool = r->spool,
        .fwd = r->fwd,
        .cache = r->cache,
        .map = &r->map,
        .ops = r->ops,
        .snapshot = take_snapshot,
        .arg = r,
    };
    ctlsrv_attach(r->ctl, &env);
    r->ready = true;
    service_tick(r);
    char ready[256];
    snprintf(ready, sizeof ready, "%s; %zu parameters on %zu device(s)%s",
             svc_health_name(ops_health(r->ops)->status), r->snap.poll.params,
             r->snap.poll.devices, batcher_process(r->batcher) ? ", recording" : "");
    ops_notify_ready(ready);
}

/* ---- the main loop ------------------------------------------------------------ */

/* A changed map from the refresher (NOTIFY or periodic refresh): applied
 * to the running poller. A deactivated parameter stops being polled, a new
 * one starts, a device whose parameters or limits changed restarts with
 * them (so a changed limit rules the quality of its next sample). */
static void apply_map_change(struct recorder *r)
{
    pmap_t *m = pcache_take_change(r->cache);
    if (!m)
        return;
    if (poller_update(r->poller, m) < 0) {
        log_msg(LL_ERROR, "cannot apply parameter map version %lld: %s; polling goes on with"
                " version %lld", (long long)pmap_version(m), strerror(errno),
                (long long)pmap_version(r->map));
        pmap_free(m);
        return;
    }
    bool first = pmap_count(r->map) == 0;
    pmap_free(r->map);
    r->map = m;
    if (batcher_set_idle(r->batcher, r->map, r->cfg.idle_interval_ms) < 0)
        log_msg(LL_ERROR, "cannot apply the idle policy of map version %lld: out of memory;"
                " the previous one stays", (long long)pmap_version(m));
    if (first) {
        poller_stats_t ps;
        poller_get_stats(r->poller, &ps);
        log_msg(LL_INFO, "machine %s: polling %zu parameters on %zu device(s) (%zu skipped)",
                r->cfg.machine, ps.params, ps.devices, ps.params_skipped);
    }
}

/* SIGHUP: re-read the config; apply what can change safely, name the rest. */
static void reload(struct recorder *r)
{
    aldrec_config_t nc;
    char err[4096], applied[2048], restart[1024];
    if (config_load(&nc, r->config_path, err, sizeof err) < 0) {
        for (char *p = err; *p; p++)
            if (*p == '\n')
                *p = ';';
        log_msg(LL_ERROR, "reload: %s has errors; keeping the running configuration: %s",
                r->config_path, err);
        return;
    }
    if (config_file_warnings(r->config_path, err, sizeof err) > 0)
        log_lines(LL_WARN, "", err);
    int n = config_diff_summary(&r->cfg, &nc, applied, sizeof applied, restart, sizeof restart);
    if (n == 0)
        log_msg(LL_INFO, "reload: %s unchanged; parameter map refresh requested", r->config_path);
    config_apply_reloadable(&r->cfg, &nc);
    log_set_level(r->cfg.log_level);
    batcher_set_limits(r->batcher, r->cfg.batch_rows, r->cfg.flush_interval_ms);
    if (batcher_set_idle(r->batcher, r->map, r->cfg.idle_interval_ms) < 0)
        log_msg(LL_ERROR, "reload: cannot apply [recorder] idle_interval_ms: out of memory");
    pcache_set_ttl(r->cache, r->cfg.cache_ttl_s, r->cfg.cache_refresh_s);
    ops_set_config(r->ops, &r->cfg);
    /* Poll intervals and everything else in PostgreSQL: a bulk refresh now
     * (a changed map reaches the poller like a NOTIFY would). */
    pcache_request_refresh(r->cache);
    if (applied[0])
        log_msg(LL_INFO, "reload: applied %s", applied);
    if (restart[0])
        log_msg(LL_WARN, "reload: changed but needs a restart (systemctl restart aldrecd): %s",
                restart);
}

/* Until SIGTERM/SIGINT: the samples to the batcher, due flushes, the
 * control socket, map changes, reloads, and the once-a-second tick. */
static void run(struct recorder *r)
{
    while (!stop_requested) {
        enum { FD_FORWARDER, FD_POLLER, FD_CACHE, FD_CTL };
        struct pollfd pfd[FD_CTL + CTLSRV_MAX_FDS];
        pfd[FD_FORWARDER] = (struct pollfd){ .fd = forwarder_notify_fd(r->fwd), .events = POLLIN };
        pfd[FD_POLLER] = (struct pollfd){ .fd = poller_notify_fd(r->poller), .events = POLLIN };
        pfd[FD_CACHE] = (struct pollfd){ .fd = pcache_change_fd(r->cache), .events = POLLIN };
        int64_t wake = batcher_deadline(r->batcher);
        size_t nctl = ctlsrv_pollfds(r->ctl, pfd + FD_CTL, &wake);
        int64_t now = clock_mono_ns();
        int64_t wait_ms = wake == INT64_MAX ? 1000 : (wake - now + 999999) / 1000000;
        if (wait_ms < 0)
            wait_ms = 0;
        if (wait_ms > 1000)
            wait_ms = 1000;
        int rc = poll(pfd, (nfds_t)(FD_CTL + nctl), (int)wait_ms);
        if (rc < 0 && errno != EINTR) {
            log_msg(LL_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (rc > 0) {
            if (pfd[FD_FORWARDER].revents)
                forwarder_drain_notify(r->fwd);
            if (pfd[FD_POLLER].revents)
                poller_drain(r->poller, batcher_on_sample, r->batcher);
            if (pfd[FD_CACHE].revents)
                apply_map_change(r);
            ctlsrv_handle(r->ctl, pfd + FD_CTL, nctl);
        }
        batcher_flush_due(r->batcher, clock_mono_ns());
        if (reload_requested) {
            reload_requested = 0;
            reload(r);
        }
        now = clock_mono_ns();
        if (now >= r->next_tick_ns) {
            r->next_tick_ns = now + TICK_NS;
            service_tick(r);
            tick(r);
        }
        ctlsrv_check_waiters(r->ctl, clock_mono_ns());
    }
}

/* Polling ends first, so that nothing is read that would not be stored;
 * the cycles completed until then still belong to the run. */
static void stop_recording(struct recorder *r)
{
    ops_notify_stopping();
    poller_stop(r->poller);
    poller_drain(r->poller, batcher_on_sample, r->batcher);
    batcher_stats_t bs;
    batcher_get_stats(r->batcher, &bs);
    log_msg(LL_INFO, "stopping: flushing %zu pending rows to the spool", bs.pending_rows);
    batcher_flush(r->batcher);
}

/* ---- shutdown: what start-up made, in reverse ----------------------------------- */

/* A short bounded chance to send what is spooled; the rest goes after the
 * next start. */
static void stop_forwarder(struct recorder *r)
{
    if (!r->fwd)
        return;
    forwarder_stop(r->fwd, SHUTDOWN_DRAIN_MS);
    r->fwd = NULL;
    spool_stats_t ss;
    spool_get_stats(r->spool, &ss);
    if (ss.batches)
        log_msg(LL_WARN, "exiting with %llu batches (%llu rows) in the spool; they are"
                " forwarded after the next start", (unsigned long long)ss.batches,
                (unsigned long long)ss.rows);
    else
        log_msg(LL_INFO, "all batches stored");
}

static void finalise(struct recorder *r)
{
    batcher_free(r->batcher);
    poller_free(r->poller);
    pmap_free(r->map);
    pcache_free(r->cache);
    stop_forwarder(r);
    spool_close(r->spool);
    ops_free(r->ops);
    ctlsrv_free(r->ctl);
    svc_snapshot_clear(&r->snap);
    *r = (struct recorder){ 0 };
}

/* ---- command line ------------------------------------------------------------------ */

/* --check-config: every error with file:line, exit 2; or one line, exit 0. */
static int check_config(const char *path)
{
    aldrec_config_t cfg;
    char err[8192], warn[2048];
    int bad = 0;
    if (config_load(&cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        bad = 1;
    } else if (config_check_system(&cfg, path, err, sizeof err) > 0) {
        fprintf(stderr, "%s\n", err);
        bad = 1;
    }
    if (config_file_warnings(path, warn, sizeof warn) > 0) {
        for (const char *p = warn; *p;) {
            size_t n = strcspn(p, "\n");
            fprintf(stderr, "warning: %.*s\n", (int)n, p);
            p += n + (p[n] == '\n');
        }
    }
    if (bad)
        return 2;
    printf("%s: ok: machine %s, recorder %s, %d keys set, metrics %s%s\n", path, cfg.machine,
           cfg.recorder_id, config_keys_set(&cfg),
           strcmp(cfg.metrics_listen, "off") ? "on " : "", cfg.metrics_listen);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: aldrecd --config FILE\n"
               "       aldrecd --check-config FILE\n"
               "       aldrecd --config-reference\n"
               "Records the machine's Modbus parameters into PostgreSQL while a\n"
               "process is active. Controlled with the aldrec command.\n"
               "--check-config validates FILE without starting: every error as\n"
               "FILE:LINE: message (exit 2), or one line saying it is fine (exit 0).\n"
               "--config-reference prints every configuration key (type, default,\n"
               "bounds, reloadable, description) as a Markdown table.\n");
}

enum { RUN = -1 };

/* RUN with *config_path, or the exit status (help, --check-config,
 * --config-reference, bad usage). */
static int parse_args(int argc, char **argv, const char **config_path)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", required_argument, NULL, 'C' },
        { "config-reference", no_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    *config_path = getenv("ALDREC_CONFIG");
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            *config_path = optarg;
            break;
        case 'C':
            return check_config(optarg);
        case 'R':
            if (config_write_reference(stdout) < 0) {
                perror("aldrecd: --config-reference");
                return 1;
            }
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !*config_path) {
        usage(stderr);
        return 2;
    }
    return RUN;
}

int main(int argc, char **argv)
{
    struct recorder r = { 0 };
    int64_t pid = 0;             /* the process being recorded at start-up, 0: none */
    bool known = false;          /* the spool knew it (else PostgreSQL must say) */

    int status = parse_args(argc, argv, &r.config_path);
    if (status != RUN)
        return status;
    if (load_config(&r) < 0)
        return 2;
    catch_signals();
    r.started_ns = clock_mono_ns();
    status = 1;
    if (start_control(&r) < 0)
        goto out;
    if (start_ops(&r) < 0)
        goto out;
    if (open_spool(&r) < 0)
        goto out;
    if (process_from_spool(&r, &pid, &known) < 0)
        goto out;
    if (start_forwarder(&r) < 0)
        goto out;
    if (!known && process_from_database(&r, &pid) < 0) {
        status = stop_requested ? 0 : 1;
        goto out;
    }
    if (load_map(&r) < 0)
        goto out;
    if (!known && note_process(&r, pid) < 0)
        goto out;
    if (start_recording(&r, pid) < 0)
        goto out;
    announce_ready(&r);

    run(&r);

    stop_recording(&r);
    status = 0;
out:
    finalise(&r);
    return status;
}
