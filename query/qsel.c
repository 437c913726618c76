/* qsel.c — resolving a query's process, parameters and window; see qsel.h. */
#include "query/qsel.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/qdb.h"
#include "query/qtext.h"
#include "common/utc.h"

static qsel_status_t bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static qsel_status_t bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return QSEL_BAD_INPUT;
}

/* Text timestamptz column → Unix µs, through the server's own parser. */
#define TS_US(col) "(extract(epoch FROM " col ") * 1000000)::int8"

static qsel_status_t load_process(PGconn *conn, qsel_t *s, const char *arg, char *err, size_t errlen)
{
    long long id;
    if (!arg)
        return bad(err, errlen, "--process ID is required");
    if (qtext_int(arg, 1, INT64_MAX, &id) < 0)
        return bad(err, errlen, "--process: expected a process id (a positive integer), got \"%s\"", arg);
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[1] = { ids };
    PGresult *res = qdb_query(conn,
        "SELECT m.name, p.recipe, coalesce(p.lot, ''), p.status, " TS_US("p.started_at") ","
        " coalesce(" TS_US("p.ended_at") ", 0), p.machine_id"
        " FROM processes p JOIN machines m ON m.id = p.machine_id WHERE p.id = $1",
        1, p, err, errlen, NULL);
    if (!res)
        return QSEL_FAILED;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return bad(err, errlen, "unknown process %lld", id);
    }
    s->process_id = id;
    snprintf(s->machine, sizeof s->machine, "%s", PQgetvalue(res, 0, 0));
    snprintf(s->recipe, sizeof s->recipe, "%s", PQgetvalue(res, 0, 1));
    snprintf(s->lot, sizeof s->lot, "%s", PQgetvalue(res, 0, 2));
    snprintf(s->status, sizeof s->status, "%s", PQgetvalue(res, 0, 3));
    s->started_us = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    s->ended_us = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    s->machine_id = atoi(PQgetvalue(res, 0, 6));
    PQclear(res);

    res = qdb_query(conn,
        "SELECT " TS_US("least(min(l.first_ts), p.started_at) - interval '1 hour'") ","
        " " TS_US("greatest(max(l.last_ts), p.ended_at) + interval '1 hour'")
        " FROM processes p JOIN ingest_ledger l ON l.process_id = p.id"
        " WHERE p.id = $1 GROUP BY p.started_at, p.ended_at",
        1, p, err, errlen, NULL);
    if (!res)
        return QSEL_FAILED;
    if (PQntuples(res) == 1) {
        s->scan_from_us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        s->scan_to_us = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);

    res = qdb_query(conn,
        "SELECT step_no, name, " TS_US("started_at") ", coalesce(" TS_US("ended_at") ", -1)"
        " FROM process_step_spans WHERE process_id = $1 ORDER BY started_at, step_no",
        1, p, err, errlen, NULL);
    if (!res)
        return QSEL_FAILED;
    s->nsteps = (size_t)PQntuples(res);
    s->steps = calloc(s->nsteps + 1, sizeof *s->steps);
    if (!s->steps) {
        PQclear(res);
        snprintf(err, errlen, "out of memory");
        return QSEL_FAILED;
    }
    for (size_t i = 0; i < s->nsteps; i++) {
        qstep_t *st = &s->steps[i];
        st->no = atoi(PQgetvalue(res, (int)i, 0));
        snprintf(st->name, sizeof st->name, "%s", PQgetvalue(res, (int)i, 1));
        st->start_us = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
        st->end_us = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
        if (st->end_us < 0)
            st->end_us = INT64_MAX;
    }
    PQclear(res);
    return QSEL_OK;
}

static qsel_status_t load_params(PGconn *conn, qsel_t *s, const char *list, char *err, size_t errlen)
{
    char mid[24];
    snprintf(mid, sizeof mid, "%d", s->machine_id);
    const char *p[1] = { mid };
    PGresult *res = qdb_query(conn,
        "SELECT n.parameter_id, n.full_name, n.units, n.min_value, n.max_value,"
        " n.expected_interval_ms"
        " FROM parameter_names n WHERE n.machine_id = $1::int ORDER BY n.full_name",
        1, p, err, errlen, NULL);
    if (!res)
        return QSEL_FAILED;
    int n = PQntuples(res);
    size_t want = 0;
    if (list) {
        want = 1;
        for (const char *c = list; *c; c++)
            want += *c == ',';
    } else {
        want = (size_t)n;
    }
    s->params = calloc(want + 1, sizeof *s->params);
    if (!s->params) {
        PQclear(res);
        snprintf(err, errlen, "out of memory");
        return QSEL_FAILED;
    }
    qsel_status_t st = QSEL_OK;
    char *copy = list ? strdup(list) : NULL;
    char *save = NULL;
    char *tok = copy ? strtok_r(copy, ",", &save) : NULL;
    for (int i = 0; list ? tok != NULL : i < n; i++) {
        int row = list ? -1 : i;
        if (list) {
            for (int r = 0; r < n && row < 0; r++)
                if (strcmp(PQgetvalue(res, r, 1), tok) == 0 || strcmp(PQgetvalue(res, r, 0), tok) == 0)
                    row = r;
            if (row < 0) {
                st = bad(err, errlen, "unknown parameter \"%s\" (machine %s has %d parameters, "
                         "named component.parameter, e.g. \"%s\")", tok, s->machine, n,
                         n > 0 ? PQgetvalue(res, 0, 1) : "-");
                break;
            }
        }
        qparam_t *q = &s->params[s->nparams++];
        q->id = atoi(PQgetvalue(res, row, 0));
        snprintf(q->name, sizeof q->name, "%s", PQgetvalue(res, row, 1));
        snprintf(q->units, sizeof q->units, "%s", PQgetvalue(res, row, 2));
        q->has_min = !PQgetisnull(res, row, 3);
        q->has_max = !PQgetisnull(res, row, 4);
        q->min_limit = q->has_min ? strtod(PQgetvalue(res, row, 3), NULL) : 0;
        q->max_limit = q->has_max ? strtod(PQgetvalue(res, row, 4), NULL) : 0;
        q->expected_ms = atoi(PQgetvalue(res, row, 5));
        if (list)
            tok = strtok_r(NULL, ",", &save);
    }
    if (st == QSEL_OK && list && s->nparams == 0)
        st = bad(err, errlen, "--param: expected component.parameter[,...], got \"%s\"", list);
    free(copy);
    PQclear(res);
    return st;
}

/* --from/--to: "+DURATION" after base, or a time PostgreSQL can read. */
static qsel_status_t parse_time(PGconn *conn, const char *opt, const char *arg, int64_t base,
                                int64_t *us, char *err, size_t errlen)
{
    if (arg[0] == '+') {
        int64_t d;
        if (qtext_duration_us(arg + 1, &d) < 0)
            return bad(err, errlen, "%s: expected a time or +DURATION (e.g. +90s), got \"%s\"", opt, arg);
        *us = base + d;
        return QSEL_OK;
    }
    char state[6] = "";
    const char *p[1] = { arg };
    PGresult *res = qdb_query(conn, "SELECT " TS_US("$1::timestamptz"), 1, p, err, errlen, state);
    if (!res) {
        if (strncmp(state, "22", 2) == 0)
            return bad(err, errlen, "%s: cannot read \"%s\" as a time (e.g. 2026-11-24T08:00:00Z or +90s)",
                       opt, arg);
        return QSEL_FAILED;
    }
    *us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return QSEL_OK;
}

/* --machine NAME --from T --to T: the machine's window, no process. */
static qsel_status_t resolve_machine(PGconn *conn, const qsel_args_t *a, qsel_t *s, char *err,
                                     size_t errlen)
{
    if (a->process || a->step || a->before)
        return bad(err, errlen, "--machine: not with %s (a machine window is not a process's)",
                   a->process ? "--process" : a->step ? "--step" : "--before");
    if (!a->from || !a->to)
        return bad(err, errlen, "--machine %s needs --from and --to", a->machine);
    if (a->from[0] == '+' || a->to[0] == '+')
        return bad(err, errlen, "--machine: --from and --to must be times (e.g. "
                   "2026-11-24T08:00:00Z), not +DURATION");
    const char *p[1] = { a->machine };
    PGresult *res = qdb_query(conn, "SELECT id, name FROM machines WHERE name = $1", 1, p, err,
                              errlen, NULL);
    if (!res)
        return QSEL_FAILED;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return bad(err, errlen, "unknown machine \"%s\"", a->machine);
    }
    s->machine_id = atoi(PQgetvalue(res, 0, 0));
    snprintf(s->machine, sizeof s->machine, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    s->machine_window = true;
    qsel_status_t st = parse_time(conn, "--from", a->from, 0, &s->from_us, err, errlen);
    if (st == QSEL_OK)
        st = parse_time(conn, "--to", a->to, 0, &s->to_us, err, errlen);
    if (st != QSEL_OK)
        return st;
    if (s->from_us >= s->to_us)
        return bad(err, errlen, "--from %s is not before --to %s", a->from, a->to);
    if ((st = load_params(conn, s, a->params, err, errlen)) != QSEL_OK)
        return st;
    s->scan_from_us = s->from_us;
    s->scan_to_us = s->to_us;
    return QSEL_OK;
}

qsel_status_t qsel_resolve(PGconn *conn, const qsel_args_t *a, qsel_t *s, char *err, size_t errlen)
{
    qsel_status_t st;
    *s = (qsel_t){ .from_us = INT64_MIN, .to_us = INT64_MAX,
                   .scan_from_us = INT64_MIN, .scan_to_us = INT64_MAX };

    if (a->machine) {
        if ((st = resolve_machine(conn, a, s, err, errlen)) != QSEL_OK)
            goto fail;
        return QSEL_OK;
    }
    if ((st = load_process(conn, s, a->process, err, errlen)) != QSEL_OK)
        goto fail;
    if (a->before) {
        int64_t d;
        if (a->step || a->from) {
            st = bad(err, errlen, "--before: not with %s", a->step ? "--step" : "--from");
            goto fail;
        }
        if (qtext_duration_us(a->before, &d) < 0 || d <= 0) {
            st = bad(err, errlen, "--before: expected a duration such as 30m, got \"%s\"", a->before);
            goto fail;
        }
        /* from the time before the start to the end (or, while it runs, now) */
        s->machine_window = true;
        s->from_us = s->started_us - d;
        if (s->ended_us && !a->to)
            s->to_us = s->ended_us + 1;
    }
    if (a->step) {
        long long no;
        if (qtext_int(a->step, 0, INT32_MAX, &no) < 0) {
            st = bad(err, errlen, "--step: expected a step number, got \"%s\"", a->step);
            goto fail;
        }
        for (size_t i = 0; i < s->nsteps; i++)
            if (s->steps[i].no == no)
                s->step = &s->steps[i];
        if (!s->step) {
            char list[256] = "";
            for (size_t i = 0; i < s->nsteps && strlen(list) < 200; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d",
                         i ? ", " : "", s->steps[i].no);
            st = bad(err, errlen, "process %lld has no step %lld (%s%s)", (long long)s->process_id,
                     no, s->nsteps ? "its steps: " : "it has no steps", list);
            goto fail;
        }
        s->from_us = s->step->start_us;
        s->to_us = s->step->end_us;
    }
    int64_t base = s->step ? s->step->start_us : s->started_us;
    int64_t from = INT64_MIN, to = INT64_MAX;
    if (a->from && (st = parse_time(conn, "--from", a->from, base, &from, err, errlen)) != QSEL_OK)
        goto fail;
    if (a->to && (st = parse_time(conn, "--to", a->to, base, &to, err, errlen)) != QSEL_OK)
        goto fail;
    if (a->from && a->to && from >= to) {
        st = bad(err, errlen, "--from %s is not before --to %s", a->from, a->to);
        goto fail;
    }
    if (from > s->from_us)
        s->from_us = from;
    if (to < s->to_us)
        s->to_us = to;
    if (s->from_us >= s->to_us) {
        st = bad(err, errlen, "the time range %s%s%s lies outside step %d", a->from ? a->from : "",
                 a->from && a->to ? " .. " : "", a->to ? a->to : "", s->step ? s->step->no : 0);
        goto fail;
    }
    if ((st = load_params(conn, s, a->params, err, errlen)) != QSEL_OK)
        goto fail;
    if (s->from_us != INT64_MIN || s->to_us != INT64_MAX) {
        s->scan_from_us = s->from_us;
        s->scan_to_us = s->to_us;
    }
    return QSEL_OK;
fail:
    qsel_clear(s);
    return st;
}

void qsel_clear(qsel_t *s)
{
    free(s->steps);
    free(s->params);
    *s = (qsel_t){ 0 };
}

static void bound_text(int64_t us, const char *open, char *buf, size_t len)
{
    if (us == INT64_MIN || us == INT64_MAX)
        snprintf(buf, len, "%s", open);
    else
        utc_format(us, UTC_ISO_US, buf, len);
}

void qsel_from_text(const qsel_t *s, char *buf, size_t len)
{
    bound_text(s->scan_from_us, "-infinity", buf, len);
}

void qsel_to_text(const qsel_t *s, char *buf, size_t len)
{
    bound_text(s->scan_to_us, "infinity", buf, len);
}

char *qsel_ids_text(const qsel_t *s, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "{");
    for (size_t i = 0; i < s->nparams && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? "," : "", s->params[i].id);
    if (used < len)
        snprintf(buf + used, len - used, "}");
    return buf;
}

int qsel_param_index(const qsel_t *s, int id)
{
    for (size_t i = 0; i < s->nparams; i++)
        if (s->params[i].id == id)
            return (int)i;
    return -1;
}

const char *qsel_rows_sql(const qsel_t *s)
{
    return s->machine_window
        ? "machine_points WHERE machine_id = (SELECT id FROM machines WHERE name = $1)"
          " AND parameter_id = ANY ($2::int[])"
        : "process_data_points WHERE process_id = $1 AND parameter_id = ANY ($2::int[])";
}

const char *qsel_bucketed_fn(const qsel_t *s)
{
    return s->machine_window ? "machine_series_bucketed" : "series_bucketed";
}

const char *qsel_key_text(const qsel_t *s, char *buf, size_t len)
{
    if (s->machine_window)
        return s->machine;
    snprintf(buf, len, "%lld", (long long)s->process_id);
    return buf;
}
