/* poller.h — read every active parameter of the machine over Modbus TCP.
 *
 * Parameters are grouped by device (host, port, unit id) and, within a
 * device, by poll interval; each (device, interval) group has a request plan
 * (plan.h) and a deadline on CLOCK_MONOTONIC advanced by whole intervals, so
 * cycles do not drift. Samples are timestamped with the wall clock when the
 * response arrived.
 *
 * Failures never stop polling: a failed request marks only its own values
 * (quality: exception code, timeout, comm error; value NULL), a device that
 * times out or drops the connection is reconnected with capped backoff, and
 * a parameter the device refuses by itself with "illegal data address" is
 * dropped from the plan with a warning naming it.
 *
 * Runs on the caller's thread; each request waits at most
 * response_timeout_ms. (Per-device threads arrive with issue 5.) */
#ifndef ALDREC_POLLER_H
#define ALDREC_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "plan.h"
#include "pmap.h"
#include "sample.h"

typedef struct poller poller_t;

typedef struct poller_opts {
    int response_timeout_ms;
    plan_limits_t limits;
} poller_opts_t;

typedef struct poller_stats {
    size_t devices, devices_up;
    size_t params, params_skipped;
    size_t requests_per_cycle;     /* sum over groups of their plan sizes */
    uint64_t cycles;               /* group cycles run */
    uint64_t overruns;             /* cycles skipped because one ran late */
    uint64_t requests, request_errors;
    uint64_t samples;
    double last_cycle_ms, max_cycle_ms;
} poller_stats_t;

/* Called for every sample; s is borrowed for the call. */
typedef void (*poller_sample_fn)(void *arg, const sample_t *s);

/* Builds devices, groups and plans from the valid parameters of map (it is
 * not kept). Invalid parameters are skipped with one warning each. Returns
 * NULL with errno ENOMEM. */
poller_t *poller_new(const pmap_t *map, const poller_opts_t *opts);

/* Closes connections and frees p; NULL is fine. */
void poller_free(poller_t *p);

/* CLOCK_MONOTONIC time (ns) when the next group is due; INT64_MAX if none. */
int64_t poller_next_due(const poller_t *p);

/* Runs every group due at now_ns, calling fn for each sample. */
void poller_run_due(poller_t *p, int64_t now_ns, poller_sample_fn fn, void *arg);

/* Counters snapshot. */
void poller_get_stats(const poller_t *p, poller_stats_t *out);

/* CLOCK_MONOTONIC and CLOCK_REALTIME helpers shared by the daemon. */
int64_t poller_mono_ns(void);
int64_t poller_wall_us(void);

#endif
