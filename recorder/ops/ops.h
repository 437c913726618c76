/* ops.h — the operating side of aldrecd, driven from its main loop: once a
 * second ops_tick() takes the snapshot the daemon collected (service.h),
 * tracks how long things have been down, judges health, evaluates the
 * alerts (one log line when one is raised or cleared), renders /metrics
 * and /health and hands them to the HTTP thread (httpd.h), and talks to
 * systemd (sd_notify: READY=1, STATUS=, WATCHDOG=1, STOPPING=1; no-ops when
 * not started by systemd). The control socket's STATUS and METRICS are
 * rendered here too (ops_render_status(), ops_render()), from a snapshot
 * taken the same way.
 *
 * Watchdog policy: WATCHDOG=1 is sent from ops_tick(), i.e. only while the
 * main loop turns, and withheld once the spool has been failing to take
 * writes for OPS_WATCHDOG_SPOOL_S seconds — a restart reopens the spool
 * (and sets a damaged file aside), which is the one failure a restart
 * cures. A dead database or dead devices never stop the pings: restarting
 * would not bring them back. */
#ifndef ALDREC_OPS_H
#define ALDREC_OPS_H

#include <stddef.h>

#include "common/config.h"
#include "ops/service.h"

#define OPS_WATCHDOG_SPOOL_S 60

typedef struct ops ops_t;

/* Starts the HTTP endpoint per [metrics] (unless "off"). A listen failure
 * is logged and leaves metrics off (recording matters more); it is shown
 * in the STATUS line "metrics". Returns NULL with errno ENOMEM. */
ops_t *ops_new(const aldrec_config_t *cfg);

/* Stops the HTTP thread, frees o. NULL is fine. */
void ops_free(ops_t *o);

/* Takes new thresholds ([health], [alerts], [cache] ttl_s) after a reload;
 * [metrics] changes need a restart. */
void ops_set_config(ops_t *o, const aldrec_config_t *cfg);

/* The once-a-second work described above; s is updated in place (down
 * times). Main loop only. */
void ops_tick(ops_t *o, svc_snapshot_t *s);

/* The latest health verdict (after the first tick). */
const svc_health_report_t *ops_health(const ops_t *o);

/* The STATUS lines of s (svc_render_status(), where they are documented)
 * with the latest health verdict, the alerts raised and where metrics are
 * served, into buf (NUL-terminated, truncated to cap). Returns the length. */
size_t ops_render_status(const ops_t *o, const svc_snapshot_t *s, char *buf, size_t cap);

/* Renders the exposition of s now (for `aldrec metrics`): a malloc'd
 * string the caller frees, or NULL. */
char *ops_render(const ops_t *o, const svc_snapshot_t *s, size_t *len);

/* sd_notify: READY=1 with a status line; STATUS=; STOPPING=1;
 * EXTEND_TIMEOUT_USEC while start-up keeps trying. */
void ops_notify_ready(const char *status);
void ops_notify_status(const char *status);
void ops_notify_stopping(void);
void ops_notify_extend(int seconds);

/* The port the HTTP endpoint listens on, 0 when off. */
int ops_http_port(const ops_t *o);

#endif
