/* pmap.c — load the machine's parameter map in one query and validate
 * every row; see pmap.h. */
#include "pmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pmap {
    int32_t machine_id;
    size_t n;
    param_meta_t *params;
};

/* LEFT JOIN so that an existing machine with nothing active still answers
 * with one row (all parameter columns NULL): "unknown machine" and "no
 * parameters" stay distinguishable in the same single round trip. */
static const char load_sql[] =
    "SELECT m.id, cp.id, mc.name, cp.name, cp.units, mc.host, mc.port, mc.unit_id,"
    "       cp.register_type, cp.address, cp.data_type, cp.word_order,"
    "       cp.scale, cp.value_offset, cp.min_value, cp.max_value, cp.set_value,"
    "       cp.is_writable, cp.poll_interval_ms,"
    "       mc.transport, mc.serial_port, mc.baud, mc.parity, mc.data_bits, mc.stop_bits,"
    "       mc.max_registers, mc.max_bits, mc.max_gap, mc.response_timeout_ms, mc.no_bridge,"
    "       cp.deadband, cp.max_interval_ms"
    "  FROM machines m"
    "  LEFT JOIN (machine_components mc"
    "             JOIN component_parameters cp"
    "               ON cp.component_id = mc.id AND cp.is_active)"
    "    ON mc.machine_id = m.id AND mc.is_activated"
    " WHERE m.name = $1"
    " ORDER BY mc.name, cp.name";

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void validate(param_meta_t *p, const char *type, const char *order,
                     const char *table)
{
    p->valid = false;
    if (regcodec_parse_type(type, &p->type) < 0) {
        snprintf(p->why, sizeof p->why, "unknown data type \"%s\"", type);
        return;
    }
    if (regcodec_parse_order(order, &p->order) < 0) {
        snprintf(p->why, sizeof p->why, "unknown word order \"%s\"", order);
        return;
    }
    if (regcodec_parse_regtype(table, &p->table) < 0) {
        snprintf(p->why, sizeof p->why, "unknown register type \"%s\"", table);
        return;
    }
    if (!regcodec_fits(p->table, p->type)) {
        snprintf(p->why, sizeof p->why, "data type %s cannot live in %s registers",
                 type, table);
        return;
    }
    if (p->address < 0 || p->address + regcodec_words(p->type) > 65536) {
        snprintf(p->why, sizeof p->why, "address %d + %d registers runs past 65535",
                 p->address, regcodec_words(p->type));
        return;
    }
    if (p->scale == 0 || !isfinite(p->scale) || !isfinite(p->offset)) {
        snprintf(p->why, sizeof p->why, "scale must be finite and non-zero");
        return;
    }
    if (p->transport == TR_TCP && (p->port < 1 || p->port > 65535 || p->host[0] == '\0')) {
        snprintf(p->why, sizeof p->why, "component endpoint \"%.100s:%d\" is not usable",
                 p->host, p->port);
        return;
    }
    if (p->transport == TR_RTU && p->serial_port[0] == '\0') {
        snprintf(p->why, sizeof p->why, "RTU component without a serial_port");
        return;
    }
    p->valid = true;
}

pmap_t *pmap_load(PGconn *conn, const char *machine, char *err, size_t errlen)
{
    const char *params[1] = { machine };
    PGresult *res = NULL;
    pmap_t *m = NULL;

    res = PQexecParams(conn, load_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading parameters of machine \"%s\": %s", machine,
                 PQerrorMessage(conn));
        goto fail;
    }
    int rows = PQntuples(res);
    if (rows == 0) {
        snprintf(err, errlen, "unknown machine \"%s\" (no row in machines)", machine);
        goto fail;
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->params = calloc((size_t)rows, sizeof *m->params))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    m->machine_id = atoi(PQgetvalue(res, 0, 0));
    for (int r = 0; r < rows; r++) {
        if (PQgetisnull(res, r, 1))
            continue;   /* the machine row of an empty machine */
        param_meta_t *p = &m->params[m->n++];
        p->id = atoi(PQgetvalue(res, r, 1));
        copy_str(p->component, sizeof p->component, PQgetvalue(res, r, 2));
        copy_str(p->name, sizeof p->name, PQgetvalue(res, r, 3));
        snprintf(p->qualified, sizeof p->qualified, "%s.%s", p->component, p->name);
        copy_str(p->units, sizeof p->units, PQgetvalue(res, r, 4));
        copy_str(p->host, sizeof p->host, PQgetvalue(res, r, 5));
        p->port = atoi(PQgetvalue(res, r, 6));
        p->unit_id = atoi(PQgetvalue(res, r, 7));
        p->address = atoi(PQgetvalue(res, r, 9));
        p->scale = strtod(PQgetvalue(res, r, 12), NULL);
        p->offset = strtod(PQgetvalue(res, r, 13), NULL);
        if ((p->has_min = !PQgetisnull(res, r, 14)))
            p->min = strtod(PQgetvalue(res, r, 14), NULL);
        if ((p->has_max = !PQgetisnull(res, r, 15)))
            p->max = strtod(PQgetvalue(res, r, 15), NULL);
        if ((p->has_set = !PQgetisnull(res, r, 16)))
            p->set_value = strtod(PQgetvalue(res, r, 16), NULL);
        p->writable = PQgetvalue(res, r, 17)[0] == 't';
        p->poll_ms = atoi(PQgetvalue(res, r, 18));
        p->transport = strcmp(PQgetvalue(res, r, 19), "rtu") == 0 ? TR_RTU : TR_TCP;
        copy_str(p->serial_port, sizeof p->serial_port, PQgetvalue(res, r, 20));
        p->baud = atoi(PQgetvalue(res, r, 21));
        p->parity = PQgetvalue(res, r, 22)[0];
        p->data_bits = atoi(PQgetvalue(res, r, 23));
        p->stop_bits = atoi(PQgetvalue(res, r, 24));
        p->dev_max_registers = atoi(PQgetvalue(res, r, 25));
        p->dev_max_bits = atoi(PQgetvalue(res, r, 26));
        p->dev_max_gap = PQgetisnull(res, r, 27) ? -1 : atoi(PQgetvalue(res, r, 27));
        p->dev_response_timeout_ms = atoi(PQgetvalue(res, r, 28));
        copy_str(p->no_bridge, sizeof p->no_bridge, PQgetvalue(res, r, 29));
        if ((p->has_deadband = !PQgetisnull(res, r, 30)))
            p->deadband = strtod(PQgetvalue(res, r, 30), NULL);
        p->max_interval_ms = atoi(PQgetvalue(res, r, 31));
        validate(p, PQgetvalue(res, r, 10), PQgetvalue(res, r, 11), PQgetvalue(res, r, 8));
    }
    PQclear(res);
    return m;
fail:
    PQclear(res);
    pmap_free(m);
    return NULL;
}

void pmap_free(pmap_t *m)
{
    if (!m)
        return;
    free(m->params);
    free(m);
}

int32_t pmap_machine_id(const pmap_t *m)
{
    return m->machine_id;
}

size_t pmap_count(const pmap_t *m)
{
    return m->n;
}

const param_meta_t *pmap_at(const pmap_t *m, size_t i)
{
    return i < m->n ? &m->params[i] : NULL;
}

const param_meta_t *pmap_find(const pmap_t *m, const char *qualified)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->params[i].qualified, qualified) == 0)
            return &m->params[i];
    return NULL;
}
