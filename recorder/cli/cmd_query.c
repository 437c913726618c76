/* cmd_query.c — aldrec runs | export | summary | plot: what engineers ask
 * of recorded runs. They connect with [database] reader_conninfo (a member
 * of aldrec_reader: read-only). Bad input — an unknown process or
 * parameter, an inverted time range, a bad --every or --format — exits 2
 * with a message naming it; a database failure exits 1. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "query/export.h"
#include "query/plot.h"
#include "query/qdb.h"
#include "query/qsel.h"
#include "query/qtext.h"
#include "query/summary.h"

/* Options of export, summary and plot; each command says which it takes. */
enum {
    O_PROCESS = 1 << 0, O_PARAM = 1 << 1, O_STEP = 1 << 2, O_FROM = 1 << 3, O_TO = 1 << 4,
    O_EVERY = 1 << 5, O_FORMAT = 1 << 6, O_LAYOUT = 1 << 7, O_OUTPUT = 1 << 8, O_WIDTH = 1 << 9,
    O_MACHINE = 1 << 10, O_BEFORE = 1 << 11,
};

struct qopts {
    qsel_args_t sel;
    const char *every, *format, *layout, *output, *width;
};

static int bad_input(const char *cmd, const char *msg)
{
    fprintf(stderr, "aldrec: %s: %s\n", cmd, msg);
    return 2;
}

/* Returns 0, or the exit status (2) after a message. */
static int parse_opts(const char *cmd, unsigned allowed, int argc, char **argv, struct qopts *q)
{
    static const struct option opts[] = {
        { "process", required_argument, NULL, 'p' }, { "param", required_argument, NULL, 'P' },
        { "step", required_argument, NULL, 's' },    { "from", required_argument, NULL, 'f' },
        { "to", required_argument, NULL, 't' },      { "every", required_argument, NULL, 'e' },
        { "format", required_argument, NULL, 'F' },  { "layout", required_argument, NULL, 'l' },
        { "output", required_argument, NULL, 'o' },  { "width", required_argument, NULL, 'w' },
        { "machine", required_argument, NULL, 'm' }, { "before", required_argument, NULL, 'b' },
        { NULL, 0, NULL, 0 },
    };
    static const struct { int c; unsigned bit; } bits[] = {
        { 'p', O_PROCESS }, { 'P', O_PARAM }, { 's', O_STEP }, { 'f', O_FROM }, { 't', O_TO },
        { 'e', O_EVERY }, { 'F', O_FORMAT }, { 'l', O_LAYOUT }, { 'o', O_OUTPUT }, { 'w', O_WIDTH },
        { 'm', O_MACHINE }, { 'b', O_BEFORE },
    };
    int opt, idx;
    *q = (struct qopts){ 0 };
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "o:", opts, &idx)) != -1) {
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
            if (bits[i].c == opt)
                bit = bits[i].bit;
        if (opt == '?' || opt == ':' || !(allowed & bit))
            return cli_usage_error("%s: unknown or incomplete option \"%s\"", cmd, argv[optind - 1]);
        const char **slot = NULL;
        switch (opt) {
        case 'p': slot = &q->sel.process; break;
        case 'P': slot = &q->sel.params; break;
        case 's': slot = &q->sel.step; break;
        case 'f': slot = &q->sel.from; break;
        case 't': slot = &q->sel.to; break;
        case 'e': slot = &q->every; break;
        case 'F': slot = &q->format; break;
        case 'l': slot = &q->layout; break;
        case 'o': slot = &q->output; break;
        case 'w': slot = &q->width; break;
        case 'm': slot = &q->sel.machine; break;
        case 'b': slot = &q->sel.before; break;
        default: break;
        }
        if (slot && *slot)
            return cli_usage_error("%s: option \"%s\" given twice", cmd, argv[optind - 1]);
        if (slot)
            *slot = optarg;
    }
    if (optind != argc)
        return cli_usage_error("%s: unexpected argument \"%s\"", cmd, argv[optind]);
    if ((allowed & O_PROCESS) && !q->sel.process && !q->sel.machine)
        return cli_usage_error("%s: --process ID%s is required", cmd,
                               allowed & O_MACHINE ? " or --machine NAME" : "");
    return 0;
}

/* Connects as the reader and resolves the selection. Returns 0 with *conn
 * and *s, or the exit status after a message. */
static int open_selection(const aldrec_config_t *cfg, const char *cmd, const qsel_args_t *a,
                          PGconn **conn, qsel_t *s)
{
    char err[512];
    *conn = cli_db_connect(cfg, cfg->reader_conninfo);
    if (!*conn)
        return 1;
    qsel_status_t st = qsel_resolve(*conn, a, s, err, sizeof err);
    if (st == QSEL_OK)
        return 0;
    PQfinish(*conn);
    *conn = NULL;
    if (st == QSEL_BAD_INPUT)
        return bad_input(cmd, err);
    fprintf(stderr, "aldrec: %s: %s\n", cmd, err);
    return 1;
}

/* Opens -o FILE (NULL or "-" = stdout). */
static FILE *open_output(const char *cmd, const char *path)
{
    if (!path || strcmp(path, "-") == 0)
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "aldrec: %s: cannot write %s: %m\n", cmd, path);
    return f;
}

static int finish(const char *cmd, PGconn *conn, qsel_t *s, FILE *out, const char *path,
                  int rc, const char *err)
{
    if (out && out != stdout && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "aldrec: %s: writing %s: %m\n", cmd, path);
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "aldrec: %s: %s\n", cmd, err);
        if (out && out != stdout)
            unlink(path);
    }
    qsel_clear(s);
    PQfinish(conn);
    return rc < 0 ? 1 : 0;
}

int cmd_export(const aldrec_config_t *cfg, int argc, char **argv)
{
    struct qopts q;
    export_opts_t o = { .format = EXPORT_CSV, .layout = EXPORT_WIDE };
    char err[512] = "";
    int rc = parse_opts("export", O_PROCESS | O_PARAM | O_STEP | O_FROM | O_TO | O_EVERY |
                                  O_FORMAT | O_LAYOUT | O_OUTPUT | O_MACHINE | O_BEFORE,
                        argc, argv, &q);
    if (rc)
        return rc;
    if (q.format && strcmp(q.format, "csv") && strcmp(q.format, "json"))
        return bad_input("export", "--format: expected csv or json");
    if (q.format && strcmp(q.format, "json") == 0)
        o.format = EXPORT_JSON;
    if (q.layout && strcmp(q.layout, "wide") && strcmp(q.layout, "long"))
        return bad_input("export", "--layout: expected wide or long");
    if (q.layout && strcmp(q.layout, "long") == 0)
        o.layout = EXPORT_LONG;
    if (q.every && qtext_duration_us(q.every, &o.every_us) < 0) {
        snprintf(err, sizeof err, "--every: expected a duration such as 100ms, 1s, 5m, 1h, got \"%s\"",
                 q.every);
        return bad_input("export", err);
    }
    PGconn *conn;
    qsel_t s;
    if ((rc = open_selection(cfg, "export", &q.sel, &conn, &s)) != 0)
        return rc;
    FILE *out = open_output("export", q.output);
    if (!out) {
        qsel_clear(&s);
        PQfinish(conn);
        return 1;
    }
    rc = export_run(conn, &s, &o, out, err, sizeof err);
    return finish("export", conn, &s, out, q.output, rc, err);
}

int cmd_summary(const aldrec_config_t *cfg, int argc, char **argv)
{
    struct qopts q;
    char err[512] = "";
    int rc = parse_opts("summary", O_PROCESS | O_PARAM | O_STEP | O_FORMAT, argc, argv, &q);
    if (rc)
        return rc;
    if (q.format && strcmp(q.format, "table") && strcmp(q.format, "json"))
        return bad_input("summary", "--format: expected table or json");
    summary_format_t fmt = q.format && strcmp(q.format, "json") == 0 ? SUMMARY_JSON : SUMMARY_TABLE;
    PGconn *conn;
    qsel_t s;
    if ((rc = open_selection(cfg, "summary", &q.sel, &conn, &s)) != 0)
        return rc;
    rc = summary_run(conn, &s, fmt, stdout, err, sizeof err);
    return finish("summary", conn, &s, stdout, NULL, rc, err);
}

int cmd_plot(const aldrec_config_t *cfg, int argc, char **argv)
{
    struct qopts q;
    plot_opts_t o = { .width = 1200 };
    char err[512] = "";
    long long w;
    int rc = parse_opts("plot", O_PROCESS | O_PARAM | O_STEP | O_FROM | O_TO | O_OUTPUT | O_WIDTH |
                                O_MACHINE | O_BEFORE,
                        argc, argv, &q);
    if (rc)
        return rc;
    if (!q.sel.params)
        return cli_usage_error("plot: --param A,B is required");
    if (!q.output)
        return cli_usage_error("plot: -o FILE.svg is required (\"-\" for standard output)");
    if (q.width) {
        if (qtext_int(q.width, 400, 10000, &w) < 0)
            return bad_input("plot", "--width: expected pixels in 400..10000");
        o.width = (int)w;
    }
    PGconn *conn;
    qsel_t s;
    if ((rc = open_selection(cfg, "plot", &q.sel, &conn, &s)) != 0)
        return rc;
    FILE *out = open_output("plot", q.output);
    if (!out) {
        qsel_clear(&s);
        PQfinish(conn);
        return 1;
    }
    rc = plot_run(conn, &s, &o, out, err, sizeof err);
    return finish("plot", conn, &s, out, q.output, rc, err);
}

/* ---- runs ---------------------------------------------------------------- */

int cmd_runs(const aldrec_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "recipe", required_argument, NULL, 'r' }, { "since", required_argument, NULL, 's' },
        { "machine", required_argument, NULL, 'm' }, { "limit", required_argument, NULL, 'n' },
        { "format", required_argument, NULL, 'F' }, { NULL, 0, NULL, 0 },
    };
    const char *recipe = NULL, *since = NULL, *machine = NULL, *format = "table";
    char limit[24] = "20", since_ts[48], err[512], state[6];
    long long n;
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': recipe = optarg; break;
        case 's': since = optarg; break;
        case 'm': machine = optarg; break;
        case 'F': format = optarg; break;
        case 'n':
            if (qtext_int(optarg, 1, 1000000, &n) < 0)
                return bad_input("runs", "--limit: expected a count in 1..1000000");
            snprintf(limit, sizeof limit, "%lld", n);
            break;
        default:
            return cli_usage_error("runs: unknown or incomplete option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_usage_error("runs: unexpected argument \"%s\"", argv[optind]);
    if (strcmp(format, "table") && strcmp(format, "csv") && strcmp(format, "json"))
        return bad_input("runs", "--format: expected table, csv or json");
    /* --since 7d = the last seven days; anything else is a time. */
    int64_t ago;
    bool relative = since && qtext_duration_us(since, &ago) == 0;
    if (relative)
        snprintf(since_ts, sizeof since_ts, "%lld microseconds", (long long)ago);
    PGconn *conn = cli_db_connect(cfg, cfg->reader_conninfo);
    if (!conn)
        return 1;
    if (machine) {
        const char *mp[1] = { machine };
        PGresult *r = qdb_query(conn, "SELECT 1 FROM machines WHERE name = $1", 1, mp,
                                err, sizeof err, NULL);
        int known = r && PQntuples(r) == 1;
        PQclear(r);
        if (!r || !known) {
            PQfinish(conn);
            if (!r)
                return cli_fail("runs: %s", err);
            snprintf(err, sizeof err, "--machine: unknown machine \"%s\"", machine);
            return bad_input("runs", err);
        }
    }
    const char *p[5] = { recipe, relative ? NULL : since, relative ? since_ts : NULL, machine, limit };
    PGresult *r = qdb_query(conn,
        "SELECT process_id, machine, recipe, coalesce(lot, ''),"
        " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        " round(extract(epoch FROM duration)::numeric, 1), status, steps, points"
        " FROM process_runs"
        " WHERE ($1::text IS NULL OR recipe = $1)"
        "   AND ($2::timestamptz IS NULL OR started_at >= $2::timestamptz)"
        "   AND ($3::interval IS NULL OR started_at >= now() - $3::interval)"
        "   AND ($4::text IS NULL OR machine = $4)"
        " ORDER BY started_at DESC, process_id DESC LIMIT $5::int",
        5, p, err, sizeof err, state);
    if (!r) {
        PQfinish(conn);
        if (strncmp(state, "22", 2) == 0) {
            snprintf(err, sizeof err, "--since: cannot read \"%s\" as a time or a duration (e.g. 7d)",
                     since);
            return bad_input("runs", err);
        }
        return cli_fail("runs: %s", err);
    }
    static const char *const head[] = { "process", "machine", "recipe", "lot", "started",
                                        "duration_s", "status", "steps", "points" };
    int rows = PQntuples(r);
    if (strcmp(format, "json") == 0) {
        fputs("[", stdout);
        for (int i = 0; i < rows; i++) {
            fputs(i ? ",\n {" : "\n {", stdout);
            for (int c = 0; c < 9; c++) {
                printf("%s\"%s\":", c ? "," : "", head[c]);
                if (c == 0 || c == 5 || c == 7 || c == 8)
                    fputs(PQgetvalue(r, i, c), stdout);
                else
                    qtext_json_str(stdout, PQgetvalue(r, i, c));
            }
            fputs("}", stdout);
        }
        fputs("\n]\n", stdout);
    } else if (strcmp(format, "csv") == 0) {
        for (int c = 0; c < 9; c++)
            printf("%s%s", c ? "," : "", head[c]);
        putchar('\n');
        for (int i = 0; i < rows; i++) {
            for (int c = 0; c < 9; c++) {
                if (c)
                    putchar(',');
                qtext_csv_str(stdout, PQgetvalue(r, i, c));
            }
            putchar('\n');
        }
    } else {
        int w[9];
        for (int c = 0; c < 9; c++) {
            w[c] = (int)strlen(head[c]);
            for (int i = 0; i < rows; i++) {
                int l = (int)strlen(PQgetvalue(r, i, c));
                w[c] = l > w[c] ? l : w[c];
            }
        }
        for (int c = 0; c < 9; c++)
            printf("%s%-*s", c ? "  " : "", w[c], head[c]);
        putchar('\n');
        for (int i = 0; i < rows; i++) {
            for (int c = 0; c < 9; c++) {
                int right = c == 0 || c == 5 || c == 7 || c == 8;
                printf(right ? "%s%*s" : "%s%-*s", c ? "  " : "", w[c], PQgetvalue(r, i, c));
            }
            putchar('\n');
        }
        if (rows == 0)
            puts("(no runs match)");
    }
    PQclear(r);
    PQfinish(conn);
    return 0;
}
