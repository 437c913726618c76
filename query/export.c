/* export.c — streaming CSV/JSON export; see export.h. */
#include "query/export.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "query/qdb.h"
#include "query/qtext.h"
#include "common/utc.h"

/* Rows per FETCH: big enough to amortise the round trip, small enough that
 * a chunk stays a few MiB. */
#define CHUNK 20000

/* Per-parameter cells of the current wide row. */
struct cell {
    bool has;
    bool null;
    double v[3];               /* value, or min/mean/max */
};

struct writer {
    const qsel_t *s;
    const export_opts_t *o;
    FILE *out;
    bool first_row;
    int64_t cur_ts;            /* wide: timestamp of the row being built */
    bool pending;
    struct cell *cells;
};

static void put_num(struct writer *w, bool null, double v)
{
    char b[40];
    if (w->o->format == EXPORT_JSON)
        null ? fputs("null", w->out) : qtext_json_num(w->out, v);
    else if (!null)
        fputs(qtext_num(v, b, sizeof b), w->out);
}

static void put_int(struct writer *w, long long v)
{
    fprintf(w->out, "%lld", v);
}

static void put_str(struct writer *w, const char *str)
{
    if (w->o->format == EXPORT_JSON)
        qtext_json_str(w->out, str);
    else
        qtext_csv_str(w->out, str);
}

static void sep(struct writer *w)
{
    fputc(',', w->out);
}

static void row_begin(struct writer *w, int64_t ts)
{
    char b[40];
    if (w->o->format == EXPORT_JSON) {
        fputs(w->first_row ? "\n[" : ",\n[", w->out);
        put_str(w, utc_format(ts, UTC_ISO_US, b, sizeof b));
    } else {
        fputs(utc_format(ts, UTC_ISO_US, b, sizeof b), w->out);
    }
    w->first_row = false;
}

static void row_end(struct writer *w)
{
    fputs(w->o->format == EXPORT_JSON ? "]" : "\n", w->out);
}

static const char *const agg_names[3] = { "min", "mean", "max" };

static void header(struct writer *w)
{
    const qsel_t *s = w->s;
    bool json = w->o->format == EXPORT_JSON;
    bool buckets = w->o->every_us > 0;
    char name[256];

    if (json) {
        char b[40];
        if (s->process_id)
            fprintf(w->out, "{\"process\":%lld,\"machine\":", (long long)s->process_id);
        else
            fputs("{\"process\":null,\"machine\":", w->out);
        qtext_json_str(w->out, s->machine);
        fputs(",\"recipe\":", w->out);
        qtext_json_str(w->out, s->recipe);
        fputs(",\"lot\":", w->out);
        qtext_json_str(w->out, s->lot);
        if (s->step)
            fprintf(w->out, ",\"step\":%d", s->step->no);
        if (buckets)
            fprintf(w->out, ",\"every_s\":%s", qtext_num(w->o->every_us / 1e6, b, sizeof b));
        fprintf(w->out, ",\"layout\":\"%s\",\"parameters\":[",
                w->o->layout == EXPORT_WIDE ? "wide" : "long");
        for (size_t i = 0; i < s->nparams; i++) {
            fputs(i ? ",{\"name\":" : "{\"name\":", w->out);
            qtext_json_str(w->out, s->params[i].name);
            fputs(",\"units\":", w->out);
            qtext_json_str(w->out, s->params[i].units);
            fputs("}", w->out);
        }
        fputs("],\"columns\":[\"ts\"", w->out);
    } else {
        fputs("ts", w->out);
    }
    if (w->o->layout == EXPORT_LONG) {
        fputs(json ? ",\"parameter\",\"units\"" : ",parameter,units", w->out);
        if (buckets)
            fputs(json ? ",\"samples\",\"min\",\"mean\",\"max\",\"bad_quality\""
                       : ",samples,min,mean,max,bad_quality", w->out);
        else
            fputs(json ? ",\"value\",\"quality\"" : ",value,quality", w->out);
    } else {
        for (size_t i = 0; i < s->nparams; i++) {
            const qparam_t *p = &s->params[i];
            for (int k = 0; k < (buckets ? 3 : 1); k++) {
                /* JSON keeps units in "parameters"; CSV has only the header. */
                snprintf(name, sizeof name, "%s%s%s%s%s%s", p->name, buckets ? " " : "",
                         buckets ? agg_names[k] : "", !json && p->units[0] ? " [" : "",
                         json ? "" : p->units, !json && p->units[0] ? "]" : "");
                sep(w);
                put_str(w, name);
            }
        }
    }
    fputs(json ? "],\"rows\":[" : "\n", w->out);
}

static void flush_wide(struct writer *w)
{
    int nv = w->o->every_us > 0 ? 3 : 1;
    if (!w->pending)
        return;
    row_begin(w, w->cur_ts);
    for (size_t i = 0; i < w->s->nparams; i++) {
        struct cell *c = &w->cells[i];
        for (int k = 0; k < nv; k++) {
            sep(w);
            put_num(w, !c->has || c->null, c->v[k]);
        }
        c->has = false;
    }
    row_end(w);
    w->pending = false;
}

/* Long layout: "ts,parameter,units," — the rest is the caller's. */
static void long_begin(struct writer *w, int64_t ts, int pi)
{
    row_begin(w, ts);
    sep(w);
    put_str(w, w->s->params[pi].name);
    sep(w);
    put_str(w, w->s->params[pi].units);
    sep(w);
}

/* Wide layout: the cells of parameter pi at ts; a new ts ends the row. */
static void wide_put(struct writer *w, int64_t ts, int pi, struct cell c)
{
    if (w->pending && ts != w->cur_ts)
        flush_wide(w);
    w->cur_ts = ts;
    w->pending = true;
    w->cells[pi] = c;
}

/* Raw rows: parameter_id, ts, value, quality. */
static int on_sample(void *arg, const PGresult *r, int row, char *err, size_t errlen)
{
    struct writer *w = arg;
    int pi = qsel_param_index(w->s, qdb_int4(r, row, 0));
    int64_t ts = qdb_ts(r, row, 1);
    bool null = qdb_null(r, row, 2);
    double v = null ? 0 : qdb_float8(r, row, 2);
    (void)err;
    (void)errlen;
    if (pi < 0)
        return 0;
    if (w->o->layout == EXPORT_LONG) {
        long_begin(w, ts, pi);
        put_num(w, null, v);
        sep(w);
        put_int(w, qdb_int2(r, row, 3));
        row_end(w);
    } else {
        wide_put(w, ts, pi, (struct cell){ .has = true, .null = null, .v = { v } });
    }
    return 0;
}

/* Buckets: parameter_id, bucket_start, samples, min, mean, max, bad_quality. */
static int on_bucket(void *arg, const PGresult *r, int row, char *err, size_t errlen)
{
    struct writer *w = arg;
    int pi = qsel_param_index(w->s, qdb_int4(r, row, 0));
    int64_t ts = qdb_ts(r, row, 1);
    bool null = qdb_null(r, row, 3);   /* no good value in the bucket */
    double v[3] = { 0, 0, 0 };
    (void)err;
    (void)errlen;
    if (pi < 0)
        return 0;
    for (int k = 0; k < 3 && !null; k++)
        v[k] = qdb_float8(r, row, 3 + k);
    if (w->o->layout == EXPORT_LONG) {
        long_begin(w, ts, pi);
        put_int(w, qdb_int8(r, row, 2));
        for (int k = 0; k < 3; k++) {
            sep(w);
            put_num(w, null, v[k]);
        }
        sep(w);
        put_int(w, qdb_int8(r, row, 6));
        row_end(w);
    } else {
        wide_put(w, ts, pi, (struct cell){ .has = true, .null = null, .v = { v[0], v[1], v[2] } });
    }
    return 0;
}

int export_run(PGconn *conn, const qsel_t *s, const export_opts_t *o, FILE *out,
               char *err, size_t errlen)
{
    char pid[24], ids[4096], from[48], to[48], every[48];
    struct writer w = { .s = s, .o = o, .out = out, .first_row = true };
    bool wide = o->layout == EXPORT_WIDE;
    int rc;

    w.cells = calloc(s->nparams + 1, sizeof *w.cells);
    if (!w.cells) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    qsel_ids_text(s, ids, sizeof ids);
    qsel_from_text(s, from, sizeof from);
    qsel_to_text(s, to, sizeof to);
    snprintf(every, sizeof every, "%lld microseconds", (long long)o->every_us);
    const char *params[5] = { qsel_key_text(s, pid, sizeof pid), ids, from, to, every };

    header(&w);
    /* Long: parameter by parameter, in index order (nothing to sort).
     * Wide: in time order across the parameters. */
    char sql[512];
    if (o->every_us > 0) {
        snprintf(sql, sizeof sql, "SELECT * FROM %s($1, $2::int[], $5::interval, $3, $4) ORDER BY %s",
                 qsel_bucketed_fn(s), wide ? "bucket_start, parameter_id" : "parameter_id, bucket_start");
        rc = qdb_stream(conn, sql, 5, params, CHUNK, on_bucket, &w, err, errlen);
    } else {
        snprintf(sql, sizeof sql, "SELECT parameter_id, ts, value, quality FROM %s"
                 " AND ts >= $3::timestamptz AND ts < $4::timestamptz ORDER BY %s",
                 qsel_rows_sql(s), wide ? "ts, parameter_id" : "parameter_id, ts");
        rc = qdb_stream(conn, sql, 4, params, CHUNK, on_sample, &w, err, errlen);
    }
    if (rc == 0) {
        flush_wide(&w);
        if (o->format == EXPORT_JSON)
            fputs("\n]}\n", out);
        if (fflush(out) != 0 || ferror(out)) {
            snprintf(err, errlen, "writing the export: %s", strerror(errno));
            rc = -1;
        }
    }
    free(w.cells);
    return rc;
}
