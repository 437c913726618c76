/* service.c — snapshots, health, alerts and the metrics they render; see
 * service.h for the rules. */
#include "ops/service.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "store/batch.h"
#include "store/records.h"

/* ---- snapshot ----------------------------------------------------------- */

void svc_snapshot_clear(svc_snapshot_t *s)
{
    free(s->devices);
    s->devices = NULL;
    s->ndevices = 0;
}

void svc_snapshot_carry(svc_snapshot_t *s, const svc_snapshot_t *last)
{
    s->db_down_for_s = last->db_down_for_s;
    s->cache_ttl_s = last->cache_ttl_s;
    for (size_t i = 0; i < s->ndevices; i++)
        for (size_t k = 0; k < last->ndevices; k++)
            if (strcmp(s->devices[i].st.label, last->devices[k].st.label) == 0)
                s->devices[i].down_for_s = last->devices[k].down_for_s;
}

int svc_collect(svc_snapshot_t *s, poller_t *p, forwarder_t *f, spool_t *sp, pcache_t *c)
{
    int rc = 0;
    svc_snapshot_clear(s);
    s->taken_ns = clock_mono_ns();
    memset(&s->poll, 0, sizeof s->poll);
    if (p) {
        poller_get_stats(p, &s->poll);
        size_t n = poller_get_device_stats(p, NULL, 0);
        device_stats_t *ds = n ? calloc(n, sizeof *ds) : NULL;
        s->devices = n ? calloc(n, sizeof *s->devices) : NULL;
        if (n && (!ds || !s->devices)) {
            free(ds);
            svc_snapshot_clear(s);
            errno = ENOMEM;
            rc = -1;
        } else if (n) {
            /* the list may have changed in between: take what both saw */
            size_t got = poller_get_device_stats(p, ds, n);
            s->ndevices = got < n ? got : n;
            for (size_t i = 0; i < s->ndevices; i++)
                s->devices[i] = (svc_device_t){ .st = ds[i] };
            free(ds);
        }
    }
    s->have_spool = sp != NULL;
    if (sp) {
        spool_get_stats(sp, &s->spool);
        s->queue_oldest_s = s->spool.oldest_spooled_us
            ? (double)(clock_real_us() - s->spool.oldest_spooled_us) / 1e6 : 0.0;
        if (s->queue_oldest_s < 0)
            s->queue_oldest_s = 0;
    }
    s->have_fwd = f != NULL;
    if (f)
        forwarder_get_stats(f, &s->fwd);
    s->have_cache = c != NULL;
    if (c)
        pcache_get_stats(c, &s->cache);
    memstat_get(&s->mem);
    return rc;
}

/* ---- tracker ------------------------------------------------------------ */

struct down_since {
    char label[320];
    int64_t since_ns;      /* 0: up */
    int64_t seen_ns;       /* last snapshot that listed it */
};

struct svc_tracker {
    struct down_since *dev;
    size_t n, cap;
    bool link_seen;
    int64_t link_up_ns;    /* last time the link was up (or start) */
};

svc_tracker_t *svc_tracker_new(void)
{
    return calloc(1, sizeof(svc_tracker_t));
}

void svc_tracker_free(svc_tracker_t *t)
{
    if (!t)
        return;
    free(t->dev);
    free(t);
}

static struct down_since *tracked(svc_tracker_t *t, const char *label, int64_t now)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->dev[i].label, label) == 0)
            return &t->dev[i];
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct down_since *nd = realloc(t->dev, cap * sizeof *nd);
        if (!nd)
            return NULL;
        t->dev = nd;
        t->cap = cap;
    }
    struct down_since *d = &t->dev[t->n++];
    *d = (struct down_since){ .seen_ns = now };
    snprintf(d->label, sizeof d->label, "%s", label);
    return d;
}

static bool link_is_up(enum link_state l)
{
    switch (l) {
    case LINK_UP:
    case LINK_DRAINING:
        return true;
    case LINK_CONNECTING:
    case LINK_SPOOLING:
        return false;
    }
    return false;
}

void svc_track(svc_tracker_t *t, svc_snapshot_t *s)
{
    int64_t now = s->taken_ns;
    for (size_t i = 0; i < s->ndevices; i++) {
        svc_device_t *d = &s->devices[i];
        struct down_since *ds = tracked(t, d->st.label, now);
        d->down_for_s = 0;
        if (!ds)
            continue;
        ds->seen_ns = now;
        if (d->st.up) {
            ds->since_ns = 0;
        } else {
            if (ds->since_ns == 0)
                ds->since_ns = now;
            d->down_for_s = (double)(now - ds->since_ns) / 1e9;
        }
    }
    /* Forget devices no longer in the map. */
    for (size_t i = 0; i < t->n;) {
        if (t->dev[i].seen_ns != now)
            t->dev[i] = t->dev[--t->n];
        else
            i++;
    }
    s->db_down_for_s = 0;
    if (!s->have_fwd)
        return;
    if (!t->link_seen) {
        t->link_seen = true;
        t->link_up_ns = now;
    }
    if (link_is_up(s->fwd.link))
        t->link_up_ns = now;
    else
        s->db_down_for_s = (double)(now - t->link_up_ns) / 1e9;
}

/* ---- health ------------------------------------------------------------- */

static double spool_pct(const svc_snapshot_t *s)
{
    if (!s->have_spool || s->spool.max_bytes <= 0)
        return 0;
    return 100.0 * (double)(s->spool.bytes + s->spool.q_bytes) / (double)s->spool.max_bytes;
}

static void reason(svc_health_report_t *h, enum svc_health level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reason(svc_health_report_t *h, enum svc_health level, const char *fmt, ...)
{
    if (level > h->status)
        h->status = level;
    if (h->nreasons == SVC_MAX_REASONS)
        return;
    /* failing reasons go in front of degraded ones */
    size_t at = h->nreasons;
    if (level == SVC_FAILING) {
        at = 0;
        while (at < h->nreasons && strncmp(h->reasons[at], "failing: ", 9) == 0)
            at++;
        memmove(h->reasons[at + 1], h->reasons[at], (h->nreasons - at) * sizeof h->reasons[0]);
    }
    int n = snprintf(h->reasons[at], sizeof h->reasons[at], "%s: ",
                     level == SVC_FAILING ? "failing" : "degraded");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->reasons[at] + n, sizeof h->reasons[at] - (size_t)n, fmt, ap);
    va_end(ap);
    h->nreasons++;
}

void svc_health_eval(const svc_snapshot_t *s, const aldrec_config_t *cfg,
                     svc_health_report_t *out)
{
    *out = (svc_health_report_t){ .status = SVC_OK };
    if (!s->ready)
        reason(out, SVC_FAILING, "not recording yet: the parameter map is not loaded");

    size_t down_long = 0;
    for (size_t i = 0; i < s->ndevices; i++)
        if (!s->devices[i].st.up && s->devices[i].down_for_s >= cfg->health_device_down_s)
            down_long++;
    if (s->ndevices > 0 && down_long == s->ndevices) {
        reason(out, SVC_FAILING, "every device (%zu) down for %d s or more", s->ndevices,
               cfg->health_device_down_s);
    } else {
        for (size_t i = 0; i < s->ndevices; i++) {
            const svc_device_t *d = &s->devices[i];
            if (!d->st.up && d->down_for_s >= cfg->health_device_down_s)
                reason(out, SVC_DEGRADED, "device %s down for %.0f s", d->st.label,
                       d->down_for_s);
        }
    }
    if (s->have_fwd && s->db_down_for_s >= cfg->health_database_down_s)
        reason(out, SVC_DEGRADED, "PostgreSQL unreachable for %.0f s (link %s): batches wait"
               " in the spool", s->db_down_for_s, forwarder_link_name(s->fwd.link));
    if (s->have_spool) {
        double pct = spool_pct(s);
        if (s->spool.dropping)
            reason(out, SVC_FAILING, "spool full: dropping data (%.0f %% of max_bytes)", pct);
        else if (pct >= cfg->health_spool_failing_pct)
            reason(out, SVC_FAILING, "spool at %.0f %% of max_bytes (failing from %d %%)", pct,
                   cfg->health_spool_failing_pct);
        else if (pct >= cfg->health_spool_degraded_pct)
            reason(out, SVC_DEGRADED, "spool at %.0f %% of max_bytes (degraded from %d %%)",
                   pct, cfg->health_spool_degraded_pct);
        if (s->spool.q_batches)
            reason(out, SVC_DEGRADED, "%llu batch(es) in quarantine (aldrec spool quarantine"
                   " list)", (unsigned long long)s->spool.q_batches);
    }
    if (s->spool_write_failing)
        reason(out, SVC_FAILING, "cannot write to the spool: new rows are dropped");
    if (s->have_cache) {
        if (s->cache.source == PCACHE_SRC_SNAPSHOT)
            reason(out, SVC_DEGRADED, "parameter map from the local snapshot (PostgreSQL and"
                   " Redis were unreachable at start-up)");
        else if (s->cache.source != PCACHE_SRC_NONE && s->cache_ttl_s > 0 &&
                 s->cache.age_s > s->cache_ttl_s)
            reason(out, SVC_DEGRADED, "parameter map stale: read from PostgreSQL %.0f s ago"
                   " (ttl_s %d)", s->cache.age_s, s->cache_ttl_s);
    }
}

const char *svc_health_name(enum svc_health h)
{
    switch (h) {
    case SVC_OK: return "ok";
    case SVC_DEGRADED: return "degraded";
    case SVC_FAILING: return "failing";
    }
    return "?";
}

size_t svc_health_format(const svc_health_report_t *h, char *buf, size_t cap)
{
    size_t used = 0;
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    int n = snprintf(buf, cap, "%s\n", svc_health_name(h->status));
    used = n > 0 ? ((size_t)n < cap ? (size_t)n : cap - 1) : 0;
    for (size_t i = 0; i < h->nreasons && used + 1 < cap; i++) {
        n = snprintf(buf + used, cap - used, "- %s\n", h->reasons[i]);
        if (n < 0)
            break;
        used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
    }
    return used;
}

/* ---- alerts ------------------------------------------------------------- */

#define WINDOW_SLOTS 12
#define MAX_DEVICE_ALERTS 256

/* Cumulative numbers at one moment, to subtract from the current ones. */
struct mark {
    int64_t t_ns;
    hist_t flush_us, write_us;
    uint64_t l1_hits, l1_misses;
};

struct device_alert {
    char label[320];
    bool active;
};

struct svc_alerts {
    struct mark ring[WINDOW_SLOTS];
    size_t nmarks, next;
    bool flush_on, copy_on, cache_on, spool_on, db_on;
    struct device_alert dev[MAX_DEVICE_ALERTS];
    size_t ndev;
};

svc_alerts_t *svc_alerts_new(void)
{
    return calloc(1, sizeof(svc_alerts_t));
}

void svc_alerts_free(svc_alerts_t *a)
{
    free(a);
}

/* The mark to subtract: the newest one at least window_s old, else the
 * oldest one there is. */
static const struct mark *window_start(const svc_alerts_t *a, int64_t now, int window_s)
{
    const struct mark *best = NULL, *oldest = NULL;
    for (size_t i = 0; i < a->nmarks; i++) {
        const struct mark *m = &a->ring[i];
        if (!oldest || m->t_ns < oldest->t_ns)
            oldest = m;
        if (now - m->t_ns >= (int64_t)window_s * 1000000000LL &&
            (!best || m->t_ns > best->t_ns))
            best = m;
    }
    return best ? best : oldest;
}

static void remember(svc_alerts_t *a, const svc_snapshot_t *s, int window_s)
{
    int64_t spacing = (int64_t)window_s * 1000000000LL / (WINDOW_SLOTS - 2);
    if (a->nmarks) {
        size_t last = (a->next + WINDOW_SLOTS - 1) % WINDOW_SLOTS;
        if (s->taken_ns - a->ring[last].t_ns < spacing)
            return;
    }
    struct mark *m = &a->ring[a->next];
    m->t_ns = s->taken_ns;
    m->flush_us = s->flush_us;
    m->write_us = s->fwd.write_us;
    m->l1_hits = s->cache.l1_hits;
    m->l1_misses = s->cache.l1_misses;
    a->next = (a->next + 1) % WINDOW_SLOTS;
    if (a->nmarks < WINDOW_SLOTS)
        a->nmarks++;
}

struct emitter {
    svc_alert_fn fn;
    void *arg;
    int events;
};

static void emit(struct emitter *e, const char *name, const char *subject, bool raised,
                 double value, double threshold, const char *unit, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

static void emit(struct emitter *e, const char *name, const char *subject, bool raised,
                 double value, double threshold, const char *unit, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    svc_alert_event_t ev = {
        .name = name, .subject = subject, .raised = raised, .value = value,
        .threshold = threshold, .unit = unit, .text = text,
    };
    e->events++;
    if (e->fn)
        e->fn(e->arg, &ev);
}

/* A threshold alert on value: raised above thr (below when low), cleared
 * past clear_at; no data (have false) clears. */
static void level_alert(struct emitter *e, bool *on, const char *name, bool enabled, bool have,
                        double value, double thr, double clear_at, bool low, const char *unit,
                        const char *what)
{
    bool crossed = have && (low ? value < thr : value > thr);
    bool back = !have || (low ? value >= clear_at : value <= clear_at);
    if (!enabled) {
        crossed = false;
        back = true;
    }
    if (!*on && crossed) {
        *on = true;
        emit(e, name, "", true, value, thr, unit, "alert %s raised: %s %.1f %s (threshold %s %g %s)",
             name, what, value, unit, low ? "below" : "above", thr, unit);
    } else if (*on && back) {
        *on = false;
        if (have)
            emit(e, name, "", false, value, thr, unit, "alert %s cleared: %s %.1f %s", name, what,
                 value, unit);
        else
            emit(e, name, "", false, value, thr, unit, "alert %s cleared: %s", name,
                 enabled ? "no data in the window" : "alert disabled");
    }
}

static struct device_alert *dev_alert(svc_alerts_t *a, const char *label, bool create)
{
    for (size_t i = 0; i < a->ndev; i++)
        if (strcmp(a->dev[i].label, label) == 0)
            return &a->dev[i];
    if (!create || a->ndev == MAX_DEVICE_ALERTS)
        return NULL;
    struct device_alert *d = &a->dev[a->ndev++];
    *d = (struct device_alert){ .active = false };
    snprintf(d->label, sizeof d->label, "%s", label);
    return d;
}

int svc_alerts_eval(svc_alerts_t *a, const svc_snapshot_t *s, const aldrec_config_t *cfg,
                    svc_alert_fn fn, void *arg)
{
    struct emitter e = { .fn = fn, .arg = arg };
    int window = cfg->alert_window_s;

    remember(a, s, window);
    const struct mark *m = window_start(a, s->taken_ns, window);
    hist_t h;

    /* flush and COPY latency, p95 over the window */
    hist_diff(&h, &s->flush_us, &m->flush_us);
    double p95 = (double)hist_quantile(&h, 0.95) / 1000.0;
    level_alert(&e, &a->flush_on, "flush_p95", cfg->alert_flush_p95_ms > 0, h.count >= 5, p95,
                cfg->alert_flush_p95_ms, 0.8 * cfg->alert_flush_p95_ms, false, "ms",
                "spool append (flush) p95");
    hist_diff(&h, &s->fwd.write_us, &m->write_us);
    p95 = (double)hist_quantile(&h, 0.95) / 1000.0;
    level_alert(&e, &a->copy_on, "copy_p95", cfg->alert_copy_p95_ms > 0 && s->have_fwd,
                h.count >= 5, p95, cfg->alert_copy_p95_ms, 0.8 * cfg->alert_copy_p95_ms, false,
                "ms", "PostgreSQL write (COPY) p95");

    /* metadata cache hit ratio over the window */
    uint64_t hits = s->cache.l1_hits >= m->l1_hits ? s->cache.l1_hits - m->l1_hits : 0;
    uint64_t misses = s->cache.l1_misses >= m->l1_misses ? s->cache.l1_misses - m->l1_misses : 0;
    double ratio = hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 100.0;
    double clear = cfg->alert_cache_hit_pct + 2.0 > 100.0 ? 100.0 : cfg->alert_cache_hit_pct + 2.0;
    level_alert(&e, &a->cache_on, "cache_hit", cfg->alert_cache_hit_pct > 0 && s->have_cache,
                hits + misses >= 20, ratio, cfg->alert_cache_hit_pct, clear, true, "%",
                "metadata cache L1 hit ratio");

    /* spool fill */
    level_alert(&e, &a->spool_on, "spool_pct", cfg->alert_spool_pct > 0 && s->have_spool,
                s->have_spool, spool_pct(s), cfg->alert_spool_pct, cfg->alert_spool_pct - 5.0,
                false, "%", "spool use of max_bytes");

    /* database link */
    bool db_crossed = cfg->alert_database_down_s > 0 && s->have_fwd &&
                      s->db_down_for_s >= cfg->alert_database_down_s;
    if (!a->db_on && db_crossed) {
        a->db_on = true;
        emit(&e, "database_down", "", true, s->db_down_for_s, cfg->alert_database_down_s, "s",
             "alert database_down raised: PostgreSQL unreachable for %.0f s (threshold %d s);"
             " batches wait in the spool", s->db_down_for_s, cfg->alert_database_down_s);
    } else if (a->db_on && (!s->have_fwd || s->db_down_for_s == 0 ||
                            cfg->alert_database_down_s == 0)) {
        a->db_on = false;
        emit(&e, "database_down", "", false, 0, cfg->alert_database_down_s, "s",
             "alert database_down cleared: PostgreSQL reachable again");
    }

    /* devices: raised per device; one that left the map clears */
    for (size_t i = 0; i < a->ndev; i++) {
        bool listed = false, up = false;
        for (size_t k = 0; k < s->ndevices; k++) {
            if (strcmp(s->devices[k].st.label, a->dev[i].label) == 0) {
                listed = true;
                up = s->devices[k].st.up;
            }
        }
        if (a->dev[i].active && (!listed || up || cfg->alert_device_down_s == 0)) {
            a->dev[i].active = false;
            emit(&e, "device_down", a->dev[i].label, false, 0, cfg->alert_device_down_s, "s",
                 "alert device_down cleared: %s %s", a->dev[i].label,
                 listed && up ? "answers again" : "is no longer polled");
        }
    }
    for (size_t k = 0; k < s->ndevices; k++) {
        const svc_device_t *d = &s->devices[k];
        if (cfg->alert_device_down_s == 0 || d->st.up || d->down_for_s < cfg->alert_device_down_s)
            continue;
        struct device_alert *da = dev_alert(a, d->st.label, true);
        if (da && !da->active) {
            da->active = true;
            emit(&e, "device_down", d->st.label, true, d->down_for_s, cfg->alert_device_down_s,
                 "s", "alert device_down raised: %s has not answered for %.0f s (threshold %d s)",
                 d->st.label, d->down_for_s, cfg->alert_device_down_s);
        }
    }
    /* keep the table small: drop cleared entries */
    for (size_t i = 0; i < a->ndev;) {
        if (!a->dev[i].active)
            a->dev[i] = a->dev[--a->ndev];
        else
            i++;
    }
    return e.events;
}

void svc_alert_log(void *arg, const svc_alert_event_t *ev)
{
    (void)arg;
    char value[32], thr[32];
    snprintf(value, sizeof value, "%.1f", ev->value);
    snprintf(thr, sizeof thr, "%g", ev->threshold);
    log_field_t f[] = {
        { "alert", ev->name }, { "state", ev->raised ? "raised" : "cleared" },
        { "value", value }, { "threshold", thr }, { "unit", ev->unit },
        { "subject", ev->subject },
    };
    log_event(ev->raised ? LL_WARN : LL_INFO, f, ev->subject[0] ? 6 : 5, "%s", ev->text);
}

static void add_name(char *buf, size_t cap, size_t *n, const char *name, const char *subject)
{
    (*n)++;
    if (!buf || cap == 0)
        return;
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%s%s%s", used ? ", " : "", name, subject ? ":" : "",
             subject ? subject : "");
}

size_t svc_alerts_active(const svc_alerts_t *a, char *buf, size_t cap)
{
    size_t n = 0;
    if (buf && cap)
        buf[0] = '\0';
    if (a->flush_on)
        add_name(buf, cap, &n, "flush_p95", NULL);
    if (a->copy_on)
        add_name(buf, cap, &n, "copy_p95", NULL);
    if (a->cache_on)
        add_name(buf, cap, &n, "cache_hit", NULL);
    if (a->spool_on)
        add_name(buf, cap, &n, "spool_pct", NULL);
    if (a->db_on)
        add_name(buf, cap, &n, "database_down", NULL);
    for (size_t i = 0; i < a->ndev; i++)
        if (a->dev[i].active)
            add_name(buf, cap, &n, "device_down", a->dev[i].label);
    return n;
}

/* ---- metrics ------------------------------------------------------------ */

#define L(n, v) ((metric_label_t){ .name = n, .value = v })

static void gauge(metrics_t *m, const char *name, const char *help, double v)
{
    metrics_family(m, name, METRIC_GAUGE, help);
    metrics_sample(m, name, NULL, 0, v);
}

static void counter(metrics_t *m, const char *name, const char *help, double v)
{
    metrics_family(m, name, METRIC_COUNTER, help);
    metrics_sample(m, name, NULL, 0, v);
}

/* A family of two samples that differ in one label's value. */
static void pair(metrics_t *m, const char *name, enum metric_type type, const char *help,
                 const char *label, const char *a, double va, const char *b, double vb)
{
    metrics_family(m, name, type, help);
    metric_label_t l = L(label, a);
    metrics_sample(m, name, &l, 1, va);
    l = L(label, b);
    metrics_sample(m, name, &l, 1, vb);
}

static void render_devices(const svc_snapshot_t *s, metrics_t *m)
{
    static const struct { const char *name; const char *help; size_t off; } ctrs[] = {
        { "aldrec_poll_cycles_total", "Completed poll-group cycles per device.",
          offsetof(device_stats_t, cycles) },
        { "aldrec_poll_overruns_total", "Poll cycles skipped because the previous one ran late.",
          offsetof(device_stats_t, overruns) },
        { "aldrec_modbus_requests_total", "Modbus read requests sent per device.",
          offsetof(device_stats_t, requests) },
        { "aldrec_device_points_read_total", "Values read per device (before deadband).",
          offsetof(device_stats_t, samples_polled) },
    };
    metrics_family(m, "aldrec_device_up", METRIC_GAUGE,
                   "1 while the device is connected and answering.");
    for (size_t i = 0; i < s->ndevices; i++) {
        metric_label_t l = L("device", s->devices[i].st.label);
        metrics_sample(m, "aldrec_device_up", &l, 1, s->devices[i].st.up);
    }
    metrics_family(m, "aldrec_device_down_seconds", METRIC_GAUGE,
                   "How long the device has been down (0 while up).");
    for (size_t i = 0; i < s->ndevices; i++) {
        metric_label_t l = L("device", s->devices[i].st.label);
        metrics_sample(m, "aldrec_device_down_seconds", &l, 1, s->devices[i].down_for_s);
    }
    for (size_t c = 0; c < sizeof ctrs / sizeof ctrs[0]; c++) {
        metrics_family(m, ctrs[c].name, METRIC_COUNTER, ctrs[c].help);
        for (size_t i = 0; i < s->ndevices; i++) {
            metric_label_t l = L("device", s->devices[i].st.label);
            uint64_t v;
            memcpy(&v, (const char *)&s->devices[i].st + ctrs[c].off, sizeof v);
            metrics_sample(m, ctrs[c].name, &l, 1, (double)v);
        }
    }
    metrics_family(m, "aldrec_modbus_errors_total", METRIC_COUNTER,
                   "Failed Modbus requests per device and kind (timeout, comm, exception).");
    for (size_t i = 0; i < s->ndevices; i++) {
        for (int k = 0; k < DEVICE_ERR_KINDS; k++) {
            metric_label_t l[2] = { L("device", s->devices[i].st.label),
                                    L("kind", device_err_kind_name((enum device_err_kind)k)) };
            metrics_sample(m, "aldrec_modbus_errors_total", l, 2,
                           (double)s->devices[i].st.errors[k]);
        }
    }
    metrics_family(m, "aldrec_poll_cycle_seconds", METRIC_SUMMARY,
                   "Duration of a poll-group cycle per device, since start.");
    for (size_t i = 0; i < s->ndevices; i++) {
        metric_label_t l = L("device", s->devices[i].st.label);
        metrics_summary(m, "aldrec_poll_cycle_seconds", &l, 1, &s->devices[i].st.cycle_us, 1e-6);
    }
    metrics_family(m, "aldrec_poll_lateness_seconds", METRIC_SUMMARY,
                   "Start of a poll cycle after its deadline (jitter) per device, since start.");
    for (size_t i = 0; i < s->ndevices; i++) {
        metric_label_t l = L("device", s->devices[i].st.label);
        metrics_summary(m, "aldrec_poll_lateness_seconds", &l, 1, &s->devices[i].st.late_us,
                        1e-6);
    }
}

static void render_store(const svc_snapshot_t *s, metrics_t *m)
{
    pair(m, "aldrec_points_dropped_total", METRIC_COUNTER,
         "Values lost: queue (main loop behind), spool_full (since the spool file was made).",
         "reason", "queue", (double)s->poll.queue_dropped, "spool_full",
         (double)s->spool.dropped_points);
    metric_label_t l;

    counter(m, "aldrec_points_spooled_total", "Rows of points flushed into the spool.",
            (double)s->flushed_rows);
    counter(m, "aldrec_flushes_total", "Batches flushed into the spool.",
            (double)s->flushed_batches);
    counter(m, "aldrec_flush_errors_total", "Flushes that could not be written to the spool.",
            (double)s->flush_errors);
    metrics_family(m, "aldrec_flush_seconds", METRIC_SUMMARY,
                   "Spool append of one batch (SQLite transaction with fsync), since start.");
    metrics_summary(m, "aldrec_flush_seconds", NULL, 0, &s->flush_us, 1e-6);
    gauge(m, "aldrec_batch_pending_rows", "Rows in the open batch, not yet flushed.",
          (double)s->batch_pending_rows);

    if (s->have_fwd) {
        counter(m, "aldrec_points_written_total",
                "Rows of points committed to PostgreSQL by this aldrecd.",
                (double)s->fwd.stored_rows_kind[BATCH_POINTS]);
        metrics_family(m, "aldrec_rows_written_total", METRIC_COUNTER,
                       "Rows committed to PostgreSQL by kind.");
        for (int k = BATCH_KIND_MIN; k <= BATCH_KIND_MAX; k++) {
            l = L("kind", records_name((enum batch_kind)k));
            metrics_sample(m, "aldrec_rows_written_total", &l, 1,
                           (double)s->fwd.stored_rows_kind[k]);
        }
        counter(m, "aldrec_batches_written_total", "Batches committed to PostgreSQL.",
                (double)s->fwd.stored_batches);
        counter(m, "aldrec_db_transactions_total", "PostgreSQL transactions that stored batches.",
                (double)s->fwd.transactions);
        counter(m, "aldrec_db_transactions_overlapped_total",
                "Of those, written while the one before was in flight (a drain over two"
                " connections).", (double)s->fwd.overlapped);
        counter(m, "aldrec_duplicate_batches_total",
                "Replayed batches PostgreSQL already had (ingest ledger).",
                (double)s->fwd.duplicate_batches);
        gauge(m, "aldrec_write_rows_per_second", "Rows stored per second over the last 10 s.",
              s->fwd.rows_per_s);
        metrics_family(m, "aldrec_copy_seconds", METRIC_SUMMARY,
                       "One PostgreSQL write: ledger insert + binary COPY + COMMIT, since start.");
        metrics_summary(m, "aldrec_copy_seconds", NULL, 0, &s->fwd.write_us, 1e-6);
        metrics_family(m, "aldrec_commit_delay_seconds", METRIC_SUMMARY,
                       "Batches of points: from their last sample to their COMMIT (spool "
                       "append, queue, write), since start.");
        metrics_summary(m, "aldrec_commit_delay_seconds", NULL, 0, &s->fwd.commit_delay_us, 1e-6);
        metrics_family(m, "aldrec_commit_lag_seconds", METRIC_SUMMARY,
                       "Batches of points: from their first (polled) sample to their COMMIT, "
                       "since start.");
        metrics_summary(m, "aldrec_commit_lag_seconds", NULL, 0, &s->fwd.commit_lag_us, 1e-6);
        metrics_family(m, "aldrec_database_link", METRIC_GAUGE,
                       "State of the link to PostgreSQL: 1 for the current state.");
        static const enum link_state states[] = { LINK_CONNECTING, LINK_UP, LINK_DRAINING,
                                                  LINK_SPOOLING };
        for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
            l = L("state", forwarder_link_name(states[i]));
            metrics_sample(m, "aldrec_database_link", &l, 1, s->fwd.link == states[i]);
        }
        gauge(m, "aldrec_database_link_state_seconds", "Time in the current link state.",
              s->fwd.link_for_s);
        gauge(m, "aldrec_database_unreachable_seconds",
              "Time since the link to PostgreSQL was last up (0 while up).", s->db_down_for_s);
    }
    if (s->have_spool) {
        gauge(m, "aldrec_queue_batches", "Batches waiting in the spool.", (double)s->spool.batches);
        gauge(m, "aldrec_queue_rows", "Rows waiting in the spool.", (double)s->spool.rows);
        gauge(m, "aldrec_queue_bytes", "Bytes waiting in the spool.", (double)s->spool.bytes);
        gauge(m, "aldrec_queue_oldest_age_seconds", "Age of the oldest spooled batch (0: empty).",
              s->queue_oldest_s);
        gauge(m, "aldrec_spool_max_bytes", "[spool] max_bytes.", (double)s->spool.max_bytes);
        gauge(m, "aldrec_spool_used_ratio", "Spooled plus quarantined bytes over max_bytes.",
              spool_pct(s) / 100.0);
        gauge(m, "aldrec_quarantine_batches", "Batches PostgreSQL refused, kept in quarantine.",
              (double)s->spool.q_batches);
        gauge(m, "aldrec_quarantine_rows", "Rows of the quarantined batches.",
              (double)s->spool.q_rows);
    }
}

static void render_cache(const svc_snapshot_t *s, metrics_t *m)
{
    if (!s->have_cache)
        return;
    const pcache_stats_t *c = &s->cache;
    pair(m, "aldrec_cache_hits_total", METRIC_COUNTER,
         "Metadata cache hits per level (l1 in process, l2 Redis).", "level", "l1",
         (double)c->l1_hits, "l2", (double)c->l2_hits);
    pair(m, "aldrec_cache_misses_total", METRIC_COUNTER, "Metadata cache misses per level.",
         "level", "l1", (double)c->l1_misses, "l2", (double)c->l2_misses);
    metric_label_t l;
    counter(m, "aldrec_cache_stale_serves_total", "L1 lookups served from a map older than ttl_s.",
            (double)c->stale_serves);
    counter(m, "aldrec_cache_refreshes_total", "Bulk loads of the map from PostgreSQL.",
            (double)c->pg_loads);
    counter(m, "aldrec_cache_refresh_errors_total", "Failed bulk loads from PostgreSQL.",
            (double)c->pg_errors);
    metrics_family(m, "aldrec_cache_refresh_seconds", METRIC_GAUGE,
                   "Bulk refresh latency: last, min, avg, max.");
    static const char *const stats[] = { "last", "min", "avg", "max" };
    const double vals[] = { c->refresh_ms_last, c->refresh_ms_min, c->refresh_ms_avg,
                            c->refresh_ms_max };
    for (size_t i = 0; i < 4; i++) {
        l = L("stat", stats[i]);
        metrics_sample(m, "aldrec_cache_refresh_seconds", &l, 1, vals[i] / 1000.0);
    }
    gauge(m, "aldrec_cache_map_age_seconds", "Since the current map was read from PostgreSQL.",
          c->age_s);
    gauge(m, "aldrec_cache_map_version", "Metadata version of the current map.",
          (double)c->version);
    gauge(m, "aldrec_cache_redis_up", "1 while Redis (L2) answers.", c->redis_up);
    metrics_family(m, "aldrec_cache_source", METRIC_GAUGE,
                   "Where the current map came from: 1 for its source.");
    static const pcache_source_t srcs[] = { PCACHE_SRC_POSTGRES, PCACHE_SRC_REDIS,
                                            PCACHE_SRC_SNAPSHOT };
    for (size_t i = 0; i < 3; i++) {
        l = L("source", pcache_source_name(srcs[i]));
        metrics_sample(m, "aldrec_cache_source", &l, 1, c->source == srcs[i]);
    }
}

void svc_render_metrics(const svc_snapshot_t *s, const svc_health_report_t *h,
                        const svc_alerts_t *a, metrics_t *m)
{
    gauge(m, "aldrec_ready", "1 once the parameter map is loaded and the control socket answers.",
          s->ready);
    gauge(m, "aldrec_uptime_seconds", "Since aldrecd started.", s->uptime_s);
    metrics_family(m, "aldrec_memory_bytes", METRIC_GAUGE,
                   "Memory as the allocators count it: heap_in_use and heap_free (malloc's "
                   "arenas, heap_mmap its large blocks, in heap_in_use), sqlite (SQLite's "
                   "allocations, in heap_in_use) and sqlite_highwater.");
    {
        static const char *const kinds[] = { "heap_in_use", "heap_free", "heap_mmap", "sqlite",
                                             "sqlite_highwater" };
        const uint64_t v[] = { s->mem.heap_in_use, s->mem.heap_free, s->mem.heap_mmap,
                               s->mem.sqlite_in_use, s->mem.sqlite_highwater };
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
            metric_label_t l = L("kind", kinds[i]);
            metrics_sample(m, "aldrec_memory_bytes", &l, 1, (double)v[i]);
        }
    }
    if (h) {
        metrics_family(m, "aldrec_health", METRIC_GAUGE,
                       "Health verdict: 1 for the current status (ok, degraded, failing).");
        static const enum svc_health hs[] = { SVC_OK, SVC_DEGRADED, SVC_FAILING };
        for (size_t i = 0; i < 3; i++) {
            metric_label_t l = L("status", svc_health_name(hs[i]));
            metrics_sample(m, "aldrec_health", &l, 1, h->status == hs[i]);
        }
    }
    if (a) {
        static const char *const names[] = { "flush_p95", "copy_p95", "cache_hit", "spool_pct",
                                             "database_down" };
        const bool on[] = { a->flush_on, a->copy_on, a->cache_on, a->spool_on, a->db_on };
        metrics_family(m, "aldrec_alert_active", METRIC_GAUGE,
                       "1 while the alert is raised ([alerts] thresholds).");
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            metric_label_t l[2] = { L("alert", names[i]), L("device", "") };
            metrics_sample(m, "aldrec_alert_active", l, 1, on[i]);
        }
        for (size_t i = 0; i < a->ndev; i++) {
            metric_label_t l[2] = { L("alert", "device_down"), L("device", a->dev[i].label) };
            metrics_sample(m, "aldrec_alert_active", l, 2, a->dev[i].active);
        }
    }
    gauge(m, "aldrec_recording", "1 while a process is being recorded.", s->process_id != 0);
    gauge(m, "aldrec_process_id", "The process being recorded (0: none).",
          (double)s->process_id);
    gauge(m, "aldrec_process_rows", "Rows recorded for the current process.",
          (double)s->process_rows);
    counter(m, "aldrec_idle_points_total",
            "Samples kept in the idle history (outside a process) since start.",
            (double)s->idle_rows);
    gauge(m, "aldrec_idle_points_per_second",
          "Idle-history samples kept per second over the last 10 s.", s->idle_per_s);
    gauge(m, "aldrec_idle_parameters", "Parameters the idle policy keeps outside a process.",
          (double)s->idle_params);
    gauge(m, "aldrec_parameters", "Parameters being polled.", (double)s->poll.params);
    gauge(m, "aldrec_parameters_skipped", "Parameters skipped (unusable definition).",
          (double)s->poll.params_skipped);
    counter(m, "aldrec_points_read_total", "Values read from the devices (before deadband).",
            (double)s->poll.samples_polled);
    counter(m, "aldrec_points_kept_total", "Values kept after the deadband filter.",
            (double)s->poll.samples_stored);
    render_devices(s, m);
    render_store(s, m);
    render_cache(s, m);
}

/* ---- STATUS ------------------------------------------------------------- */

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

/* The "device LABEL: ..." lines, into buf (NUL-terminated, truncated). */
static void status_devices(const svc_snapshot_t *s, char *buf, size_t len)
{
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < s->ndevices && used + 1 < len; i++) {
        const device_stats_t *ds = &s->devices[i].st;
        int w = snprintf(buf + used, len - used,
                         "device %s: %s; %zu params in %zu groups, %zu requests/cycle (min %zu);"
                         " cycles %llu (%llu overruns); requests %llu (%llu failed);"
                         " cycle_ms p50 %.2f p95 %.2f p99 %.2f max %.2f;"
                         " late_ms p50 %.2f p95 %.2f p99 %.2f max %.2f\n",
                         ds->label, ds->up ? "up" : "down", ds->params - ds->params_dropped,
                         ds->groups, ds->requests_per_cycle, ds->min_requests_per_cycle,
                         (unsigned long long)ds->cycles, (unsigned long long)ds->overruns,
                         (unsigned long long)ds->requests, (unsigned long long)ds->request_errors,
                         ms(hist_quantile(&ds->cycle_us, 0.5)), ms(hist_quantile(&ds->cycle_us, 0.95)),
                         ms(hist_quantile(&ds->cycle_us, 0.99)), ms(ds->cycle_us.max),
                         ms(hist_quantile(&ds->late_us, 0.5)), ms(hist_quantile(&ds->late_us, 0.95)),
                         ms(hist_quantile(&ds->late_us, 0.99)), ms(ds->late_us.max));
        if (w < 0)
            break;
        used += (size_t)w < len - used ? (size_t)w : len - used - 1;
    }
}

/* The health, alerts and metrics lines, into buf (NUL-terminated). */
static void status_ops(const svc_health_report_t *h, const svc_alerts_t *a, const char *metrics,
                       char *buf, size_t cap)
{
    char reasons[2048] = "";
    for (size_t i = 0; h && i < h->nreasons; i++) {
        size_t n = strlen(reasons);
        snprintf(reasons + n, sizeof reasons - n, "%s%s", i ? "; " : "", h->reasons[i]);
    }
    char active[1024] = "";
    size_t nalerts = a ? svc_alerts_active(a, active, sizeof active) : 0;
    snprintf(buf, cap,
             "health:             %s%s%s%s\n"
             "alerts:             %zu active%s%s\n"
             "metrics:            %s\n",
             h ? svc_health_name(h->status) : "starting",
             reasons[0] ? " (" : "", reasons, reasons[0] ? ")" : "", nalerts,
             nalerts ? ": " : "", nalerts ? active : "", metrics);
}

size_t svc_render_status(const svc_snapshot_t *s, const svc_health_report_t *h,
                         const svc_alerts_t *a, const char *metrics, char *buf, size_t cap)
{
    /* Each part has a bound of its own, the whole reply one of the control
     * socket's short answers. */
    char devices[8192], cache[2048] = "", ops[2048];
    status_devices(s, devices, sizeof devices);
    if (s->have_cache)
        pcache_format_stats(&s->cache, cache, sizeof cache);
    status_ops(h, a, metrics, ops, sizeof ops);
    char proc[64];
    if (s->process_id)
        snprintf(proc, sizeof proc, "%lld", (long long)s->process_id);
    else
        snprintf(proc, sizeof proc, "none");
    const poller_stats_t *ps = &s->poll;
    const forwarder_stats_t *fs = &s->fwd;
    const spool_stats_t *ss = &s->spool;

    int n = snprintf(buf, cap,
                 "machine:            %s\n"
                 "recorder_id:        %s\n"
                 "pid:                %d\n"
                 "uptime_s:           %.1f\n"
                 "process:            %s\n"
                 "process_rows:       %llu\n"
                 "idle:               %zu params, %llu rows, %.1f points/s (last 10 s)\n"
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
                 s->machine, s->recorder_id, s->pid, s->uptime_s, proc,
                 (unsigned long long)s->process_rows, s->idle_params,
                 (unsigned long long)s->idle_rows, s->idle_per_s, ps->params, ps->params_skipped,
                 ps->devices, ps->devices_up, ps->requests_per_cycle,
                 (unsigned long long)ps->cycles, (unsigned long long)ps->overruns,
                 (unsigned long long)ps->requests, (unsigned long long)ps->request_errors,
                 (unsigned long long)ps->samples_polled, (unsigned long long)ps->samples_stored,
                 (unsigned long long)ps->queue_dropped,
                 hist_quantile(&ps->cycle_us, 0.5) / 1e3, hist_quantile(&ps->cycle_us, 0.99) / 1e3,
                 ps->cycle_us.max / 1e3, hist_quantile(&ps->late_us, 0.5) / 1e3,
                 hist_quantile(&ps->late_us, 0.99) / 1e3, ps->late_us.max / 1e3, devices,
                 s->batch_pending_rows, s->append_last_ms, s->append_max_ms,
                 forwarder_link_name(fs->link), fs->link_for_s,
                 (unsigned long long)ss->batches, (unsigned long long)ss->rows,
                 (unsigned long long)ss->bytes, s->queue_oldest_s, fs->rows_per_s,
                 (unsigned long long)fs->stored_batches, (unsigned long long)fs->stored_rows,
                 (unsigned long long)fs->transactions, (unsigned long long)fs->duplicate_batches,
                 (unsigned long long)ss->q_batches, (unsigned long long)ss->q_rows,
                 (unsigned long long)ss->dropped_batches, (unsigned long long)ss->dropped_points,
                 ss->dropping ? " (dropping now: spool full)" : "",
                 s->spool_path, (unsigned long long)ss->spool_id,
                 (unsigned long long)(ss->bytes + ss->q_bytes), (long long)ss->max_bytes,
                 fs->last_error[0] ? fs->last_error : "-", cache, ops);
    if (n < 0 || cap == 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}
