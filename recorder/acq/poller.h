/* poller.h — poll every active parameter of the machine over Modbus TCP and
 * RTU, each device on its own thread (device.h), and hand the samples to
 * the daemon's main loop.
 *
 * The parameter map is split into devices: a TCP device per (host, port,
 * unit id), an RTU device per serial line with every unit id on it. A
 * device's settings come from its components' machine_components columns,
 * with the [modbus] defaults of the config where they are NULL (devconn.h,
 * as for aldrec get/set); where
 * components sharing a device disagree the most conservative value wins
 * (smallest request limits and gap, longest timeout, the union of no_bridge
 * ranges) and a warning says so; RTU line framing is taken from the first
 * component (by name) and a disagreeing one is named in a warning.
 *
 * Device threads deliver the samples of each completed cycle into one
 * mutex-protected queue and make notify_fd readable; the main loop calls
 * poller_drain() from its poll loop, so batching stays single-threaded and
 * polling never waits for the main loop (a queue that is not drained fills
 * up to queue_max samples; beyond that samples are dropped and counted). */
#ifndef ALDREC_POLLER_H
#define ALDREC_POLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/devconn.h"
#include "acq/device.h"
#include "common/hist.h"
#include "acq/plan.h"
#include "acq/pmap.h"
#include "acq/sample.h"

typedef struct poller poller_t;

typedef struct poller_opts {
    devconn_defaults_t modbus;   /* [modbus] defaults for every device */
    plan_limits_t limits;        /* no_bridge unused: it is per component */
    int reconnect_min_ms, reconnect_max_ms;
    size_t queue_max;            /* samples waiting for poller_drain; 0 = 1,000,000 */
} poller_opts_t;

typedef struct poller_stats {
    size_t devices, devices_up;
    size_t params, params_skipped;
    size_t requests_per_cycle;     /* sum over devices of their current plans */
    size_t min_requests_per_cycle; /* the same with nothing isolated */
    uint64_t cycles, overruns;
    uint64_t requests, request_errors;
    uint64_t samples_polled, samples_stored;
    uint64_t queue_dropped;
    hist_t cycle_us, late_us;      /* merged over devices */
} poller_stats_t;

/* Called for every sample; s is borrowed for the call. */
typedef void (*poller_sample_fn)(void *arg, const sample_t *s);

/* Builds devices from the valid parameters of map (it is not kept) and
 * starts their threads. Parameters that cannot be used are skipped with one
 * warning each naming them. Returns NULL with errno (ENOMEM, or from
 * eventfd). */
poller_t *poller_new(const pmap_t *map, const poller_opts_t *opts);

/* Stops every device thread (each finishes at most one request, bounded by
 * its response timeout), closes connections, frees p. NULL is fine. */
void poller_free(poller_t *p);

/* Graceful end of polling: every device thread completes the cycle it is
 * in (bounded by its response timeout) and delivers it, then exits. The
 * samples stay queued for a last poller_drain(); poller_free() after. */
void poller_stop(poller_t *p);

/* Applies a changed parameter map without a restart: devices whose
 * connection, limits and parameters are unchanged keep polling (and keep
 * their deadband and isolation state); changed ones are restarted; new ones
 * start; removed ones stop (in the background: this never blocks on a device
 * in a request). Returns 0, or -1 with errno ENOMEM, the running set being
 * kept. */
int poller_update(poller_t *p, const pmap_t *map);

/* The next sample of every deadband parameter is stored whatever its value
 * (called when a run starts, so that it begins with a value of each). */
void poller_resync(poller_t *p);

/* Readable when samples wait: poll it for POLLIN, then call poller_drain. */
int poller_notify_fd(const poller_t *p);

/* Calls fn for every waiting sample, in the order devices delivered them,
 * and reaps devices that finished stopping. Main loop only. Returns the
 * number of samples passed to fn. */
size_t poller_drain(poller_t *p, poller_sample_fn fn, void *arg);

/* Queues op (device.h) on the device that polls pm, to be served by its
 * thread between two poll requests. Main loop only. Returns 0, or -1 with
 * errno ENOENT (no device polls pm's component: err says so), ESHUTDOWN
 * (its device is stopping) or EAGAIN (its queue is full), op not queued. */
int poller_submit(poller_t *p, const param_meta_t *pm, device_op_t *op, char *err,
                  size_t errlen);

/* The same for a group of ops (device_submit_group: served back to back,
 * a failed write ends it) on the device that polls every pm[0..n), whose
 * ops are ops[0..n). Main loop only. Returns 0, or -1 with errno ENOENT
 * (no device polls one of them), EINVAL (they are not all of one device),
 * ESHUTDOWN or EAGAIN (its queue is full), err naming the device; then
 * none is queued. */
int poller_submit_group(poller_t *p, const param_meta_t *const pm[], device_op_t *const ops[],
                        size_t n, char *err, size_t errlen);

/* True when one device polls both a and b (their set points can be one
 * group). Main loop only. */
bool poller_same_device(poller_t *p, const param_meta_t *a, const param_meta_t *b);

/* The latest polled value of pm (device_latest). Main loop only. Returns
 * 0, or -1 with errno ENOENT (not polled, or no value yet). */
int poller_latest(poller_t *p, const param_meta_t *pm, sample_t *out);

/* Counters snapshot, summed over devices. */
void poller_get_stats(poller_t *p, poller_stats_t *out);

/* Copies the counters of up to max devices into out (device.h), in the
 * order of the current device list. Returns the number of devices (which
 * may exceed max: call again with a larger array). */
size_t poller_get_device_stats(poller_t *p, device_stats_t *out, size_t max);

/* One line per device for `aldrec status` ("device LABEL: ...\n"), into
 * buf (NUL-terminated, truncated to len). Returns the length written. */
size_t poller_format_devices(poller_t *p, char *buf, size_t len);

#endif
