/* poller.c — devices, poll groups, request execution and decoding. */
#include "poller.h"

#include <errno.h>
#include <math.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

struct item {                 /* one parameter as the poller needs it */
    int32_t id;
    char qualified[128];
    regtype_t table;
    dtype_t type;
    worder_t order;
    uint16_t address;
    double scale, offset, min, max;
    bool has_min, has_max;
    bool dropped;             /* refused by the device: no longer planned */
};

struct device {
    char host[256];
    int port;
    int unit_id;
    char label[300];          /* "host:port unit N" for messages */
    modbus_t *ctx;
    bool up;
    int64_t next_connect_ns;
    int backoff_ms;
    complain_t down;
};

struct group {
    size_t dev;
    int interval_ms;
    int64_t next_due_ns;
    struct item *items;
    size_t nitems;
    plan_item_t *pitems;
    size_t *order;
    plan_req_t *reqs;
    size_t nreqs;
};

struct poller {
    poller_opts_t opts;
    struct device *devs;
    size_t ndevs;
    struct group *groups;
    size_t ngroups;
    poller_stats_t st;
};

int64_t poller_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t poller_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void replan(struct group *g, const plan_limits_t *lim)
{
    size_t n = 0;
    /* Dropped items are moved out of the planned range by giving the plan
     * only the live ones, in place. */
    for (size_t i = 0; i < g->nitems; i++) {
        if (g->items[i].dropped)
            continue;
        if (n != i) {
            struct item tmp = g->items[n];
            g->items[n] = g->items[i];
            g->items[i] = tmp;
        }
        n++;
    }
    for (size_t i = 0; i < n; i++)
        g->pitems[i] = (plan_item_t){
            .table = g->items[i].table,
            .address = g->items[i].address,
            .count = (uint16_t)regcodec_words(g->items[i].type),
        };
    g->nreqs = plan_build(g->pitems, n, lim, g->order, g->reqs);
}

static size_t find_device(poller_t *p, const param_meta_t *pm)
{
    for (size_t d = 0; d < p->ndevs; d++)
        if (p->devs[d].port == pm->port && p->devs[d].unit_id == pm->unit_id &&
            strcmp(p->devs[d].host, pm->host) == 0)
            return d;
    struct device *d = &p->devs[p->ndevs];
    *d = (struct device){ .port = pm->port, .unit_id = pm->unit_id,
                          .backoff_ms = RECONNECT_MIN_MS };
    snprintf(d->host, sizeof d->host, "%s", pm->host);
    snprintf(d->label, sizeof d->label, "%.255s:%d unit %d", pm->host, pm->port, pm->unit_id);
    return p->ndevs++;
}

poller_t *poller_new(const pmap_t *map, const poller_opts_t *opts)
{
    size_t n = pmap_count(map);
    poller_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->opts = *opts;
    p->devs = calloc(n ? n : 1, sizeof *p->devs);
    p->groups = calloc(n ? n : 1, sizeof *p->groups);
    if (!p->devs || !p->groups)
        goto fail;

    int64_t now = poller_mono_ns();
    for (size_t i = 0; i < n; i++) {
        const param_meta_t *pm = pmap_at(map, i);
        if (!pm->valid) {
            log_msg(LL_WARN, "parameter %s (id %d) skipped: %s", pm->qualified, pm->id, pm->why);
            p->st.params_skipped++;
            continue;
        }
        int words = regcodec_words(pm->type);
        int limit = (pm->table == REG_COIL || pm->table == REG_DISCRETE)
                        ? opts->limits.max_bits : opts->limits.max_registers;
        if (words > limit) {
            log_msg(LL_WARN, "parameter %s (id %d) skipped: %s needs %d registers,"
                    " more than max_registers = %d", pm->qualified, pm->id,
                    regcodec_type_name(pm->type), words, limit);
            p->st.params_skipped++;
            continue;
        }
        size_t d = find_device(p, pm);
        size_t g;
        for (g = 0; g < p->ngroups; g++)
            if (p->groups[g].dev == d && p->groups[g].interval_ms == pm->poll_ms)
                break;
        if (g == p->ngroups) {
            p->groups[g] = (struct group){ .dev = d, .interval_ms = pm->poll_ms,
                                           .next_due_ns = now };
            p->ngroups++;
        }
        struct group *gr = &p->groups[g];
        struct item *it = realloc(gr->items, (gr->nitems + 1) * sizeof *it);
        if (!it)
            goto fail;
        gr->items = it;
        it[gr->nitems++] = (struct item){
            .id = pm->id, .table = pm->table, .type = pm->type, .order = pm->order,
            .address = (uint16_t)pm->address, .scale = pm->scale, .offset = pm->offset,
            .min = pm->min, .max = pm->max, .has_min = pm->has_min, .has_max = pm->has_max,
        };
        snprintf(it[gr->nitems - 1].qualified, sizeof it->qualified, "%s", pm->qualified);
        p->st.params++;
    }
    for (size_t g = 0; g < p->ngroups; g++) {
        struct group *gr = &p->groups[g];
        gr->pitems = calloc(gr->nitems, sizeof *gr->pitems);
        gr->order = calloc(gr->nitems, sizeof *gr->order);
        gr->reqs = calloc(gr->nitems, sizeof *gr->reqs);
        if (!gr->pitems || !gr->order || !gr->reqs)
            goto fail;
        replan(gr, &opts->limits);
    }
    p->st.devices = p->ndevs;
    return p;
fail:
    poller_free(p);
    errno = ENOMEM;
    return NULL;
}

static void device_close(struct device *d)
{
    if (d->ctx) {
        modbus_close(d->ctx);
        modbus_free(d->ctx);
        d->ctx = NULL;
    }
    d->up = false;
}

void poller_free(poller_t *p)
{
    if (!p)
        return;
    for (size_t d = 0; d < p->ndevs; d++)
        device_close(&p->devs[d]);
    for (size_t g = 0; g < p->ngroups; g++) {
        free(p->groups[g].items);
        free(p->groups[g].pitems);
        free(p->groups[g].order);
        free(p->groups[g].reqs);
    }
    free(p->devs);
    free(p->groups);
    free(p);
}

int64_t poller_next_due(const poller_t *p)
{
    int64_t next = INT64_MAX;
    for (size_t g = 0; g < p->ngroups; g++)
        if (p->groups[g].next_due_ns < next)
            next = p->groups[g].next_due_ns;
    return next;
}

/* Connects d unless it is up or its backoff has not expired. */
static bool device_ensure(poller_t *p, struct device *d, int64_t now)
{
    char port[16];

    if (d->up)
        return true;
    if (now < d->next_connect_ns)
        return false;
    snprintf(port, sizeof port, "%d", d->port);
    d->ctx = modbus_new_tcp_pi(d->host, port);
    if (!d->ctx)
        goto fail;
    int ms = p->opts.response_timeout_ms;
    modbus_set_response_timeout(d->ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
    modbus_set_byte_timeout(d->ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
    modbus_set_slave(d->ctx, d->unit_id);
    if (modbus_connect(d->ctx) < 0)
        goto fail;
    d->up = true;
    d->backoff_ms = RECONNECT_MIN_MS;
    log_release(&d->down, LL_INFO, "device %s: connected", d->label);
    return true;
fail:
    log_complain(&d->down, LL_WARN, "device %s: cannot connect: %s; retrying every %d ms at most",
                 d->label, modbus_strerror(errno), RECONNECT_MAX_MS);
    device_close(d);
    d->next_connect_ns = now + (int64_t)d->backoff_ms * 1000000LL;
    d->backoff_ms = d->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : d->backoff_ms * 2;
    return false;
}

/* Quality for a failed request's values, from libmodbus' errno. */
static int16_t quality_of(int err)
{
    if (err > MODBUS_ENOBASE && err < MODBUS_ENOBASE + 0x10)
        return (int16_t)(Q_EXCEPTION_BASE + (err - MODBUS_ENOBASE));
    if (err == ETIMEDOUT)
        return Q_TIMEOUT;
    return Q_COMM_ERROR;
}

static int do_read(modbus_t *ctx, regtype_t table, int addr, int count,
                   uint16_t *regs, uint8_t *bits)
{
    switch (table) {
    case REG_COIL:
        return modbus_read_bits(ctx, addr, count, bits);
    case REG_DISCRETE:
        return modbus_read_input_bits(ctx, addr, count, bits);
    case REG_HOLDING:
        return modbus_read_registers(ctx, addr, count, regs);
    case REG_INPUT:
        return modbus_read_input_registers(ctx, addr, count, regs);
    }
    errno = EINVAL;
    return -1;
}

static void emit_bad(const struct item *it, int16_t q, int64_t ts,
                     poller_sample_fn fn, void *arg, poller_t *p)
{
    sample_t s = { .parameter_id = it->id, .ts_us = ts, .quality = q, .has_value = false };
    fn(arg, &s);
    p->st.samples++;
}

static void emit_value(const struct item *it, const uint16_t *regs, const uint8_t *bits,
                       int off, int64_t ts, poller_sample_fn fn, void *arg, poller_t *p)
{
    uint16_t one;
    const uint16_t *src = regs + off;
    if (bits) {
        one = bits[off];
        src = &one;
    }
    double v = regcodec_decode(src, it->type, it->order) * it->scale + it->offset;
    sample_t s = { .parameter_id = it->id, .ts_us = ts, .value = v,
                   .quality = Q_GOOD, .has_value = true };
    if (!isfinite(v))
        s.quality = Q_OUT_OF_RANGE;
    else if ((it->has_min && v < it->min) || (it->has_max && v > it->max))
        s.quality = Q_OUT_OF_RANGE;
    fn(arg, &s);
    p->st.samples++;
}

/* Reads one planned request and emits its items. Returns 0, or the errno of
 * the failure (the items have been emitted as bad). */
static int run_request(poller_t *p, struct device *d, struct group *g,
                       const plan_req_t *r, poller_sample_fn fn, void *arg)
{
    uint16_t regs[128];
    uint8_t bits[2000];
    bool is_bits = (r->table == REG_COIL || r->table == REG_DISCRETE);

    p->st.requests++;
    int rc = do_read(d->ctx, r->table, r->start, r->count, regs, bits);
    int64_t ts = poller_wall_us();
    if (rc == r->count) {
        for (size_t k = r->first; k < r->first + r->n; k++) {
            const struct item *it = &g->items[g->order[k]];
            emit_value(it, regs, is_bits ? bits : NULL, it->address - r->start, ts, fn, arg, p);
        }
        return 0;
    }
    int err = rc < 0 ? errno : EMBBADDATA;
    p->st.request_errors++;
    for (size_t k = r->first; k < r->first + r->n; k++)
        emit_bad(&g->items[g->order[k]], quality_of(err), ts, fn, arg, p);
    return err;
}

/* The device refused a request with "illegal data address":
 * find which items it refuses on their own, drop them, re-plan. */
static void isolate_bad_addresses(poller_t *p, struct device *d, struct group *g,
                                  const plan_req_t *r)
{
    uint16_t regs[8];
    uint8_t bits[1];
    bool changed = false;

    for (size_t k = r->first; k < r->first + r->n; k++) {
        struct item *it = &g->items[g->order[k]];
        int words = regcodec_words(it->type);
        int rc = do_read(d->ctx, it->table, it->address, words, regs, bits);
        if (rc < 0 && errno == EMBXILADD) {
            log_msg(LL_WARN, "parameter %s (id %d) skipped: device %s answers"
                    " \"illegal data address\" for %s %u (%d register%s)",
                    it->qualified, it->id, d->label, regcodec_regtype_name(it->table),
                    it->address, words, words == 1 ? "" : "s");
            it->dropped = true;
            changed = true;
            p->st.params--;
            p->st.params_skipped++;
        } else if (rc < 0 && errno != EMBXILADD && quality_of(errno) < Q_EXCEPTION_BASE) {
            return;   /* the device went away; try again next cycle */
        }
    }
    if (changed)
        replan(g, &p->opts.limits);
}

static void run_group(poller_t *p, struct group *g, int64_t now, poller_sample_fn fn, void *arg)
{
    struct device *d = &p->devs[g->dev];
    int64_t t0 = poller_mono_ns();

    p->st.cycles++;
    bool up = device_ensure(p, d, now);
    for (size_t i = 0; i < g->nreqs; i++) {
        const plan_req_t *r = &g->reqs[i];
        if (!up) {
            int64_t ts = poller_wall_us();
            for (size_t k = r->first; k < r->first + r->n; k++)
                emit_bad(&g->items[g->order[k]], Q_COMM_ERROR, ts, fn, arg, p);
            continue;
        }
        int err = run_request(p, d, g, r, fn, arg);
        if (err == EMBXILADD) {
            isolate_bad_addresses(p, d, g, r);
            break;   /* the plan changed; the next cycle uses the new one */
        }
        if (err && quality_of(err) < Q_EXCEPTION_BASE) {
            /* Timeout or broken stream: a late answer could be taken for the
             * next request's, so drop the connection and reconnect. The rest
             * of this cycle is marked without waiting another timeout each. */
            log_complain(&d->down, LL_WARN, "device %s: %s; reconnecting", d->label,
                         modbus_strerror(err));
            device_close(d);
            d->next_connect_ns = now;
            up = false;
        }
    }
    double ms = (double)(poller_mono_ns() - t0) / 1e6;
    p->st.last_cycle_ms = ms;
    if (ms > p->st.max_cycle_ms)
        p->st.max_cycle_ms = ms;
}

void poller_run_due(poller_t *p, int64_t now_ns, poller_sample_fn fn, void *arg)
{
    for (size_t g = 0; g < p->ngroups; g++) {
        struct group *gr = &p->groups[g];
        if (gr->next_due_ns > now_ns)
            continue;
        run_group(p, gr, now_ns, fn, arg);
        int64_t step = (int64_t)gr->interval_ms * 1000000LL;
        gr->next_due_ns += step;
        int64_t after = poller_mono_ns();
        if (gr->next_due_ns <= after) {
            /* Ran late: skip the cycles that are already past rather than
             * firing them back to back, staying on the original grid. */
            int64_t missed = (after - gr->next_due_ns) / step + 1;
            gr->next_due_ns += missed * step;
            p->st.overruns += (uint64_t)missed;
        }
    }
}

void poller_get_stats(const poller_t *p, poller_stats_t *out)
{
    *out = p->st;
    out->devices_up = 0;
    for (size_t d = 0; d < p->ndevs; d++)
        out->devices_up += p->devs[d].up;
    out->requests_per_cycle = 0;
    for (size_t g = 0; g < p->ngroups; g++)
        out->requests_per_cycle += p->groups[g].nreqs;
}
