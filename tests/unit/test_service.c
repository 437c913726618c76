/* test_service.c — health verdicts and alerts from synthetic snapshots
 * (no daemon, no servers), and the rendered metrics parsed back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/batch.h"
#include "expo.h"
#include "ops/service.h"
#include "t.h"

static aldrec_config_t cfg;
static expo_t ex;

/* A healthy recorder with ndev devices, at time t seconds. */
static void healthy(svc_snapshot_t *s, size_t ndev, double t)
{
    svc_snapshot_clear(s);
    memset(s, 0, sizeof *s);
    s->taken_ns = (int64_t)(t * 1e9);
    s->ready = true;
    s->uptime_s = t;
    s->devices = calloc(ndev, sizeof *s->devices);
    s->ndevices = ndev;
    for (size_t i = 0; i < ndev; i++) {
        snprintf(s->devices[i].st.label, sizeof s->devices[i].st.label, "10.0.0.%zu:502 unit 1",
                 i + 1);
        s->devices[i].st.up = true;
    }
    s->have_spool = s->have_fwd = s->have_cache = true;
    s->spool.max_bytes = 1000000;
    s->fwd.link = LINK_UP;
    s->cache.source = PCACHE_SRC_POSTGRES;
    s->cache_ttl_s = 300;
}

static int has_reason(const svc_health_report_t *h, const char *text)
{
    for (size_t i = 0; i < h->nreasons; i++)
        if (strstr(h->reasons[i], text))
            return 1;
    return 0;
}

static void test_health(void)
{
    svc_snapshot_t s = { 0 };
    svc_health_report_t h;
    char buf[4096];

    healthy(&s, 3, 100);
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_OK);
    T_EQ_INT(h.nreasons, 0);
    svc_health_format(&h, buf, sizeof buf);
    T_EQ_STR(buf, "ok\n");

    /* one device down: degraded once it has been down device_down_s */
    s.devices[1].st.up = false;
    s.devices[1].down_for_s = cfg.health_device_down_s - 1;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_OK);
    s.devices[1].down_for_s = cfg.health_device_down_s;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_DEGRADED);
    T_CHECK(has_reason(&h, "degraded: device 10.0.0.2:502 unit 1 down for 10 s"));
    /* all down: failing */
    for (size_t i = 0; i < 3; i++) {
        s.devices[i].st.up = false;
        s.devices[i].down_for_s = 60;
    }
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_FAILING);
    T_CHECK(has_reason(&h, "failing: every device (3) down"));

    /* database */
    healthy(&s, 1, 100);
    s.fwd.link = LINK_SPOOLING;
    s.db_down_for_s = cfg.health_database_down_s + 0.5;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_DEGRADED);
    T_CHECK(has_reason(&h, "PostgreSQL unreachable for 30 s (link spooling)"));

    /* spool fill: degraded, then failing, dropping is failing */
    healthy(&s, 1, 100);
    s.spool.bytes = 500000;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_DEGRADED);
    T_CHECK(has_reason(&h, "spool at 50 % of max_bytes"));
    s.spool.q_bytes = 400000;
    s.spool.q_batches = 2;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_FAILING);
    T_CHECK(has_reason(&h, "failing: spool at 90 %"));
    T_CHECK(has_reason(&h, "degraded: 2 batch(es) in quarantine"));
    T_CHECK(strncmp(h.reasons[0], "failing: ", 9) == 0);   /* failing ones first */
    s.spool.bytes = s.spool.q_bytes = 0;
    s.spool.dropping = true;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_FAILING);
    T_CHECK(has_reason(&h, "spool full: dropping data"));

    /* cache */
    healthy(&s, 1, 100);
    s.cache.source = PCACHE_SRC_SNAPSHOT;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_DEGRADED);
    T_CHECK(has_reason(&h, "from the local snapshot"));
    s.cache.source = PCACHE_SRC_POSTGRES;
    s.cache.age_s = 301;
    svc_health_eval(&s, &cfg, &h);
    T_CHECK(has_reason(&h, "parameter map stale"));

    /* not ready, spool write failing */
    healthy(&s, 1, 100);
    s.ready = false;
    s.spool_write_failing = true;
    svc_health_eval(&s, &cfg, &h);
    T_EQ_INT(h.status, SVC_FAILING);
    T_EQ_INT(h.nreasons, 2);
    svc_health_format(&h, buf, sizeof buf);
    T_CHECK(strncmp(buf, "failing\n- failing: ", 19) == 0);
    svc_snapshot_clear(&s);
}

static void test_tracker(void)
{
    svc_snapshot_t s = { 0 };
    svc_tracker_t *t = svc_tracker_new();
    healthy(&s, 2, 10);
    svc_track(t, &s);
    T_EQ_DBL(s.devices[0].down_for_s, 0, 0);
    T_EQ_DBL(s.db_down_for_s, 0, 0);
    healthy(&s, 2, 11);
    s.devices[0].st.up = false;
    s.fwd.link = LINK_SPOOLING;
    svc_track(t, &s);
    T_EQ_DBL(s.devices[0].down_for_s, 0, 1e-9);
    T_EQ_DBL(s.db_down_for_s, 1, 1e-9);   /* last seen up at t=10 */
    healthy(&s, 2, 16);
    s.devices[0].st.up = false;
    s.fwd.link = LINK_CONNECTING;          /* still not up: the clock keeps running */
    svc_track(t, &s);
    T_EQ_DBL(s.devices[0].down_for_s, 5, 1e-9);
    T_EQ_DBL(s.db_down_for_s, 6, 1e-9);
    healthy(&s, 2, 17);
    svc_track(t, &s);
    T_EQ_DBL(s.devices[0].down_for_s, 0, 0);
    T_EQ_DBL(s.db_down_for_s, 0, 0);
    svc_snapshot_clear(&s);
    svc_tracker_free(t);
}

struct events {
    int n;
    char last[512];
    char names[64][64];
};

static void on_event(void *arg, const svc_alert_event_t *ev)
{
    struct events *e = arg;
    if (e->n < 64)
        snprintf(e->names[e->n], sizeof e->names[0], "%s%s%s %s", ev->name,
                 ev->subject[0] ? ":" : "", ev->subject, ev->raised ? "raised" : "cleared");
    e->n++;
    snprintf(e->last, sizeof e->last, "%s", ev->text);
}

static void test_alerts(void)
{
    svc_alerts_t *a = svc_alerts_new();
    svc_snapshot_t s = { 0 };
    struct events ev = { 0 };
    hist_t flush = { 0 };
    double t = 0;

    /* 120 s of fast flushes: nothing */
    for (; t < 120; t += 1) {
        healthy(&s, 1, t);
        for (int i = 0; i < 10; i++)
            hist_add(&flush, 2000);            /* 2 ms */
        s.flush_us = flush;
        T_EQ_INT(svc_alerts_eval(a, &s, &cfg, on_event, &ev), 0);
    }
    T_EQ_INT(ev.n, 0);
    /* then slow ones (80 ms): raised once, however long it lasts */
    for (; t < 240; t += 1) {
        healthy(&s, 1, t);
        for (int i = 0; i < 10; i++)
            hist_add(&flush, 80000);
        s.flush_us = flush;
        svc_alerts_eval(a, &s, &cfg, on_event, &ev);
    }
    T_EQ_INT(ev.n, 1);
    T_EQ_STR(ev.names[0], "flush_p95 raised");
    T_CHECK(strstr(ev.last, "alert flush_p95 raised: spool append (flush) p95 8") != NULL);
    T_CHECK(strstr(ev.last, "(threshold above 50 ms)") != NULL);
    char act[256];
    T_EQ_INT(svc_alerts_active(a, act, sizeof act), 1);
    T_EQ_STR(act, "flush_p95");
    /* 45 ms (between 80 % and 100 % of the threshold): stays raised */
    for (; t < 400; t += 1) {
        healthy(&s, 1, t);
        for (int i = 0; i < 10; i++)
            hist_add(&flush, 45000);
        s.flush_us = flush;
        svc_alerts_eval(a, &s, &cfg, on_event, &ev);
    }
    T_EQ_INT(ev.n, 1);
    /* fast again: cleared once */
    for (; t < 500; t += 1) {
        healthy(&s, 1, t);
        for (int i = 0; i < 10; i++)
            hist_add(&flush, 2000);
        s.flush_us = flush;
        svc_alerts_eval(a, &s, &cfg, on_event, &ev);
    }
    T_EQ_INT(ev.n, 2);
    T_EQ_STR(ev.names[1], "flush_p95 cleared");
    T_EQ_INT(svc_alerts_active(a, NULL, 0), 0);

    /* spool fill hovering around the threshold: no flapping */
    ev.n = 0;
    static const double fill[] = { 0.5, 0.81, 0.79, 0.81, 0.78, 0.80, 0.76, 0.74, 0.81 };
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++, t += 1) {
        healthy(&s, 1, t);
        s.flush_us = flush;
        s.spool.bytes = (uint64_t)(fill[i] * 1e6);
        svc_alerts_eval(a, &s, &cfg, on_event, &ev);
    }
    T_EQ_INT(ev.n, 3);
    T_EQ_STR(ev.names[0], "spool_pct raised");
    T_EQ_STR(ev.names[1], "spool_pct cleared");   /* at 74 %, 5 points below */
    T_EQ_STR(ev.names[2], "spool_pct raised");

    /* devices and the database: after their thresholds, per device */
    ev.n = 0;
    svc_tracker_t *tr = svc_tracker_new();
    for (int i = 0; i < 100; i++, t += 1) {
        healthy(&s, 3, t);
        s.flush_us = flush;
        s.spool.bytes = 810000;
        if (i >= 10 && i < 70) {
            s.devices[2].st.up = false;
            s.fwd.link = LINK_SPOOLING;
        }
        if (i >= 20 && i < 40)
            s.devices[0].st.up = false;   /* down 20 s: below 30 s, no alert */
        svc_track(tr, &s);
        svc_alerts_eval(a, &s, &cfg, on_event, &ev);
    }
    T_EQ_INT(ev.n, 4);
    T_EQ_STR(ev.names[0], "device_down:10.0.0.3:502 unit 1 raised");    /* at i = 40 */
    T_EQ_STR(ev.names[1], "database_down raised");                     /* at i = 69 */
    T_EQ_STR(ev.names[2], "database_down cleared");                    /* both at i = 70 */
    T_EQ_STR(ev.names[3], "device_down:10.0.0.3:502 unit 1 cleared");
    svc_tracker_free(tr);

    /* cache hit ratio over the window, with enough lookups */
    ev.n = 0;
    uint64_t hits = 0, misses = 0;
    for (int i = 0; i < 200; i++, t += 1) {
        healthy(&s, 1, t);
        s.flush_us = flush;
        s.spool.bytes = 810000;
        if (i < 100)
            hits += 10, misses += 0;
        else
            hits += 8, misses += 2;          /* 80 % */
        s.cache.l1_hits = hits;
        s.cache.l1_misses = misses;
        svc_alerts_eval(a, &s, &cfg, on_event, &ev);
    }
    T_EQ_INT(ev.n, 1);
    T_EQ_STR(ev.names[0], "cache_hit raised");

    /* a disabled alert clears */
    aldrec_config_t off = cfg;
    off.alert_cache_hit_pct = 0;
    off.alert_spool_pct = 0;
    healthy(&s, 1, t);
    s.cache.l1_hits = hits;
    s.cache.l1_misses = misses;
    T_EQ_INT(svc_alerts_eval(a, &s, &off, on_event, &ev), 2);
    T_EQ_INT(svc_alerts_active(a, NULL, 0), 0);
    svc_snapshot_clear(&s);
    svc_alerts_free(a);
}

static void test_render(void)
{
    svc_snapshot_t s = { 0 };
    svc_health_report_t h;
    svc_alerts_t *a = svc_alerts_new();
    healthy(&s, 2, 50);
    snprintf(s.devices[1].st.label, sizeof s.devices[1].st.label, "/dev/ttyUSB0 (rtu 19200 8E1)");
    s.devices[0].st.cycles = 500;
    s.devices[0].st.errors[DEVICE_ERR_TIMEOUT] = 3;
    s.devices[0].st.errors[DEVICE_ERR_EXCEPTION] = 2;
    for (int i = 0; i < 100; i++)
        hist_add(&s.devices[0].st.cycle_us, 1000 + (uint64_t)i * 10);
    s.poll.samples_polled = 16000;
    s.flushed_rows = 15000;
    s.fwd.stored_rows_kind[BATCH_POINTS] = 14000;
    s.fwd.stored_rows_kind[BATCH_GAPS] = 1;
    s.fwd.link = LINK_DRAINING;
    s.spool.rows = 1000;
    s.cache.l1_hits = 7;
    s.process_id = 4711;
    svc_health_eval(&s, &cfg, &h);
    metrics_t *m = metrics_new();
    svc_render_metrics(&s, &h, a, m);
    T_CHECK(!metrics_failed(m));
    const char *text = metrics_text(m, NULL);
    int rc = expo_parse(&ex, text);
    T_EQ_INT(rc, 0);
    if (rc)
        printf("# %s\n", ex.error);
    T_CHECK(ex.n > 100);
    T_EQ_DBL(expo_get(&ex, "aldrec_points_read_total", 0, NULL), 16000, 0);
    T_EQ_DBL(expo_get(&ex, "aldrec_points_spooled_total", 0, NULL), 15000, 0);
    T_EQ_DBL(expo_get(&ex, "aldrec_points_written_total", 0, NULL), 14000, 0);
    const char *gaps[] = { "kind=gaps" };
    T_EQ_DBL(expo_get(&ex, "aldrec_rows_written_total", 1, gaps), 1, 0);
    const char *ok[] = { "status=ok" };
    T_EQ_DBL(expo_get(&ex, "aldrec_health", 1, ok), 1, 0);
    const char *drain[] = { "state=draining" }, *up[] = { "state=up" };
    T_EQ_DBL(expo_get(&ex, "aldrec_database_link", 1, drain), 1, 0);
    T_EQ_DBL(expo_get(&ex, "aldrec_database_link", 1, up), 0, 0);
    const char *to[] = { "device=10.0.0.1:502 unit 1", "kind=timeout" };
    T_EQ_DBL(expo_get(&ex, "aldrec_modbus_errors_total", 2, to), 3, 0);
    const char *rtu[] = { "device=/dev/ttyUSB0 (rtu 19200 8E1)" };
    T_EQ_DBL(expo_get(&ex, "aldrec_device_up", 1, rtu), 1, 0);
    const char *p99[] = { "device=10.0.0.1:502 unit 1", "quantile=0.99" };
    T_EQ_DBL(expo_get(&ex, "aldrec_poll_cycle_seconds", 2, p99), 0.00199, 0.00199 * 0.04);
    T_EQ_DBL(expo_get(&ex, "aldrec_process_id", 0, NULL), 4711, 0);
    T_EQ_DBL(expo_get(&ex, "aldrec_queue_rows", 0, NULL), 1000, 0);
    const char *l1[] = { "level=l1" };
    T_EQ_DBL(expo_get(&ex, "aldrec_cache_hits_total", 1, l1), 7, 0);
    metrics_free(m);
    svc_snapshot_clear(&s);
    svc_alerts_free(a);
}

int main(void)
{
    config_defaults(&cfg);
    test_health();
    test_tracker();
    test_alerts();
    test_render();
    return t_done("test_service");
}
