/* nplus1.h — the reference the bulk refresh is measured against: the old
 * recorder's pattern, one query for the machine's components and then one
 * query per component. Each per-component query is the cache's own load
 * query narrowed to one component (same columns, same parsing), so the
 * comparison measures round trips, not different work. Shared by
 * tests/bench/bench_cache.c and tests/unit/test_pcache.c. */
#ifndef ALDREC_NPLUS1_H
#define ALDREC_NPLUS1_H

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "acq/pmap.h"
#include "cache/pmapdb.h"

/* Loads machine's parameters with 1 + K queries. Returns the number of
 * queries issued and the parameter count in *nparams, or -1. */
static inline long nplus1_load(PGconn *conn, const char *machine, size_t *nparams)
{
    const char *where = " WHERE m.name = $1";
    const char *sql = pmapdb_sql();
    const char *at = strstr(sql, where);
    char one[4096];
    if (!at || strlen(sql) + 32 >= sizeof one)
        return -1;
    /* "... WHERE m.name = $1 AND mc.id = $2::int ..." */
    size_t head = (size_t)(at - sql) + strlen(where);
    memcpy(one, sql, head);
    strcpy(one + head, " AND mc.id = $2::int");
    strcat(one, at + strlen(where));

    const char *p1[1] = { machine };
    PGresult *res = PQexecParams(conn,
        "SELECT mc.id FROM machine_components mc JOIN machines m ON m.id = mc.machine_id"
        " WHERE m.name = $1 AND mc.is_activated ORDER BY mc.name", 1, NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    long queries = 1;
    *nparams = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *p2[2] = { machine, PQgetvalue(res, i, 0) };
        PGresult *r = PQexecParams(conn, one, 2, NULL, p2, NULL, NULL, 0);
        queries++;
        char err[256];
        pmap_t *part = PQresultStatus(r) == PGRES_TUPLES_OK
                           ? pmapdb_from_result(r, machine, 0, err, sizeof err) : NULL;
        PQclear(r);
        if (!part) {
            PQclear(res);
            return -1;
        }
        *nparams += pmap_count(part);
        pmap_free(part);
    }
    PQclear(res);
    return queries;
}

#endif
