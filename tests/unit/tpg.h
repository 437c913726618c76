/* tpg.h — what the unit tests that talk to PostgreSQL share. */
#ifndef ALDREC_TPG_H
#define ALDREC_TPG_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

/* The single value sql returns on c, as an integer; -1 (and a "# query
 * failed" line) when it does not return exactly one non-NULL value. */
static inline long long tpg_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = atoll(PQgetvalue(r, 0, 0));
    else
        printf("# query failed: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}

#endif
