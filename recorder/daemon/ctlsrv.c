/* ctlsrv.c — the control socket's connections and the command table that
 * answers them; see ctlsrv.h for the protocol. */
#include "daemon/ctlsrv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/ctl.h"
#include "common/log.h"
#include "common/utc.h"
#include "acq/quality.h"
#include "acq/setpoint.h"
#include "store/batch.h"
#include "store/ctlrec.h"
#include "store/records.h"

#define REPLY_MAX 16384        /* a short reply, "OK\n" included */
#define QLIST_MAX 200          /* quarantine entries in one reply */

#define PARAMS_MAX 16          /* parameters in one SET or GET */
#define DEV_REPLY_MAX 8192

/* A SET or GET --fresh in progress, in the order given: each run of
 * consecutive parameters of one device is one group of device ops
 * ([cur, gend)), served by its device's thread back to back between two
 * poll requests (device.h); then the next run. */
struct devreq {
    bool is_set;
    size_t n, cur, gend, written;
    size_t groups;           /* groups submitted (one per device run) */
    bool failed;
    param_meta_t pm[PARAMS_MAX];
    setpoint_t sp[PARAMS_MAX];
    char by[CTLREC_TEXT_MAX + 1];
    device_op_t op[PARAMS_MAX];
    char out[DEV_REPLY_MAX];  /* the per-parameter lines so far */
    size_t outlen;
    char first_err[512];
};

struct client {
    int fd;                  /* -1: free slot */
    struct devreq *dev;      /* a device op in progress: not read meanwhile */
    bool session;            /* SESSION: answers end with ".\n", the connection stays */
    char in[512];
    size_t inlen;
    int64_t wait_process;    /* >0: STOP waits until the spool holds none of it */
    int64_t wait_deadline_ns;
};

struct ctlsrv {
    int listen_fd;           /* -1: none */
    char *path;              /* the socket's, removed at the end */
    ctlsrv_env_t env;
    int done_fd;             /* eventfd: a device op finished */
    struct client clients[CTLSRV_MAX_CLIENTS];
    /* ctlsrv_pollfds(): which slot each client entry polls */
    int slot[CTLSRV_MAX_FDS];
};

ctlsrv_t *ctlsrv_new(const char *path, const char *group, char *err, size_t errlen)
{
    ctlsrv_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->listen_fd = -1;
    for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++)
        s->clients[i].fd = -1;
    s->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->done_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(s);
        return NULL;
    }
    if (!path)
        return s;
    s->listen_fd = ctl_listen(path, err, errlen);
    if (s->listen_fd < 0)
        goto fail;
    s->path = strdup(path);
    if (!s->path) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (group && group[0] && ctl_set_group(path, group, err, errlen) < 0)
        goto fail;
    return s;
fail:
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(path);
    }
    close(s->done_fd);
    free(s->path);
    free(s);
    return NULL;
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->dev);
    *c = (struct client){ .fd = -1 };
}

/* An answer is complete: the connection ends, or in a session waits for
 * the next request. */
static void client_done(struct client *c)
{
    if (!c->session) {
        client_close(c);
        return;
    }
    free(c->dev);
    c->dev = NULL;
    c->wait_process = 0;
}

void ctlsrv_free(ctlsrv_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0)
            client_close(&s->clients[i]);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(s->path);
    }
    if (s->done_fd >= 0)
        close(s->done_fd);
    free(s->path);
    free(s);
}

void ctlsrv_attach(ctlsrv_t *s, const ctlsrv_env_t *env)
{
    s->env = *env;
}

/* ---- replies -------------------------------------------------------------- */

static void client_reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void client_reply(struct client *c, const char *fmt, ...)
{
    char buf[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    if (c->session) {
        if (n > (int)sizeof buf - 3)
            n = (int)sizeof buf - 3;
        memcpy(buf + n, ".\n", 3);
        n += 2;
    }
    /* Replies are small and the peer is a local CLI that is reading: a
     * short write just truncates the answer, it never blocks the loop. */
    ssize_t w = send(c->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    client_done(c);
}

/* Sends all of buf by deadline (CLOCK_MONOTONIC). True when sent. */
static bool send_bytes(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0 && clock_mono_ns() < deadline) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        } else {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            poll(&pfd, 1, 100);
        }
    }
    return len == 0;
}

static void send_all(struct client *c, const char *buf, size_t len)
{
    /* The socket is non-blocking; a long answer gets 1 s to be read. */
    int64_t deadline = clock_mono_ns() + 1000000000LL;
    bool sent = send_bytes(c->fd, buf, len, deadline) &&
                (!c->session || send_bytes(c->fd, ".\n", 2, deadline));
    if (!sent)
        c->session = false;   /* a torn answer ends a session */
    client_done(c);
}

static void wake_forwarder(ctlsrv_t *s)
{
    if (s->env.fwd)
        forwarder_wake(s->env.fwd);
}

/* Samples of the cycles completed until now go to the batcher first. */
static void drain_poller(ctlsrv_t *s)
{
    if (s->env.poller)
        poller_drain(s->env.poller, batcher_on_sample, s->env.batcher);
}

/* ---- PING, STATUS, METRICS -------------------------------------------------- */

static void cmd_ping(ctlsrv_t *s, struct client *c, char *arg)
{
    (void)arg;
    client_reply(c, "OK aldrecd for machine %s, pid %d\n", s->env.cfg->machine, (int)getpid());
}

/* SESSION: this connection stays open for more requests; every answer
 * from now on ends with a line ".". */
static void cmd_session(ctlsrv_t *s, struct client *c, char *arg)
{
    (void)s;
    (void)arg;
    c->session = true;
    client_reply(c, "OK session: one request per line, each answer ends with \".\"\n");
}

static void cmd_status(ctlsrv_t *s, struct client *c, char *arg)
{
    (void)arg;
    svc_snapshot_t snap = { 0 };
    s->env.snapshot(s->env.arg, &snap);
    /* "OK\n" and the lines fit the short reply */
    char body[REPLY_MAX - 3];
    ops_render_status(s->env.ops, &snap, body, sizeof body);
    svc_snapshot_clear(&snap);
    client_reply(c, "OK\n%s", body);
}

/* METRICS: the exposition of /metrics, rendered now. */
static void cmd_metrics(ctlsrv_t *s, struct client *c, char *arg)
{
    (void)arg;
    svc_snapshot_t snap = { 0 };
    s->env.snapshot(s->env.arg, &snap);
    size_t len = 0;
    char *text = ops_render(s->env.ops, &snap, &len);
    svc_snapshot_clear(&snap);
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

/* ---- START, STOP ------------------------------------------------------------ */

static void cmd_start(ctlsrv_t *s, struct client *c, char *arg)
{
    char err[512];
    /* samples of cycles completed before START are not part of the run */
    drain_poller(s);
    char *end;
    long long id = arg ? strtoll(arg, &end, 10) : 0;
    int64_t cur = batcher_process(s->env.batcher);
    if (!arg || *end != '\0' || id <= 0) {
        client_reply(c, "ERR START needs a process id\n");
    } else if (cur) {
        client_reply(c, "ERR process %lld is being recorded; stop it first\n", (long long)cur);
    } else if (spool_set_process(s->env.spool, id, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "cannot start recording process %lld: %s", id, err);
        client_reply(c, "ERR cannot record: %s\n", err);
    } else {
        batcher_set_process(s->env.batcher, id);
        if (s->env.poller)
            poller_resync(s->env.poller);
        log_msg(LL_INFO, "recording process %lld", id);
        client_reply(c, "OK recording process %lld\n", id);
    }
}

static void cmd_stop(ctlsrv_t *s, struct client *c, char *arg)
{
    (void)arg;
    char err[512];
    int64_t pid = batcher_process(s->env.batcher);
    if (!pid) {
        client_reply(c, "ERR no process is being recorded\n");
        return;
    }
    /* ... and those completed before STOP are */
    drain_poller(s);
    batcher_flush(s->env.batcher);
    uint32_t closed = 0;
    if (spool_close_gaps(s->env.spool, pid, false, &closed, err, sizeof err) < 0)
        log_msg(LL_ERROR, "process %lld: cannot queue its gap record: %s", (long long)pid, err);
    if (spool_set_process(s->env.spool, 0, err, sizeof err) < 0)
        log_msg(LL_ERROR, "process %lld: cannot note the stop in the spool (a restart"
                " would resume it): %s", (long long)pid, err);
    batcher_stats_t bs;
    batcher_get_stats(s->env.batcher, &bs);
    log_msg(LL_INFO, "process %lld stopped: %llu rows sampled by this aldrecd",
            (long long)pid, (unsigned long long)bs.process_rows);
    batcher_set_process(s->env.batcher, 0);
    wake_forwarder(s);
    /* Answer once the spool holds nothing more of the process, so the
     * caller can read the complete run right after "stop" returns. */
    c->wait_process = pid;
    c->wait_deadline_ns = clock_mono_ns() + (int64_t)CTLSRV_STOP_WAIT_MS * 1000000LL;
}

/* STOP's answer: what happened to every row of the process. It says "all
 * stored" only when every row was committed in PostgreSQL. */
void ctlsrv_check_waiters(ctlsrv_t *s, int64_t now)
{
    for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++) {
        struct client *c = &s->clients[i];
        if (c->fd < 0 || c->wait_process == 0)
            continue;
        spool_process_info_t pi;
        char err[512];
        if (spool_process_info(s->env.spool, c->wait_process, &pi, err, sizeof err) < 0) {
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
            forwarder_stats_t fs = { 0 };
            if (s->env.fwd)
                forwarder_get_stats(s->env.fwd, &fs);
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

/* ---- STEP, EVENT ------------------------------------------------------------ */

/* EVENT PARAM_ID TS_US REQUESTED READBACK|- QUALITY REQUESTED_BY (ctlrec.h),
 * sent by `aldrec set` after a write: recorded with the process being
 * recorded, or none. */
static void cmd_event(ctlsrv_t *s, struct client *c, char *arg)
{
    char perr[512], err[600];
    ctlrec_event_t ev;
    param_meta_t pm;
    if (ctlrec_event_parse(arg, &ev, perr, sizeof perr) < 0) {
        client_reply(c, "ERR EVENT: %s\n", perr);
        return;
    }
    if (pcache_get_id(s->env.cache, ev.parameter_id, &pm) == PCACHE_MISS) {
        client_reply(c, "ERR EVENT: PARAM_ID %d is not a parameter of machine %s (map"
                     " version %lld)\n", ev.parameter_id, s->env.cfg->machine,
                     (long long)pmap_version(*s->env.map));
        return;
    }
    if (batcher_add_event(s->env.batcher, &ev, err, sizeof err) < 0) {
        client_reply(c, "ERR EVENT: %s\n", err);
        return;
    }
    int64_t pid = batcher_process(s->env.batcher);
    if (pid)
        client_reply(c, "OK set-point event of %s recorded in process %lld\n", pm.qualified,
                     (long long)pid);
    else
        client_reply(c, "OK set-point event of %s recorded (no process running)\n",
                     pm.qualified);
}

/* 1 when step no of process pid is marked already (the spool keeps the
 * run's step numbers, also across restarts), 0 when not, -1 with err. */
static int step_marked(ctlsrv_t *s, int64_t pid, int32_t no, char *err, size_t errlen)
{
    int32_t *steps;
    size_t n;
    if (spool_get_steps(s->env.spool, pid, &steps, &n, err, errlen) < 0)
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
static void cmd_step(ctlsrv_t *s, struct client *c, char *arg)
{
    char perr[512], err[600], when[48];
    ctlrec_step_t st;
    if (ctlrec_step_parse(arg, &st, perr, sizeof perr) < 0) {
        client_reply(c, "ERR STEP: %s\n", perr);
        return;
    }
    int64_t pid = batcher_process(s->env.batcher);
    if (!pid) {
        client_reply(c, "ERR STEP: no process is being recorded (a step belongs to a process:"
                     " aldrec process start)\n");
        return;
    }
    int marked = step_marked(s, pid, st.step_no, perr, sizeof perr);
    if (marked < 0) {
        client_reply(c, "ERR STEP: %s\n", perr);
        return;
    }
    if (marked) {
        client_reply(c, "ERR STEP: step %d of process %lld is already marked; step numbers"
                     " are unique within a run\n", st.step_no, (long long)pid);
        return;
    }
    int64_t ts = clock_real_us();
    if (batcher_add_step(s->env.batcher, &st, ts, err, sizeof err) < 0) {
        client_reply(c, "ERR STEP: %s\n", err);
        return;
    }
    utc_format(ts, UTC_ISO_US, when, sizeof when);
    log_msg(LL_INFO, "process %lld: step %d \"%s\" from %s", (long long)pid, st.step_no,
            st.name, when);
    client_reply(c, "OK process %lld: step %d \"%s\" from %s\n", (long long)pid, st.step_no,
                 st.name, when);
}

/* ---- SET, GET: through the device threads ----------------------------------- */

static void dev_line(struct devreq *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dev_line(struct devreq *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->out + r->outlen, sizeof r->out - r->outlen, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->outlen += (size_t)n < sizeof r->out - r->outlen ? (size_t)n
                                                             : sizeof r->out - r->outlen - 1;
}

/* The parameter called name, checked usable. Returns it, or NULL with the
 * message in err. */
static const param_meta_t *lookup(ctlsrv_t *s, const char *name, const char *cmd,
                                  param_meta_t *out, char *err, size_t errlen)
{
    /* the daemon's L1 first: a limit changed in PostgreSQL applies as soon
     * as the refresher has it, as for every tool */
    if (s->env.cache && pcache_get(s->env.cache, name, out) != PCACHE_MISS) {
        if (!out->valid) {
            snprintf(err, errlen, "%s: parameter %s cannot be used: %s", cmd, out->qualified,
                     out->why);
            return NULL;
        }
        return out;
    }
    pmap_t *cm = s->env.cache ? pcache_map(s->env.cache) : NULL;
    const pmap_t *m = cm ? cm : s->env.map ? *s->env.map : NULL;
    const param_meta_t *p = !cm && m ? pmap_find(m, name) : NULL;
    if (p && p->valid) {
        *out = *p;
        return out;
    }
    if (p)
        snprintf(err, errlen, "%s: parameter %s cannot be used: %s", cmd, p->qualified, p->why);
    else
        setpoint_explain_unknown(m, name, cmd, err, errlen);
    pmap_free(cm);
    return NULL;
}

static void dev_finish(ctlsrv_t *s, struct client *c)
{
    struct devreq *r = c->dev;
    (void)s;
    char head[700];
    if (!r->is_set && !r->failed)
        snprintf(head, sizeof head, "OK\n");
    else if (!r->is_set)
        snprintf(head, sizeof head, "ERR %s\n", r->first_err);
    else if (!r->failed)
        snprintf(head, sizeof head, "OK %zu set point%s written, read back and recorded"
                 " (in %zu device group%s)\n", r->n, r->n == 1 ? "" : "s", r->groups,
                 r->groups == 1 ? "" : "s");
    else
        snprintf(head, sizeof head, "ERR %s (%zu of %zu set point%s written)\n", r->first_err,
                 r->written, r->n, r->n == 1 ? "" : "s");
    client_reply(c, "%s%.*s", head, (int)r->outlen, r->out);
}

static void dev_fail(struct devreq *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current parameter failed: says why, once for the answer's head. */
static void dev_fail(struct devreq *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!r->failed)
        snprintf(r->first_err, sizeof r->first_err, "%s", msg);
    r->failed = true;
    dev_line(r, "failed %s: %s\n", r->pm[r->cur].qualified, msg);
}

/* Submits the next group: the current parameter and those after it that
 * its device polls too; on to the answer when there is none left or one
 * failed. */
static void dev_next(ctlsrv_t *s, struct client *c)
{
    struct devreq *r = c->dev;
    char err[512];
    while (r->cur < r->n) {
        if (r->failed) {
            dev_line(r, "skipped %s: not written (an earlier set point failed)\n",
                     r->pm[r->cur].qualified);
            r->cur++;
            continue;
        }
        const param_meta_t *pms[PARAMS_MAX];
        device_op_t *ops[PARAMS_MAX];
        size_t k = 0;
        do {
            const param_meta_t *p = &r->pm[r->cur + k];
            device_op_t *op = &r->op[r->cur + k];
            *op = (device_op_t){
                .kind = r->is_set ? DEVICE_OP_WRITE : DEVICE_OP_READ,
                .param_id = p->id,
                .unit_id = p->unit_id,
                .table = p->table,
                .address = (uint16_t)p->address,
                .nwords = (uint16_t)(p->table == REG_COIL || p->table == REG_DISCRETE
                                         ? 1 : regcodec_words(p->type)),
                .notify_fd = s->done_fd,
            };
            if (r->is_set)
                memcpy(op->words, r->sp[r->cur + k].words, sizeof op->words);
            pms[k] = p;
            ops[k] = op;
            k++;
        } while (s->env.poller && r->cur + k < r->n &&
                 poller_same_device(s->env.poller, &r->pm[r->cur], &r->pm[r->cur + k]));
        if (!s->env.poller) {
            dev_fail(r, "aldrecd polls no device");
        } else if (poller_submit_group(s->env.poller, pms, ops, k, err, sizeof err) < 0) {
            dev_fail(r, "%s; nothing sent", err);
        } else {
            r->gend = r->cur + k;
            r->groups++;
            return;   /* dev_done() when the thread is through */
        }
        r->cur++;
    }
    dev_finish(s, c);
}

/* True when the group in flight is through (its last op is done last). */
static bool dev_group_done(const struct devreq *r)
{
    return r->cur < r->gend && atomic_load(&r->op[r->gend - 1].done);
}

/* The op of the current parameter is done: its outcome into the answer
 * (and a written set point into the spool). */
static void dev_result(struct devreq *r, ctlsrv_t *s)
{
    const param_meta_t *p = &r->pm[r->cur];
    const device_op_t *op = &r->op[r->cur];
    char got[96], was[96] = "?", wrote[96], req[96], err[600];
    if (!r->is_set) {
        if (op->q_back != Q_GOOD) {
            dev_line(r, "%s\tNULL\t%d\t%s\t0\tNULL\n", p->qualified, op->q_back,
                     quality_name(op->q_back));
            dev_fail(r, "%s", op->err);
        } else {
            double v = setpoint_value(p, op->back);
            int16_t q = quality_of_value(p, v);
            setpoint_format_value(got, sizeof got, p, v);
            dev_line(r, "%s\t%.10g\t%d\t%s\t0\t%s\n", p->qualified, v, q, quality_name(q), got);
        }
        return;
    }
    const setpoint_t *sp = &r->sp[r->cur];
    if (op->skipped) {
        dev_line(r, "skipped %s: not written (an earlier set point failed)\n", p->qualified);
        return;
    }
    if (op->q_write != Q_GOOD) {
        dev_fail(r, "%s (quality %d %s)", op->err, op->q_write, quality_name(op->q_write));
        return;
    }
    r->written++;
    ctlrec_event_t ev = {
        .parameter_id = p->id,
        .ts_us = clock_real_us(),
        .requested = sp->requested,
        .quality = op->q_back,
    };
    snprintf(ev.requested_by, sizeof ev.requested_by, "%s", r->by);
    if (op->q_before == Q_GOOD)
        setpoint_format_value(was, sizeof was, p, setpoint_value(p, op->before));
    setpoint_format_value(wrote, sizeof wrote, p, sp->effective);
    setpoint_format_value(req, sizeof req, p, sp->requested);
    bool ok = false;
    if (op->q_back != Q_GOOD) {
        dev_fail(r, "wrote %s but could not read it back: %s", wrote, op->err);
    } else {
        ev.has_readback = true;
        ev.readback = setpoint_value(p, op->back);
        setpoint_format_value(got, sizeof got, p, ev.readback);
        if (!setpoint_same(p, sp, op->back))
            dev_fail(r, "read-back mismatch: wrote %s, device reports %s", wrote, got);
        else
            ok = true;
    }
    if (batcher_add_event(s->env.batcher, &ev, err, sizeof err) < 0) {
        if (ok)
            dev_fail(r, "the set-point event was not recorded: %s", err);
        ok = false;
    }
    if (ok && sp->effective != sp->requested)
        dev_line(r, "ok %s: %s -> %s (requested %s; the nearest value the device holds),"
                 " read back %s\n", p->qualified, was, wrote, req, got);
    else if (ok)
        dev_line(r, "ok %s: %s -> %s, read back %s\n", p->qualified, was, wrote, got);
}

/* The group in flight is through: every op's outcome, then the next group. */
static void dev_done(ctlsrv_t *s, struct client *c)
{
    struct devreq *r = c->dev;
    for (; r->cur < r->gend; r->cur++)
        dev_result(r, s);
    dev_next(s, c);
}

static struct devreq *devreq_new(struct client *c)
{
    c->dev = calloc(1, sizeof *c->dev);
    if (!c->dev)
        client_reply(c, "ERR out of memory\n");
    return c->dev;
}

/* SET P=V [P=V ...][ BY TEXT]: every value is checked before any is
 * written; then written in the order given, each between two poll
 * requests of its device, read back and recorded. */
static void cmd_set(ctlsrv_t *s, struct client *c, char *arg)
{
    char err[600];
    struct devreq *r = devreq_new(c);
    if (!r)
        return;
    r->is_set = true;
    snprintf(r->by, sizeof r->by, "control socket");
    char *save = NULL;
    for (char *tok = arg ? strtok_r(arg, " ", &save) : NULL; tok;
         tok = strtok_r(NULL, " ", &save)) {
        if (strcmp(tok, "BY") == 0) {
            char *rest = save ? save : "";
            if (ctlrec_check_text("BY", rest, err, sizeof err) < 0) {
                client_reply(c, "ERR input: set: %s; nothing written\n", err);
                return;
            }
            snprintf(r->by, sizeof r->by, "%s", rest);
            break;
        }
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || !eq[1]) {
            client_reply(c, "ERR input: set: expected PARAM=VALUE, got \"%.60s\"; nothing"
                         " written\n", tok);
            return;
        }
        *eq = '\0';
        if (r->n == PARAMS_MAX) {
            client_reply(c, "ERR input: set: more than %d set points in one request; nothing"
                         " written\n", PARAMS_MAX);
            return;
        }
        const param_meta_t *p = lookup(s, tok, "set", &r->pm[r->n], err, sizeof err);
        if (!p) {
            client_reply(c, "ERR input: %s; nothing written\n", err);
            return;
        }
        if (setpoint_check(p, eq + 1, &r->sp[r->n], err, sizeof err) < 0) {
            client_reply(c, "ERR input: %s\n", err);
            return;
        }
        r->n++;
    }
    if (r->n == 0) {
        client_reply(c, "ERR input: usage: SET PARAM=VALUE [PARAM=VALUE ...] [BY TEXT]\n");
        return;
    }
    dev_next(s, c);
}

/* GET [FRESH] P [P ...]: one line per parameter, tab-separated:
 * NAME VALUE QUALITY QUALITY_NAME AGE_MS TEXT. Without FRESH the latest
 * polled value; with it a read by the device's thread now. */
static void cmd_get(ctlsrv_t *s, struct client *c, char *arg)
{
    char err[600], text[96];
    bool fresh = false;
    struct devreq *r = devreq_new(c);
    if (!r)
        return;
    char *save = NULL;
    for (char *tok = arg ? strtok_r(arg, " ", &save) : NULL; tok;
         tok = strtok_r(NULL, " ", &save)) {
        if (strcmp(tok, "FRESH") == 0 && r->n == 0) {
            fresh = true;
            continue;
        }
        if (r->n == PARAMS_MAX) {
            client_reply(c, "ERR input: get: more than %d parameters in one request\n",
                         PARAMS_MAX);
            return;
        }
        if (!lookup(s, tok, "get", &r->pm[r->n], err, sizeof err)) {
            client_reply(c, "ERR input: %s\n", err);
            return;
        }
        r->n++;
    }
    if (r->n == 0) {
        client_reply(c, "ERR input: usage: GET [FRESH] PARAM [PARAM ...]\n");
        return;
    }
    if (fresh) {
        dev_next(s, c);
        return;
    }
    int64_t now = clock_real_us();
    for (r->cur = 0; r->cur < r->n; r->cur++) {
        const param_meta_t *p = &r->pm[r->cur];
        sample_t smp;
        if (!s->env.poller || poller_latest(s->env.poller, p, &smp) < 0) {
            dev_fail(r, "get: %s has not been polled yet", p->qualified);
            continue;
        }
        long long age_ms = (now - smp.ts_us) / 1000;
        if (smp.has_value) {
            setpoint_format_value(text, sizeof text, p, smp.value);
            dev_line(r, "%s\t%.10g\t%d\t%s\t%lld\t%s\n", p->qualified, smp.value, smp.quality,
                     quality_name(smp.quality), age_ms, text);
        } else {
            dev_line(r, "%s\tNULL\t%d\t%s\t%lld\tNULL\n", p->qualified, smp.quality,
                     quality_name(smp.quality), age_ms);
        }
    }
    dev_finish(s, c);
}

/* ---- QUARANTINE --------------------------------------------------------------- */

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
                     (long long)e->seq, records_name(e->kind), (long long)e->process_id,
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

static void quarantine_list(ctlsrv_t *s, struct client *c)
{
    char err[512];
    /* The header goes in front once the count is known. */
    enum { HEAD = 32 };
    struct qlist q = { .cap = 256 * 1024, .len = HEAD };
    q.buf = malloc(q.cap);
    if (!q.buf) {
        client_reply(c, "ERR out of memory\n");
        return;
    }
    long n = spool_quarantine_list(s->env.spool, qlist_add, &q, err, sizeof err);
    if (n < 0) {
        client_reply(c, "ERR %s\n", err);
    } else {
        char head[HEAD];
        int h = snprintf(head, sizeof head, "OK %ld\n", n);
        memcpy(q.buf + HEAD - h, head, (size_t)h);
        send_all(c, q.buf + HEAD - h, q.len - HEAD + (size_t)h);
    }
    free(q.buf);
}

static void cmd_quarantine(ctlsrv_t *s, struct client *c, char *arg)
{
    char err[512];
    char *what = arg ? strtok(arg, " ") : NULL;
    char *which = what ? strtok(NULL, " ") : NULL;

    if (what && strcmp(what, "LIST") == 0) {
        quarantine_list(s, c);
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
    long n = retry ? spool_quarantine_retry(s->env.spool, seq, err, sizeof err)
                   : spool_quarantine_drop(s->env.spool, seq, err, sizeof err);
    if (n < 0) {
        client_reply(c, "ERR %s\n", err);
    } else if (n == 0 && seq) {
        client_reply(c, "ERR no quarantined batch %lld\n", seq);
    } else {
        log_msg(LL_WARN, "operator %s %ld quarantined batch(es)%s", retry ? "retried" : "dropped",
                n, retry ? "" : "; gap records queued");
        if (retry)
            wake_forwarder(s);
        client_reply(c, "OK %s %ld batch(es)%s\n", retry ? "queued again" : "dropped", n,
                     retry ? "" : "; a gap record for each is queued for data_gaps");
    }
}

/* ---- the command table ---------------------------------------------------------- */

struct command {
    const char *name;        /* the request's first word */
    void (*fn)(ctlsrv_t *s, struct client *c, char *arg);   /* arg: the rest, or NULL */
};

/* In the order the unknown-command answer names them. */
static const struct command commands[] = {
    { .name = "PING", .fn = cmd_ping },
    { .name = "SESSION", .fn = cmd_session },
    { .name = "STATUS", .fn = cmd_status },
    { .name = "METRICS", .fn = cmd_metrics },
    { .name = "START", .fn = cmd_start },
    { .name = "STOP", .fn = cmd_stop },
    { .name = "STEP", .fn = cmd_step },
    { .name = "EVENT", .fn = cmd_event },
    { .name = "SET", .fn = cmd_set },
    { .name = "GET", .fn = cmd_get },
    { .name = "QUARANTINE", .fn = cmd_quarantine },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void handle_command(ctlsrv_t *s, struct client *c, char *line)
{
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(line, commands[i].name) == 0) {
            commands[i].fn(s, c, arg);
            return;
        }
    }
    char names[256] = "";
    for (size_t i = 0; i < NCOMMANDS; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", commands[i].name);
    }
    client_reply(c, "ERR unknown command \"%.40s\" (expected %s)\n", line, names);
}

/* ---- connections ------------------------------------------------------------------ */

/* Handles the complete request lines buffered for c: one, or in a session
 * each in turn while the previous one was answered at once. */
static void client_process(ctlsrv_t *s, struct client *c)
{
    while (c->fd >= 0 && !c->dev && !c->wait_process) {
        char *nl = strchr(c->in, '\n');
        if (!nl) {
            if (c->inlen == sizeof c->in - 1)
                client_reply(c, "ERR request too long\n");
            return;
        }
        *nl = '\0';
        if (nl > c->in && nl[-1] == '\r')
            nl[-1] = '\0';
        /* the line leaves the buffer before it is handled: in a session the
         * next request may already follow it */
        char line[sizeof c->in];
        memcpy(line, c->in, (size_t)(nl - c->in) + 1);
        size_t rest = c->inlen - (size_t)(nl + 1 - c->in);
        memmove(c->in, nl + 1, rest);
        c->inlen = rest;
        c->in[rest] = '\0';
        handle_command(s, c, line);   /* outside a session the answer closes c */
    }
}

static void client_read(ctlsrv_t *s, struct client *c)
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
    client_process(s, c);
}

int ctlsrv_adopt(ctlsrv_t *s, int fd)
{
    for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++) {
        if (s->clients[i].fd < 0) {
            s->clients[i] = (struct client){ .fd = fd };
            return 0;
        }
    }
    const char busy[] = "ERR busy: too many control connections\n";
    ssize_t w = send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    close(fd);
    return -1;
}

static void accept_clients(ctlsrv_t *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        ctlsrv_adopt(s, fd);
    }
}

size_t ctlsrv_pollfds(ctlsrv_t *s, struct pollfd *pfd, int64_t *wake_ns)
{
    size_t n = 0;
    if (s->listen_fd >= 0) {
        s->slot[n] = -1;
        pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
    }
    s->slot[n] = -2;
    pfd[n++] = (struct pollfd){ .fd = s->done_fd, .events = POLLIN };
    for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++) {
        struct client *c = &s->clients[i];
        if (c->fd < 0)
            continue;
        if (c->dev)
            continue;   /* answered when its device op is done */
        if (c->wait_process) {
            if (c->wait_deadline_ns < *wake_ns)
                *wake_ns = c->wait_deadline_ns;
            continue;
        }
        s->slot[n] = i;
        pfd[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
    }
    return n;
}

void ctlsrv_handle(ctlsrv_t *s, const struct pollfd *pfd, size_t n)
{
    /* New connections first: they take free slots, never one polled now. */
    for (size_t k = 0; k < n; k++)
        if (s->slot[k] == -1 && pfd[k].revents)
            accept_clients(s);
    for (size_t k = 0; k < n; k++)
        if (s->slot[k] == -2 && pfd[k].revents) {
            uint64_t v;
            ssize_t rd = read(s->done_fd, &v, sizeof v);
            (void)rd;
            for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++) {
                struct client *c = &s->clients[i];
                if (c->fd >= 0 && c->dev && dev_group_done(c->dev)) {
                    dev_done(s, c);
                    if (c->session)
                        client_process(s, c);
                }
            }
        }
    for (size_t k = 0; k < n; k++)
        if (s->slot[k] >= 0 && pfd[k].revents)
            client_read(s, &s->clients[s->slot[k]]);
}
