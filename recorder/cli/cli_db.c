/* cli_db.c — the aldrec subcommands' PostgreSQL helpers; see cli.h. Apart
 * from cli.c because they need libpq, which the front program (aldrec.c)
 * does not load. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

PGconn *cli_db_connect(const aldrec_config_t *cfg, const char *conninfo)
{
    char tmo[16];
    snprintf(tmo, sizeof tmo, "%d", cfg->connect_timeout_s);
    const char *keys[] = { "connect_timeout", "application_name", "dbname", NULL };
    const char *vals[] = { tmo, "aldrec", conninfo, NULL };
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *m = PQerrorMessage(conn);
        fprintf(stderr, "aldrec: cannot connect to PostgreSQL: %.*s\n", (int)strcspn(m, "\n"), m);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

void cli_print_db_error(const char *what, PGconn *conn, const PGresult *res)
{
    const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    if (!m || !*m)
        m = PQerrorMessage(conn);
    fprintf(stderr, "aldrec: %s: %.*s\n", what, (int)strcspn(m, "\n"), m);
}
