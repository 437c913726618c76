/* cmd_process.c — aldrec process start|stop: open a process row in
 * PostgreSQL and have aldrecd record it; stop recording and close the row
 * once everything is stored. */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/ctl.h"

int cmd_process_start(const aldrec_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "recipe", required_argument, NULL, 'r' },
        { "lot", required_argument, NULL, 'l' },
        { NULL, 0, NULL, 0 },
    };
    const char *recipe = NULL, *lot = NULL;
    char reply[512], err[512];
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'r')
            recipe = optarg;
        else if (opt == 'l')
            lot = optarg;
        else
            return cli_usage_error("process start: bad option");
    }
    if (optind != argc)
        return cli_usage_error("process start: unexpected argument \"%s\"", argv[optind]);
    if (!recipe || !*recipe)
        return cli_usage_error("process start: --recipe NAME is required");

    /* Is the daemon there and idle? Ask before creating the process row, so
     * that a missing daemon does not leave a "running" process behind. */
    int rc = ctl_request(cfg->socket_path, "STATUS", reply, sizeof reply, CLI_CTL_TIMEOUT_MS,
                         err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 1;
    }
    char *p = strstr(reply, "process:");
    if (p && strncmp(p + strspn(p + 8, " ") + 8, "none", 4) != 0) {
        long long cur = strtoll(p + 8, NULL, 10);
        fprintf(stderr, "aldrec: process %lld is being recorded; run \"aldrec process stop\" first\n",
                cur);
        return 1;
    }

    PGconn *conn = cli_db_connect(cfg, cfg->conninfo);
    if (!conn)
        return 1;
    /* rollup: the aldrecd of this package stores every batch of points
     * with its rollup rows, so the run's rollup is complete (0013). */
    const char *params[4] = { cfg->machine, recipe, lot, cfg->recorder_id };
    PGresult *res = PQexecParams(conn,
        "INSERT INTO processes (machine_id, recipe, lot, recorder_id, rollup)"
        " SELECT id, $2, $3, $4, true FROM machines WHERE name = $1 RETURNING id",
        4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cli_print_db_error("creating the process", conn, res);
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    if (PQntuples(res) != 1) {
        fprintf(stderr, "aldrec: unknown machine \"%s\" (config [recorder] machine)\n", cfg->machine);
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    char id[32];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    char line[64];
    snprintf(line, sizeof line, "START %s", id);
    rc = ctl_request(cfg->socket_path, line, reply, sizeof reply, CLI_CTL_TIMEOUT_MS, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "aldrec: %s\n", rc < 0 ? err : reply + 4);
        const char *ap[1] = { id };
        PQclear(PQexecParams(conn, "UPDATE processes SET status = 'aborted', ended_at = now()"
                                   " WHERE id = $1", 1, NULL, ap, NULL, NULL, 0));
        PQfinish(conn);
        return 1;
    }
    PQfinish(conn);
    printf("%s\n", id);
    return 0;
}

int cmd_process_stop(const aldrec_config_t *cfg, int argc, char **argv)
{
    char reply[1024];
    if (argc > 1)
        return cli_usage_error("process stop: unexpected argument \"%s\"", argv[1]);
    if (cli_ctl(cfg, "STOP", reply, sizeof reply, CLI_STOP_TIMEOUT_MS, NULL) != 0)
        return 1;
    long long id = 0;
    if (sscanf(reply, "OK stopped process %lld", &id) != 1 || id <= 0) {
        fprintf(stderr, "aldrec: unexpected answer from aldrecd: %s", reply);
        return 1;
    }
    /* What aldrecd says about the rows (all stored, or how many are still
     * spooled) is printed whatever happens to the process row below. */
    fputs(reply + 3, stdout);
    fflush(stdout);
    PGconn *conn = cli_db_connect(cfg, cfg->conninfo);
    if (!conn) {
        fprintf(stderr, "aldrec: recording stopped, but process %lld is still marked running\n", id);
        return 1;
    }
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    const char *params[1] = { ids };
    PGresult *res = PQexecParams(conn,
        "UPDATE processes SET status = 'completed', ended_at = now()"
        " WHERE id = $1 AND status = 'running'", 1, NULL, params, NULL, NULL, 0);
    int status = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cli_print_db_error("closing the process", conn, res);
        status = 1;
    }
    PQclear(res);
    PQfinish(conn);
    return status;
}

