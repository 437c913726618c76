/* cli.h — what the aldrec subcommands share: the command table's function
 * type and small helpers for talking to PostgreSQL and reporting errors.
 *
 * Each subcommand lives in a cmd_*.c file (recorder/cli/) and is
 * listed in the table in aldrec.c. A command gets its own argv, with
 * argv[0] being the last word of its name ("start" for "process start"),
 * and returns the process exit status:
 *   0 success; 1 the operation failed (daemon not running, database error);
 *   2 bad usage or bad input (the message names the culprit). */
#ifndef ALDREC_CLI_H
#define ALDREC_CLI_H

#include <libpq-fe.h>

#include "common/config.h"

typedef int (*cli_cmd_fn)(const aldrec_config_t *cfg, int argc, char **argv);

/* Timeouts of control-socket requests (ms). */
#define CLI_CTL_TIMEOUT_MS 5000
#define CLI_STOP_TIMEOUT_MS 20000

/* Prints "aldrec: " + the formatted message and a hint to run --help on
 * stderr. Returns 2, the exit status for bad usage. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "aldrec: " + the formatted message on stderr. Returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Who asked for a set point, for its event: by as given (checked by the
 * caller), or "user@host via aldrec set" in printable ASCII. */
void cli_who_asked(char *buf, size_t cap, const char *by);

/* The PostgreSQL helpers (cli_db.c) are for the commands of aldrec-full
 * only: the front program does not load libpq (aldrec.c).
 *
 * Connects with conninfo and the config's connect timeout. Returns the
 * connection, or NULL after printing why on stderr. */
PGconn *cli_db_connect(const aldrec_config_t *cfg, const char *conninfo);

/* Prints "aldrec: WHAT: first line of the server's message" on stderr. */
void cli_print_db_error(const char *what, PGconn *conn, const PGresult *res);

/* One request to aldrecd over the control socket (ctl.h), with the reply
 * in reply[0..cap). Returns 0 when aldrecd answered "OK…"; 1 after printing
 * "aldrec: [WHAT: ]why" on stderr when it answered "ERR…" (why = its text)
 * or could not be reached. */
int cli_ctl(const aldrec_config_t *cfg, const char *line, char *reply, size_t cap,
            int timeout_ms, const char *what);

/* Commands (aldrec.c holds the table that routes to them). */
int cmd_process_start(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_process_stop(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_status(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_metrics(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_db_migrate(const aldrec_config_t *cfg, int argc, char **argv);
/* The read side (query/): runs, export, summary, plot; step markers. */
int cmd_process_step(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_runs(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_export(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_summary(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_plot(const aldrec_config_t *cfg, int argc, char **argv);
/* The trend pages in a browser (web/). */
int cmd_web(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_db_maintain(const aldrec_config_t *cfg, int argc, char **argv);
/* Parameters by name through aldrecd (cmd_param.c, in the front program),
 * and the same with --direct or -v: the metadata cache (cache/) and a
 * Modbus connection of their own (cmd_direct.c, aldrec-full only). */
int cmd_param_get(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_param_set(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_param_get_full(const aldrec_config_t *cfg, int argc, char **argv);
int cmd_param_set_full(const aldrec_config_t *cfg, int argc, char **argv);
/* The spool's quarantine (store/). */
int cmd_spool_quarantine(const aldrec_config_t *cfg, int argc, char **argv);

#endif
