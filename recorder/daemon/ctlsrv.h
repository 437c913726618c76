/* ctlsrv.h — aldrecd's side of the control socket (common/ctl.h has the
 * socket and the client side): connection slots, one request line per
 * connection, and the command table that answers it.
 *
 * A request is one line of at most 511 bytes ("VERB[ ARGS]\n", a trailing
 * "\r" is ignored); the answer is "OK[ text]\n" or "ERR text\n", some with
 * more lines after, and the connection is closed. Commands:
 *   PING                  "OK aldrecd for machine M, pid N"
 *   SESSION               the connection stays open for more requests; every
 *                         answer from then on ends with a line "."
 *   STATUS                "OK" and the STATUS lines (ops.h, service.h)
 *   METRICS               "OK" and the /metrics exposition, rendered now
 *   START ID              record process ID from now on
 *   STOP                  stop recording; answered once the spool holds no
 *                         more of the process (at most CTLSRV_STOP_WAIT_MS),
 *                         saying what happened to its rows
 *   STEP NUMBER NAME      recipe step NUMBER of the process starts now
 *   EVENT ...             a set-point event (ctlrec.h), from `aldrec set --direct`
 *   SET P=V [P=V ...][ BY TEXT]   write set points through the device
 *                         threads (device.h), read back, recorded
 *   GET [FRESH] P [P ...] latest polled values, or read now (FRESH)
 *   QUARANTINE LIST | RETRY SEQ|all | DROP SEQ|all
 * STEP and EVENT are answered "OK" once their record is durable in the
 * spool; SET once every set point was written by its device's thread
 * (between two poll requests, device.h), read back and its event is
 * durable; "ERR input: ..." means nothing was written. A connection with a
 * SET or GET FRESH in progress is not read until it is answered. Up to CTLSRV_MAX_CLIENTS connections are open at once; one more
 * is answered "ERR busy: too many control connections" and closed.
 *
 * Everything here runs on the main loop: a reply never blocks it (small
 * answers are sent without waiting, long ones get 1 s to be read). */
#ifndef ALDREC_CTLSRV_H
#define ALDREC_CTLSRV_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/pmap.h"
#include "acq/poller.h"
#include "cache/pcache.h"
#include "common/config.h"
#include "daemon/batcher.h"
#include "ops/ops.h"
#include "ops/service.h"
#include "store/forwarder.h"
#include "store/spool.h"

#define CTLSRV_MAX_CLIENTS 16
#define CTLSRV_STOP_WAIT_MS 15000
/* What ctlsrv_pollfds() may add: the listening socket, the device ops'
 * eventfd and every client. */
#define CTLSRV_MAX_FDS (2 + CTLSRV_MAX_CLIENTS)

typedef struct ctlsrv ctlsrv_t;

/* What the commands work on; every pointer is borrowed. poller and fwd
 * may be NULL (nothing is drained or woken); a test may leave out what
 * the commands it sends do not use. */
typedef struct ctlsrv_env {
    const aldrec_config_t *cfg;       /* [recorder] machine; read per request */
    batcher_t *batcher;               /* the process being recorded, STEP, EVENT */
    poller_t *poller;                 /* drained at START and STOP */
    spool_t *spool;
    forwarder_t *fwd;
    pcache_t *cache;                  /* EVENT: is PARAM_ID a parameter? */
    pmap_t *const *map;               /* the map the poller runs (*map changes) */
    ops_t *ops;                       /* STATUS and METRICS rendering */
    /* Fills s with the daemon's snapshot now (svc_snapshot_clear() after):
     * STATUS and METRICS render it. */
    void (*snapshot)(void *arg, svc_snapshot_t *s);
    void *arg;
} ctlsrv_env_t;

/* Listens on path (ctl_listen), the socket given to group unless group is
 * NULL or "". Path NULL: no socket, connections come only through
 * ctlsrv_adopt(). Nothing is answered before ctlsrv_attach(). Returns
 * NULL with err. */
ctlsrv_t *ctlsrv_new(const char *path, const char *group, char *err, size_t errlen);

/* Closes every connection (a STOP waiting is not answered) and the
 * listening socket, and removes it. NULL is fine. */
void ctlsrv_free(ctlsrv_t *s);

/* Copies env: what the commands work on from now on. */
void ctlsrv_attach(ctlsrv_t *s, const ctlsrv_env_t *env);

/* Serves fd, a connected non-blocking stream socket, in a free slot (as
 * accept does). Returns 0, or -1 when every slot is taken: fd was then
 * answered "ERR busy" and closed. */
int ctlsrv_adopt(ctlsrv_t *s, int fd);

/* Fills pfd (room for CTLSRV_MAX_FDS) with what to poll for POLLIN: the
 * listening socket and every connection still to be read. Lowers *wake_ns
 * (CLOCK_MONOTONIC) to the deadline of a STOP waiting, if sooner. Returns
 * the number of entries. */
size_t ctlsrv_pollfds(ctlsrv_t *s, struct pollfd *pfd, int64_t *wake_ns);

/* After poll(): accepts new connections and reads (and answers) the
 * connections that are readable. pfd and n as ctlsrv_pollfds() gave them. */
void ctlsrv_handle(ctlsrv_t *s, const struct pollfd *pfd, size_t n);

/* Answers the STOPs whose process the spool no longer holds, or whose
 * wait ran out at now_ns: what happened to every row of the process. */
void ctlsrv_check_waiters(ctlsrv_t *s, int64_t now_ns);

#endif
