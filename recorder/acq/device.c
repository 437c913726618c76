/* device.c — one Modbus connection, its poll groups and its thread.
 *
 * Why a thread per device rather than one event loop for all: libmodbus'
 * calls block — connect, then each request until its answer or the response
 * timeout — and it offers no non-blocking request API. A dead device costs
 * a full timeout per attempt, a slow one its latency per request; on a
 * shared loop that time would be taken from every other device's cycle.
 * With one thread each, a device only ever delays itself. Threads share
 * nothing but the sink (the poller's queue, under its mutex) and their own
 * stats (under the device's mutex), so there is no lock on the poll path.
 * An RTU line is one device: the RS-485 bus carries one request at a time
 * (half duplex, one master), so its units are polled in turn by one thread;
 * a unit that does not answer is backed off on its own so it does not cost
 * its bus neighbours a timeout every cycle.
 *
 * Thread loop (one event loop, no sleeping): take the group with the
 * earliest deadline; if it is in the future, ppoll() the wake eventfd until
 * then (device_stop writes it); else run the group's cycle, then advance its
 * deadline by whole intervals. */
#include "acq/device.h"

#include <errno.h>
#include <modbus.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "acq/deadband.h"
#include "common/log.h"
#include "acq/quality.h"
#include "common/clock.h"
#include "common/backoff.h"

#define MAX_RANGES 64
/* A value isolated after an exception rejoins its neighbours' request after
 * this many good reads on its own; each time it has to be isolated again the
 * wait doubles, so a value that keeps failing costs one extra request per
 * cycle, not a burst of re-reads every few cycles. */
#define ISOLATE_MIN_READS 10
#define ISOLATE_MAX_READS 3000
/* An RTU unit that does not answer costs its whole bus a response timeout
 * per attempt, so its backoff starts higher than a reconnect's. */
#define UNIT_BACKOFF_MIN_MS 1000

/* What device_same compares, byte for byte: filled after memset(0) and never
 * changed once the thread runs, so the main thread may read it unlocked. */
struct item_def {
    int32_t id;
    regtype_t table;
    dtype_t type;
    worder_t order;
    uint16_t address;
    double scale, offset, min, max;
    bool has_min, has_max;
    deadband_cfg_t db;
    int stale_after_ms;      /* 0: never stale */
    char qualified[128];
};

struct item {
    struct item_def def;
    /* device thread only: */
    deadband_state_t dbs;
    /* stale watch: the registers last read and since when (cycle deadline)
     * they have not changed; reset by a failed read */
    bool watching;
    uint16_t last_raw[4];
    int64_t unchanged_since_ns;
    bool dropped;            /* refused as a definition error: not planned */
    bool ever_read;          /* the device has served it at least once */
    bool alone;              /* isolated after an exception */
    unsigned good_run;       /* good reads on its own since isolated */
    unsigned isolate_for;    /* good reads needed to rejoin */
    complain_t refused;      /* exception answers: logged at start and end */
    sample_t cur;            /* the last value read, before its deadband */
    sample_t pub;            /* cur at the end of the cycle, under d->mu */
};

struct unit_def {            /* compared by device_same */
    int unit_id;
    int max_registers, max_bits, max_gap;
    size_t nranges;
    plan_range_t ranges[MAX_RANGES];
};

struct unit {
    struct unit_def def;
    char name[340];                /* for messages: the label, plus the unit id on RTU */
    /* device thread only: */
    int max_registers, max_bits;   /* effective: shrink when the device refuses */
    int64_t retry_ns;              /* RTU: not asked before this after a timeout */
    backoff_t backoff;
    complain_t silent;
};

struct group {
    size_t unit;                   /* index in d->units */
    int interval_ms;
    struct item *items;
    size_t nitems;
    /* device thread only: */
    int64_t due_ns;
    bool replan;
    size_t *live;                  /* plan item k is items[live[k]] */
    plan_item_t *pitems;
    size_t *order;
    plan_req_t *reqs;
    size_t nreqs, min_reqs;
    sample_t *out;                 /* samples of the cycle being run */
    size_t nout;
};

struct device {
    device_conn_t conn;
    char label[320];
    struct unit *units;
    size_t nunits;
    struct group *groups;
    size_t ngroups;
    /* device thread only: */
    modbus_t *ctx;
    bool conn_up;
    bool answered;                 /* a request was answered since connecting */
    int64_t conn_retry_ns;
    backoff_t conn_backoff;
    complain_t down;
    uint16_t regs[MODBUS_MAX_READ_REGISTERS];
    uint8_t bits[MODBUS_MAX_READ_BITS];
    /* shared: */
    device_sink_fn sink;
    void *sink_arg;
    pthread_t thread;
    bool started;
    int wake_fd;
    atomic_bool stop, exited, resync;
    atomic_bool finish;          /* device_finish: exit after the current cycle */
    pthread_mutex_t mu;            /* guards st */
    device_stats_t st;
    /* the write/read queue (device_submit), under opmu */
    pthread_mutex_t opmu;
    device_op_t *ops_head, *ops_tail;
    size_t ops_n;                  /* queued, at most DEVICE_OPS_MAX */
    bool ops_closed;               /* the thread is exiting: nothing more queued */
    atomic_bool ops_pending;       /* a cheap look between two requests */
};

device_t *device_new(const device_conn_t *conn, const char *label)
{
    device_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    memcpy(&d->conn, conn, sizeof d->conn);   /* padding too: device_same compares bytes */
    snprintf(d->label, sizeof d->label, "%s", label);
    d->wake_fd = -1;
    /* Jitter uniform in [b/2, b] for the current step b, so devices that
     * failed together do not retry in lockstep. */
    backoff_init(&d->conn_backoff, conn->reconnect_min_ms, conn->reconnect_max_ms,
                 BACKOFF_JITTER_EQUAL, (unsigned)clock_mono_ns() ^ (unsigned)(uintptr_t)d);
    atomic_init(&d->stop, false);
    atomic_init(&d->finish, false);
    atomic_init(&d->exited, true);
    atomic_init(&d->resync, false);
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->opmu, NULL);
    atomic_init(&d->ops_pending, false);
    snprintf(d->st.label, sizeof d->st.label, "%s", label);
    return d;
}

static int unit_backoff_min(const device_t *d)
{
    int b = d->conn.reconnect_min_ms > UNIT_BACKOFF_MIN_MS ? d->conn.reconnect_min_ms
                                                           : UNIT_BACKOFF_MIN_MS;
    return b < d->conn.reconnect_max_ms ? b : d->conn.reconnect_max_ms;
}

int device_add_unit(device_t *d, int unit_id, const plan_limits_t *lim)
{
    for (size_t i = 0; i < d->nunits; i++)
        if (d->units[i].def.unit_id == unit_id) {
            errno = EEXIST;
            return -1;
        }
    if (lim->n_no_bridge > MAX_RANGES) {
        errno = E2BIG;
        return -1;
    }
    struct unit *u = realloc(d->units, (d->nunits + 1) * sizeof *u);
    if (!u)
        return -1;
    d->units = u;
    u = &d->units[d->nunits++];
    memset(u, 0, sizeof *u);
    u->def.unit_id = unit_id;
    u->def.max_registers = lim->max_registers;
    u->def.max_bits = lim->max_bits;
    u->def.max_gap = lim->max_gap;
    u->def.nranges = lim->n_no_bridge;
    if (lim->n_no_bridge)
        memcpy(u->def.ranges, lim->no_bridge, lim->n_no_bridge * sizeof *lim->no_bridge);
    if (d->conn.link.transport == TR_RTU)
        snprintf(u->name, sizeof u->name, "%s unit %d", d->label, unit_id);
    else
        snprintf(u->name, sizeof u->name, "%s", d->label);
    u->max_registers = lim->max_registers;
    u->max_bits = lim->max_bits;
    backoff_init(&u->backoff, unit_backoff_min(d), d->conn.reconnect_max_ms,
                 BACKOFF_JITTER_EQUAL, d->conn_backoff.seed ^ (unsigned)unit_id);
    return 0;
}

static plan_limits_t unit_limits(const struct unit *u)
{
    return (plan_limits_t){
        .max_registers = u->max_registers,
        .max_bits = u->max_bits,
        .max_gap = u->def.max_gap,
        .no_bridge = u->def.ranges,
        .n_no_bridge = u->def.nranges,
    };
}

int device_add_param(device_t *d, const param_meta_t *pm, char *why, size_t whylen)
{
    size_t ui;
    for (ui = 0; ui < d->nunits; ui++)
        if (d->units[ui].def.unit_id == pm->unit_id)
            break;
    if (ui == d->nunits) {
        errno = ENOENT;
        return -1;
    }
    plan_limits_t lim = unit_limits(&d->units[ui]);
    plan_item_t pi = { .table = pm->table, .address = (uint16_t)pm->address,
                       .count = (uint16_t)regcodec_words(pm->type) };
    const char *bad = pm->address < 0 || pm->address > 65535
                          ? "address outside 0..65535" : plan_item_check(&pi, &lim, why, whylen);
    if (bad) {
        if (bad != why)
            snprintf(why, whylen, "%s", bad);
        return 1;
    }
    size_t g;
    for (g = 0; g < d->ngroups; g++)
        if (d->groups[g].unit == ui && d->groups[g].interval_ms == pm->poll_ms)
            break;
    if (g == d->ngroups) {
        struct group *ng = realloc(d->groups, (d->ngroups + 1) * sizeof *ng);
        if (!ng)
            return -1;
        d->groups = ng;
        d->groups[d->ngroups++] = (struct group){ .unit = ui, .interval_ms = pm->poll_ms };
    }
    struct group *gr = &d->groups[g];
    struct item *it = realloc(gr->items, (gr->nitems + 1) * sizeof *it);
    if (!it)
        return -1;
    gr->items = it;
    it = &gr->items[gr->nitems++];
    memset(it, 0, sizeof *it);
    it->def.id = pm->id;
    it->def.table = pm->table;
    it->def.type = pm->type;
    it->def.order = pm->order;
    it->def.address = (uint16_t)pm->address;
    it->def.scale = pm->scale;
    it->def.offset = pm->offset;
    it->def.min = pm->min;
    it->def.max = pm->max;
    it->def.has_min = pm->has_min;
    it->def.has_max = pm->has_max;
    it->def.db.enabled = pm->has_deadband;
    it->def.db.deadband = pm->has_deadband ? pm->deadband : 0;
    it->def.db.max_interval_ms = pm->has_deadband ? pm->max_interval_ms : 0;
    it->def.stale_after_ms = pm->stale_after_ms > 0 ? pm->stale_after_ms : 0;
    snprintf(it->def.qualified, sizeof it->def.qualified, "%s", pm->qualified);
    return 0;
}

/* Plans g with its live items; min_reqs is the same plan with nothing
 * isolated (what the map needs at best under the unit's limits). */
static void replan(device_t *d, struct group *g)
{
    struct unit *u = &d->units[g->unit];
    plan_limits_t lim = unit_limits(u);
    size_t n = 0;
    for (size_t i = 0; i < g->nitems; i++) {
        const struct item *it = &g->items[i];
        if (it->dropped)
            continue;
        g->live[n] = i;
        g->pitems[n++] = (plan_item_t){ .table = it->def.table, .address = it->def.address,
                                        .count = (uint16_t)regcodec_words(it->def.type),
                                        .alone = false };
    }
    /* the unconstrained plan first, into the same arrays; then the real one */
    g->min_reqs = plan_build(g->pitems, n, &lim, g->order, g->reqs);
    for (size_t k = 0; k < n; k++)
        g->pitems[k].alone = g->items[g->live[k]].alone;
    g->nreqs = plan_build(g->pitems, n, &lim, g->order, g->reqs);
    g->replan = false;
}

static struct item *req_item(struct group *g, const plan_req_t *r, size_t k)
{
    return &g->items[g->live[g->order[r->first + k]]];
}

/* ---- connection ---------------------------------------------------------- */

static void conn_close(device_t *d)
{
    devconn_close(d->ctx);
    d->ctx = NULL;
    d->conn_up = false;
}

/* Connects unless connected or backing off. True when connected. */
static bool conn_open(device_t *d, int64_t now)
{
    char why[400];
    const device_conn_t *c = &d->conn;

    if (d->conn_up)
        return true;
    if (now < d->conn_retry_ns)
        return false;
    d->ctx = devconn_open(&c->link, why, sizeof why);
    if (!d->ctx)
        goto fail;
    d->conn_up = true;
    d->answered = false;
    pthread_mutex_lock(&d->mu);
    d->st.connects++;
    pthread_mutex_unlock(&d->mu);
    log_msg(LL_DEBUG, "device %s: connected", d->label);
    return true;
fail:;
    int err = errno;
    conn_close(d);
    int wait = backoff_next(&d->conn_backoff);
    log_complain(&d->down, LL_WARN, "device %s: cannot %s: %s; retrying with backoff"
                 " up to %d ms", d->label, c->link.transport == TR_TCP ? "connect" : "open the line",
                 modbus_strerror(err), c->reconnect_max_ms);
    d->conn_retry_ns = now + (int64_t)wait * 1000000LL;
    return false;
}

/* A request failed in transport (TCP): a late answer could be taken for the
 * next request's, so the connection goes. Reconnect at once if it had
 * worked; after a connection that never answered, back off. */
static void conn_lost(device_t *d, int err, int64_t now)
{
    log_complain(&d->down, LL_WARN, "device %s: %s; reconnecting", d->label, modbus_strerror(err));
    bool worked = d->answered;
    conn_close(d);
    if (worked) {
        backoff_reset(&d->conn_backoff);
        d->conn_retry_ns = now;
    } else {
        d->conn_retry_ns = now + (int64_t)backoff_next(&d->conn_backoff) * 1000000LL;
    }
}

static void answered(device_t *d, struct unit *u)
{
    d->answered = true;
    backoff_reset(&d->conn_backoff);
    backoff_reset(&u->backoff);
    log_release(&d->down, LL_INFO, "device %s: answering again", d->label);
    log_release(&u->silent, LL_INFO, "device %s: answering again", u->name);
}

/* ---- requests and values ------------------------------------------------- */

static bool is_bits(regtype_t t)
{
    return t == REG_COIL || t == REG_DISCRETE;
}

static enum device_err_kind err_kind(int err)
{
    if (quality_is_exception(err))
        return DEVICE_ERR_EXCEPTION;
    return err == ETIMEDOUT ? DEVICE_ERR_TIMEOUT : DEVICE_ERR_COMM;
}

const char *device_err_kind_name(enum device_err_kind k)
{
    switch (k) {
    case DEVICE_ERR_TIMEOUT: return "timeout";
    case DEVICE_ERR_COMM: return "comm";
    case DEVICE_ERR_EXCEPTION: return "exception";
    case DEVICE_ERR_KINDS: break;
    }
    return "?";
}

/* Reads count registers/bits of table at addr into d->regs / d->bits.
 * Returns 0, or the errno of the failure (EMBBADDATA for a short answer). */
static int do_read(device_t *d, regtype_t table, int addr, int count)
{
    int rc = -1;
    errno = EINVAL;
    switch (table) {
    case REG_COIL:
        rc = modbus_read_bits(d->ctx, addr, count, d->bits);
        break;
    case REG_DISCRETE:
        rc = modbus_read_input_bits(d->ctx, addr, count, d->bits);
        break;
    case REG_HOLDING:
        rc = modbus_read_registers(d->ctx, addr, count, d->regs);
        break;
    case REG_INPUT:
        rc = modbus_read_input_registers(d->ctx, addr, count, d->regs);
        break;
    }
    if (rc == count)
        return 0;
    return rc < 0 ? errno : EMBBADDATA;
}

/* Adds a sample of it to the cycle's output unless its deadband holds it
 * back. Deadband time is the cycle's deadline, free of scheduling jitter. */
static void emit(struct group *g, struct item *it, int16_t q, bool has_value, double v,
                 int64_t ts)
{
    if (!has_value)
        it->watching = false;    /* what comes back is watched anew */
    it->cur = (sample_t){ .parameter_id = it->def.id, .ts_us = ts, .value = v,
                          .quality = q, .has_value = has_value };
    if (!deadband_keep(&it->def.db, &it->dbs, q, has_value, v, g->due_ns))
        return;
    g->out[g->nout++] = (sample_t){ .parameter_id = it->def.id, .ts_us = ts, .value = v,
                                    .quality = q, .has_value = has_value };
}

/* True when it's registers (src, as read) have not changed for
 * stale_after_ms of cycle deadlines: a device that answers from a frozen
 * process image. Measured signals always move a little (noise). */
static bool stale_watch(struct item *it, const uint16_t *src, int64_t due_ns)
{
    size_t n = (size_t)(is_bits(it->def.table) ? 1 : regcodec_words(it->def.type));
    if (!it->watching || memcmp(it->last_raw, src, n * sizeof *src) != 0) {
        memcpy(it->last_raw, src, n * sizeof *src);
        it->watching = true;
        it->unchanged_since_ns = due_ns;
        return false;
    }
    return due_ns - it->unchanged_since_ns >= (int64_t)it->def.stale_after_ms * 1000000LL;
}

/* it was read fine: decode from the buffer of a read starting at start. */
static void emit_value(device_t *d, struct group *g, struct item *it, int start, int64_t ts)
{
    uint16_t one;
    int off = it->def.address - start;
    const uint16_t *src = d->regs + off;
    if (is_bits(it->def.table)) {
        one = d->bits[off];
        src = &one;
    }
    double v = regcodec_decode(src, it->def.type, it->def.order) * it->def.scale + it->def.offset;
    int16_t q = quality_of_limits(v, it->def.has_min, it->def.min, it->def.has_max,
                                  it->def.max);
    if (it->def.stale_after_ms && stale_watch(it, src, g->due_ns))
        q = Q_STALE;   /* not live: whether it is in range says nothing */
    it->ever_read = true;
    log_release(&it->refused, LL_INFO, "parameter %s (id %d): device %s reads it again",
                it->def.qualified, it->def.id, d->label);
    if (it->alone && ++it->good_run >= it->isolate_for) {
        it->alone = false;     /* rejoin the neighbours' request */
        g->replan = true;
    }
    emit(g, it, q, true, v, ts);
}

/* The device answered exception err to it read on its own. */
static void item_refused(device_t *d, struct group *g, struct item *it, int err, int64_t ts)
{
    const struct unit *u = &d->units[g->unit];
    if (err == EMBXILADD && !it->ever_read) {
        /* never served: the definition points where the device has nothing */
        int words = regcodec_words(it->def.type);
        log_msg(LL_WARN, "parameter %s (id %d) skipped: device %s answers"
                " \"illegal data address\" for %s %u (%d %s%s)", it->def.qualified, it->def.id,
                u->name, regcodec_regtype_name(it->def.table), it->def.address,
                words, is_bits(it->def.table) ? "bit" : "register", words == 1 ? "" : "s");
        it->dropped = true;
        g->replan = true;
        pthread_mutex_lock(&d->mu);
        d->st.params_dropped++;
        pthread_mutex_unlock(&d->mu);
    } else {
        log_complain(&it->refused, LL_WARN, "parameter %s (id %d): device %s answers"
                     " exception %d (%s); stored with quality %d until it reads again",
                     it->def.qualified, it->def.id, u->name,
                     err - MODBUS_ENOBASE, modbus_strerror(err), quality_of_errno(err));
        if (!it->alone) {
            it->alone = true;
            g->replan = true;
            it->isolate_for = it->isolate_for == 0 ? ISOLATE_MIN_READS
                              : it->isolate_for * 2 > ISOLATE_MAX_READS ? ISOLATE_MAX_READS
                              : it->isolate_for * 2;
        }
        it->good_run = 0;
    }
    emit(g, it, quality_of_errno(err), false, 0, ts);
}

/* A request of several values was refused although each reads on its own:
 * the device takes fewer registers (bits) per request than configured. */
static void shrink_limit(device_t *d, struct group *g, const plan_req_t *r, int err)
{
    struct unit *u = &d->units[g->unit];
    bool bits = is_bits(r->table);
    int *lim = bits ? &u->max_bits : &u->max_registers;
    int want = r->count / 2 > 0 ? r->count / 2 : 1;
    if (want >= *lim)
        return;
    *lim = want;
    log_msg(LL_WARN, "device %s refuses a %u-%s read of %s %u (exception %d) although"
            " each value in it reads on its own: planning with at most %d per request"
            " (set machine_components.%s)", u->name, r->count,
            bits ? "bit" : "register", regcodec_regtype_name(r->table), r->start,
            err - MODBUS_ENOBASE, want, bits ? "max_bits" : "max_registers");
    for (size_t i = 0; i < d->ngroups; i++)
        if (d->groups[i].unit == g->unit)
            d->groups[i].replan = true;
}

/* Request r was answered with exception err: re-read its values one by one
 * so that only those the device refuses are marked. Returns 0, or the errno
 * of a transport failure on the way (the values of r not read by then have
 * been marked with it). */
static int split_request(device_t *d, struct group *g, const plan_req_t *r, int err,
                         uint64_t *nreq, uint64_t nerr[DEVICE_ERR_KINDS])
{
    if (r->n == 1) {
        item_refused(d, g, req_item(g, r, 0), err, clock_real_us());
        return 0;
    }
    size_t refused = 0;
    for (size_t k = 0; k < r->n; k++) {
        struct item *it = req_item(g, r, k);
        (*nreq)++;
        int e = do_read(d, it->def.table, it->def.address, regcodec_words(it->def.type));
        int64_t ts = clock_real_us();
        if (e == 0) {
            emit_value(d, g, it, it->def.address, ts);
        } else if (quality_is_exception(e)) {
            nerr[err_kind(e)]++;
            refused++;
            item_refused(d, g, it, e, ts);
        } else {
            nerr[err_kind(e)]++;
            for (size_t j = k; j < r->n; j++)
                emit(g, req_item(g, r, j), quality_of_errno(e), false, 0, ts);
            return e;
        }
    }
    if (refused == 0)
        shrink_limit(d, g, r, err);
    return 0;
}

/* Marks every value of r with q (nothing was read). */
static void mark_request(struct group *g, const plan_req_t *r, int16_t q, int64_t ts)
{
    for (size_t k = 0; k < r->n; k++)
        emit(g, req_item(g, r, k), q, false, 0, ts);
}

/* ---- the write/read queue (device_submit) ------------------------------- */

static void op_done(device_op_t *op)
{
    atomic_store(&op->done, true);
    if (op->notify_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(op->notify_fd, &one, sizeof one);
        (void)n;
    }
}

/* Reads op's value into words. Returns 0 or the errno of the failure. */
static int op_read(device_t *d, const device_op_t *op, uint16_t words[4])
{
    int e = do_read(d, op->table, op->address, op->nwords);
    if (e)
        return e;
    if (is_bits(op->table))
        words[0] = d->bits[0] ? 1 : 0;
    else
        memcpy(words, d->regs, op->nwords * sizeof *words);
    return 0;
}

static int op_write(device_t *d, const device_op_t *op)
{
    int rc = -1;
    errno = EMBXILFUN;           /* read-only tables: never sent */
    if (op->table == REG_COIL)
        rc = modbus_write_bit(d->ctx, op->address, op->words[0] ? 1 : 0);
    else if (op->table == REG_HOLDING && op->nwords == 1)
        rc = modbus_write_register(d->ctx, op->address, op->words[0]);
    else if (op->table == REG_HOLDING)
        rc = modbus_write_registers(d->ctx, op->address, op->nwords, op->words);
    return rc < 0 ? errno : 0;
}

/* A request of op failed with e: says so in op->err and, for a transport
 * failure, treats the connection as the poll path does. Returns q. */
static int16_t op_failed(device_t *d, device_op_t *op, const char *what, int e)
{
    snprintf(op->err, sizeof op->err, "device %.200s: %s %s %u: %.100s", d->label, what,
             regcodec_regtype_name(op->table), op->address, modbus_strerror(e));
    if (!quality_is_exception(e)) {
        if (d->conn.link.transport == TR_TCP)
            conn_lost(d, e, clock_mono_ns());
        else
            modbus_flush(d->ctx);
    }
    return quality_of_errno(e);
}

/* op read its parameter: that is now its latest value (device_latest), so
 * a get right after a set sees the set point. */
static void op_latest(device_t *d, const device_op_t *op)
{
    int64_t ts = clock_real_us();
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->ngroups; i++)
        for (size_t k = 0; k < d->groups[i].nitems; k++) {
            struct item *it = &d->groups[i].items[k];
            if (it->def.id != op->param_id || it->def.table != op->table)
                continue;
            double v = regcodec_decode(op->back, it->def.type, it->def.order) * it->def.scale +
                       it->def.offset;
            int16_t q = quality_of_limits(v, it->def.has_min, it->def.min, it->def.has_max,
                                          it->def.max);
            it->cur = it->pub = (sample_t){ .parameter_id = it->def.id, .ts_us = ts, .value = v,
                                            .quality = q, .has_value = true };
        }
    pthread_mutex_unlock(&d->mu);
}

static void op_run(device_t *d, device_op_t *op)
{
    int64_t now = clock_mono_ns();
    struct unit *u = NULL;
    int e;
    for (size_t i = 0; i < d->nunits; i++)
        if (d->units[i].def.unit_id == op->unit_id)
            u = &d->units[i];
    op->q_before = op->q_write = op->q_back = Q_COMM_ERROR;
    if (!u) {
        snprintf(op->err, sizeof op->err, "device %s has no unit %d", d->label, op->unit_id);
        return;
    }
    if (!conn_open(d, now)) {
        snprintf(op->err, sizeof op->err, "device %s is down (reconnecting); nothing sent",
                 d->label);
        return;
    }
    if (d->down.active) {
        /* its last request failed: a set must not wait a timeout more */
        snprintf(op->err, sizeof op->err, "device %s does not answer (reconnecting); nothing"
                 " sent", d->label);
        return;
    }
    if (now < u->retry_ns) {
        snprintf(op->err, sizeof op->err, "device %s does not answer (backed off); nothing"
                 " sent", u->name);
        return;
    }
    modbus_set_slave(d->ctx, op->unit_id);
    if (op->kind == DEVICE_OP_WRITE) {
        e = op_read(d, op, op->before);
        op->q_before = e ? quality_of_errno(e) : Q_GOOD;
        if (e && !quality_is_exception(e)) {
            op_failed(d, op, "reading", e);
            return;
        }
        e = op_write(d, op);
        if (e) {
            op->q_write = op_failed(d, op, "writing", e);
            return;
        }
        op->q_write = Q_GOOD;
        answered(d, u);
    }
    e = op_read(d, op, op->back);
    op->q_back = e ? op_failed(d, op, "reading", e) : Q_GOOD;
    if (!e) {
        answered(d, u);
        op_latest(d, op);
    }
}

/* True when op is a write that did not land as asked: its group ends. */
static bool op_write_failed(const device_op_t *op)
{
    if (op->kind != DEVICE_OP_WRITE)
        return false;
    if (op->q_write != Q_GOOD || op->q_back != Q_GOOD)
        return true;
    if (is_bits(op->table))
        return (op->back[0] != 0) != (op->words[0] != 0);
    return memcmp(op->back, op->words, op->nwords * sizeof *op->words) != 0;
}

/* Serves every queued op, in arrival order; a group's ops back to back
 * (they were queued together, so the loop takes them all). Device thread
 * only. */
static void ops_service(device_t *d)
{
    bool skip = false;   /* an earlier write of the current group failed */
    for (;;) {
        pthread_mutex_lock(&d->opmu);
        device_op_t *op = d->ops_head;
        if (op) {
            d->ops_head = op->next;
            if (!d->ops_head)
                d->ops_tail = NULL;
            d->ops_n--;
        }
        atomic_store(&d->ops_pending, d->ops_head != NULL);
        pthread_mutex_unlock(&d->opmu);
        if (!op)
            return;
        op->wait_us = (clock_mono_ns() - op->wait_us) / 1000;
        if (skip) {
            op->skipped = true;
            op->q_before = op->q_write = op->q_back = Q_COMM_ERROR;
            snprintf(op->err, sizeof op->err, "device %.200s: not sent (an earlier set point"
                     " of the same step failed)", d->label);
        } else {
            op_run(d, op);
        }
        /* decided before done: the caller may reuse op once it is set */
        skip = op->chained && (skip || op_write_failed(op));
        op_done(op);
    }
}

/* The thread is exiting: what is queued fails, nothing more is taken. */
static void ops_close(device_t *d)
{
    pthread_mutex_lock(&d->opmu);
    device_op_t *op = d->ops_head;
    d->ops_head = d->ops_tail = NULL;
    d->ops_n = 0;
    d->ops_closed = true;
    atomic_store(&d->ops_pending, false);
    pthread_mutex_unlock(&d->opmu);
    while (op) {
        device_op_t *next = op->next;
        op->q_before = op->q_write = op->q_back = Q_COMM_ERROR;
        snprintf(op->err, sizeof op->err, "device %.200s: its polling is stopping (aldrecd"
                 " stopping or the device reconfigured); nothing sent", d->label);
        op_done(op);
        op = next;
    }
}

int device_submit_group(device_t *d, device_op_t *const ops[], size_t n)
{
    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    int64_t now = clock_mono_ns();   /* wait_us: made a duration when taken */
    for (size_t i = 0; i < n; i++) {
        device_op_t *op = ops[i];
        atomic_store(&op->done, false);
        op->next = i + 1 < n ? ops[i + 1] : NULL;
        op->chained = i + 1 < n;
        op->skipped = false;
        op->err[0] = '\0';
        op->wait_us = now;
    }
    pthread_mutex_lock(&d->opmu);
    int e = d->ops_closed || !d->started || atomic_load(&d->stop) || atomic_load(&d->finish)
                ? ESHUTDOWN
                : d->ops_n + n > DEVICE_OPS_MAX ? EAGAIN : 0;
    if (!e) {
        if (d->ops_tail)
            d->ops_tail->next = ops[0];
        else
            d->ops_head = ops[0];
        d->ops_tail = ops[n - 1];
        d->ops_n += n;
        atomic_store(&d->ops_pending, true);
    }
    pthread_mutex_unlock(&d->opmu);
    if (e) {
        errno = e;
        return -1;
    }
    uint64_t one = 1;
    ssize_t w = write(d->wake_fd, &one, sizeof one);
    (void)w;
    return 0;
}

int device_submit(device_t *d, device_op_t *op)
{
    return device_submit_group(d, &op, 1);
}

int device_latest(device_t *d, int32_t id, sample_t *out)
{
    int rc = -1;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->ngroups && rc < 0; i++)
        for (size_t k = 0; k < d->groups[i].nitems; k++) {
            const struct item *it = &d->groups[i].items[k];
            if (it->def.id == id && it->pub.ts_us) {
                *out = it->pub;
                rc = 0;
                break;
            }
        }
    pthread_mutex_unlock(&d->mu);
    if (rc < 0)
        errno = ENOENT;
    return rc;
}

/* One cycle of group g: every planned request, in order. */
static void run_group(device_t *d, struct group *g, int64_t start_ns)
{
    struct unit *u = &d->units[g->unit];
    uint64_t nreq = 0, nerr[DEVICE_ERR_KINDS] = { 0 }, polled = 0;

    g->nout = 0;
    bool up = conn_open(d, start_ns);
    bool unit_ok = up && start_ns >= u->retry_ns;
    if (up)
        modbus_set_slave(d->ctx, u->def.unit_id);
    for (size_t i = 0; i < g->nreqs; i++) {
        const plan_req_t *r = &g->reqs[i];
        polled += r->n;
        if (!up || !unit_ok) {
            mark_request(g, r, Q_COMM_ERROR, clock_real_us());
            continue;
        }
        if (atomic_load(&d->stop))
            return;   /* being removed: nothing of this cycle is delivered */
        if (atomic_load(&d->ops_pending)) {
            /* between two of the cycle's requests: a set never waits for
             * the cycle to end */
            ops_service(d);
            up = d->conn_up;
            if (!up) {
                mark_request(g, r, Q_COMM_ERROR, clock_real_us());
                continue;
            }
            modbus_set_slave(d->ctx, u->def.unit_id);
        }
        nreq++;
        int err = do_read(d, r->table, r->start, r->count);
        int64_t ts = clock_real_us();
        if (err == 0) {
            answered(d, u);
            for (size_t k = 0; k < r->n; k++)
                emit_value(d, g, req_item(g, r, k), r->start, ts);
            continue;
        }
        nerr[err_kind(err)]++;
        if (quality_is_exception(err)) {
            answered(d, u);
            err = split_request(d, g, r, err, &nreq, nerr);
            if (err == 0)
                continue;
        } else {
            mark_request(g, r, quality_of_errno(err), ts);
        }
        /* transport failure */
        if (d->conn.link.transport == TR_TCP) {
            conn_lost(d, err, clock_mono_ns());
            up = false;
        } else if (err == ETIMEDOUT) {
            log_complain(&u->silent, LL_WARN, "device %s: no answer within %d ms;"
                         " backing off", u->name, d->conn.link.response_timeout_ms);
            u->retry_ns = clock_mono_ns() + (int64_t)backoff_next(&u->backoff) * 1000000LL;
            unit_ok = false;
        } else {
            modbus_flush(d->ctx);   /* bad CRC, garbage: resynchronise the line */
        }
    }
    if (g->replan)
        replan(d, g);
    if (g->nout && !atomic_load(&d->stop))
        d->sink(d->sink_arg, d, g->out, g->nout);

    int64_t end_ns = clock_mono_ns();
    pthread_mutex_lock(&d->mu);
    /* Up: connected and some unit answers. On an RTU line one silent unit
     * does not make the line down (it is backed off and logged on its own);
     * judging by the unit of this cycle alone would flip with the schedule. */
    bool some_unit_answers = false;
    for (size_t i = 0; i < d->nunits; i++)
        some_unit_answers |= !d->units[i].silent.active;
    d->st.up = d->conn_up && d->answered && some_unit_answers;
    d->st.cycles++;
    d->st.requests += nreq;
    for (int k = 0; k < DEVICE_ERR_KINDS; k++) {
        d->st.request_errors += nerr[k];
        d->st.errors[k] += nerr[k];
    }
    d->st.samples_polled += polled;
    d->st.samples_stored += g->nout;
    hist_add(&d->st.cycle_us, (uint64_t)(end_ns - start_ns) / 1000);
    hist_add(&d->st.late_us, start_ns > g->due_ns ? (uint64_t)(start_ns - g->due_ns) / 1000 : 0);
    for (size_t k = 0; k < g->nitems; k++)
        g->items[k].pub = g->items[k].cur;
    d->st.requests_per_cycle = d->st.min_requests_per_cycle = 0;
    for (size_t k = 0; k < d->ngroups; k++) {
        d->st.requests_per_cycle += d->groups[k].nreqs;
        d->st.min_requests_per_cycle += d->groups[k].min_reqs;
    }
    pthread_mutex_unlock(&d->mu);
}

/* Next deadline of g: whole intervals after the last one, skipping those
 * already past (counted as overruns) instead of running them back to back. */
static void schedule(device_t *d, struct group *g)
{
    int64_t step = (int64_t)g->interval_ms * 1000000LL;
    g->due_ns += step;
    int64_t now = clock_mono_ns();
    if (g->due_ns <= now) {
        int64_t missed = (now - g->due_ns) / step + 1;
        g->due_ns += missed * step;
        pthread_mutex_lock(&d->mu);
        d->st.overruns += (uint64_t)missed;
        pthread_mutex_unlock(&d->mu);
    }
}

static void wait_until(device_t *d, int64_t due_ns)
{
    int64_t now = clock_mono_ns();
    struct pollfd pfd = { .fd = d->wake_fd, .events = POLLIN };
    struct timespec ts, *tsp = NULL;
    if (due_ns != INT64_MAX) {
        int64_t left = due_ns > now ? due_ns - now : 0;
        ts = (struct timespec){ .tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL };
        tsp = &ts;
    }
    if (ppoll(&pfd, 1, tsp, NULL) > 0) {
        uint64_t v;
        ssize_t n = read(d->wake_fd, &v, sizeof v);
        (void)n;
    }
}

static void *device_main(void *arg)
{
    device_t *d = arg;
    int64_t now = clock_mono_ns();

    for (size_t i = 0; i < d->ngroups; i++)
        d->groups[i].due_ns = now;
    while (!atomic_load(&d->stop) && !atomic_load(&d->finish)) {
        struct group *g = NULL;
        for (size_t i = 0; i < d->ngroups; i++)
            if (!g || d->groups[i].due_ns < g->due_ns)
                g = &d->groups[i];
        if (atomic_load(&d->ops_pending))
            ops_service(d);
        now = clock_mono_ns();
        if (!g || g->due_ns > now) {
            wait_until(d, g ? g->due_ns : INT64_MAX);
            continue;
        }
        if (atomic_exchange(&d->resync, false))
            for (size_t i = 0; i < d->ngroups; i++)
                for (size_t k = 0; k < d->groups[i].nitems; k++)
                    d->groups[i].items[k].dbs.stored = false;
        run_group(d, g, now);
        schedule(d, g);
    }
    ops_close(d);
    conn_close(d);
    atomic_store(&d->exited, true);
    return NULL;
}

int device_start(device_t *d, device_sink_fn fn, void *arg)
{
    size_t params = 0;
    for (size_t i = 0; i < d->ngroups; i++) {
        struct group *g = &d->groups[i];
        size_t n = g->nitems;
        g->live = calloc(n, sizeof *g->live);
        g->pitems = calloc(n, sizeof *g->pitems);
        g->order = calloc(n, sizeof *g->order);
        g->reqs = calloc(n, sizeof *g->reqs);
        g->out = calloc(n, sizeof *g->out);
        if (!g->live || !g->pitems || !g->order || !g->reqs || !g->out) {
            errno = ENOMEM;
            return -1;
        }
        replan(d, g);
        params += n;
    }
    d->st.units = d->nunits;
    d->st.groups = d->ngroups;
    d->st.params = params;
    for (size_t i = 0; i < d->ngroups; i++) {
        d->st.requests_per_cycle += d->groups[i].nreqs;
        d->st.min_requests_per_cycle += d->groups[i].min_reqs;
    }
    d->sink = fn;
    d->sink_arg = arg;
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wake_fd < 0)
        return -1;
    atomic_store(&d->exited, false);
    int rc = pthread_create(&d->thread, NULL, device_main, d);
    if (rc != 0) {
        atomic_store(&d->exited, true);
        errno = rc;
        return -1;
    }
    d->started = true;
    return 0;
}

void device_stop(device_t *d)
{
    if (atomic_exchange(&d->stop, true) || d->wake_fd < 0)
        return;
    uint64_t one = 1;
    ssize_t n = write(d->wake_fd, &one, sizeof one);
    (void)n;
}

void device_finish(device_t *d)
{
    if (atomic_exchange(&d->finish, true) || d->wake_fd < 0)
        return;
    uint64_t one = 1;
    ssize_t n = write(d->wake_fd, &one, sizeof one);
    (void)n;
}

void device_resync(device_t *d)
{
    atomic_store(&d->resync, true);
}

bool device_stopping(const device_t *d)
{
    return atomic_load(&d->stop);
}

bool device_exited(const device_t *d)
{
    return atomic_load(&d->exited);
}

void device_free(device_t *d)
{
    if (!d)
        return;
    if (d->started) {
        if (!atomic_load(&d->finish))   /* finishing: let the cycle complete */
            device_stop(d);
        pthread_join(d->thread, NULL);
    }
    conn_close(d);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    for (size_t i = 0; i < d->ngroups; i++) {
        struct group *g = &d->groups[i];
        free(g->items);
        free(g->live);
        free(g->pitems);
        free(g->order);
        free(g->reqs);
        free(g->out);
    }
    free(d->groups);
    free(d->units);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->opmu);
    free(d);
}

bool device_same(const device_t *a, const device_t *b)
{
    if (memcmp(&a->conn, &b->conn, sizeof a->conn) != 0 || a->nunits != b->nunits ||
        a->ngroups != b->ngroups)
        return false;
    for (size_t i = 0; i < a->nunits; i++)
        if (memcmp(&a->units[i].def, &b->units[i].def, sizeof a->units[i].def) != 0)
            return false;
    for (size_t i = 0; i < a->ngroups; i++) {
        const struct group *x = &a->groups[i], *y = &b->groups[i];
        if (x->unit != y->unit || x->interval_ms != y->interval_ms || x->nitems != y->nitems)
            return false;
        for (size_t k = 0; k < x->nitems; k++)
            if (memcmp(&x->items[k].def, &y->items[k].def, sizeof x->items[k].def) != 0)
                return false;
    }
    return true;
}

const char *device_label(const device_t *d)
{
    return d->label;
}

void device_get_stats(device_t *d, device_stats_t *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->st;
    pthread_mutex_unlock(&d->mu);
}
