/* ops.c — aldrecd's operating side: health, alerts, metrics publishing and
 * systemd notification, once a second; see ops.h. */
#include "ops/ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "ops/httpd.h"
#include "common/log.h"
#include "ops/metrics.h"

struct ops {
    aldrec_config_t cfg;           /* thresholds in force */
    httpd_t *http;
    char http_error[256];          /* why metrics are off, "" if on or off by config */
    char listen[96];
    svc_tracker_t *tracker;
    svc_alerts_t *alerts;
    svc_health_report_t health;
    bool ticked;
    enum svc_health last_status;
    int64_t spool_failing_since_ns; /* 0: writes work */
    bool watchdog_withheld;
    char last_status_line[256];
};

ops_t *ops_new(const aldrec_config_t *cfg)
{
    ops_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->cfg = *cfg;
    o->tracker = svc_tracker_new();
    o->alerts = svc_alerts_new();
    if (!o->tracker || !o->alerts) {
        ops_free(o);
        errno = ENOMEM;
        return NULL;
    }
    char host[64];
    int port = 0;
    int lr = config_parse_listen(cfg->metrics_listen, host, sizeof host, &port);
    if (lr == 0) {
        char err[256];
        o->http = httpd_start(host, port, err, sizeof err);
        if (!o->http) {
            snprintf(o->http_error, sizeof o->http_error, "%s", err);
            log_msg(LL_ERROR, "%s; recording goes on without /metrics and /health", err);
        } else {
            snprintf(o->listen, sizeof o->listen, "http://%s%s%s:%d/metrics",
                     strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                     httpd_port(o->http));
            log_msg(LL_INFO, "metrics on %s (and /health)", o->listen);
        }
    }
    return o;
}

void ops_free(ops_t *o)
{
    if (!o)
        return;
    httpd_stop(o->http);
    svc_tracker_free(o->tracker);
    svc_alerts_free(o->alerts);
    free(o);
}

void ops_set_config(ops_t *o, const aldrec_config_t *cfg)
{
    /* [metrics] stays as started: a new listen address needs a restart. */
    o->cfg = *cfg;
}

int ops_http_port(const ops_t *o)
{
    return o->http ? httpd_port(o->http) : 0;
}

char *ops_render(const ops_t *o, const svc_snapshot_t *s, size_t *len)
{
    metrics_t *m = metrics_new();
    if (!m)
        return NULL;
    svc_render_metrics(s, o->ticked ? &o->health : NULL, o->alerts, m);
    size_t n;
    const char *text = metrics_text(m, &n);
    char *copy = metrics_failed(m) ? NULL : malloc(n + 1);
    if (copy) {
        memcpy(copy, text, n + 1);
        *len = n;
    }
    metrics_free(m);
    return copy;
}

static void watchdog(ops_t *o, const svc_snapshot_t *s)
{
    if (s->spool_write_failing) {
        if (o->spool_failing_since_ns == 0)
            o->spool_failing_since_ns = s->taken_ns;
    } else {
        o->spool_failing_since_ns = 0;
    }
    bool withhold = o->spool_failing_since_ns &&
                    s->taken_ns - o->spool_failing_since_ns >= OPS_WATCHDOG_SPOOL_S * 1000000000LL;
    if (withhold && !o->watchdog_withheld)
        log_msg(LL_ERROR, "the spool has refused writes for %d s: no longer pinging the systemd"
                " watchdog, so that systemd restarts aldrecd", OPS_WATCHDOG_SPOOL_S);
    o->watchdog_withheld = withhold;
    if (!withhold)
        sd_notify(0, "WATCHDOG=1");
}

void ops_tick(ops_t *o, svc_snapshot_t *s)
{
    svc_track(o->tracker, s);
    s->cache_ttl_s = o->cfg.cache_ttl_s;
    svc_health_eval(s, &o->cfg, &o->health);
    if (o->ticked && o->health.status != o->last_status) {
        char why[512] = "";
        for (size_t i = 0; i < o->health.nreasons; i++) {
            size_t used = strlen(why);
            snprintf(why + used, sizeof why - used, "%s%s", i ? "; " : "", o->health.reasons[i]);
        }
        log_field_t f[] = { { "health", svc_health_name(o->health.status) },
                            { "was", svc_health_name(o->last_status) } };
        log_event(o->health.status == SVC_OK ? LL_INFO : LL_WARN, f, 2, "health %s%s%s",
                  svc_health_name(o->health.status), why[0] ? ": " : "", why);
    }
    o->last_status = o->health.status;
    o->ticked = true;
    svc_alerts_eval(o->alerts, s, &o->cfg, svc_alert_log, NULL);

    if (o->http) {
        size_t mlen = 0;
        char *text = ops_render(o, s, &mlen);
        char health[4096];
        size_t hlen = svc_health_format(&o->health, health, sizeof health);
        if (text)
            httpd_publish(o->http, text, mlen, health, hlen,
                          o->health.status == SVC_FAILING ? 503 : 200);
        free(text);
    }

    char status[256];
    snprintf(status, sizeof status, "STATUS=%s; %s, %zu/%zu devices up, %s",
             svc_health_name(o->health.status),
             s->process_id ? "recording" : "idle", s->poll.devices_up, s->poll.devices,
             s->have_fwd ? forwarder_link_name(s->fwd.link) : "-");
    if (strcmp(status, o->last_status_line) != 0) {
        sd_notify(0, status);
        memcpy(o->last_status_line, status, sizeof status);
    }
    watchdog(o, s);
}

const svc_health_report_t *ops_health(const ops_t *o)
{
    return &o->health;
}

size_t ops_render_status(const ops_t *o, const svc_snapshot_t *s, char *buf, size_t cap)
{
    char metrics[300];
    if (o->http)
        snprintf(metrics, sizeof metrics, "%s", o->listen);
    else if (o->http_error[0])
        snprintf(metrics, sizeof metrics, "off (%s)", o->http_error);
    else
        snprintf(metrics, sizeof metrics, "off ([metrics] listen = off)");
    return svc_render_status(s, o->ticked ? &o->health : NULL, o->alerts, metrics, buf, cap);
}

void ops_notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void ops_notify_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

void ops_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: flushing the open batch to the spool");
}

void ops_notify_extend(int seconds)
{
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)seconds * 1000000ULL);
}
