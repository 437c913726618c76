/* mbio.c — single-parameter Modbus read/write; see mbio.h. */
#include "acq/mbio.h"

#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>

#include "acq/quality.h"
#include "acq/sample.h"

struct mbio {
    modbus_t *ctx;
};

mbio_t *mbio_open(const param_meta_t *p, int timeout_ms, char *err, size_t errlen)
{
    mbio_t *m = calloc(1, sizeof *m);
    char port[16];

    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (p->transport == TR_RTU) {
        m->ctx = modbus_new_rtu(p->serial_port, p->baud ? p->baud : 19200,
                                p->parity ? p->parity : 'N', p->data_bits ? p->data_bits : 8,
                                p->stop_bits ? p->stop_bits : 1);
    } else {
        snprintf(port, sizeof port, "%d", p->port);
        m->ctx = modbus_new_tcp_pi(p->host, port);
    }
    if (!m->ctx) {
        snprintf(err, errlen, "%s: %s", p->transport == TR_RTU ? p->serial_port : p->host,
                 modbus_strerror(errno));
        goto fail;
    }
    int ms = p->dev_response_timeout_ms > 0 ? p->dev_response_timeout_ms : timeout_ms;
    modbus_set_response_timeout(m->ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
    modbus_set_byte_timeout(m->ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
    modbus_set_slave(m->ctx, p->unit_id);
    if (modbus_connect(m->ctx) < 0) {
        if (p->transport == TR_RTU)
            snprintf(err, errlen, "cannot open %s: %s", p->serial_port, modbus_strerror(errno));
        else
            snprintf(err, errlen, "cannot connect to %s:%d: %s", p->host, p->port,
                     modbus_strerror(errno));
        goto fail;
    }
    return m;
fail:
    mbio_close(m);
    return NULL;
}

void mbio_close(mbio_t *m)
{
    if (!m)
        return;
    if (m->ctx) {
        modbus_close(m->ctx);
        modbus_free(m->ctx);
    }
    free(m);
}

static int16_t failed(const param_meta_t *p, const char *what, char *err, size_t errlen)
{
    int e = errno;
    snprintf(err, errlen, "%s %s %s %d: %s", what, p->qualified,
             regcodec_regtype_name(p->table), p->address, modbus_strerror(e));
    return quality_of_errno(e);
}

int16_t mbio_read(mbio_t *m, const param_meta_t *p, uint16_t words[4], char *err,
                  size_t errlen)
{
    int n = regcodec_words(p->type);
    uint8_t bit = 0;
    int rc = -1;

    switch (p->table) {
    case REG_COIL:
        rc = modbus_read_bits(m->ctx, p->address, 1, &bit);
        break;
    case REG_DISCRETE:
        rc = modbus_read_input_bits(m->ctx, p->address, 1, &bit);
        break;
    case REG_HOLDING:
        rc = modbus_read_registers(m->ctx, p->address, n, words);
        break;
    case REG_INPUT:
        rc = modbus_read_input_registers(m->ctx, p->address, n, words);
        break;
    }
    if (rc < 0)
        return failed(p, "reading", err, errlen);
    if (p->table == REG_COIL || p->table == REG_DISCRETE)
        words[0] = bit ? 1 : 0;
    return Q_GOOD;
}

int16_t mbio_write(mbio_t *m, const param_meta_t *p, const uint16_t words[4], char *err,
                   size_t errlen)
{
    int n = regcodec_words(p->type);
    int rc = -1;

    switch (p->table) {
    case REG_COIL:
        rc = modbus_write_bit(m->ctx, p->address, words[0] ? 1 : 0);
        break;
    case REG_HOLDING:
        rc = n == 1 ? modbus_write_register(m->ctx, p->address, words[0])
                    : modbus_write_registers(m->ctx, p->address, n, words);
        break;
    case REG_DISCRETE:
    case REG_INPUT:
        errno = EMBXILFUN;   /* read-only tables: never sent */
        break;
    }
    if (rc < 0)
        return failed(p, "writing", err, errlen);
    return Q_GOOD;
}

double mbio_value(const param_meta_t *p, const uint16_t words[4])
{
    return regcodec_decode(words, p->type, p->order) * p->scale + p->offset;
}
