/* aldrec.c — command-line tool for recipe steps and operators.
 *
 *   aldrec [--config FILE] process start --recipe NAME [--lot ID]
 *   aldrec [--config FILE] process stop
 *   aldrec [--config FILE] status
 *   aldrec [--config FILE] db migrate [--sql-dir DIR]
 *
 * Exit status: 0 success; 1 the operation failed (daemon not running,
 * database error); 2 bad usage or bad configuration. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"

#define CTL_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 20000
#define DEFAULT_CONFIG "/etc/aldrec/aldrec.conf"

static const char usage_text[] =
    "usage: aldrec [--config FILE] COMMAND ...\n"
    "\n"
    "  process start --recipe NAME [--lot ID]   open a process and start recording\n"
    "  process stop                             stop recording; returns once stored\n"
    "  status                                   what aldrecd is doing\n"
    "  db migrate [--sql-dir DIR]               apply pending schema migrations\n"
    "\n"
    "FILE defaults to $ALDREC_CONFIG, then " DEFAULT_CONFIG ".\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "aldrec: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

static PGconn *db_connect(const aldrec_config_t *cfg, const char *conninfo)
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

static void print_db_error(const char *what, PGconn *conn, PGresult *res)
{
    const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    if (!m || !*m)
        m = PQerrorMessage(conn);
    fprintf(stderr, "aldrec: %s: %.*s\n", what, (int)strcspn(m, "\n"), m);
}

/* ---- process start / stop ---------------------------------------------- */

static int cmd_process_start(const aldrec_config_t *cfg, int argc, char **argv)
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
            return usage_error("process start: bad option%s", "");
    }
    if (optind != argc)
        return usage_error("process start: unexpected argument \"%s\"", argv[optind]);
    if (!recipe || !*recipe)
        return usage_error("process start: --recipe NAME is required%s", "");

    /* Is the daemon there and idle? Ask before creating the process row, so
     * that a missing daemon does not leave a "running" process behind. */
    int rc = ctl_request(cfg->socket_path, "STATUS", reply, sizeof reply, CTL_TIMEOUT_MS,
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

    PGconn *conn = db_connect(cfg, cfg->conninfo);
    if (!conn)
        return 1;
    const char *params[4] = { cfg->machine, recipe, lot, cfg->recorder_id };
    PGresult *res = PQexecParams(conn,
        "INSERT INTO processes (machine_id, recipe, lot, recorder_id)"
        " SELECT id, $2, $3, $4 FROM machines WHERE name = $1 RETURNING id",
        4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        print_db_error("creating the process", conn, res);
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
    rc = ctl_request(cfg->socket_path, line, reply, sizeof reply, CTL_TIMEOUT_MS, err, sizeof err);
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

static int cmd_process_stop(const aldrec_config_t *cfg, int argc, char **argv)
{
    char reply[1024], err[512];
    (void)argv;
    if (argc > 1)
        return usage_error("process stop: unexpected argument \"%s\"", argv[1]);
    int rc = ctl_request(cfg->socket_path, "STOP", reply, sizeof reply, STOP_TIMEOUT_MS,
                         err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 1;
    }
    if (rc == 1) {
        fprintf(stderr, "aldrec: %s", reply + 4);
        return 1;
    }
    long long id = 0;
    if (sscanf(reply, "OK stopped process %lld", &id) != 1 || id <= 0) {
        fprintf(stderr, "aldrec: unexpected answer from aldrecd: %s", reply);
        return 1;
    }
    PGconn *conn = db_connect(cfg, cfg->conninfo);
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
        print_db_error("closing the process", conn, res);
        status = 1;
    }
    PQclear(res);
    PQfinish(conn);
    fputs(reply + 3, stdout);
    return status;
}

/* ---- status ------------------------------------------------------------ */

static int cmd_status(const aldrec_config_t *cfg, int argc, char **argv)
{
    char reply[8192], err[512];
    if (argc > 1)
        return usage_error("status: unexpected argument \"%s\"", argv[1]);
    int rc = ctl_request(cfg->socket_path, "STATUS", reply, sizeof reply, CTL_TIMEOUT_MS,
                         err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 1;
    }
    char *body = strchr(reply, '\n');
    fputs(body ? body + 1 : reply, rc == 0 ? stdout : stderr);
    return rc == 0 ? 0 : 1;
}

/* ---- db migrate -------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int cmd_db_migrate(const aldrec_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "sql-dir", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    const char *sqldir = getenv("ALDREC_SQLDIR") ? getenv("ALDREC_SQLDIR") : ALDREC_SQLDIR;
    char dir[4096];
    char *names[256];
    size_t n = 0;
    int opt, status = 1;
    PGconn *conn = NULL;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 's')
            sqldir = optarg;
        else
            return usage_error("db migrate: bad option%s", "");
    }
    if (optind != argc)
        return usage_error("db migrate: unexpected argument \"%s\"", argv[optind]);
    snprintf(dir, sizeof dir, "%s/migrations", sqldir);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "aldrec: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 9 && strcmp(e->d_name + l - 4, ".sql") == 0 &&
            strspn(e->d_name, "0123456789") == 4 && e->d_name[4] == '_')
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);

    conn = db_connect(cfg, cfg->admin_conninfo);
    if (!conn)
        goto out;
    PGresult *res = PQexec(conn,
        "SET client_min_messages = warning;"
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "  version int PRIMARY KEY, name text NOT NULL,"
        "  applied_at timestamptz NOT NULL DEFAULT now());"
        "SELECT pg_advisory_lock(hashtext('aldrec schema migrations'))");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        print_db_error("preparing migrations", conn, res);
        PQclear(res);
        goto out;
    }
    PQclear(res);
    int applied = 0;
    for (size_t i = 0; i < n; i++) {
        char version[8];
        snprintf(version, sizeof version, "%.4s", names[i]);
        const char *p[2] = { version, names[i] };
        res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1::int",
                           1, NULL, p, NULL, NULL, 0);
        bool done = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            print_db_error("reading schema_migrations", conn, res);
            PQclear(res);
            goto out;
        }
        PQclear(res);
        if (done)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *sql = read_file(path);
        if (!sql) {
            fprintf(stderr, "aldrec: %s: %s\n", path, strerror(errno));
            goto out;
        }
        PQclear(PQexec(conn, "BEGIN"));
        res = PQexec(conn, sql);
        free(sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            char what[300];
            snprintf(what, sizeof what, "migration %s failed", names[i]);
            print_db_error(what, conn, res);
            PQclear(res);
            PQclear(PQexec(conn, "ROLLBACK"));
            goto out;
        }
        PQclear(res);
        res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
                           2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            print_db_error("recording the migration", conn, res);
            PQclear(res);
            PQclear(PQexec(conn, "ROLLBACK"));
            goto out;
        }
        PQclear(res);
        res = PQexec(conn, "COMMIT");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            print_db_error("committing the migration", conn, res);
            PQclear(res);
            goto out;
        }
        PQclear(res);
        printf("applied %s\n", names[i]);
        applied++;
    }
    if (applied == 0)
        printf("database is up to date (%zu migrations)\n", n);
    status = 0;
out:
    PQfinish(conn);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return status;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *config_path = getenv("ALDREC_CONFIG");
    aldrec_config_t cfg;
    char err[512];
    int i = 1;

    if (!config_path)
        config_path = DEFAULT_CONFIG;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
            i++;
        } else {
            return usage_error("unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc)
        return usage_error("missing command%s", "");
    if (config_load(&cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 2;
    }
    const char *cmd = argv[i];
    const char *sub = i + 1 < argc ? argv[i + 1] : "";
    if (strcmp(cmd, "process") == 0 && strcmp(sub, "start") == 0)
        return cmd_process_start(&cfg, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "process") == 0 && strcmp(sub, "stop") == 0)
        return cmd_process_stop(&cfg, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(&cfg, argc - i, argv + i);
    if (strcmp(cmd, "db") == 0 && strcmp(sub, "migrate") == 0)
        return cmd_db_migrate(&cfg, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "process") == 0)
        return usage_error("process: expected \"start\" or \"stop\", got \"%s\"", sub);
    if (strcmp(cmd, "db") == 0)
        return usage_error("db: expected \"migrate\", got \"%s\"", sub);
    return usage_error("unknown command \"%s\"", cmd);
}
