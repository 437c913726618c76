/* cmd_maintain.c — aldrec db maintain: keep process_data_points' time
 * partitions ahead of the clock, move rows the DEFAULT partition holds into
 * partitions of their own period, and drop those past the retention
 * ([database] partition_interval, partitions_ahead, retention_days). The
 * work is SQL (aldrec_maintain() and aldrec_maintain_period(),
 * 0008_default_backlog.sql), so a site can also schedule it inside
 * PostgreSQL; this command runs it with the admin role and says what it
 * did. The DEFAULT partition's backlog is moved first, one period per
 * transaction (each statement here commits on its own), so that a long
 * backlog is not one huge transaction and a period that fails does not undo
 * the others; then aldrec_maintain() does the periods ahead, whatever
 * arrived meanwhile, and the retention. Last, aldrec_idle_maintain()
 * (0010_idle.sql) does the same for the idle history (machine_history, by
 * UTC day) with its own retention, [database] idle_retention_days: it
 * never touches a run's rows. The rollup rows of dropped partitions go
 * with them (0013_rollup.sql). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "query/qdb.h"

#define ACTION_COLUMNS \
    "action, partition, coalesce(lower_bound::text, 'MINVALUE'), coalesce(upper_bound::text, 'MAXVALUE'), rows"

/* Prints the rows of an aldrec_maintain*() result, counting what it did;
 * days is the retention that dropped what was dropped. */
static void print_actions(int days, PGresult *r, int *created, int *dropped)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *action = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1);
        const char *lo = PQgetvalue(r, i, 2), *hi = PQgetvalue(r, i, 3), *rows = PQgetvalue(r, i, 4);
        if (strcmp(action, "created") == 0) {
            (*created)++;
            printf("created %s [%s, %s)", name, lo, hi);
            if (atoll(rows) > 0)
                printf(", moved %s rows into it from the default partition", rows);
            putchar('\n');
        } else if (strcmp(action, "dropped") == 0) {
            (*dropped)++;
            printf("dropped %s [%s, %s): %s rows older than %d days\n", name, lo, hi, rows,
                   days);
        } else {
            printf("warning: the default partition holds %s rows (%s .. %s): no partition "
                   "covers their time\n", rows, lo, hi);
        }
    }
}

int cmd_db_maintain(const aldrec_config_t *cfg, int argc, char **argv)
{
    char ahead[16], retention[32], err[512];
    int created = 0, dropped = 0, status = 0;
    const char *interval = config_partition_name(cfg->partition_interval);

    if (argc > 1)
        return cli_usage_error("db maintain: unexpected argument \"%s\"", argv[1]);
    PGconn *conn = cli_db_connect(cfg, cfg->admin_conninfo);
    if (!conn)
        return 1;

    const char *pp[1] = { interval };
    PGresult *periods = qdb_query(conn, "SELECT p::text FROM aldrec_default_periods($1) p",
                                  1, pp, err, sizeof err, NULL);
    if (!periods) {
        fprintf(stderr, "aldrec: db maintain: %s\n", err);
        PQfinish(conn);
        return 1;
    }
    for (int i = 0; i < PQntuples(periods); i++) {
        const char *p[2] = { interval, PQgetvalue(periods, i, 0) };
        PGresult *r = qdb_query(conn,
            "SELECT " ACTION_COLUMNS " FROM aldrec_maintain_period($1, $2::timestamptz)",
            2, p, err, sizeof err, NULL);
        if (!r) {
            fprintf(stderr, "aldrec: db maintain: the default partition's rows of the %s from %s "
                    "stay there: %s\n", p[0], p[1], err);
            status = 1;
            continue;
        }
        print_actions(cfg->retention_days, r, &created, &dropped);
        PQclear(r);
    }
    PQclear(periods);

    snprintf(ahead, sizeof ahead, "%d", cfg->partitions_ahead);
    snprintf(retention, sizeof retention, "%d days", cfg->retention_days);
    const char *p[3] = { interval, ahead, cfg->retention_days ? retention : NULL };
    PGresult *r = qdb_query(conn,
        "SELECT " ACTION_COLUMNS " FROM aldrec_maintain($1, $2::int, $3::interval)",
        3, p, err, sizeof err, NULL);
    if (!r) {
        fprintf(stderr, "aldrec: db maintain: %s\n", err);
        PQfinish(conn);
        return 1;
    }
    print_actions(cfg->retention_days, r, &created, &dropped);
    PQclear(r);
    if (cfg->retention_days && dropped > 0) {
        /* The rollup (0013_rollup.sql) goes with the points it sums up. */
        r = qdb_query(conn, "DELETE FROM process_data_rollup WHERE bucket + interval '10 s' <="
                      " (SELECT min(lower_bound) FROM data_partitions WHERE lower_bound IS NOT NULL)",
                      0, NULL, err, sizeof err, NULL);
        if (r) {
            printf("rollup: removed %s rows of the dropped partitions' time\n", PQcmdTuples(r));
            PQclear(r);
        } else {
            fprintf(stderr, "aldrec: db maintain: rollup: %s\n", err);
            status = 1;
        }
    }
    r = qdb_query(conn, "SELECT count(*), coalesce(max(upper_bound)::text, '-') FROM data_partitions",
                  0, NULL, err, sizeof err, NULL);
    if (r) {
        printf("%d created, %d dropped; %s partitions (by %s) cover up to %s; retention: ", created,
               dropped, PQgetvalue(r, 0, 0), interval, PQgetvalue(r, 0, 1));
        if (cfg->retention_days)
            printf("%d days\n", cfg->retention_days);
        else
            printf("keep everything\n");
        PQclear(r);
    } else {
        fprintf(stderr, "aldrec: db maintain: %s\n", err);
        status = 1;
    }

    /* the idle history: its day partitions and its own retention */
    int icreated = 0, idropped = 0;
    snprintf(retention, sizeof retention, "%d days", cfg->idle_retention_days);
    const char *ip[2] = { ahead, cfg->idle_retention_days ? retention : NULL };
    r = qdb_query(conn, "SELECT " ACTION_COLUMNS " FROM aldrec_idle_maintain($1::int, $2::interval)",
                  2, ip, err, sizeof err, NULL);
    if (!r) {
        fprintf(stderr, "aldrec: db maintain: idle history: %s\n", err);
        PQfinish(conn);
        return 1;
    }
    print_actions(cfg->idle_retention_days, r, &icreated, &idropped);
    PQclear(r);
    printf("idle history: %d created, %d dropped; retention: ", icreated, idropped);
    if (cfg->idle_retention_days)
        printf("%d days\n", cfg->idle_retention_days);
    else
        printf("keep everything\n");
    PQfinish(conn);
    return status;
}
