/* pmapdb.c — the parameter map from PostgreSQL in one statement; see
 * pmapdb.h. */
#include "cache/pmapdb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

/* LEFT JOIN so that an existing machine with nothing active still answers
 * with one row (all parameter columns NULL): "unknown machine" and "no
 * parameters" stay distinguishable in the same single round trip. The
 * metadata version comes from the same statement, hence the same snapshot
 * as the parameters. */
static const char load_sql[] =
    "SELECT m.id, cp.id, mc.name, cp.name, cp.units, mc.host, mc.port, mc.unit_id,"
    "       cp.register_type, cp.address, cp.data_type, cp.word_order,"
    "       cp.scale, cp.value_offset, cp.min_value, cp.max_value, cp.set_value,"
    "       cp.is_writable, cp.poll_interval_ms,"
    "       mc.transport, mc.serial_port, mc.baud, mc.parity, mc.data_bits, mc.stop_bits,"
    "       mc.max_registers, mc.max_bits, mc.max_gap, mc.response_timeout_ms, mc.no_bridge,"
    "       cp.deadband, cp.max_interval_ms, coalesce(mm.version, 0), cp.stale_after_ms,"
    "       cp.idle_interval_ms"
    "  FROM machines m"
    "  LEFT JOIN machine_metadata mm ON mm.machine_id = m.id"
    "  LEFT JOIN (machine_components mc"
    "             JOIN component_parameters cp"
    "               ON cp.component_id = mc.id AND cp.is_active)"
    "    ON mc.machine_id = m.id AND mc.is_activated"
    " WHERE m.name = $1"
    " ORDER BY mc.name, cp.name";

const char *pmapdb_sql(void)
{
    return load_sql;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

pmap_t *pmapdb_from_result(const PGresult *res, const char *machine, int64_t loaded_at_us,
                           char *err, size_t errlen)
{
    int rows = PQntuples(res);
    if (rows == 0) {
        snprintf(err, errlen, "unknown machine \"%s\" (no row in machines)", machine);
        errno = ENOENT;
        return NULL;
    }
    if (rows > PMAP_MAX_PARAMS) {
        snprintf(err, errlen, "machine \"%s\" has %d parameters, more than %d", machine,
                 rows, PMAP_MAX_PARAMS);
        errno = EINVAL;
        return NULL;
    }
    param_meta_t *params = calloc((size_t)rows, sizeof *params);
    if (!params) {
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    size_t n = 0;
    for (int r = 0; r < rows; r++) {
        if (PQgetisnull(res, r, 1))
            continue;   /* the machine row of an empty machine */
        param_meta_t *p = &params[n++];
        p->id = atoi(PQgetvalue(res, r, 1));
        copy_str(p->component, sizeof p->component, PQgetvalue(res, r, 2));
        copy_str(p->name, sizeof p->name, PQgetvalue(res, r, 3));
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
        p->stale_after_ms = atoi(PQgetvalue(res, r, 33));
        p->idle_interval_ms = PQgetisnull(res, r, 34) ? -1 : atoi(PQgetvalue(res, r, 34));
        pmap_validate(p, PQgetvalue(res, r, 10), PQgetvalue(res, r, 11), PQgetvalue(res, r, 8));
    }
    pmap_t *m = pmap_new(atoi(PQgetvalue(res, 0, 0)), machine,
                         strtoll(PQgetvalue(res, 0, 32), NULL, 10), loaded_at_us, params, n);
    int e = errno;
    free(params);
    if (!m) {
        snprintf(err, errlen, "machine \"%s\": %s", machine,
                 e == ENOMEM ? "out of memory" : "duplicate parameter id or name");
        errno = e;
        return NULL;
    }
    return m;
}

pmap_t *pmapdb_load(PGconn *conn, const char *machine, char *err, size_t errlen)
{
    const char *params[1] = { machine };
    int64_t now_us = clock_real_us();

    PGresult *res = PQexecParams(conn, load_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = PQerrorMessage(conn);
        snprintf(err, errlen, "loading parameters of machine \"%s\": %.*s", machine,
                 (int)strcspn(msg, "\n"), msg);
        PQclear(res);
        errno = EIO;
        return NULL;
    }
    pmap_t *m = pmapdb_from_result(res, machine, now_us, err, errlen);
    PQclear(res);
    return m;
}
