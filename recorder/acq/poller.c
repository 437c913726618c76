/* poller.c — split the map into devices, run them, collect their samples. */
#include "acq/poller.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "acq/devconn.h"
#include "acq/device.h"
#include "common/log.h"
#include "common/clock.h"

#define QUEUE_MAX_DEFAULT 1000000
#define MAX_RANGES 64

struct entry {
    char key[300];               /* TCP "host:port unit N", RTU the line */
    device_t *dev;
};

struct poller {
    poller_opts_t opts;
    struct entry *devs;
    size_t ndevs;
    device_t **retiring;         /* stopped, waiting to be joined */
    size_t nretiring;
    size_t params, params_skipped;
    /* sample queue, filled by device threads */
    pthread_mutex_t mu;
    sample_t *q;
    size_t qn, qcap;
    sample_t *spare;             /* main loop's buffer, swapped with q */
    size_t sparecap;
    uint64_t dropped;
    complain_t full;
    int notify_fd;               /* eventfd */
    bool signalled;
};

/* ---- building devices from the map --------------------------------------- */

struct unit_spec {
    int unit_id;
    plan_limits_t lim;
    plan_range_t ranges[MAX_RANGES];
    char last_component[64];
};

struct dev_spec {
    char key[300];
    char label[320];
    device_conn_t conn;
    const param_meta_t *first;   /* the component the settings were taken from */
    struct unit_spec units[8];   /* TCP: 1; RTU: grows in `more` beyond 8 */
    struct unit_spec *more;
    size_t nunits;
    device_t *dev;
};

struct build {
    struct dev_spec *specs;
    size_t nspecs;
    size_t params, skipped;
};

static struct unit_spec *spec_unit(struct dev_spec *s, size_t i)
{
    return i < 8 ? &s->units[i] : &s->more[i - 8];
}

/* Two components of one device disagree on a setting: keep the most
 * conservative value and say so. */
static void merge_setting(const struct dev_spec *s, const char *owner, const param_meta_t *pm,
                          const char *what, int *cur, int theirs, bool want_max)
{
    if (theirs == *cur)
        return;
    int used = (theirs > *cur) == want_max ? theirs : *cur;
    log_msg(LL_WARN, "device %s: component %s sets %s = %d, component %s %d; using %d",
            s->label, pm->component, what, theirs, owner, *cur, used);
    *cur = used;
}

static struct dev_spec *spec_for(struct build *b, const poller_opts_t *o, const param_meta_t *pm)
{
    char key[300];
    devconn_key(pm, key, sizeof key);
    for (size_t i = 0; i < b->nspecs; i++)
        if (strcmp(b->specs[i].key, key) == 0)
            return &b->specs[i];
    struct dev_spec *s = &b->specs[b->nspecs++];
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    s->first = pm;
    device_conn_t *c = &s->conn;
    memset(c, 0, sizeof *c);     /* device_same compares the bytes */
        devconn_resolve(&c->link, pm, &o->modbus);
    c->reconnect_min_ms = o->reconnect_min_ms;
    c->reconnect_max_ms = o->reconnect_max_ms;
    devconn_label(&c->link, pm->unit_id, s->label, sizeof s->label);
    return s;
}

/* Folds the settings of pm's component into its device and unit. Returns
 * 0, or -1 when the component's no_bridge list is unusable (why filled). */
static int spec_merge(struct dev_spec *s, const poller_opts_t *o, const param_meta_t *pm,
                      char *why, size_t whylen)
{
    size_t ui;
    for (ui = 0; ui < s->nunits; ui++)
        if (spec_unit(s, ui)->unit_id == pm->unit_id)
            break;
    if (ui == s->nunits) {
        if (ui >= 8) {
            struct unit_spec *m = realloc(s->more, (ui - 7) * sizeof *m);
            if (!m) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
            s->more = m;
        }
        struct unit_spec *u = spec_unit(s, ui);
        memset(u, 0, sizeof *u);
        u->unit_id = pm->unit_id;
        u->lim = o->limits;
        u->lim.no_bridge = NULL;
        u->lim.n_no_bridge = 0;
        s->nunits++;
    }
    struct unit_spec *u = spec_unit(s, ui);
    if (strcmp(u->last_component, pm->component) == 0)
        return 0;    /* rows come ordered by component: merged already */
    plan_range_t r[MAX_RANGES];
    size_t nr = 0;
    if (plan_parse_ranges(pm->no_bridge, r, MAX_RANGES, &nr, why, whylen) < 0)
        return -1;
    if (u->lim.n_no_bridge + nr > MAX_RANGES) {
        snprintf(why, whylen, "more than %d no_bridge ranges on the device", MAX_RANGES);
        return -1;
    }
    memcpy(u->ranges + u->lim.n_no_bridge, r, nr * sizeof *r);
    u->lim.n_no_bridge += nr;

    int mr = pm->dev_max_registers ? pm->dev_max_registers : o->limits.max_registers;
    int mb = pm->dev_max_bits ? pm->dev_max_bits : o->limits.max_bits;
    int mg = pm->dev_max_gap >= 0 ? pm->dev_max_gap : o->limits.max_gap;
        int rt = devconn_timeout_ms(pm, &o->modbus);
    const char *owner = u->last_component;
    if (owner[0] == '\0') {   /* the unit's first component sets its limits */
        u->lim.max_registers = mr;
        u->lim.max_bits = mb;
        u->lim.max_gap = mg;
    } else {
        merge_setting(s, owner, pm, "max_registers", &u->lim.max_registers, mr, false);
        merge_setting(s, owner, pm, "max_bits", &u->lim.max_bits, mb, false);
        merge_setting(s, owner, pm, "max_gap", &u->lim.max_gap, mg, false);
    }
    if (pm == s->first)
        s->conn.link.response_timeout_ms = rt;
    else
        merge_setting(s, s->first->component, pm, "response_timeout_ms",
                      &s->conn.link.response_timeout_ms, rt, true);
    const devconn_t *c = &s->conn.link;
    if (pm->transport == TR_RTU && pm != s->first &&
        ((pm->baud && pm->baud != c->baud) || (pm->parity && pm->parity != c->parity) ||
         (pm->data_bits && pm->data_bits != c->data_bits) ||
         (pm->stop_bits && pm->stop_bits != c->stop_bits)))
        log_msg(LL_WARN, "device %s: component %s asks for other line settings (%d %d%c%d);"
                " a line has one framing: using those of component %s", s->label,
                pm->component, pm->baud, pm->data_bits, pm->parity ? pm->parity : '-',
                pm->stop_bits, s->first->component);
    snprintf(u->last_component, sizeof u->last_component, "%s", pm->component);
    return 0;
}

static void build_free(struct build *b)
{
    for (size_t i = 0; i < b->nspecs; i++) {
        device_free(b->specs[i].dev);
        free(b->specs[i].more);
    }
    free(b->specs);
    b->specs = NULL;
    b->nspecs = 0;
}

static void skip(struct build *b, const param_meta_t *pm, const char *why)
{
    log_msg(LL_WARN, "parameter %s (id %d) skipped: %s", pm->qualified, pm->id, why);
    b->skipped++;
}

/* Devices (not started) for every usable parameter of map. Returns 0, or
 * -1 with errno ENOMEM (b freed). */
static int build_devices(struct build *b, const pmap_t *map, const poller_opts_t *o)
{
    size_t n = pmap_count(map);
    char why[256];
    bool *bad = calloc(n ? n : 1, sizeof *bad);

    memset(b, 0, sizeof *b);
    b->specs = calloc(n ? n : 1, sizeof *b->specs);
    if (!bad || !b->specs)
        goto nomem;
    /* pass 1: devices and their merged settings */
    for (size_t i = 0; i < n; i++) {
        const param_meta_t *pm = pmap_at(map, i);
        if (!pm->valid) {
            skip(b, pm, pm->why);
            bad[i] = true;
            continue;
        }
        struct dev_spec *s = spec_for(b, o, pm);
        if (spec_merge(s, o, pm, why, sizeof why) < 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "component %s: no_bridge: %s", pm->component, why);
            skip(b, pm, msg);
            bad[i] = true;
        }
    }
    /* pass 2: device objects, units, parameters */
    for (size_t k = 0; k < b->nspecs; k++) {
        struct dev_spec *s = &b->specs[k];
        s->dev = device_new(&s->conn, s->label);
        if (!s->dev)
            goto nomem;
        for (size_t u = 0; u < s->nunits; u++) {
            struct unit_spec *us = spec_unit(s, u);
            us->lim.no_bridge = us->ranges;
            if (device_add_unit(s->dev, us->unit_id, &us->lim) < 0)
                goto nomem;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const param_meta_t *pm = pmap_at(map, i);
        if (bad[i])
            continue;
        char key[300];
        devconn_key(pm, key, sizeof key);
        size_t k;
        for (k = 0; k < b->nspecs; k++)
            if (strcmp(b->specs[k].key, key) == 0)
                break;
        int rc = device_add_param(b->specs[k].dev, pm, why, sizeof why);
        if (rc < 0)
            goto nomem;
        if (rc > 0)
            skip(b, pm, why);
        else
            b->params++;
    }
    free(bad);
    return 0;
nomem:
    free(bad);
    build_free(b);
    errno = ENOMEM;
    return -1;
}

/* ---- the queue ------------------------------------------------------------ */

/* Device threads: append one cycle's samples. Samples of a device that is
 * being stopped are discarded here, under the lock that poller_update
 * holds while it stops the device, so nothing of a replaced device arrives
 * after its replacement started. */
static void sink(void *arg, device_t *d, const sample_t *s, size_t n)
{
    poller_t *p = arg;
    bool full = false;

    pthread_mutex_lock(&p->mu);
    if (device_stopping(d)) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (p->qn + n > p->opts.queue_max) {
        p->dropped += n;
        full = !p->full.active;
        p->full.active = 1;
    } else {
        if (p->qn + n > p->qcap) {
            size_t cap = p->qcap ? p->qcap : 1024;
            while (cap < p->qn + n)
                cap *= 2;
            sample_t *nq = realloc(p->q, cap * sizeof *nq);
            if (!nq) {
                p->dropped += n;
                pthread_mutex_unlock(&p->mu);
                return;
            }
            p->q = nq;
            p->qcap = cap;
        }
        memcpy(p->q + p->qn, s, n * sizeof *s);
        p->qn += n;
        if (!p->signalled) {
            uint64_t one = 1;
            ssize_t w = write(p->notify_fd, &one, sizeof one);
            (void)w;
            p->signalled = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (full)
        log_msg(LL_ERROR, "sample queue full (%zu samples not taken by the main loop):"
                " dropping samples until it drains", p->opts.queue_max);
}

void poller_resync(poller_t *p)
{
    for (size_t i = 0; i < p->ndevs; i++)
        device_resync(p->devs[i].dev);
}

int poller_notify_fd(const poller_t *p)
{
    return p->notify_fd;
}

static void reap(poller_t *p)
{
    size_t k = 0;
    for (size_t i = 0; i < p->nretiring; i++) {
        if (device_exited(p->retiring[i]))
            device_free(p->retiring[i]);
        else
            p->retiring[k++] = p->retiring[i];
    }
    p->nretiring = k;
}

size_t poller_drain(poller_t *p, poller_sample_fn fn, void *arg)
{
    uint64_t v;
    pthread_mutex_lock(&p->mu);
    sample_t *batch = p->q;
    size_t n = p->qn, cap = p->qcap;
    p->q = p->spare;
    p->qcap = p->sparecap;
    p->qn = 0;
    p->signalled = false;
    ssize_t r = read(p->notify_fd, &v, sizeof v);
    (void)r;
    bool was_full = p->full.active;
    p->full.active = 0;
    uint64_t dropped = p->dropped;
    pthread_mutex_unlock(&p->mu);
    if (was_full)
        log_msg(LL_INFO, "sample queue drains again (%llu samples dropped so far)",
                (unsigned long long)dropped);
    for (size_t i = 0; i < n; i++)
        fn(arg, &batch[i]);
    p->spare = batch;
    p->sparecap = cap;
    reap(p);
    return n;
}

/* ---- life cycle ------------------------------------------------------------ */

static void retire(poller_t *p, device_t *d)
{
    pthread_mutex_lock(&p->mu);
    device_stop(d);
    pthread_mutex_unlock(&p->mu);
    device_t **nr = realloc(p->retiring, (p->nretiring + 1) * sizeof *nr);
    if (!nr) {
        device_free(d);   /* blocks at most one response timeout */
        return;
    }
    p->retiring = nr;
    p->retiring[p->nretiring++] = d;
}

/* Takes the devices of b into p: keeps running ones that did not change. */
static int adopt(poller_t *p, struct build *b)
{
    struct entry *nd = calloc(b->nspecs ? b->nspecs : 1, sizeof *nd);
    if (!nd)
        return -1;
    size_t n = 0;
    size_t kept = 0, started = 0, stopped = 0;
    for (size_t k = 0; k < b->nspecs; k++) {
        struct dev_spec *s = &b->specs[k];
        struct entry *old = NULL;
        for (size_t i = 0; i < p->ndevs; i++)
            if (p->devs[i].dev && strcmp(p->devs[i].key, s->key) == 0)
                old = &p->devs[i];
        if (old && device_same(old->dev, s->dev)) {
            nd[n] = *old;
            old->dev = NULL;
            kept++;
        } else {
            if (old) {
                retire(p, old->dev);
                old->dev = NULL;
                stopped++;
            }
            if (device_start(s->dev, sink, p) < 0) {
                log_msg(LL_ERROR, "device %s: cannot start its thread: %s; not polled",
                        s->label, strerror(errno));
                continue;   /* freed with b */
            }
            snprintf(nd[n].key, sizeof nd[n].key, "%s", s->key);
            nd[n].dev = s->dev;
            s->dev = NULL;
            started++;
        }
        n++;
    }
    for (size_t i = 0; i < p->ndevs; i++)
        if (p->devs[i].dev) {
            retire(p, p->devs[i].dev);
            stopped++;
        }
    free(p->devs);
    p->devs = nd;
    p->ndevs = n;
    if (kept || stopped)
        log_msg(LL_INFO, "parameter map applied: %zu device(s) unchanged, %zu started,"
                " %zu stopped", kept, started, stopped);
    return 0;
}

poller_t *poller_new(const pmap_t *map, const poller_opts_t *opts)
{
    poller_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->opts = *opts;
    if (p->opts.queue_max == 0)
        p->opts.queue_max = QUEUE_MAX_DEFAULT;
    if (p->opts.reconnect_min_ms <= 0)
        p->opts.reconnect_min_ms = 100;
    if (p->opts.reconnect_max_ms < p->opts.reconnect_min_ms)
        p->opts.reconnect_max_ms = p->opts.reconnect_min_ms;
    pthread_mutex_init(&p->mu, NULL);
    p->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->notify_fd < 0) {
        int e = errno;
        pthread_mutex_destroy(&p->mu);
        free(p);
        errno = e;
        return NULL;
    }
    if (poller_update(p, map) < 0) {
        poller_free(p);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

int poller_update(poller_t *p, const pmap_t *map)
{
    struct build b;
    if (build_devices(&b, map, &p->opts) < 0)
        return -1;
    if (adopt(p, &b) < 0) {
        build_free(&b);
        errno = ENOMEM;
        return -1;
    }
    p->params = b.params;
    p->params_skipped = b.skipped;
    build_free(&b);
    return 0;
}

void poller_stop(poller_t *p)
{
    /* ask every thread first, then join: they finish in parallel */
    for (size_t i = 0; i < p->ndevs; i++)
        device_finish(p->devs[i].dev);
    for (size_t i = 0; i < p->ndevs; i++)
        device_free(p->devs[i].dev);
    p->ndevs = 0;
}

void poller_free(poller_t *p)
{
    if (!p)
        return;
    /* ask every thread first, then join: they stop in parallel */
    for (size_t i = 0; i < p->ndevs; i++)
        device_stop(p->devs[i].dev);
    for (size_t i = 0; i < p->ndevs; i++)
        device_free(p->devs[i].dev);
    for (size_t i = 0; i < p->nretiring; i++)
        device_free(p->retiring[i]);
    free(p->devs);
    free(p->retiring);
    free(p->q);
    free(p->spare);
    if (p->notify_fd >= 0)
        close(p->notify_fd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static device_t *device_of(poller_t *p, const param_meta_t *pm)
{
    char key[300];
    devconn_key(pm, key, sizeof key);
    for (size_t i = 0; i < p->ndevs; i++)
        if (p->devs[i].dev && strcmp(p->devs[i].key, key) == 0)
            return p->devs[i].dev;
    return NULL;
}

int poller_submit_group(poller_t *p, const param_meta_t *const pm[], device_op_t *const ops[],
                        size_t n, char *err, size_t errlen)
{
    device_t *d = NULL;
    for (size_t i = 0; i < n; i++) {
        device_t *di = device_of(p, pm[i]);
        if (!di) {
            char key[300];
            devconn_key(pm[i], key, sizeof key);
            snprintf(err, errlen, "no device of aldrecd polls %s (%s)", pm[i]->component, key);
            errno = ENOENT;
            return -1;
        }
        if (d && di != d) {
            snprintf(err, errlen, "%s and %s are not polled by one device", pm[0]->qualified,
                     pm[i]->qualified);
            errno = EINVAL;
            return -1;
        }
        d = di;
    }
    if (!d) {
        snprintf(err, errlen, "nothing to send");
        errno = EINVAL;
        return -1;
    }
    if (device_submit_group(d, ops, n) < 0) {
        int e = errno;
        if (e == EAGAIN)
            snprintf(err, errlen, "device %s: its queue is full (%d requests wait for it)",
                     device_label(d), DEVICE_OPS_MAX);
        else
            snprintf(err, errlen, "device %s is stopping", device_label(d));
        errno = e;
        return -1;
    }
    return 0;
}

int poller_submit(poller_t *p, const param_meta_t *pm, device_op_t *op, char *err,
                  size_t errlen)
{
    return poller_submit_group(p, &pm, &op, 1, err, errlen);
}

bool poller_same_device(poller_t *p, const param_meta_t *a, const param_meta_t *b)
{
    device_t *d = device_of(p, a);
    return d && d == device_of(p, b);
}

int poller_latest(poller_t *p, const param_meta_t *pm, sample_t *out)
{
    device_t *d = device_of(p, pm);
    if (!d) {
        errno = ENOENT;
        return -1;
    }
    return device_latest(d, pm->id, out);
}

void poller_get_stats(poller_t *p, poller_stats_t *out)
{
    device_stats_t ds;
    memset(out, 0, sizeof *out);
    out->devices = p->ndevs;
    out->params = p->params;
    out->params_skipped = p->params_skipped;
    for (size_t i = 0; i < p->ndevs; i++) {
        device_get_stats(p->devs[i].dev, &ds);
        out->devices_up += ds.up;
        out->params -= ds.params_dropped;
        out->params_skipped += ds.params_dropped;
        out->requests_per_cycle += ds.requests_per_cycle;
        out->min_requests_per_cycle += ds.min_requests_per_cycle;
        out->cycles += ds.cycles;
        out->overruns += ds.overruns;
        out->requests += ds.requests;
        out->request_errors += ds.request_errors;
        out->samples_polled += ds.samples_polled;
        out->samples_stored += ds.samples_stored;
        hist_merge(&out->cycle_us, &ds.cycle_us);
        hist_merge(&out->late_us, &ds.late_us);
    }
    pthread_mutex_lock(&p->mu);
    out->queue_dropped = p->dropped;
    pthread_mutex_unlock(&p->mu);
}

size_t poller_get_device_stats(poller_t *p, device_stats_t *out, size_t max)
{
    for (size_t i = 0; i < p->ndevs && i < max; i++)
        device_get_stats(p->devs[i].dev, &out[i]);
    return p->ndevs;
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

size_t poller_format_devices(poller_t *p, char *buf, size_t len)
{
    size_t used = 0;
    device_stats_t ds;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < p->ndevs && used + 1 < len; i++) {
        device_get_stats(p->devs[i].dev, &ds);
        int w = snprintf(buf + used, len - used,
                         "device %s: %s; %zu params in %zu groups, %zu requests/cycle (min %zu);"
                         " cycles %llu (%llu overruns); requests %llu (%llu failed);"
                         " cycle_ms p50 %.2f p95 %.2f p99 %.2f max %.2f;"
                         " late_ms p50 %.2f p95 %.2f p99 %.2f max %.2f\n",
                         ds.label, ds.up ? "up" : "down", ds.params - ds.params_dropped,
                         ds.groups, ds.requests_per_cycle, ds.min_requests_per_cycle,
                         (unsigned long long)ds.cycles, (unsigned long long)ds.overruns,
                         (unsigned long long)ds.requests, (unsigned long long)ds.request_errors,
                         ms(hist_quantile(&ds.cycle_us, 0.5)), ms(hist_quantile(&ds.cycle_us, 0.95)),
                         ms(hist_quantile(&ds.cycle_us, 0.99)), ms(ds.cycle_us.max),
                         ms(hist_quantile(&ds.late_us, 0.5)), ms(hist_quantile(&ds.late_us, 0.95)),
                         ms(hist_quantile(&ds.late_us, 0.99)), ms(ds.late_us.max));
        if (w < 0)
            break;
        used += (size_t)w < len - used ? (size_t)w : len - used - 1;
    }
    return used;
}
