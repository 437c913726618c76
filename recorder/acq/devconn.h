/* devconn.h — how a component's Modbus device is reached: the one place
 * that turns a parameter's machine_components settings and the [modbus]
 * defaults into a connection, and opens libmodbus' context from it. Used
 * by aldrecd's device threads (poller.c builds, device.c opens) and by
 * aldrec's one-off access (mbio.c, `aldrec get/set`), so both frame a line
 * and time out the same way.
 *
 * A setting the component leaves NULL (0 in param_meta_t, pmap.h) takes
 * the [modbus] default: an RTU component with no parity uses [modbus]
 * parity (E by default, the Modbus serial line specification's), never a
 * fixed 8N1.
 *
 * A connection is a TCP endpoint or an RTU line; the unit id is not part of
 * it: every request names its unit (modbus_set_slave). aldrecd holds one
 * connection per TCP endpoint and unit, and one per RTU line shared by all
 * units on it (devconn_key). */
#ifndef ALDREC_DEVCONN_H
#define ALDREC_DEVCONN_H

#include <modbus.h>
#include <stddef.h>

#include "acq/pmap.h"
#include "common/config.h"

/* The [modbus] defaults for settings a component leaves NULL. */
typedef struct devconn_defaults {
    int response_timeout_ms;
    int baud;
    char parity;                 /* 'N', 'E', 'O' */
    int data_bits, stop_bits;
} devconn_defaults_t;

/* A resolved connection: every field set. A plain value; compare it with
 * memcmp (devconn_resolve zeroes it first, padding included). */
typedef struct devconn {
    transport_t transport;
    char host[256];              /* TCP */
    int port;
    char serial_port[128];       /* RTU */
    int baud;
    char parity;                 /* 'N', 'E', 'O' */
    int data_bits, stop_bits;
    int response_timeout_ms;     /* per request, and between bytes of an answer */
} devconn_t;

/* The [modbus] defaults of cfg. */
devconn_defaults_t devconn_defaults_from_config(const aldrec_config_t *cfg);

/* The connection pm's component asks for: its endpoint or line, with
 * every setting it leaves NULL taken from def. */
void devconn_resolve(devconn_t *out, const param_meta_t *pm, const devconn_defaults_t *def);

/* pm's component's response timeout, or def's when it has none. */
int devconn_timeout_ms(const param_meta_t *pm, const devconn_defaults_t *def);

/* Which connection pm is polled through, as text ("10.0.0.7:502 unit 1",
 * or the RTU line "/dev/ttyUSB0"): parameters with the same key share one. */
void devconn_key(const param_meta_t *pm, char *buf, size_t len);

/* c for people: "10.0.0.7:502 unit 1" (TCP, with the unit given) or
 * "/dev/ttyUSB0 (rtu 19200 8E1)". */
void devconn_label(const devconn_t *c, int unit_id, char *buf, size_t len);

/* Makes libmodbus' context for c, sets its response and byte timeouts and
 * connects (TCP) or opens and frames the line (RTU). Returns the context
 * (devconn_close it), or NULL with errno (libmodbus' codes: modbus_strerror)
 * and err ("cannot connect to HOST:PORT: ...", "cannot open LINE: ..."). */
modbus_t *devconn_open(const devconn_t *c, char *err, size_t errlen);

/* Closes and frees ctx; NULL is fine. */
void devconn_close(modbus_t *ctx);

#endif
