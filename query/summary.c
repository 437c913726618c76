/* summary.c — per-parameter, per-step statistics as a table or JSON; the
 * numbers come from SQL function process_summary(), so psql users and this
 * command always agree. */
#include "query/summary.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "query/qdb.h"
#include "query/qtext.h"
#include "common/utc.h"

enum col {
    C_STEP, C_STEP_NAME, C_PARAM_ID, C_PARAM, C_UNITS, C_SAMPLES, C_MIN, C_MAX, C_MEAN,
    C_STDDEV, C_BAD, C_OUTSIDE_S, C_GAPS, C_GAP_S, C_MIN_LIMIT, C_MAX_LIMIT,
};

static const qstep_t *find_step(const qsel_t *s, const char *no)
{
    for (size_t i = 0; i < s->nsteps; i++)
        if (s->steps[i].no == atoi(no))
            return &s->steps[i];
    return NULL;
}

static void section_title(const qsel_t *s, const qstep_t *st, FILE *out)
{
    char a[40], b[40], d[40];
    if (!st) {
        int64_t end = s->ended_us ? s->ended_us : 0;
        fprintf(out, "whole run  %s", utc_format(s->started_us, UTC_ISO_MS, a, sizeof a));
        if (end)
            fprintf(out, " .. %s (%s)", utc_format(end, UTC_ISO_MS, b, sizeof b),
                    qtext_human_s((end - s->started_us) / 1e6, d, sizeof d));
        fputs(end ? "\n" : " .. (running)\n", out);
        return;
    }
    fprintf(out, "step %d %s  %s", st->no, st->name, utc_format(st->start_us, UTC_ISO_MS, a, sizeof a));
    if (st->end_us != INT64_MAX)
        fprintf(out, " .. %s (%s)\n", utc_format(st->end_us, UTC_ISO_MS, b, sizeof b),
                qtext_human_s((st->end_us - st->start_us) / 1e6, d, sizeof d));
    else
        fputs(" .. (running)\n", out);
}

static const char *num6(const PGresult *r, int row, int col, char *b, size_t len)
{
    if (PQgetisnull(r, row, col))
        return "-";
    snprintf(b, len, "%.6g", strtod(PQgetvalue(r, row, col), NULL));
    return b;
}

static void table_rows(const PGresult *r, int lo, int hi, FILE *out)
{
    int w = 9;
    for (int i = lo; i < hi; i++) {
        int l = (int)strlen(PQgetvalue(r, i, C_PARAM));
        w = l > w ? l : w;
    }
    fprintf(out, "  %-*s %-6s %8s %11s %11s %11s %10s %5s %10s %5s\n", w, "parameter", "units",
            "samples", "min", "max", "mean", "stddev", "bad", "outside_s", "gaps");
    for (int i = lo; i < hi; i++) {
        char b[5][32];
        fprintf(out, "  %-*s %-6s %8s %11s %11s %11s %10s %5s %10s %5s\n", w,
                PQgetvalue(r, i, C_PARAM), PQgetvalue(r, i, C_UNITS),
                PQgetvalue(r, i, C_SAMPLES), num6(r, i, C_MIN, b[0], 32),
                num6(r, i, C_MAX, b[1], 32), num6(r, i, C_MEAN, b[2], 32),
                num6(r, i, C_STDDEV, b[3], 32), PQgetvalue(r, i, C_BAD),
                num6(r, i, C_OUTSIDE_S, b[4], 32), PQgetvalue(r, i, C_GAPS));
    }
}

static void json_num(const PGresult *r, int row, int col, FILE *out)
{
    if (PQgetisnull(r, row, col))
        fputs("null", out);
    else
        qtext_json_num(out, strtod(PQgetvalue(r, row, col), NULL));
}

static void json_params(const PGresult *r, int lo, int hi, FILE *out)
{
    static const struct { const char *key; enum col col; } nums[] = {
        { "samples", C_SAMPLES }, { "min", C_MIN }, { "max", C_MAX }, { "mean", C_MEAN },
        { "stddev", C_STDDEV }, { "bad_quality", C_BAD }, { "outside_s", C_OUTSIDE_S },
        { "gaps", C_GAPS }, { "gap_s", C_GAP_S }, { "min_limit", C_MIN_LIMIT },
        { "max_limit", C_MAX_LIMIT },
    };
    fputs("\"parameters\":[", out);
    for (int i = lo; i < hi; i++) {
        fputs(i > lo ? ",\n  {\"name\":" : "\n  {\"name\":", out);
        qtext_json_str(out, PQgetvalue(r, i, C_PARAM));
        fputs(",\"units\":", out);
        qtext_json_str(out, PQgetvalue(r, i, C_UNITS));
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
            fprintf(out, ",\"%s\":", nums[k].key);
            json_num(r, i, nums[k].col, out);
        }
        fputs("}", out);
    }
    fputs("]", out);
}

static void json_step(const qstep_t *st, FILE *out)
{
    char b[40];
    fprintf(out, "\"step\":%d,\"name\":", st->no);
    qtext_json_str(out, st->name);
    fprintf(out, ",\"started_at\":\"%s\",\"ended_at\":", utc_format(st->start_us, UTC_ISO_US, b, sizeof b));
    if (st->end_us == INT64_MAX)
        fputs("null,", out);
    else
        fprintf(out, "\"%s\",", utc_format(st->end_us, UTC_ISO_US, b, sizeof b));
}

int summary_run(PGconn *conn, const qsel_t *s, summary_format_t fmt, FILE *out,
                char *err, size_t errlen)
{
    char pid[24], step[16], ids[4096], b[40], from[48], to[48];
    snprintf(pid, sizeof pid, "%lld", (long long)s->process_id);
    snprintf(step, sizeof step, "%d", s->step ? s->step->no : 0);
    qsel_from_text(s, from, sizeof from);
    qsel_to_text(s, to, sizeof to);
    const char *params[5] = { pid, s->step ? step : NULL, qsel_ids_text(s, ids, sizeof ids), from, to };
    /* The window only narrows where to look (partitions pruned while
     * planning); the step still decides which rows count. */
    PGresult *r = qdb_query(conn,
        "SELECT step_no, step_name, parameter_id, parameter, units, samples, min, max, mean,"
        " stddev, bad_quality, outside_s, gaps, gap_s, min_limit, max_limit"
        " FROM process_summary($1, $2::int, $3::int[], $4::timestamptz, $5::timestamptz)",
        5, params, err, errlen, NULL);
    if (!r)
        return -1;
    int n = PQntuples(r);
    bool json = fmt == SUMMARY_JSON;

    if (json) {
        fprintf(out, "{\"process\":%lld,\"machine\":", (long long)s->process_id);
        qtext_json_str(out, s->machine);
        fputs(",\"recipe\":", out);
        qtext_json_str(out, s->recipe);
        fputs(",\"lot\":", out);
        qtext_json_str(out, s->lot);
        fprintf(out, ",\"status\":\"%s\",\"started_at\":\"%s\"", s->status,
                utc_format(s->started_us, UTC_ISO_US, b, sizeof b));
        if (s->ended_us)
            fprintf(out, ",\"ended_at\":\"%s\"", utc_format(s->ended_us, UTC_ISO_US, b, sizeof b));
        else
            fputs(",\"ended_at\":null", out);
    } else {
        char d[40];
        fprintf(out, "process %lld  machine %s  recipe %s  lot %s  %s", (long long)s->process_id,
                s->machine, s->recipe, s->lot[0] ? s->lot : "-", s->status);
        if (s->ended_us)
            fprintf(out, "  %s", qtext_human_s((s->ended_us - s->started_us) / 1e6, d, sizeof d));
        fputs("\n", out);
    }
    /* Rows come ordered by step (the run's rows, step NULL, first), then
     * parameter name. */
    int i = 0;
    bool first_step = true;
    if (!s->step) {
        int hi = i;
        while (hi < n && PQgetisnull(r, hi, C_STEP))
            hi++;
        if (json) {
            fputs(",\n\"run\":{", out);
            json_params(r, i, hi, out);
            fputs("}", out);
        } else {
            fputs("\n", out);
            section_title(s, NULL, out);
            table_rows(r, i, hi, out);
        }
        i = hi;
    }
    if (json)
        fputs(",\n\"steps\":[", out);
    while (i < n) {
        int hi = i;
        while (hi < n && strcmp(PQgetvalue(r, hi, C_STEP), PQgetvalue(r, i, C_STEP)) == 0)
            hi++;
        const qstep_t *st = find_step(s, PQgetvalue(r, i, C_STEP));
        if (st && json) {
            fputs(first_step ? "\n {" : ",\n {", out);
            json_step(st, out);
            json_params(r, i, hi, out);
            fputs("}", out);
        } else if (st) {
            fputs("\n", out);
            section_title(s, st, out);
            table_rows(r, i, hi, out);
        }
        first_step = false;
        i = hi;
    }
    if (json)
        fputs("]}\n", out);
    PQclear(r);
    if (fflush(out) != 0 || ferror(out)) {
        snprintf(err, errlen, "writing the summary: %s", strerror(errno));
        return -1;
    }
    return 0;
}
