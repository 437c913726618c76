/* mbio.c — single-parameter Modbus read/write; see mbio.h. */
#include "acq/mbio.h"

#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>

#include "acq/devconn.h"
#include "acq/quality.h"
#include "acq/sample.h"

struct mbio {
    modbus_t *ctx;
};

mbio_t *mbio_open(const param_meta_t *p, const devconn_defaults_t *def, char *err,
                  size_t errlen)
{
    devconn_t c;
    mbio_t *m = calloc(1, sizeof *m);

    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    devconn_resolve(&c, p, def);
    m->ctx = devconn_open(&c, err, errlen);
    if (!m->ctx) {
        mbio_close(m);
        return NULL;
    }
    modbus_set_slave(m->ctx, p->unit_id);
    return m;
}

void mbio_close(mbio_t *m)
{
    if (!m)
        return;
    devconn_close(m->ctx);
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
