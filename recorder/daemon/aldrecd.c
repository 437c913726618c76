/* aldrecd.c — the recorder daemon.
 *
 * One event loop on the main thread (poll(2) on CLOCK_MONOTONIC deadlines):
 * it drains the samples that the device threads (poller.h) queued, appends
 * them to the current batch while a process is active, flushes the batch on
 * batch_rows or flush_interval_ms into the spool (durable before the flush
 * returns), and answers the control socket. The forwarder thread, the only
 * place that waits on PostgreSQL, sends spooled batches on. Polling itself
 * never waits for this loop. Set-point events (EVENT) and step markers
 * (STEP) from the control socket go into the spool the same way, each as
 * its own batch, answered "OK" once it is durable there.
 *
 *   device threads --queue--> batch (pgcopy) --flush--> spool (SQLite) --forwarder--> PostgreSQL
 *   control socket (EVENT, STEP) -----------------------^
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
 * this loop, STATUS=, STOPPING=1).
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
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/ctl.h"
#include "store/ctlrec.h"
#include "store/forwarder.h"
#include "common/log.h"
#include "ops/ops.h"
#include "cache/pcache.h"
#include "common/pgwait.h"
#include "store/pgcopy.h"
#include "acq/pmap.h"
#include "acq/poller.h"
#include "ops/service.h"
#include "store/spool.h"

#define MAX_CLIENTS 16
#define STOP_WAIT_MS 15000
#define SHUTDOWN_DRAIN_MS 2000
#define TICK_NS 1000000000LL
#define QLIST_MAX 200          /* quarantine entries in one reply */

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

struct client {
    int fd;                  /* -1: free slot */
    char in[512];
    size_t inlen;
    int64_t wait_process;    /* >0: STOP waits until the spool holds none of it */
    int64_t wait_deadline_ns;
};

struct recorder {
    aldrec_config_t cfg;
    const char *config_path;
    ops_t *ops;                  /* health, alerts, metrics endpoint, sd_notify */
    bool ready;                  /* READY=1 sent */
    svc_snapshot_t snap;         /* the latest, for ops and METRICS */
    hist_t flush_us;             /* spool_append() of a points batch */
    uint64_t flushed_batches, flushed_rows, flush_errors;
    pcache_t *cache;             /* metadata cache with its refresher */
    pmap_t *map;                 /* the map the poller runs */
    poller_t *poller;
    spool_t *spool;
    forwarder_t *fwd;
    int listen_fd;
    struct client clients[MAX_CLIENTS];
    /* current batch */
    pgcopy_t *enc;
    int64_t process_id;          /* 0: not recording */
    uint64_t process_rows;       /* samples of the current process */
    int64_t first_ts, last_ts;
    int64_t flush_deadline_ns;
    int64_t started_ns;
    int64_t next_tick_ns;
    /* dropping (spool full): logged when it starts and when it ends */
    bool dropping;
    uint64_t drop_points, drop_batches;
    double append_last_ms, append_max_ms;     /* spool_append(), fsync included */
    complain_t spool_write;
    /* set-point events and step markers: one row per batch */
    pgcopy_t *rec;
};

/* Start and end of an episode of dropping, from what an append reported. */
static void note_drops(struct recorder *r, const spool_append_result_t *res)
{
    if (res->dropped_batches) {
        if (!r->dropping) {
            spool_stats_t ss;
            spool_get_stats(r->spool, &ss);
            log_msg(LL_ERROR, "spool full (%llu of max_bytes %lld bytes): dropping %s"
                    " batches until PostgreSQL takes data again; every dropped point is"
                    " counted and a gap record (data_gaps) will say which",
                    (unsigned long long)(ss.bytes + ss.q_bytes), (long long)ss.max_bytes,
                    r->cfg.spool_full_policy == CONFIG_DROP_OLDEST ? "the oldest" : "new");
            r->dropping = true;
        }
        r->drop_points += res->dropped_points;
        r->drop_batches += res->dropped_batches;
    } else if (r->dropping && res->gaps_closed) {
        log_msg(LL_WARN, "spool has room again: %llu points in %llu batches were dropped;"
                " %u gap record(s) queued for PostgreSQL", (unsigned long long)r->drop_points,
                (unsigned long long)r->drop_batches, res->gaps_closed);
        r->dropping = false;
        r->drop_points = r->drop_batches = 0;
    }
}

static void flush_batch(struct recorder *r)
{
    size_t rows = pgcopy_rows(r->enc);
    if (rows == 0)
        return;
    r->flush_deadline_ns = INT64_MAX;
    size_t len;
    uint8_t *data = pgcopy_take(r->enc, &len);
    if (!data) {
        log_msg(LL_ERROR, "out of memory encoding a batch of %zu rows; rows lost", rows);
        pgcopy_reset(r->enc);
        return;
    }
    batch_t b = {
        .kind = BATCH_POINTS,
        .process_id = r->process_id,
        .rows = (uint32_t)rows,
        .first_ts_us = r->first_ts,
        .last_ts_us = r->last_ts,
        .data = data,
        .len = len,
    };
    spool_append_result_t res;
    char err[512];
    int64_t t0 = poller_mono_ns();
    int rc = spool_append(r->spool, &b, &res, err, sizeof err);
    double ms = (double)(poller_mono_ns() - t0) / 1e6;
    r->append_last_ms = ms;
    if (ms > r->append_max_ms)
        r->append_max_ms = ms;
    hist_add(&r->flush_us, (uint64_t)(ms * 1000.0));
    if (rc < 0) {
        r->flush_errors++;
    } else {
        r->flushed_batches++;
        r->flushed_rows += rows;
    }
    free(data);
    if (rc < 0)
        log_complain(&r->spool_write, LL_ERROR, "cannot write to the spool: %s; the rows are"
                     " counted as dropped and a gap record follows", err);
    else
        log_release(&r->spool_write, LL_INFO, "spool writable again");
    note_drops(r, &res);
    if (rc == 0 && res.stored)
        forwarder_wake(r->fwd);
}

static void on_sample(void *arg, const sample_t *s)
{
    struct recorder *r = arg;
    if (r->process_id == 0)
        return;
    if (pgcopy_rows(r->enc) == 0) {
        r->first_ts = s->ts_us;
        r->flush_deadline_ns = poller_mono_ns() + (int64_t)r->cfg.flush_interval_ms * 1000000LL;
    }
    if (pgcopy_add(r->enc, r->process_id, s) < 0) {
        log_msg(LL_ERROR, "out of memory adding a sample of parameter %d", s->parameter_id);
        return;
    }
    r->last_ts = s->ts_us;
    r->process_rows++;
    if (pgcopy_rows(r->enc) >= (size_t)r->cfg.batch_rows)
        flush_batch(r);
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    *c = (struct client){ .fd = -1 };
}

static void client_reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void client_reply(struct client *c, const char *fmt, ...)
{
    char buf[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    /* Replies are small and the peer is a local CLI that is reading: a
     * short write just truncates the answer, it never blocks the loop. */
    ssize_t w = send(c->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    client_close(c);
}

static void reply_status(struct recorder *r, struct client *c)
{
    poller_stats_t ps;
    forwarder_stats_t fs;
    char devices[8192], cache[2048] = "", ops[2048] = "";
    spool_stats_t ss;
    pcache_stats_t cs;
    pcache_get_stats(r->cache, &cs);
    pcache_format_stats(&cs, cache, sizeof cache);
    ops_status_lines(r->ops, ops, sizeof ops);
    poller_get_stats(r->poller, &ps);
    poller_format_devices(r->poller, devices, sizeof devices);
    forwarder_get_stats(r->fwd, &fs);
    spool_get_stats(r->spool, &ss);
    double up = (double)(poller_mono_ns() - r->started_ns) / 1e9;
    char proc[64];
    if (r->process_id)
        snprintf(proc, sizeof proc, "%lld", (long long)r->process_id);
    else
        snprintf(proc, sizeof proc, "none");
    double oldest = ss.oldest_spooled_us ? (double)(poller_wall_us() - ss.oldest_spooled_us) / 1e6
                                         : 0.0;

    client_reply(c,
                 "OK\n"
                 "machine:            %s\n"
                 "recorder_id:        %s\n"
                 "pid:                %d\n"
                 "uptime_s:           %.1f\n"
                 "process:            %s\n"
                 "process_rows:       %llu\n"
                 "parameters:         %zu polled, %zu skipped\n"
                 "devices:            %zu (%zu connected)\n"
                 "requests_per_cycle: %zu\n"
                 "poll_cycles:        %llu (%llu overruns)\n"
                 "requests:           %llu (%llu failed)\n"
                 "samples:            %llu polled, %llu stored (deadband), %llu dropped\n"
                 "cycle_ms:           p50 %.2f, p99 %.2f, max %.2f\n"
                 "late_ms:            p50 %.2f, p99 %.2f, max %.2f\n"
                 "%s"
                 "batch_rows:         %zu pending\n"
                 "spool_append_ms:    last %.2f, max %.2f\n"
                 "database_link:      %s (for %.1f s)\n"
                 "queue:              %llu batches, %llu rows, %llu bytes, oldest %.1f s\n"
                 "drain_rate:         %.0f rows/s (last 10 s)\n"
                 "stored:             %llu batches, %llu rows in %llu transactions\n"
                 "duplicates_skipped: %llu batches\n"
                 "quarantined:        %llu batches, %llu rows\n"
                 "dropped:            %llu batches, %llu rows%s\n"
                 "spool:              %s (id %016llx, %llu of %lld bytes)\n"
                 "last_error:         %s\n"
                 "%s%s",
                 r->cfg.machine, r->cfg.recorder_id, (int)getpid(), up, proc,
                 (unsigned long long)r->process_rows, ps.params, ps.params_skipped,
                 ps.devices, ps.devices_up, ps.requests_per_cycle,
                 (unsigned long long)ps.cycles, (unsigned long long)ps.overruns,
                 (unsigned long long)ps.requests, (unsigned long long)ps.request_errors,
                 (unsigned long long)ps.samples_polled, (unsigned long long)ps.samples_stored,
                 (unsigned long long)ps.queue_dropped,
                 hist_quantile(&ps.cycle_us, 0.5) / 1e3, hist_quantile(&ps.cycle_us, 0.99) / 1e3,
                 ps.cycle_us.max / 1e3, hist_quantile(&ps.late_us, 0.5) / 1e3,
                 hist_quantile(&ps.late_us, 0.99) / 1e3, ps.late_us.max / 1e3, devices,
                 pgcopy_rows(r->enc), r->append_last_ms,
                 r->append_max_ms,
                 forwarder_link_name(fs.link), fs.link_for_s,
                 (unsigned long long)ss.batches, (unsigned long long)ss.rows,
                 (unsigned long long)ss.bytes, oldest, fs.rows_per_s,
                 (unsigned long long)fs.stored_batches, (unsigned long long)fs.stored_rows,
                 (unsigned long long)fs.transactions, (unsigned long long)fs.duplicate_batches,
                 (unsigned long long)ss.q_batches, (unsigned long long)ss.q_rows,
                 (unsigned long long)ss.dropped_batches, (unsigned long long)ss.dropped_points,
                 ss.dropping ? " (dropping now: spool full)" : "",
                 r->cfg.spool_path, (unsigned long long)ss.spool_id,
                 (unsigned long long)(ss.bytes + ss.q_bytes), (long long)ss.max_bytes,
                 fs.last_error[0] ? fs.last_error : "-", cache, ops);
}

/* QUARANTINE LIST: one line per batch, fields separated by tabs (the CLI
 * formats them): seq kind process rows first_us last_us quarantined_us error */
struct qlist {
    char *buf;
    size_t len, cap;
    long n;
};

static void qlist_add(void *arg, const spool_qentry_t *e)
{
    struct qlist *q = arg;
    if (++q->n > QLIST_MAX)
        return;
    /* The error text goes as one line without tabs. */
    char error[sizeof e->error];
    snprintf(error, sizeof error, "%s", e->error);
    for (char *p = error; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r')
            *p = ' ';
    char line[800];
    int n = snprintf(line, sizeof line, "%lld\t%s\t%lld\t%u\t%lld\t%lld\t%lld\t%s\n",
                     (long long)e->seq, batch_kind_name(e->kind), (long long)e->process_id,
                     e->rows, (long long)e->first_ts_us, (long long)e->last_ts_us,
                     (long long)e->quarantined_us, error);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    if (q->len + (size_t)n < q->cap) {
        memcpy(q->buf + q->len, line, (size_t)n);
        q->len += (size_t)n;
    }
}

static void send_all(struct client *c, const char *buf, size_t len)
{
    /* The socket is non-blocking; a long answer gets 1 s to be read. */
    int64_t deadline = poller_mono_ns() + 1000000000LL;
    while (len > 0 && poller_mono_ns() < deadline) {
        ssize_t w = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            break;
        } else {
            struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
            poll(&pfd, 1, 100);
        }
    }
    client_close(c);
}

static void handle_quarantine(struct recorder *r, struct client *c, char *arg)
{
    char err[512];
    char *what = arg ? strtok(arg, " ") : NULL;
    char *which = what ? strtok(NULL, " ") : NULL;

    if (what && strcmp(what, "LIST") == 0) {
        /* The header goes in front once the count is known. */
        enum { HEAD = 32 };
        struct qlist q = { .cap = 256 * 1024, .len = HEAD };
        q.buf = malloc(q.cap);
        if (!q.buf) {
            client_reply(c, "ERR out of memory\n");
            return;
        }
        long n = spool_quarantine_list(r->spool, qlist_add, &q, err, sizeof err);
        if (n < 0) {
            client_reply(c, "ERR %s\n", err);
        } else {
            char head[HEAD];
            int h = snprintf(head, sizeof head, "OK %ld\n", n);
            memcpy(q.buf + HEAD - h, head, (size_t)h);
            send_all(c, q.buf + HEAD - h, q.len - HEAD + (size_t)h);
        }
        free(q.buf);
        return;
    }
    if (!what || (strcmp(what, "RETRY") != 0 && strcmp(what, "DROP") != 0) || !which) {
        client_reply(c, "ERR usage: QUARANTINE LIST | RETRY SEQ|all | DROP SEQ|all\n");
        return;
    }
    char *end;
    long long seq = strcmp(which, "all") == 0 ? 0 : strtoll(which, &end, 10);
    if (strcmp(which, "all") != 0 && (*end != '\0' || seq <= 0)) {
        client_reply(c, "ERR expected a batch number or \"all\", got \"%.40s\"\n", which);
        return;
    }
    bool retry = strcmp(what, "RETRY") == 0;
    long n = retry ? spool_quarantine_retry(r->spool, seq, err, sizeof err)
                   : spool_quarantine_drop(r->spool, seq, err, sizeof err);
    if (n < 0) {
        client_reply(c, "ERR %s\n", err);
    } else if (n == 0 && seq) {
        client_reply(c, "ERR no quarantined batch %lld\n", seq);
    } else {
        log_msg(LL_WARN, "operator %s %ld quarantined batch(es)%s", retry ? "retried" : "dropped",
                n, retry ? "" : "; gap records queued");
        if (retry)
            forwarder_wake(r->fwd);
        client_reply(c, "OK %s %ld batch(es)%s\n", retry ? "queued again" : "dropped", n,
                     retry ? "" : "; a gap record for each is queued for data_gaps");
    }
}

/* ---- set-point events and step markers ------------------------------------ */

/* Appends the one row waiting in r->rec as a batch of its own; a step
 * marker (step_no not NULL) is noted as used in the same transaction.
 * Durable in the spool when it returns 0 (forwarded like the points); -1
 * with err. */
static int append_record(struct recorder *r, enum batch_kind kind, int64_t ts_us,
                         const int32_t *step_no, char *err, size_t errlen)
{
    size_t len;
    uint8_t *data = pgcopy_take(r->rec, &len);
    if (!data) {
        pgcopy_reset(r->rec);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    batch_t b = {
        .kind = kind,
        .process_id = r->process_id,
        .rows = 1,
        .first_ts_us = ts_us,
        .last_ts_us = ts_us,
        .data = data,
        .len = len,
        .marks_step = step_no != NULL,
        .step_no = step_no ? *step_no : 0,
    };
    spool_append_result_t res;
    int rc = spool_append(r->spool, &b, &res, err, errlen);
    free(data);
    if (rc < 0) {
        log_msg(LL_ERROR, "cannot write a %s record to the spool: %s (its sender was told)",
                batch_kind_name(kind), err);
        return -1;
    }
    forwarder_wake(r->fwd);
    return 0;
}

static void format_utc(char *buf, size_t cap, int64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%06dZ", day, (int)(us % 1000000));
}

/* EVENT PARAM_ID TS_US REQUESTED READBACK|- QUALITY REQUESTED_BY (ctlrec.h),
 * sent by `aldrec set` after a write: recorded with the process being
 * recorded, or none. */
static void handle_event(struct recorder *r, struct client *c, const char *arg)
{
    char err[512];
    ctlrec_event_t ev;
    param_meta_t pm;
    if (ctlrec_event_parse(arg, &ev, err, sizeof err) < 0) {
        client_reply(c, "ERR EVENT: %s\n", err);
        return;
    }
    if (pcache_get_id(r->cache, ev.parameter_id, &pm) == PCACHE_MISS) {
        client_reply(c, "ERR EVENT: PARAM_ID %d is not a parameter of machine %s (map"
                     " version %lld)\n", ev.parameter_id, r->cfg.machine,
                     (long long)pmap_version(r->map));
        return;
    }
    if (ctlrec_event_row(r->rec, r->process_id, &ev) < 0) {
        pgcopy_reset(r->rec);
        client_reply(c, "ERR EVENT: out of memory\n");
        return;
    }
    if (append_record(r, BATCH_EVENTS, ev.ts_us, NULL, err, sizeof err) < 0) {
        client_reply(c, "ERR EVENT: cannot write to the spool: %s\n", err);
        return;
    }
    if (r->process_id)
        client_reply(c, "OK set-point event of %s recorded in process %lld\n", pm.qualified,
                     (long long)r->process_id);
    else
        client_reply(c, "OK set-point event of %s recorded (no process running)\n",
                     pm.qualified);
}

/* 1 when step no of the process being recorded is marked already (the
 * spool keeps the run's step numbers, also across restarts), 0 when not,
 * -1 with err. */
static int step_marked(struct recorder *r, int32_t no, char *err, size_t errlen)
{
    int32_t *steps;
    size_t n;
    if (spool_get_steps(r->spool, r->process_id, &steps, &n, err, errlen) < 0)
        return -1;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        found = steps[i] == no;
    free(steps);
    return found;
}

/* STEP NUMBER NAME: recipe step NUMBER of the process being recorded
 * starts now (the clock the samples are stamped with). process_steps keys
 * steps by (process, number): a number used twice in one run is refused
 * here rather than by PostgreSQL, which would quarantine the batch. */
static void handle_step(struct recorder *r, struct client *c, const char *arg)
{
    char err[512], when[48];
    ctlrec_step_t st;
    if (ctlrec_step_parse(arg, &st, err, sizeof err) < 0) {
        client_reply(c, "ERR STEP: %s\n", err);
        return;
    }
    if (!r->process_id) {
        client_reply(c, "ERR STEP: no process is being recorded (a step belongs to a process:"
                     " aldrec process start)\n");
        return;
    }
    int marked = step_marked(r, st.step_no, err, sizeof err);
    if (marked < 0) {
        client_reply(c, "ERR STEP: %s\n", err);
        return;
    }
    if (marked) {
        client_reply(c, "ERR STEP: step %d of process %lld is already marked; step numbers"
                     " are unique within a run\n", st.step_no, (long long)r->process_id);
        return;
    }
    int64_t ts = poller_wall_us();
    if (ctlrec_step_row(r->rec, r->process_id, &st, ts) < 0) {
        pgcopy_reset(r->rec);
        client_reply(c, "ERR STEP: out of memory\n");
        return;
    }
    if (append_record(r, BATCH_STEPS, ts, &st.step_no, err, sizeof err) < 0) {
        client_reply(c, "ERR STEP: cannot write to the spool: %s\n", err);
        return;
    }
    format_utc(when, sizeof when, ts);
    log_msg(LL_INFO, "process %lld: step %d \"%s\" from %s", (long long)r->process_id,
            st.step_no, st.name, when);
    client_reply(c, "OK process %lld: step %d \"%s\" from %s\n", (long long)r->process_id,
                 st.step_no, st.name, when);
}

/* The snapshot ops.h works from: the modules' counters and the daemon's. */
static void collect(struct recorder *r, svc_snapshot_t *s)
{
    if (svc_collect(s, r->poller, r->fwd, r->spool, r->cache) < 0)
        log_msg(LL_WARN, "metrics: out of memory collecting device statistics");
    s->ready = r->ready;
    s->uptime_s = (double)(poller_mono_ns() - r->started_ns) / 1e9;
    s->process_id = r->process_id;
    s->process_rows = r->process_rows;
    s->batch_pending_rows = r->enc ? pgcopy_rows(r->enc) : 0;
    s->flushed_batches = r->flushed_batches;
    s->flushed_rows = r->flushed_rows;
    s->flush_errors = r->flush_errors;
    s->spool_write_failing = r->spool_write.active;
    s->flush_us = r->flush_us;
}

/* METRICS: the exposition of /metrics, rendered now. */
static void reply_metrics(struct recorder *r, struct client *c)
{
    svc_snapshot_t s = r->snap;
    s.devices = NULL;
    s.ndevices = 0;
    collect(r, &s);
    s.db_down_for_s = r->snap.db_down_for_s;
    for (size_t i = 0; i < s.ndevices; i++)
        for (size_t k = 0; k < r->snap.ndevices; k++)
            if (strcmp(s.devices[i].st.label, r->snap.devices[k].st.label) == 0)
                s.devices[i].down_for_s = r->snap.devices[k].down_for_s;
    size_t len = 0;
    char *text = ops_render(r->ops, &s, &len);
    svc_snapshot_clear(&s);
    if (!text) {
        client_reply(c, "ERR out of memory\n");
        return;
    }
    char *out = malloc(len + 4);
    if (!out) {
        free(text);
        client_reply(c, "ERR out of memory\n");
        return;
    }
    memcpy(out, "OK\n", 3);
    memcpy(out + 3, text, len);
    free(text);
    send_all(c, out, len + 3);
    free(out);
}

static void handle_command(struct recorder *r, struct client *c, char *line)
{
    char err[512];
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';

    if (strcmp(line, "PING") == 0) {
        client_reply(c, "OK aldrecd for machine %s, pid %d\n", r->cfg.machine, (int)getpid());
    } else if (strcmp(line, "STATUS") == 0) {
        reply_status(r, c);
    } else if (strcmp(line, "METRICS") == 0) {
        reply_metrics(r, c);
    } else if (strcmp(line, "START") == 0) {
        /* samples of cycles completed before START are not part of the run */
        poller_drain(r->poller, on_sample, r);
        char *end;
        long long id = arg ? strtoll(arg, &end, 10) : 0;
        if (!arg || *end != '\0' || id <= 0) {
            client_reply(c, "ERR START needs a process id\n");
        } else if (r->process_id) {
            client_reply(c, "ERR process %lld is being recorded; stop it first\n",
                         (long long)r->process_id);
        } else if (spool_set_process(r->spool, id, err, sizeof err) < 0) {
            log_msg(LL_ERROR, "cannot start recording process %lld: %s", id, err);
            client_reply(c, "ERR cannot record: %s\n", err);
        } else {
            r->process_id = id;
            r->process_rows = 0;
            poller_resync(r->poller);
            log_msg(LL_INFO, "recording process %lld", id);
            client_reply(c, "OK recording process %lld\n", id);
        }
    } else if (strcmp(line, "STOP") == 0) {
        if (!r->process_id) {
            client_reply(c, "ERR no process is being recorded\n");
            return;
        }
        /* ... and those completed before STOP are */
        poller_drain(r->poller, on_sample, r);
        int64_t pid = r->process_id;
        flush_batch(r);
        uint32_t closed = 0;
        if (spool_close_gaps(r->spool, pid, false, &closed, err, sizeof err) < 0)
            log_msg(LL_ERROR, "process %lld: cannot queue its gap record: %s", (long long)pid,
                    err);
        if (spool_set_process(r->spool, 0, err, sizeof err) < 0)
            log_msg(LL_ERROR, "process %lld: cannot note the stop in the spool (a restart"
                    " would resume it): %s", (long long)pid, err);
        log_msg(LL_INFO, "process %lld stopped: %llu rows sampled by this aldrecd",
                (long long)pid, (unsigned long long)r->process_rows);
        r->process_id = 0;
        forwarder_wake(r->fwd);
        /* Answer once the spool holds nothing more of the process, so the
         * caller can read the complete run right after "stop" returns. */
        c->wait_process = pid;
        c->wait_deadline_ns = poller_mono_ns() + (int64_t)STOP_WAIT_MS * 1000000LL;
    } else if (strcmp(line, "EVENT") == 0) {
        handle_event(r, c, arg);
    } else if (strcmp(line, "STEP") == 0) {
        handle_step(r, c, arg);
    } else if (strcmp(line, "QUARANTINE") == 0) {
        handle_quarantine(r, c, arg);
    } else {
        client_reply(c, "ERR unknown command \"%.40s\" (expected PING, STATUS, METRICS, START,"
                     " STOP, STEP, EVENT, QUARANTINE)\n", line);
    }
}

/* STOP's answer: what happened to every row of the process. It says "all
 * stored" only when every row was committed in PostgreSQL. */
static void check_stop_waiters(struct recorder *r, int64_t now)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &r->clients[i];
        if (c->fd < 0 || c->wait_process == 0)
            continue;
        spool_process_info_t pi;
        char err[512];
        if (spool_process_info(r->spool, c->wait_process, &pi, err, sizeof err) < 0) {
            client_reply(c, "OK stopped process %lld; cannot tell what is stored: %s\n",
                         (long long)c->wait_process, err);
            continue;
        }
        if (pi.queued_batches > 0 && now < c->wait_deadline_ns)
            continue;
        unsigned long long stored = pi.rows - pi.queued_rows - pi.quarantined_rows -
                                    pi.dropped_points;
        if (pi.queued_batches == 0 && pi.quarantined_rows == 0 && pi.dropped_points == 0) {
            client_reply(c, "OK stopped process %lld: %llu rows recorded, all stored\n",
                         (long long)c->wait_process, (unsigned long long)pi.rows);
            continue;
        }
        char spooled[600] = "", quar[128] = "", drop[128] = "";
        if (pi.queued_batches) {
            forwarder_stats_t fs;
            forwarder_get_stats(r->fwd, &fs);
            snprintf(spooled, sizeof spooled, ", %llu still spooled (PostgreSQL has not taken"
                     " them yet: %s)", (unsigned long long)pi.queued_rows,
                     fs.last_error[0] ? fs.last_error : "no error yet");
        }
        if (pi.quarantined_rows)
            snprintf(quar, sizeof quar, ", %llu quarantined (aldrec spool quarantine list)",
                     (unsigned long long)pi.quarantined_rows);
        if (pi.dropped_points)
            snprintf(drop, sizeof drop, ", %llu dropped (see data_gaps)",
                     (unsigned long long)pi.dropped_points);
        client_reply(c, "OK stopped process %lld: %llu rows recorded; %llu stored%s%s%s\n",
                     (long long)c->wait_process, (unsigned long long)pi.rows, stored, spooled,
                     quar, drop);
    }
}

static void client_read(struct recorder *r, struct client *c)
{
    ssize_t n = read(c->fd, c->in + c->inlen, sizeof c->in - 1 - c->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    c->inlen += (size_t)n;
    c->in[c->inlen] = '\0';
    char *nl = strchr(c->in, '\n');
    if (!nl) {
        if (c->inlen == sizeof c->in - 1)
            client_reply(c, "ERR request too long\n");
        return;
    }
    *nl = '\0';
    if (nl > c->in && nl[-1] == '\r')
        nl[-1] = '\0';
    handle_command(r, c, c->in);
}

static void accept_clients(struct recorder *r)
{
    for (;;) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int i;
        for (i = 0; i < MAX_CLIENTS; i++)
            if (r->clients[i].fd < 0)
                break;
        if (i == MAX_CLIENTS) {
            const char busy[] = "ERR busy: too many control connections\n";
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
            close(fd);
            continue;
        }
        r->clients[i] = (struct client){ .fd = fd };
    }
}

/* Start-up with a fresh spool file and no PATH.process beside it (the first
 * start, or both were lost; a damaged spool alone is covered by the process
 * file): the spool cannot say which process was being recorded, so
 * PostgreSQL must: a process of this recorder still marked running. Retries
 * until it answers or we are told to stop (nothing could be recorded for
 * the right process meanwhile). Returns 0 with r->process_id (0: none), or
 * -1: stopping, or the machine is unknown. */
static int running_process_from_database(struct recorder *r)
{
    complain_t down = { 0 };
    int backoff_ms = 500;

    while (!stop_requested) {
        char err[512] = "";
        int tmo_ms = r->cfg.connect_timeout_s * 1000;
        /* Every wait has a deadline: a black-holed database costs
         * connect_timeout_s per attempt, never a hang. */
        PGconn *conn = pgwait_connect(r->cfg.conninfo, "aldrecd", tmo_ms, -1, err, sizeof err);
        if (conn) {
            const char *p[2] = { r->cfg.machine, r->cfg.recorder_id };
            PGresult *res = pgwait_query(conn,
                "SELECT (SELECT p.id FROM processes p WHERE p.machine_id = m.id"
                "        AND p.recorder_id = $2 AND p.status = 'running'"
                "        ORDER BY p.id DESC LIMIT 1)"
                " FROM machines m WHERE m.name = $1", 2, p, tmo_ms, -1, err, sizeof err);
            if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
                int rows = PQntuples(res);
                if (rows == 1 && !PQgetisnull(res, 0, 0)) {
                    r->process_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                    log_msg(LL_INFO, "resuming process %lld, which PostgreSQL shows"
                            " running for this recorder", (long long)r->process_id);
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
    if (first) {
        poller_stats_t ps;
        poller_get_stats(r->poller, &ps);
        log_msg(LL_INFO, "machine %s: polling %zu parameters on %zu device(s) (%zu skipped)",
                r->cfg.machine, ps.params, ps.devices, ps.params_skipped);
    }
}

/* Opens the spool; a bad file was moved aside: say so loudly. */
static int open_spool(struct recorder *r, char *err, size_t errlen)
{
    spool_opts_t so = {
        .path = r->cfg.spool_path,
        .max_bytes = r->cfg.spool_max_bytes,
        .policy = r->cfg.spool_full_policy == CONFIG_DROP_NEWEST ? SPOOL_DROP_NEWEST
                                                                 : SPOOL_DROP_OLDEST,
    };
    spool_open_info_t info;
    r->spool = spool_open(&so, &info, err, errlen);
    if (!r->spool)
        return -1;
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

/* Once a second: health, alerts, metrics, watchdog (ops.h). */
static void service_tick(struct recorder *r)
{
    collect(r, &r->snap);
    ops_tick(r->ops, &r->snap);
}

/* Once a second, after service_tick(): a hole in the data that has an end
 * gets its gap record (the snapshot just taken says whether one is open). */
static void tick(struct recorder *r)
{
    if (!r->snap.spool.dropping)
        return;
    char err[512];
    spool_append_result_t res = { 0 };
    if (spool_close_gaps(r->spool, -1, true, &res.gaps_closed, err, sizeof err) < 0)
        log_msg(LL_ERROR, "cannot queue a gap record: %s", err);
    note_drops(r, &res);
    if (res.gaps_closed)
        forwarder_wake(r->fwd);
}

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
    aldrec_config_t old = r->cfg;
    config_apply_reloadable(&r->cfg, &nc);
    log_set_level(r->cfg.log_level);
    if (r->cfg.flush_interval_ms != old.flush_interval_ms && pgcopy_rows(r->enc) > 0) {
        /* the open batch: its deadline by the new interval, if sooner */
        int64_t d = poller_mono_ns() + (int64_t)r->cfg.flush_interval_ms * 1000000LL;
        if (d < r->flush_deadline_ns)
            r->flush_deadline_ns = d;
    }
    if (pgcopy_rows(r->enc) >= (size_t)r->cfg.batch_rows)
        flush_batch(r);
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

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", required_argument, NULL, 'C' },
        { "config-reference", no_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = getenv("ALDREC_CONFIG");
    struct recorder r = { .listen_fd = -1, .flush_deadline_ns = INT64_MAX };
    char err[512];
    int opt, status = 1;

    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
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
    if (optind != argc || !config_path) {
        usage(stderr);
        return 2;
    }
    if (config_load(&r.cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "aldrecd: %s\n", err);
        return 2;
    }
    log_init("aldrecd", r.cfg.log_level);
    r.config_path = config_path;
    if (config_file_warnings(config_path, err, sizeof err) > 0)
        log_lines(LL_WARN, "", err);
    for (int i = 0; i < MAX_CLIENTS; i++)
        r.clients[i].fd = -1;

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    r.started_ns = poller_mono_ns();
    r.listen_fd = ctl_listen(r.cfg.socket_path, err, sizeof err);
    if (r.listen_fd < 0) {
        log_msg(LL_ERROR, "control socket: %s", err);
        goto out;
    }
    if (r.cfg.socket_group[0] &&
        ctl_set_group(r.cfg.socket_path, r.cfg.socket_group, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "control socket: %s", err);
        goto out;
    }
    r.ops = ops_new(&r.cfg);
    if (!r.ops) {
        log_msg(LL_ERROR, "start-up failed: out of memory");
        goto out;
    }
    if (open_spool(&r, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "%s", err);
        goto out;
    }
    bool known = false;
    int64_t pid = 0;
    if (spool_get_process(r.spool, &pid, &known, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "%s", err);
        goto out;
    }
    if (known && pid) {
        r.process_id = pid;
        int32_t *steps;
        size_t nsteps;
        if (spool_get_steps(r.spool, pid, &steps, &nsteps, err, sizeof err) < 0) {
            log_msg(LL_ERROR, "%s", err);
            goto out;
        }
        free(steps);
        log_msg(LL_INFO, "resuming process %lld, which was being recorded when aldrecd last"
                " stopped (from the spool; %zu steps marked)", (long long)pid, nsteps);
    }
    forwarder_opts_t fo = {
        .conninfo = r.cfg.conninfo,
        .recorder_id = r.cfg.recorder_id,
        .timeout_ms = r.cfg.connect_timeout_s * 1000,
        .drain_batches = (size_t)r.cfg.drain_batches,
        .drain_rows = (size_t)r.cfg.drain_rows,
    };
    /* The forwarder starts first: a backlog from the last run goes out as
     * soon as PostgreSQL answers, whatever else start-up waits for. */
    r.fwd = forwarder_start(&fo, r.spool, err, sizeof err);
    if (!r.fwd) {
        log_msg(LL_ERROR, "start-up failed: %s", err);
        goto out;
    }
    if (!known && running_process_from_database(&r) < 0) {
        status = stop_requested ? 0 : 1;
        goto out;
    }
    if (load_map(&r) < 0)
        goto out;
    if (!known) {
        /* A fresh spool: note the process PostgreSQL named (or none). */
        if (spool_set_process(r.spool, r.process_id, err, sizeof err) < 0) {
            log_msg(LL_ERROR, "%s", err);
            goto out;
        }
    }
    poller_opts_t po = {
        .response_timeout_ms = r.cfg.response_timeout_ms,
        .limits = { .max_registers = r.cfg.max_registers, .max_bits = r.cfg.max_bits,
                    .max_gap = r.cfg.max_gap },
        .baud = r.cfg.baud, .parity = (char)r.cfg.parity,
        .data_bits = r.cfg.data_bits, .stop_bits = r.cfg.stop_bits,
        .reconnect_min_ms = 100, .reconnect_max_ms = r.cfg.reconnect_max_ms,
    };
    r.poller = poller_new(r.map, &po);
    r.enc = pgcopy_new();
    r.rec = pgcopy_new();
    if (!r.poller || !r.enc || !r.rec) {
        log_msg(LL_ERROR, "start-up failed: out of memory");
        goto out;
    }
    poller_stats_t ps;
    poller_get_stats(r.poller, &ps);
    log_msg(LL_INFO, "machine %s: %zu parameters on %zu device(s), %zu requests per cycle"
            " (%zu skipped); batch %d rows / %d ms; control socket %s",
            r.cfg.machine, ps.params, ps.devices, ps.requests_per_cycle, ps.params_skipped,
            r.cfg.batch_rows, r.cfg.flush_interval_ms, r.cfg.socket_path);
    /* The map is loaded and the control socket answers from the loop's
     * first turn on. */
    r.ready = true;
    service_tick(&r);
    char ready[256];
    snprintf(ready, sizeof ready, "%s; %zu parameters on %zu device(s)%s",
             svc_health_name(ops_health(r.ops)->status), ps.params, ps.devices,
             r.process_id ? ", recording" : "");
    ops_notify_ready(ready);

    while (!stop_requested) {
        enum { FD_LISTEN, FD_FORWARDER, FD_POLLER, FD_CACHE, FD_FIXED };
        struct pollfd pfd[FD_FIXED + MAX_CLIENTS];
        int idx[MAX_CLIENTS];
        int nfds = 0;
        pfd[nfds++] = (struct pollfd){ .fd = r.listen_fd, .events = POLLIN };
        pfd[nfds++] = (struct pollfd){ .fd = forwarder_notify_fd(r.fwd), .events = POLLIN };
        pfd[nfds++] = (struct pollfd){ .fd = poller_notify_fd(r.poller), .events = POLLIN };
        pfd[nfds++] = (struct pollfd){ .fd = pcache_change_fd(r.cache), .events = POLLIN };
        int64_t wake = r.flush_deadline_ns;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &r.clients[i];
            if (c->fd < 0)
                continue;
            if (c->wait_process) {
                if (c->wait_deadline_ns < wake)
                    wake = c->wait_deadline_ns;
                continue;
            }
            idx[nfds - FD_FIXED] = i;
            pfd[nfds++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
        }
        int64_t now = poller_mono_ns();
        int64_t wait_ms = wake == INT64_MAX ? 1000 : (wake - now + 999999) / 1000000;
        if (wait_ms < 0)
            wait_ms = 0;
        if (wait_ms > 1000)
            wait_ms = 1000;
        int rc = poll(pfd, (nfds_t)nfds, (int)wait_ms);
        if (rc < 0 && errno != EINTR) {
            log_msg(LL_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (rc > 0) {
            if (pfd[FD_LISTEN].revents)
                accept_clients(&r);
            if (pfd[FD_FORWARDER].revents)
                forwarder_drain_notify(r.fwd);
            if (pfd[FD_POLLER].revents)
                poller_drain(r.poller, on_sample, &r);
            if (pfd[FD_CACHE].revents)
                apply_map_change(&r);
            for (int k = FD_FIXED; k < nfds; k++)
                if (pfd[k].revents)
                    client_read(&r, &r.clients[idx[k - FD_FIXED]]);
        }
        if (poller_mono_ns() >= r.flush_deadline_ns)
            flush_batch(&r);
        if (reload_requested) {
            reload_requested = 0;
            reload(&r);
        }
        now = poller_mono_ns();
        if (now >= r.next_tick_ns) {
            r.next_tick_ns = now + TICK_NS;
            service_tick(&r);
            tick(&r);
        }
        check_stop_waiters(&r, poller_mono_ns());
    }
    /* Polling ends first, so that nothing is read that would not be
     * stored; the cycles completed until then still belong to the run. */
    ops_notify_stopping();
    poller_stop(r.poller);
    poller_drain(r.poller, on_sample, &r);
    log_msg(LL_INFO, "stopping: flushing %zu pending rows to the spool", pgcopy_rows(r.enc));
    flush_batch(&r);
    status = 0;
out:
    if (r.fwd) {
        forwarder_stop(r.fwd, SHUTDOWN_DRAIN_MS);
        spool_stats_t ss;
        spool_get_stats(r.spool, &ss);
        if (ss.batches)
            log_msg(LL_WARN, "exiting with %llu batches (%llu rows) in the spool; they are"
                    " forwarded after the next start", (unsigned long long)ss.batches,
                    (unsigned long long)ss.rows);
        else
            log_msg(LL_INFO, "all batches stored");
    }
    spool_close(r.spool);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (r.clients[i].fd >= 0)
            client_close(&r.clients[i]);
    if (r.listen_fd >= 0) {
        close(r.listen_fd);
        unlink(r.cfg.socket_path);
    }
    ops_free(r.ops);
    svc_snapshot_clear(&r.snap);
    poller_free(r.poller);
    pcache_free(r.cache);
    pgcopy_free(r.enc);
    pgcopy_free(r.rec);
    pmap_free(r.map);
    return status;
}
