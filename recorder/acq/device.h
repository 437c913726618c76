/* device.h — one Modbus connection and the thread that polls through it.
 *
 * A device is what the recorder holds one connection to: a Modbus TCP
 * endpoint (host, port) for one unit id, or an RTU serial line with every
 * unit id on that RS-485 bus. Each device runs its own thread with its own
 * poll loop, connection, timeouts and reconnect backoff, so a slow, dead or
 * reconnecting device never delays another one (see device.c for why
 * threads).
 *
 * Inside a device, parameters are grouped per unit and poll interval; each
 * group has a request plan (plan.h) and a deadline on CLOCK_MONOTONIC that
 * advances by whole intervals (no drift; a late cycle counts overruns and
 * skips the cycles already past instead of firing them back to back).
 * Samples are timestamped with the wall clock when their response arrived,
 * filtered by each parameter's deadband (deadband.h) and handed to the sink
 * once per completed group cycle.
 *
 * Failures mark only their own values (sample.h quality codes):
 *   - a request the device answers with an exception: its items are re-read
 *     one by one in the same cycle, so only the values the device refuses
 *     carry 100+code; those are then read on their own until they answer
 *     again (their neighbours keep their shared request);
 *   - a parameter whose registers the device never served and answers
 *     "illegal data address" is dropped with a warning naming it;
 *   - a whole request refused although each of its values reads fine on its
 *     own (a device accepting fewer registers than configured): the device's
 *     request size limit is halved until it is accepted, with a warning;
 *   - timeout (3) or communication error (2): TCP closes the connection
 *     (a late answer must not be taken for the next request's) and the rest
 *     of the cycle is marked 2 without waiting; RTU keeps the line and backs
 *     off that unit only.
 * A device that is down is reconnected with capped exponential backoff and
 * jitter; while it is down each cycle stores its values as 2 (NULL), so the
 * gap is visible. Going down and coming back are logged once each. */
#ifndef ALDREC_DEVICE_H
#define ALDREC_DEVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hist.h"
#include "acq/devconn.h"
#include "acq/plan.h"
#include "acq/pmap.h"
#include "acq/sample.h"

typedef struct device device_t;

/* How to reach the device (for RTU the line settings shared by its units)
 * and how to retry when it cannot be reached. */
typedef struct device_conn {
    devconn_t link;              /* devconn_resolve(), merged over components */
    int reconnect_min_ms, reconnect_max_ms;
} device_conn_t;

/* Failed requests by kind (metrics: errors per device and kind). */
enum device_err_kind {
    DEVICE_ERR_TIMEOUT,          /* no answer within the response timeout */
    DEVICE_ERR_COMM,             /* refused/reset connection, bad frame or CRC */
    DEVICE_ERR_EXCEPTION,        /* the device answered a Modbus exception */
    DEVICE_ERR_KINDS
};

typedef struct device_stats {
    char label[320];
    bool up;                     /* connected and last request answered */
    size_t units, groups, params, params_dropped;
    size_t requests_per_cycle;   /* sum over groups of their current plan sizes */
    size_t min_requests_per_cycle;   /* the same with no value isolated */
    uint64_t cycles, overruns;
    uint64_t requests, request_errors;
    uint64_t errors[DEVICE_ERR_KINDS];         /* request_errors by kind */
    uint64_t samples_polled, samples_stored;   /* before and after deadbands */
    uint64_t connects;           /* successful (re)connects */
    hist_t cycle_us;             /* duration of a group cycle */
    hist_t late_us;              /* cycle start after its deadline (jitter) */
} device_stats_t;

/* A request the device's thread serves between two poll requests (never
 * interleaved with one on the wire), in arrival order: aldrecd's SET and
 * GET --fresh go through it, so the daemon stays the one master of the
 * device. A plain value owned by the caller, which must keep it until
 * done is true.
 *   DEVICE_OP_READ:  reads the value into back[] (q_back).
 *   DEVICE_OP_WRITE: reads it into before[] (q_before), writes words[]
 *                    (q_write: FC5, FC6 or FC16), reads it back into
 *                    back[] (q_back); a failed write is not read back.
 * A coil reads as 0 or 1 in [0]. Qualities are sample.h's (Q_GOOD, or of
 * the failure, with err); a device that is down or reconnecting, or an RTU
 * unit that is backed off, fails at once without a request (Q_COMM_ERROR
 * and err naming the device). When the thread has filled the results it
 * sets done and writes 1 to notify_fd (an eventfd, or -1).
 *
 * A group (device_submit_group) is served back to back, with no poll
 * request between its ops: a recipe step's set points of one device land
 * between the same two poll requests. A WRITE of a group that fails
 * (write refused, read-back failed or different from words[]) ends the
 * group: the ops after it are not sent (skipped, err says why).
 *
 * At most DEVICE_OPS_MAX ops wait in a device's queue; beyond that a
 * submit is refused (EAGAIN), nothing queued. */
#define DEVICE_OPS_MAX 64
enum device_op_kind { DEVICE_OP_READ, DEVICE_OP_WRITE };

typedef struct device_op {
    enum device_op_kind kind;
    int32_t param_id;            /* a good read-back is its latest value too */
    int unit_id;
    regtype_t table;
    uint16_t address;
    uint16_t nwords;             /* registers of the value; 1 for a bit */
    uint16_t words[4];           /* WRITE: what to write */
    int notify_fd;
    bool chained;                /* set by device_submit_group: the next op is of my group */
    /* results: */
    bool skipped;                /* not sent: an earlier write of its group failed */
    int16_t q_before, q_write, q_back;
    uint16_t before[4], back[4];
    int64_t wait_us;             /* from device_submit to the first request */
    char err[400];
    atomic_bool done;
    struct device_op *next;      /* the device's queue */
} device_op_t;

/* Queues op (done cleared here) for d's thread and wakes it. Thread-safe.
 * Returns 0, or -1 with errno ESHUTDOWN when d is stopping or has exited,
 * or EAGAIN when DEVICE_OPS_MAX ops wait already (op is not queued;
 * nothing was sent). */
int device_submit(device_t *d, device_op_t *op);

/* Queues ops[0..n) as one group (above), in that order, and wakes the
 * thread once. Thread-safe. Returns 0, or -1 with errno as device_submit
 * (EAGAIN when the group does not fit, EINVAL for n = 0); then none is
 * queued. */
int device_submit_group(device_t *d, device_op_t *const ops[], size_t n);

/* The latest polled value of parameter id (the last cycle that read it,
 * whatever its deadband kept): 0 with *out, or -1 with errno ENOENT when d
 * does not poll id or has not polled it yet. Thread-safe. */
int device_latest(device_t *d, int32_t id, sample_t *out);

/* Receives the stored samples of one completed group cycle, from the
 * device's thread. s is borrowed for the call. */
typedef void (*device_sink_fn)(void *arg, device_t *d, const sample_t *s, size_t n);

/* A device with no units yet; label names it in messages and status.
 * Returns NULL with errno ENOMEM. */
device_t *device_new(const device_conn_t *conn, const char *label);

/* Adds unit unit_id with its request limits (ranges are copied). Before
 * device_start only. Returns 0, or -1 with errno EEXIST (unit already
 * there) or ENOMEM. */
int device_add_unit(device_t *d, int unit_id, const plan_limits_t *lim);

/* Adds parameter pm (valid, of an added unit). Before device_start only.
 * Returns 0; 1 when the unit's limits cannot serve it (reason in why: the
 * caller skips it with a warning); -1 with errno ENOENT (no such unit) or
 * ENOMEM. */
int device_add_param(device_t *d, const param_meta_t *pm, char *why, size_t whylen);

/* Plans every group and starts the thread; samples go to fn(arg, ...).
 * Returns 0, or -1 with errno (ENOMEM, or from pthread_create/eventfd). */
int device_start(device_t *d, device_sink_fn fn, void *arg);

/* Asks the thread to stop and returns at once; the thread finishes the
 * request in flight (at most one response timeout) and exits. Idempotent. */
void device_stop(device_t *d);

/* Asks the thread to exit once its current cycle is complete and
 * delivered (a graceful shutdown: nothing already read is discarded).
 * Thread-safe, returns at once; device_free then joins. */
void device_finish(device_t *d);

/* Makes every deadband parameter store its next sample whatever its value
 * (a new run starts with a value of each). Thread-safe, returns at once. */
void device_resync(device_t *d);

/* True once device_stop was called. Thread-safe. */
bool device_stopping(const device_t *d);

/* True when the thread has exited (or never started): device_free will not
 * block. Thread-safe. */
bool device_exited(const device_t *d);

/* Stops the thread, waits for it, closes the connection, frees d. NULL is
 * fine. */
void device_free(device_t *d);

/* True when a and b poll the same thing the same way (connection, units,
 * limits, parameters and their definitions): a map update that keeps b may
 * keep a running instead. */
bool device_same(const device_t *a, const device_t *b);

/* The label given to device_new, borrowed. */
const char *device_label(const device_t *d);

/* Snapshot of the counters (taken under the device's lock). */
void device_get_stats(device_t *d, device_stats_t *out);

/* "timeout", "comm", "exception". */
const char *device_err_kind_name(enum device_err_kind k);

#endif
