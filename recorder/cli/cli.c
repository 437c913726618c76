/* cli.c — helpers shared by the aldrec subcommands; see cli.h. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/ctl.h"

/* "aldrec: MESSAGE" and then tail, on stderr. */
static void say(const char *tail, const char *fmt, va_list ap)
{
    fputs("aldrec: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("\nTry 'aldrec --help'.\n", fmt, ap);
    va_end(ap);
    return 2;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("\n", fmt, ap);
    va_end(ap);
    return 1;
}

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

int cli_ctl(const aldrec_config_t *cfg, const char *line, char *reply, size_t cap,
            int timeout_ms, const char *what)
{
    char err[512];
    int rc = ctl_request(cfg->socket_path, line, reply, cap, timeout_ms, err, sizeof err);
    if (rc == 0)
        return 0;
    const char *why = rc < 0 ? err : reply + 4;   /* after "ERR " */
    fprintf(stderr, "aldrec: %s%s%.*s\n", what ? what : "", what ? ": " : "",
            (int)strcspn(why, "\n"), why);
    return 1;
}
