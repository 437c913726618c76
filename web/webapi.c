/* webapi.c — the JSON and CSV answers of aldrec web; see webapi.h. */
#include "web/webapi.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rollup.h"
#include "query/downsample.h"
#include "query/export.h"
#include "query/qdb.h"
#include "query/qsel.h"
#include "query/qtext.h"

/* Rows per FETCH: a chunk is the server's largest buffer (a PGresult of
 * 8192 rows is about 1 MiB), whatever the run's length. */
#define CHUNK 8192
#define MAX_WIDTH 4000

/* The answer being written: a memory stream. */
struct out {
    FILE *f;
    char *buf;
    size_t len;
};

static int out_open(struct out *o)
{
    o->buf = NULL;
    o->len = 0;
    o->f = open_memstream(&o->buf, &o->len);
    return o->f ? 0 : -1;
}

static int out_close(struct out *o, webapi_reply_t *r, int status, const char *type)
{
    if (fclose(o->f) != 0) {
        free(o->buf);
        return -1;
    }
    r->status = status;
    r->type = type;
    r->body = o->buf;
    r->len = o->len;
    return 0;
}

/* {"error": "..."} with status. */
static int fail(webapi_reply_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(webapi_reply_t *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct out o;
    if (out_open(&o) < 0)
        return -1;
    fputs("{\"error\": ", o.f);
    qtext_json_str(o.f, msg);
    fputs("}\n", o.f);
    return out_close(&o, r, status, "application/json");
}

/* A database failure: 503 when the connection is gone, else 500. */
static int db_fail(webapi_reply_t *r, PGconn *conn, const char *what, const char *msg)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return fail(r, 503, "database unreachable: %s", msg);
    return fail(r, 500, "%s: %s", what, msg);
}

static void jnum(FILE *f, double v) { qtext_json_num(f, v); }
static void jts(FILE *f, int64_t us) { fprintf(f, "%.6f", (double)us / 1e6); }

/* qsel's messages name the CLI's options; the API's fields are named
 * run, param, step, from, to. 404 for what does not exist. */
static int qsel_fail(webapi_reply_t *r, PGconn *conn, qsel_status_t st, const char *msg)
{
    if (st == QSEL_FAILED)
        return db_fail(r, conn, "reading the run", msg);
    static const struct { const char *opt, *field; } names[] = {
        { "--process ID is required", "run" },
        { "--process", "run" }, { "--param", "param" }, { "--step", "step" },
        { "--from", "from" }, { "--to", "to" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i].opt);
        if (strncmp(msg, names[i].opt, n) == 0)
            return fail(r, 400, "%s:%s", names[i].field, msg[n] == ':' ? msg + n + 1 : msg + n);
    }
    if (strncmp(msg, "unknown process", 15) == 0)
        return fail(r, 404, "run: %s", msg);
    if (strncmp(msg, "unknown parameter", 17) == 0)
        return fail(r, 404, "param: %s", msg);
    if (strstr(msg, "has no step"))
        return fail(r, 404, "step: %s", msg);
    return fail(r, 400, "%s", msg);
}

static int resolve(PGconn *conn, webapi_arg_fn arg, void *ctx, qsel_t *s, webapi_reply_t *r,
                   bool *done)
{
    qsel_args_t a = {
        .process = arg(ctx, "run"), .params = arg(ctx, "param"), .step = arg(ctx, "step"),
        .from = arg(ctx, "from"), .to = arg(ctx, "to"),
    };
    char err[1024];
    *done = false;
    if (a.params) {
        size_t n = 1;
        for (const char *p = a.params; *p; p++)
            n += *p == ',';
        if (n > WEBAPI_MAX_SERIES) {
            *done = true;
            return fail(r, 400, "param: %zu series asked for, at most %d", n, WEBAPI_MAX_SERIES);
        }
    }
    qsel_status_t st = qsel_resolve(conn, &a, s, err, sizeof err);
    if (st == QSEL_OK)
        return 0;
    *done = true;
    return qsel_fail(r, conn, st, err);
}

/* ---- /api/runs ---------------------------------------------------------- */

#define RUNS_SQL \
    "SELECT coalesce(json_agg(r ORDER BY r.started DESC), '[]')::text FROM (" \
    " SELECT pr.process_id AS run, pr.machine, pr.recipe, pr.lot," \
    "  extract(epoch FROM pr.started_at)::float8 AS started," \
    "  extract(epoch FROM pr.ended_at)::float8 AS ended," \
    "  extract(epoch FROM pr.duration)::float8 AS duration_s, pr.status, pr.steps, pr.points," \
    "  (SELECT count(*) FROM data_gaps g WHERE g.process_id = pr.process_id) AS gaps," \
    "  (SELECT coalesce(sum(g.points), 0) FROM data_gaps g" \
    "    WHERE g.process_id = pr.process_id) AS points_lost," \
    "  (SELECT count(*) FROM process_data_points d" \
    "    WHERE d.process_id = pr.process_id AND d.quality <> 0) AS bad" \
    " FROM process_runs pr" \
    " WHERE ($1::text IS NULL OR pr.machine = $1) AND ($2::text IS NULL OR pr.recipe = $2)" \
    "   AND ($3::text IS NULL OR pr.lot = $3) AND ($4::timestamptz IS NULL OR pr.started_at >= $4)" \
    "   AND ($5::timestamptz IS NULL OR pr.started_at < $5)" \
    " ORDER BY pr.started_at DESC LIMIT $6) r"

static int api_runs(PGconn *conn, webapi_arg_fn arg, void *ctx, webapi_reply_t *r)
{
    const char *limit = arg(ctx, "limit");
    long long n = 200;
    if (limit && qtext_int(limit, 1, 10000, &n) < 0)
        return fail(r, 400, "limit: expected 1..10000, got \"%s\"", limit);
    char nb[24];
    snprintf(nb, sizeof nb, "%lld", n);
    const char *p[6] = { arg(ctx, "machine"), arg(ctx, "recipe"), arg(ctx, "lot"),
                         arg(ctx, "since"), arg(ctx, "until"), nb };
    PGresult *res = PQexecPrepared(conn, "web_runs", 6, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool bad_input = state && strncmp(state, "22", 2) == 0;   /* res owns state */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(res);
        if (bad_input)
            return fail(r, 400, "since/until: %s", msg);
        return db_fail(r, conn, "listing runs", msg);
    }
    struct out o;
    if (out_open(&o) < 0) {
        PQclear(res);
        return -1;
    }
    fputs(PQgetvalue(res, 0, 0), o.f);
    fputc('\n', o.f);
    PQclear(res);
    return out_close(&o, r, 200, "application/json");
}

/* ---- /api/run ----------------------------------------------------------- */

#define SETPOINTS_SQL \
    "SELECT parameter_id, extract(epoch FROM ts)::float8, requested, readback, quality," \
    " requested_by FROM setpoint_events WHERE process_id = $1 ORDER BY ts"

static void json_params(FILE *f, const qsel_t *s)
{
    fputs("[", f);
    for (size_t i = 0; i < s->nparams; i++) {
        const qparam_t *p = &s->params[i];
        fprintf(f, "%s{\"id\": %d, \"name\": ", i ? ", " : "", p->id);
        qtext_json_str(f, p->name);
        fputs(", \"units\": ", f);
        qtext_json_str(f, p->units);
        fputs(", \"min\": ", f);
        p->has_min ? jnum(f, p->min_limit) : (void)fputs("null", f);
        fputs(", \"max\": ", f);
        p->has_max ? jnum(f, p->max_limit) : (void)fputs("null", f);
        fprintf(f, ", \"expected_ms\": %d}", p->expected_ms);
    }
    fputs("]", f);
}

static int api_run(PGconn *conn, webapi_arg_fn arg, void *ctx, webapi_reply_t *r)
{
    qsel_t s;
    bool done;
    int rc = resolve(conn, arg, ctx, &s, r, &done);
    if (done)
        return rc;
    char pid[24];
    snprintf(pid, sizeof pid, "%lld", (long long)s.process_id);
    const char *p[1] = { pid };
    PGresult *res = PQexecPrepared(conn, "web_setpoints", 1, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(res);
        qsel_clear(&s);
        return db_fail(r, conn, "reading set points", msg);
    }
    struct out o;
    if (out_open(&o) < 0) {
        PQclear(res);
        qsel_clear(&s);
        return -1;
    }
    FILE *f = o.f;
    fprintf(f, "{\"run\": %lld, \"machine\": ", (long long)s.process_id);
    qtext_json_str(f, s.machine);
    fputs(", \"recipe\": ", f);
    qtext_json_str(f, s.recipe);
    fputs(", \"lot\": ", f);
    qtext_json_str(f, s.lot);
    fputs(", \"status\": ", f);
    qtext_json_str(f, s.status);
    fputs(", \"started\": ", f);
    jts(f, s.started_us);
    fputs(", \"ended\": ", f);
    s.ended_us ? jts(f, s.ended_us) : (void)fputs("null", f);
    fputs(", \"now\": ", f);
    jts(f, clock_real_us());
    fputs(", \"steps\": [", f);
    for (size_t i = 0; i < s.nsteps; i++) {
        const qstep_t *st = &s.steps[i];
        fprintf(f, "%s{\"no\": %d, \"name\": ", i ? ", " : "", st->no);
        qtext_json_str(f, st->name);
        fputs(", \"start\": ", f);
        jts(f, st->start_us);
        fputs(", \"end\": ", f);
        st->end_us == INT64_MAX ? (void)fputs("null", f) : jts(f, st->end_us);
        fputs("}", f);
    }
    fputs("], \"params\": ", f);
    json_params(f, &s);
    fputs(", \"setpoints\": [", f);
    for (int i = 0; i < PQntuples(res); i++) {
        fprintf(f, "%s{\"param\": %s, \"ts\": %s, \"requested\": %s, \"readback\": %s,"
                   " \"quality\": %s, \"by\": ", i ? ", " : "", PQgetvalue(res, i, 0),
                PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                PQgetisnull(res, i, 3) ? "null" : PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
        qtext_json_str(f, PQgetvalue(res, i, 5));
        fputs("}", f);
    }
    fputs("]}\n", f);
    PQclear(res);
    qsel_clear(&s);
    return out_close(&o, r, 200, "application/json");
}

/* ---- /api/series -------------------------------------------------------- */

struct series_ctx {
    const qsel_t *s;
    ds_t **ds;
    size_t *samples;        /* per parameter: samples the answer stands for */
    /* rollup rows: the points of the current bucket, sorted before the
     * reducer sees them (its partial rows may interleave in time) */
    int param;
    int64_t bucket;
    ds_point_t *pts;
    size_t npts, cap;
};

static int on_sample(void *arg, const PGresult *res, int row, char *err, size_t errlen)
{
    struct series_ctx *c = arg;
    qdb_sample_t x = qdb_sample(res, row);
    int k = qsel_param_index(c->s, x.parameter_id);
    if (k < 0)
        return 0;
    if (ds_add(c->ds[k], x.t, x.v, x.good) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->samples[k]++;
    return 0;
}

/* ---- the rollup (0013_rollup.sql): a whole long run --------------------- */

#define ROLLUP_SQL \
    "SELECT parameter_id, bucket, samples, first_ts, first_v, min_ts, min_v, max_ts, max_v," \
    " last_ts, last_v, bad_first, bad_last FROM process_data_rollup" \
    " WHERE process_id = $1 AND parameter_id = ANY ($2::int[]) ORDER BY parameter_id, bucket"

static int by_time(const void *a, const void *b)
{
    const ds_point_t *x = a, *y = b;
    return (x->t > y->t) - (x->t < y->t);
}

/* Feeds the current bucket's points, in time order, to its reducer. */
static int rollup_flush(struct series_ctx *c)
{
    int k = qsel_param_index(c->s, c->param);
    if (k >= 0 && c->npts > 0) {
        /* good rides in .move until sorted (ds_point_t has no quality) */
        qsort(c->pts, c->npts, sizeof *c->pts, by_time);
        for (size_t i = 0; i < c->npts; i++)
            if (ds_add(c->ds[k], c->pts[i].t, c->pts[i].v, c->pts[i].move) < 0)
                return -1;
    }
    c->npts = 0;
    return 0;
}

static int rollup_point(struct series_ctx *c, const PGresult *res, int row, int tcol, int vcol,
                        bool good)
{
    if (qdb_null(res, row, tcol))
        return 0;
    if (c->npts == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        ds_point_t *np = realloc(c->pts, cap * sizeof *np);
        if (!np)
            return -1;
        c->pts = np;
        c->cap = cap;
    }
    c->pts[c->npts++] = (ds_point_t){ .t = qdb_ts(res, row, tcol),
                                      .v = vcol >= 0 ? qdb_float8(res, row, vcol) : 0,
                                      .move = good };
    return 0;
}

static int on_rollup(void *arg, const PGresult *res, int row, char *err, size_t errlen)
{
    struct series_ctx *c = arg;
    int param = qdb_int4(res, row, 0);
    int64_t bucket = qdb_ts(res, row, 1);
    if ((param != c->param || bucket != c->bucket) && rollup_flush(c) < 0)
        goto oom;
    c->param = param;
    c->bucket = bucket;
    int k = qsel_param_index(c->s, param);
    if (k < 0)
        return 0;
    c->samples[k] += (size_t)qdb_int4(res, row, 2);
    /* first, lowest, highest, last good sample; first and last bad one */
    for (int col = 3; col <= 9; col += 2)
        if (rollup_point(c, res, row, col, col + 1, true) < 0)
            goto oom;
    if (rollup_point(c, res, row, 11, -1, false) < 0 ||
        rollup_point(c, res, row, 12, -1, false) < 0)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Whether the run's rollup rows are complete (processes.rollup). */
static bool run_has_rollup(PGconn *conn, int64_t process_id)
{
    char pid[24];
    snprintf(pid, sizeof pid, "%lld", (long long)process_id);
    const char *p[1] = { pid };
    PGresult *res = PQexecPrepared(conn, "web_rollup", 1, p, NULL, NULL, 0);
    bool yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
               strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return yes;
}

static void json_series(FILE *f, const qparam_t *p, const ds_t *d, size_t samples)
{
    size_t n, ns;
    const ds_point_t *pt = ds_points(d, &n);
    const ds_span_t *sp = ds_spans(d, &ns);
    fprintf(f, "{\"id\": %d, \"name\": ", p->id);
    qtext_json_str(f, p->name);
    fputs(", \"units\": ", f);
    qtext_json_str(f, p->units);
    fprintf(f, ", \"samples\": %zu, \"t\": [", samples);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        jts(f, pt[i].t);
    }
    fputs("], \"v\": [", f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        jnum(f, pt[i].v);
    }
    fputs("], \"breaks\": [", f);
    bool first = true;
    for (size_t i = 1; i < n; i++)
        if (pt[i].move) {
            fprintf(f, "%s%zu", first ? "" : ",", i);
            first = false;
        }
    fputs("], \"spans\": [", f);
    for (size_t i = 0; i < ns; i++) {
        fputs(i ? ", [" : "[", f);
        jts(f, sp[i].from);
        fputc(',', f);
        jts(f, sp[i].to);
        fprintf(f, ", \"%s\"]", sp[i].kind == DS_BAD_QUALITY ? "bad" : "none");
    }
    fputs("]}", f);
}

static int api_series(PGconn *conn, webapi_arg_fn arg, void *ctx, webapi_reply_t *r)
{
    const char *w = arg(ctx, "width");
    long long width = 1000;
    if (w && qtext_int(w, 50, MAX_WIDTH, &width) < 0)
        return fail(r, 400, "width: expected 50..%d pixels, got \"%s\"", MAX_WIDTH, w);
    if (!arg(ctx, "param"))
        return fail(r, 400, "param: required (component.parameter[,...])");
    qsel_t s;
    bool done;
    int rc = resolve(conn, arg, ctx, &s, r, &done);
    if (done)
        return rc;
    int64_t t0 = s.from_us != INT64_MIN ? s.from_us : s.started_us;
    int64_t t1 = s.to_us != INT64_MAX ? s.to_us : s.ended_us ? s.ended_us : clock_real_us();
    if (t1 <= t0)
        t1 = t0 + 1000000;
    /* The whole run drawn with columns of 2 buckets or more: the rollup
     * rows (a tenth of the samples or fewer) hold every column's extremes,
     * each with its time. A window, a short run or one recorded before
     * the rollup reads the samples. */
    bool rollup = s.from_us == INT64_MIN && s.to_us == INT64_MAX &&
                  (t1 - t0) / width >= 2 * ROLLUP_BUCKET_US && run_has_rollup(conn, s.process_id);
    struct series_ctx c = { .s = &s, .ds = calloc(s.nparams, sizeof(ds_t *)),
                            .samples = calloc(s.nparams, sizeof(size_t)), .param = -1 };
    char err[1024] = "";
    rc = -1;
    struct out o = { 0 };
    if (!c.ds || !c.samples)
        goto out;
    /* Columns of 2 buckets or more are whole buckets, aligned as the
     * buckets are: each column's first, lowest, highest and last sample is
     * then one of its buckets', and the rollup draws exactly what the
     * samples draw. At most `width` columns still. */
    int64_t g0 = t0, g1 = t1;
    int columns = (int)width;
    if ((t1 - t0) / width >= 2 * ROLLUP_BUCKET_US) {
        const int64_t b = ROLLUP_BUCKET_US;
        int64_t col = ((t1 - t0 + width - 1) / width + b - 1) / b * b;
        g0 = (t0 >= 0 ? t0 / b : (t0 - b + 1) / b) * b;
        columns = (int)((t1 - g0 + col - 1) / col);
        g1 = g0 + columns * col;
    }
    for (size_t k = 0; k < s.nparams; k++) {
        /* rollup points of one bucket may be a bucket apart */
        int64_t gap = (int64_t)s.params[k].expected_ms * 2500;
        if (rollup && gap < 2 * ROLLUP_BUCKET_US)
            gap = 2 * ROLLUP_BUCKET_US;
        if (!(c.ds[k] = ds_new(g0, g1, columns, gap)))
            goto out;
    }
    char pid[24], ids[4096], from[48], to[48];
    snprintf(pid, sizeof pid, "%lld", (long long)s.process_id);
    snprintf(from, sizeof from, "%lld", (long long)t0);
    snprintf(to, sizeof to, "%lld", (long long)t1);
    const char *p[4] = { pid, qsel_ids_text(&s, ids, sizeof ids), from, to };
    int qrc = rollup
        ? qdb_stream(conn, ROLLUP_SQL, 2, p, CHUNK, on_rollup, &c, err, sizeof err)
        : qdb_stream(conn,
            "SELECT parameter_id, ts, value, quality FROM process_data_points"
            " WHERE process_id = $1 AND parameter_id = ANY ($2::int[])"
            " AND ts >= to_timestamp($3::float8 / 1e6) AND ts < to_timestamp($4::float8 / 1e6)"
            " ORDER BY parameter_id, ts",
            4, p, CHUNK, on_sample, &c, err, sizeof err);
    if (qrc == 0 && rollup && rollup_flush(&c) < 0) {
        snprintf(err, sizeof err, "out of memory");
        qrc = -1;
    }
    if (qrc < 0) {
        rc = db_fail(r, conn, "reading samples", err);
        goto out;
    }
    for (size_t k = 0; k < s.nparams; k++)
        if (ds_finish(c.ds[k]) < 0)
            goto out;
    if (out_open(&o) < 0)
        goto out;
    fputs("{\"from\": ", o.f);
    jts(o.f, t0);
    fputs(", \"to\": ", o.f);
    jts(o.f, t1);
    fprintf(o.f, ", \"width\": %lld, \"source\": \"%s\", \"series\": [", width,
            rollup ? "rollup" : "samples");
    for (size_t k = 0; k < s.nparams; k++) {
        if (k)
            fputs(", ", o.f);
        json_series(o.f, &s.params[k], c.ds[k], c.samples[k]);
    }
    fputs("]}\n", o.f);
    rc = out_close(&o, r, 200, "application/json");
out:
    for (size_t k = 0; c.ds && k < s.nparams; k++)
        ds_free(c.ds[k]);
    free(c.ds);
    free(c.samples);
    free(c.pts);
    qsel_clear(&s);
    return rc;
}

/* ---- /api/compare ------------------------------------------------------- */

/* "A,B,C" → ids (at most max). Returns the count, or -1. */
static int parse_ids(const char *s, long long *ids, int max)
{
    int n = 0;
    char buf[512];
    if (!s || strlen(s) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max || qtext_int(t, 1, INT64_MAX, &ids[n]) < 0)
            return -1;
        n++;
    }
    return n;
}

static int write_ids(char *buf, size_t len, const long long *ids, int n)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "{");
    for (int i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", ids[i]);
    if (o < len)
        o += (size_t)snprintf(buf + o, len - o, "}");
    return o < len ? 0 : -1;
}

static int rows_json(PGconn *conn, const char *stmt, int np, const char *const *p, FILE *f,
                     webapi_reply_t *r, bool *failed)
{
    PGresult *res = PQexecPrepared(conn, stmt, np, p, NULL, NULL, 0);
    *failed = false;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(res);
        *failed = true;
        if (strstr(msg, "has no step"))
            return fail(r, 404, "step: %s", strstr(msg, "process"));
        return db_fail(r, conn, "comparing runs", msg);
    }
    fputs(PQgetvalue(res, 0, 0), f);
    PQclear(res);
    return 0;
}

static int api_compare(PGconn *conn, webapi_arg_fn arg, void *ctx, webapi_reply_t *r)
{
    long long runs[WEBAPI_MAX_SERIES], refs[WEBAPI_MAX_SERIES], step = 0, param = 0;
    const char *rs = arg(ctx, "runs"), *st = arg(ctx, "step"), *ks = arg(ctx, "k");
    const char *bs = arg(ctx, "bucket"), *pn = arg(ctx, "param");
    int nr = parse_ids(rs, runs, WEBAPI_MAX_SERIES);
    if (nr < 2)
        return fail(r, 400, "runs: expected 2..%d run ids separated by commas, got \"%s\"",
                    WEBAPI_MAX_SERIES, rs ? rs : "");
    int nf = arg(ctx, "refs") ? parse_ids(arg(ctx, "refs"), refs, WEBAPI_MAX_SERIES) : nr;
    if (nf < 1)
        return fail(r, 400, "refs: expected run ids separated by commas");
    if (!arg(ctx, "refs"))
        memcpy(refs, runs, sizeof refs);
    if (st && qtext_int(st, 0, 1000000, &step) < 0)
        return fail(r, 400, "step: expected a step number, got \"%s\"", st);
    double k = 3, bucket = 1;
    char *end;
    if (ks && (k = strtod(ks, &end), *end || end == ks || !(k > 0 && k <= 10)))
        return fail(r, 400, "k: expected a number in (0, 10], got \"%s\"", ks);
    if (bs && (bucket = strtod(bs, &end), *end || end == bs || !(bucket >= 0.01 && bucket <= 3600)))
        return fail(r, 400, "bucket: expected seconds in [0.01, 3600], got \"%s\"", bs);
    if (!pn)
        return fail(r, 400, "param: required (one component.parameter)");
    /* The parameter by name, through the first run's machine. */
    qsel_t s;
    char first[24];
    snprintf(first, sizeof first, "%lld", runs[0]);
    qsel_args_t a = { .process = first, .params = pn };
    char err[1024];
    qsel_status_t qs = qsel_resolve(conn, &a, &s, err, sizeof err);
    if (qs != QSEL_OK)
        return qsel_fail(r, conn, qs, err);
    if (s.nparams != 1) {
        qsel_clear(&s);
        return fail(r, 400, "param: compare takes one parameter");
    }
    param = s.params[0].id;
    struct out o;
    if (out_open(&o) < 0) {
        qsel_clear(&s);
        return -1;
    }
    /* Every run must have run the same recipe. */
    char ids[512], rids[512], pb[24], sb[24], kb[32], bb[48];
    if (write_ids(ids, sizeof ids, runs, nr) < 0 || write_ids(rids, sizeof rids, refs, nf) < 0) {
        qsel_clear(&s);
        fclose(o.f);
        free(o.buf);
        return fail(r, 400, "runs: too long");
    }
    snprintf(pb, sizeof pb, "%lld", param);
    snprintf(sb, sizeof sb, "%lld", step);
    snprintf(kb, sizeof kb, "%.17g", k);
    snprintf(bb, sizeof bb, "%.6f seconds", bucket);
    const char *sp = st ? sb : NULL;
    fprintf(o.f, "{\"param\": ");
    json_params(o.f, &s);
    qsel_clear(&s);
    fprintf(o.f, ", \"step\": %s, \"k\": %s, \"bucket_s\": %.6f, \"runs\": ", st ? sb : "null", kb, bucket);
    bool failed;
    const char *p1[1] = { ids };
    int rc = rows_json(conn, "web_compare_runs", 1, p1, o.f, r, &failed);
    if (failed)
        goto out;
    fputs(", \"traces\": ", o.f);
    const char *p2[4] = { ids, sp, pb, bb };
    rc = rows_json(conn, "web_traces", 4, p2, o.f, r, &failed);
    if (failed)
        goto out;
    fputs(", \"envelope\": ", o.f);
    const char *p3[5] = { rids, sp, pb, bb, kb };
    rc = rows_json(conn, "web_envelope", 5, p3, o.f, r, &failed);
    if (failed)
        goto out;
    fputs("}\n", o.f);
    return out_close(&o, r, 200, "application/json");
out:
    fclose(o.f);
    free(o.buf);
    return rc;
}

/* ---- /api/export.csv ---------------------------------------------------- */

static int api_export(PGconn *conn, webapi_arg_fn arg, void *ctx, webapi_reply_t *r)
{
    qsel_t s;
    bool done;
    int rc = resolve(conn, arg, ctx, &s, r, &done);
    if (done)
        return rc;
    struct out o;
    if (out_open(&o) < 0) {
        qsel_clear(&s);
        return -1;
    }
    export_opts_t eo = { .format = EXPORT_CSV, .layout = EXPORT_LONG };
    const char *lay = arg(ctx, "layout");
    if (lay && strcmp(lay, "wide") == 0)
        eo.layout = EXPORT_WIDE;
    else if (lay && strcmp(lay, "long") != 0) {
        qsel_clear(&s);
        fclose(o.f);
        free(o.buf);
        return fail(r, 400, "layout: expected wide or long, got \"%s\"", lay);
    }
    char err[1024];
    if (export_run(conn, &s, &eo, o.f, err, sizeof err) < 0) {
        qsel_clear(&s);
        fclose(o.f);
        free(o.buf);
        return db_fail(r, conn, "exporting", err);
    }
    qsel_clear(&s);
    return out_close(&o, r, 200, "text/csv; charset=utf-8");
}

/* ---- routing ------------------------------------------------------------ */

static const struct {
    const char *stmt, *sql;
} prepared[] = {
    { "web_runs", RUNS_SQL },
    { "web_setpoints", SETPOINTS_SQL },
    { "web_rollup", "SELECT rollup FROM processes WHERE id = $1" },
    { "web_compare_runs",
      "SELECT json_agg(json_build_object('run', p.id, 'recipe', p.recipe, 'lot', p.lot,"
      " 'started', extract(epoch FROM p.started_at)::float8) ORDER BY u.ord)::text"
      " FROM unnest($1::bigint[]) WITH ORDINALITY u(id, ord) JOIN processes p ON p.id = u.id" },
    { "web_traces",
      "SELECT json_agg(json_build_object('run', u.id, 'offset_s',"
      " (SELECT coalesce(json_agg(a.offset_s ORDER BY a.offset_s), '[]') FROM aligned_series(u.id, $2::int, $3::int, $4::interval) a),"
      " 'mean', (SELECT coalesce(json_agg(a.mean ORDER BY a.offset_s), '[]') FROM aligned_series(u.id, $2::int, $3::int, $4::interval) a))"
      " ORDER BY u.ord)::text FROM unnest($1::bigint[]) WITH ORDINALITY u(id, ord)" },
    { "web_envelope",
      "SELECT json_build_object('offset_s', coalesce(json_agg(e.offset_s ORDER BY e.offset_s), '[]'),"
      " 'lo', coalesce(json_agg(e.lo ORDER BY e.offset_s), '[]'),"
      " 'mean', coalesce(json_agg(e.mean ORDER BY e.offset_s), '[]'),"
      " 'hi', coalesce(json_agg(e.hi ORDER BY e.offset_s), '[]'))::text"
      " FROM run_envelope($1::bigint[], $2::int, $3::int, $4::interval, $5::float8) e" },
};

int webapi_prepare(PGconn *conn, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof prepared / sizeof prepared[0]; i++) {
        PGresult *res = PQprepare(conn, prepared[i].stmt, prepared[i].sql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "preparing %s: %s", prepared[i].stmt, PQresultErrorMessage(res));
            err[strcspn(err, "\n")] = '\0';
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

int webapi_handle(PGconn *conn, const char *path, webapi_arg_fn arg, void *ctx,
                  webapi_reply_t *r)
{
    static const struct {
        const char *path;
        int (*fn)(PGconn *, webapi_arg_fn, void *, webapi_reply_t *);
    } routes[] = {
        { "/api/runs", api_runs }, { "/api/run", api_run }, { "/api/series", api_series },
        { "/api/compare", api_compare }, { "/api/export.csv", api_export },
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(path, routes[i].path) == 0)
            return routes[i].fn(conn, arg, ctx, r);
    return fail(r, 404, "path: no such endpoint %s", path);
}
