/* cmd_db.c — aldrec db migrate: apply the versioned schema in sql/migrations
 * in order, each in one transaction with its row in schema_migrations. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/ctl.h"

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

int cmd_db_migrate(const aldrec_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "sql-dir", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    /* $ALDREC_SQLDIR, --sql-dir, the installed copy, this checkout's. */
    const char *sqldir = getenv("ALDREC_SQLDIR");
    struct stat st;
    if (!sqldir)
        sqldir = stat(ALDREC_SQLDIR "/migrations", &st) == 0 ? ALDREC_SQLDIR : ALDREC_SRC_SQLDIR;
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
            return cli_usage_error("db migrate: bad option");
    }
    if (optind != argc)
        return cli_usage_error("db migrate: unexpected argument \"%s\"", argv[optind]);
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

    conn = cli_db_connect(cfg, cfg->admin_conninfo);
    if (!conn)
        goto out;
    PGresult *res = PQexec(conn,
        "SET client_min_messages = warning;"
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "  version int PRIMARY KEY, name text NOT NULL,"
        "  applied_at timestamptz NOT NULL DEFAULT now());"
        "SELECT pg_advisory_lock(hashtext('aldrec schema migrations'))");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cli_print_db_error("preparing migrations", conn, res);
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
            cli_print_db_error("reading schema_migrations", conn, res);
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
        /* Once 0007 made a group the owner of this database's schema,
         * migrations run as that group: what they create belongs to it, not
         * to the admin login. (The role is cluster-wide; the schema's owner
         * says whether 0007 ran here.) */
        PQclear(PQexec(conn,
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_namespace n JOIN pg_roles r"
            " ON r.oid = n.nspowner WHERE n.nspname = 'public' AND r.rolname = 'aldrec_owner')"
            " THEN IF pg_has_role('aldrec_owner', 'MEMBER') THEN SET LOCAL ROLE aldrec_owner;"
            " END IF; END IF; END $$"));
        res = PQexec(conn, sql);
        free(sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            char what[300];
            snprintf(what, sizeof what, "migration %s failed", names[i]);
            cli_print_db_error(what, conn, res);
            PQclear(res);
            PQclear(PQexec(conn, "ROLLBACK"));
            goto out;
        }
        PQclear(res);
        res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
                           2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            cli_print_db_error("recording the migration", conn, res);
            PQclear(res);
            PQclear(PQexec(conn, "ROLLBACK"));
            goto out;
        }
        PQclear(res);
        res = PQexec(conn, "COMMIT");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            cli_print_db_error("committing the migration", conn, res);
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

