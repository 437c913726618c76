/* devconn.c — a device's connection settings and its libmodbus context;
 * see devconn.h. */
#include "acq/devconn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

devconn_defaults_t devconn_defaults_from_config(const aldrec_config_t *cfg)
{
    return (devconn_defaults_t){
        .response_timeout_ms = cfg->response_timeout_ms,
        .baud = cfg->baud,
        .parity = (char)cfg->parity,
        .data_bits = cfg->data_bits,
        .stop_bits = cfg->stop_bits,
    };
}

int devconn_timeout_ms(const param_meta_t *pm, const devconn_defaults_t *def)
{
    return pm->dev_response_timeout_ms > 0 ? pm->dev_response_timeout_ms
                                           : def->response_timeout_ms;
}

void devconn_resolve(devconn_t *out, const param_meta_t *pm, const devconn_defaults_t *def)
{
    memset(out, 0, sizeof *out);
    out->transport = pm->transport;
    out->response_timeout_ms = devconn_timeout_ms(pm, def);
    if (pm->transport == TR_TCP) {
        snprintf(out->host, sizeof out->host, "%s", pm->host);
        out->port = pm->port;
    } else {
        snprintf(out->serial_port, sizeof out->serial_port, "%s", pm->serial_port);
        out->baud = pm->baud ? pm->baud : def->baud;
        out->parity = pm->parity ? pm->parity : def->parity;
        out->data_bits = pm->data_bits ? pm->data_bits : def->data_bits;
        out->stop_bits = pm->stop_bits ? pm->stop_bits : def->stop_bits;
    }
}

void devconn_key(const param_meta_t *pm, char *buf, size_t len)
{
    if (pm->transport == TR_RTU)
        snprintf(buf, len, "%s", pm->serial_port);
    else
        snprintf(buf, len, "%.255s:%d unit %d", pm->host, pm->port, pm->unit_id);
}

void devconn_label(const devconn_t *c, int unit_id, char *buf, size_t len)
{
    if (c->transport == TR_RTU)
        snprintf(buf, len, "%.127s (rtu %d %d%c%d)", c->serial_port, c->baud, c->data_bits,
                 c->parity, c->stop_bits);
    else
        snprintf(buf, len, "%.255s:%d unit %d", c->host, c->port, unit_id);
}

modbus_t *devconn_open(const devconn_t *c, char *err, size_t errlen)
{
    modbus_t *ctx;
    if (c->transport == TR_TCP) {
        char port[16];
        snprintf(port, sizeof port, "%d", c->port);
        ctx = modbus_new_tcp_pi(c->host, port);
    } else {
        ctx = modbus_new_rtu(c->serial_port, c->baud, c->parity, c->data_bits, c->stop_bits);
    }
    if (!ctx) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", c->transport == TR_RTU ? c->serial_port : c->host,
                 modbus_strerror(e));
        errno = e;
        return NULL;
    }
    int ms = c->response_timeout_ms;
    modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
    modbus_set_byte_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
    if (modbus_connect(ctx) < 0) {
        int e = errno;
        if (c->transport == TR_RTU)
            snprintf(err, errlen, "cannot open %s: %s", c->serial_port, modbus_strerror(e));
        else
            snprintf(err, errlen, "cannot connect to %s:%d: %s", c->host, c->port,
                     modbus_strerror(e));
        modbus_free(ctx);
        errno = e;
        return NULL;
    }
    return ctx;
}

void devconn_close(modbus_t *ctx)
{
    if (!ctx)
        return;
    modbus_close(ctx);
    modbus_free(ctx);
}
