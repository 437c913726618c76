/* plot.c — SVG chart of a run; see plot.h. */
#include "query/plot.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "query/downsample.h"
#include "query/qdb.h"
#include "query/qtext.h"
#include "common/clock.h"
#include "common/utc.h"

#define CHUNK 50000
#define MARGIN_L 84
#define MARGIN_R 28
#define TITLE_H 64
#define STEPS_H 26
#define PANEL_HEAD 30          /* panel title and legend above its plot area */
#define PANEL_H 190
#define PANEL_GAP 14
#define AXIS_H 44

/* Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
static const char *const palette[] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C6D31",
};
#define NPALETTE (sizeof palette / sizeof palette[0])

struct series {
    const qparam_t *p;
    ds_t *ds;
    const char *color;
    int panel;
};

struct panel {
    char units[32];
    double lo, hi;             /* y range */
    bool any;
    int y;                     /* top of the plot area */
};

struct plot {
    const qsel_t *s;
    int64_t t0, t1;
    int width, px, pw;         /* SVG width; plot area x and width */
    struct series *ser;
    struct panel *pan;
    size_t npan;
    PGresult *sets;            /* set-point events in the window, or NULL */
};

/* The set-point events of the plotted parameters (the machine's) in the
 * window, in a run or not (--before, --machine): parameter, time (µs),
 * requested, read back (or NULL), by whom. */
#define SETPOINTS_SQL \
    "SELECT parameter_id, (extract(epoch FROM ts) * 1000000)::int8, requested, readback," \
    " requested_by FROM setpoint_events WHERE parameter_id = ANY ($1::int[])" \
    " AND ts >= $2::timestamptz AND ts < $3::timestamptz ORDER BY ts"

static int on_row(void *arg, const PGresult *r, int row, char *err, size_t errlen)
{
    struct plot *pl = arg;
    qdb_sample_t x = qdb_sample(r, row);
    int pi = qsel_param_index(pl->s, x.parameter_id);
    if (pi < 0)
        return 0;
    if (ds_add(pl->ser[pi].ds, x.t, x.v, x.good) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static double xof(const struct plot *pl, int64_t t)
{
    return pl->px + (double)(t - pl->t0) / (double)(pl->t1 - pl->t0) * pl->pw;
}

static double yof(const struct panel *p, double v)
{
    return p->y + PANEL_H - (v - p->lo) / (p->hi - p->lo) * PANEL_H;
}

/* A "nice" step (1, 2, 5 × 10^k) giving about n ticks over span. */
static double nice_step(double span, int n)
{
    double raw = span / n, mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static double time_step_s(double span_s, int n)
{
    static const double steps[] = {
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
        60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span_s / steps[i] <= n)
            return steps[i];
    return 86400 * ceil(span_s / n / 86400);
}

static char *time_label(double s, double span_s, char *b, size_t len)
{
    if (span_s < 10)
        snprintf(b, len, "%.*f s", s == floor(s) ? 0 : (fmod(s * 10, 1) == 0 ? 1 : 2), s);
    else if (span_s < 120)
        snprintf(b, len, "%.0f s", s);
    else if (span_s < 7200)
        snprintf(b, len, "%d:%02d", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(b, len, "%d:%02d h", (int)(s / 3600), (int)fmod(s / 60, 60));
    return b;
}

static void y_range(struct plot *pl)
{
    for (size_t k = 0; k < pl->s->nparams; k++) {
        struct series *se = &pl->ser[k];
        struct panel *p = &pl->pan[se->panel];
        if (ds_good(se->ds) == 0)
            continue;
        if (!p->any || ds_min(se->ds) < p->lo)
            p->lo = ds_min(se->ds);
        if (!p->any || ds_max(se->ds) > p->hi)
            p->hi = ds_max(se->ds);
        p->any = true;
    }
    /* Limits close to the data widen the range so they show; far-away
     * limits (a 0..400 degC heater idling at 20) would flatten the data. */
    for (size_t k = 0; k < pl->s->nparams; k++) {
        const qparam_t *q = pl->ser[k].p;
        struct panel *p = &pl->pan[pl->ser[k].panel];
        if (!p->any)
            continue;
        double span = p->hi - p->lo > 0 ? p->hi - p->lo : fabs(p->hi) + 1;
        if (q->has_min && q->min_limit < p->lo && q->min_limit >= p->lo - 0.5 * span)
            p->lo = q->min_limit;
        if (q->has_max && q->max_limit > p->hi && q->max_limit <= p->hi + 0.5 * span)
            p->hi = q->max_limit;
    }
    for (size_t i = 0; i < pl->npan; i++) {
        struct panel *p = &pl->pan[i];
        if (!p->any) {
            p->lo = 0;
            p->hi = 1;
        } else if (p->hi - p->lo <= 0) {
            double pad = fabs(p->hi) > 0 ? fabs(p->hi) * 0.1 : 1;
            p->lo -= pad;
            p->hi += pad;
        } else {
            double pad = (p->hi - p->lo) * 0.06;
            p->lo -= pad;
            p->hi += pad;
        }
    }
}

static void svg_head(const struct plot *pl, int height, FILE *f)
{
    const qsel_t *s = pl->s;
    char a[40], d[40];
    size_t samples = 0;
    for (size_t k = 0; k < s->nparams; k++)
        samples += ds_samples(pl->ser[k].ds);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\""
               " viewBox=\"0 0 %d %d\" font-family=\"system-ui, -apple-system, 'Segoe UI',"
               " Helvetica, Arial, sans-serif\" font-size=\"12\" data-process=\"%lld\""
               " data-t0-us=\"%lld\" data-t1-us=\"%lld\">\n",
            pl->width, height, pl->width, height, (long long)s->process_id,
            (long long)pl->t0, (long long)pl->t1);
    if (s->process_id)
        fprintf(f, "<title>aldrec process %lld: ", (long long)s->process_id);
    else
        fputs("<title>aldrec machine ", f);   /* --machine: a window, no process */
    qtext_xml_str(f, s->process_id ? s->recipe : s->machine);
    fputs("</title>\n<style>\n"
          " text { fill: #374151; }\n"
          " .sub { fill: #6b7280; }\n"
          " .grid { stroke: #e5e7eb; stroke-width: 1; }\n"
          " .frame { fill: none; stroke: #9ca3af; stroke-width: 1; }\n"
          " .series path { fill: none; stroke-width: 1.5; stroke-linejoin: round; stroke-linecap: round; }\n"
          " .limit { stroke-width: 1; stroke-dasharray: 6 4; opacity: 0.8; }\n"
          " .step line { stroke: #6b7280; stroke-width: 1; stroke-dasharray: 3 3; }\n"
          " .gap.bad { fill: #dc2626; fill-opacity: 0.16; }\n"
          " .gap.nodata { fill: #6b7280; fill-opacity: 0.16; }\n"
          "</style>\n", f);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", pl->width, height);
    if (s->process_id)
        fprintf(f, "<text x=\"%d\" y=\"26\" font-size=\"17\" font-weight=\"600\">Process %lld \xc2\xb7 ",
                MARGIN_L, (long long)s->process_id);
    else
        fprintf(f, "<text x=\"%d\" y=\"26\" font-size=\"17\" font-weight=\"600\">Machine ", MARGIN_L);
    qtext_xml_str(f, s->process_id ? s->recipe : s->machine);
    if (s->lot[0]) {
        fputs(" \xc2\xb7 lot ", f);
        qtext_xml_str(f, s->lot);
    }
    if (s->step) {
        fprintf(f, " \xc2\xb7 step %d ", s->step->no);
        qtext_xml_str(f, s->step->name);
    }
    fprintf(f, "</text>\n<text class=\"sub\" x=\"%d\" y=\"46\">", MARGIN_L);
    qtext_xml_str(f, s->machine);
    fprintf(f, " \xc2\xb7 from %s \xc2\xb7 %s shown \xc2\xb7 %s \xc2\xb7 %zu samples, drawn "
               "as at most 4 points per pixel column</text>\n",
            utc_format(pl->t0, UTC_ISO_MS, a, sizeof a), qtext_human_s((pl->t1 - pl->t0) / 1e6, d, sizeof d),
            s->status, samples);
}

static void svg_steps(const struct plot *pl, int bottom, FILE *f)
{
    const qsel_t *s = pl->s;
    int y = TITLE_H;
    fputs("<g class=\"steps\">\n", f);
    for (size_t i = 0; i < s->nsteps; i++) {
        const qstep_t *st = &s->steps[i];
        int64_t a = st->start_us > pl->t0 ? st->start_us : pl->t0;
        int64_t b = st->end_us < pl->t1 ? st->end_us : pl->t1;
        if (b <= a)
            continue;
        double x0 = xof(pl, a), x1 = xof(pl, b);
        fprintf(f, "<g class=\"step\" data-step=\"%d\" data-t-us=\"%lld\">", st->no,
                (long long)st->start_us);
        fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>",
                x0, y, x1 - x0, STEPS_H - 4, i % 2 ? "#dcfce7" : "#e0e7ff");
        /* Label only what fits (about 7 px per character). */
        char label[160];
        snprintf(label, sizeof label, "%d %s", st->no, st->name);
        int fit = (int)((x1 - x0 - 8) / 7);
        if (fit >= 1) {
            if ((int)strlen(label) > fit) {
                snprintf(label, sizeof label, "%d", st->no);
                if ((int)strlen(label) > fit)
                    label[0] = '\0';
            }
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\">", x0 + 4, y + 15);
            qtext_xml_str(f, label);
            fputs("</text>", f);
        }
        fprintf(f, "<title>step %d ", st->no);
        qtext_xml_str(f, st->name);
        fputs("</title>", f);
        if (st->start_us >= pl->t0)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", x0, y, x0, bottom);
        fputs("</g>\n", f);
    }
    fputs("</g>\n", f);
}

static void svg_time_axis(const struct plot *pl, int top, int bottom, FILE *f)
{
    double span_s = (pl->t1 - pl->t0) / 1e6;
    double step = time_step_s(span_s, pl->pw / 110);
    char b[40];
    fputs("<g class=\"time-axis\">\n", f);
    for (double t = 0; t <= span_s + 1e-9; t += step) {
        double x = pl->px + t / span_s * pl->pw;
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                x, top, x, bottom, x, bottom + 16, time_label(t, span_s, b, sizeof b));
    }
    fprintf(f, "<text class=\"sub\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since %s"
               " start (%s)</text>\n</g>\n",
            pl->px + pl->pw / 2, bottom + 34, pl->s->step ? "step" : "process",
            span_s < 120 ? "s" : span_s < 7200 ? "min:s" : "h:min");
}

static void svg_path(const struct plot *pl, const struct panel *p, const struct series *se, FILE *f)
{
    size_t n;
    const ds_point_t *pt = ds_points(se->ds, &n);
    fprintf(f, "<g class=\"series\" data-param=\"%s\" data-samples=\"%zu\" data-points=\"%zu\""
               " stroke=\"%s\"><title>", se->p->name, ds_samples(se->ds), n, se->color);
    qtext_xml_str(f, se->p->name);
    fprintf(f, ": %zu samples</title><path d=\"", ds_samples(se->ds));
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%.1f %.2f", i == 0 || pt[i].move ? (i ? " M" : "M") : " L",
                xof(pl, pt[i].t), yof(p, pt[i].v));
    fputs("\"/></g>\n", f);
}

/* A marker (a triangle pointing down at the requested value, clamped to
 * the panel) per set-point event of the panel's parameters. */
static void svg_setpoints(const struct plot *pl, size_t pi, FILE *f)
{
    const struct panel *p = &pl->pan[pi];
    for (int i = 0; pl->sets && i < PQntuples(pl->sets); i++) {
        int k = qsel_param_index(pl->s, atoi(PQgetvalue(pl->sets, i, 0)));
        if (k < 0 || (size_t)pl->ser[k].panel != pi)
            continue;
        const struct series *se = &pl->ser[k];
        int64_t t = strtoll(PQgetvalue(pl->sets, i, 1), NULL, 10);
        double req = strtod(PQgetvalue(pl->sets, i, 2), NULL);
        bool rb = !PQgetisnull(pl->sets, i, 3);
        double x = xof(pl, t), y = yof(p, req);
        y = y < p->y ? p->y : y > p->y + PANEL_H ? p->y + PANEL_H : y;
        char a[40], b1[40], b2[40];
        fprintf(f, "<path class=\"setpoint\" data-param=\"%s\" data-t-us=\"%lld\""
                   " data-requested=\"%.17g\" data-readback=\"%s\" d=\"M%.1f %.1fl-5 -8h10z\""
                   " fill=\"%s\" stroke=\"#111\" stroke-width=\"0.6\"><title>%s set to %s",
                se->p->name, (long long)t, req, rb ? PQgetvalue(pl->sets, i, 3) : "",
                x, y, se->color, se->p->name, qtext_num(req, b1, sizeof b1));
        if (rb)
            fprintf(f, " (read back %s)",
                    qtext_num(strtod(PQgetvalue(pl->sets, i, 3), NULL), b2, sizeof b2));
        fputs(" by ", f);
        qtext_xml_str(f, PQgetvalue(pl->sets, i, 4));
        fprintf(f, " at %s</title></path>\n", utc_format(t, UTC_ISO_MS, a, sizeof a));
    }
}

static void svg_panel(const struct plot *pl, size_t pi, FILE *f)
{
    const struct panel *p = &pl->pan[pi];
    const qsel_t *s = pl->s;
    char b[40];
    fprintf(f, "<g class=\"panel\" data-units=\"");
    qtext_xml_str(f, p->units);
    fprintf(f, "\" data-x=\"%d\" data-y=\"%d\" data-width=\"%d\" data-height=\"%d\""
               " data-ymin=\"%.17g\" data-ymax=\"%.17g\">\n",
            pl->px, p->y, pl->pw, PANEL_H, p->lo, p->hi);
    /* title (units) and legend */
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"600\">", MARGIN_L - 76, p->y - 10);
    qtext_xml_str(f, p->units[0] ? p->units : "(no unit)");
    fputs("</text>\n", f);
    int lx = pl->px;
    for (size_t k = 0; k < s->nparams; k++) {
        const struct series *se = &pl->ser[k];
        if ((size_t)se->panel != pi)
            continue;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"3\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"%d\">", lx, p->y - 14, se->color, lx + 19, p->y - 10);
        qtext_xml_str(f, se->p->name);
        fputs(ds_good(se->ds) ? "</text>\n" : " (no good data)</text>\n", f);
        lx += 19 + 7 * (int)strlen(se->p->name) + (ds_good(se->ds) ? 0 : 105) + 22;
    }
    /* y grid and labels: ticks at whole multiples of the step, printed with
     * the step's decimals (no 0.30000000000000004) */
    double step = nice_step(p->hi - p->lo, 5);
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    for (double k = ceil(p->lo / step); k * step <= p->hi + step * 1e-9; k++) {
        double v = k * step, y = yof(p, v);
        fprintf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
                pl->px, y, pl->px + pl->pw, y, pl->px - 6, y + 4, decimals, k == 0 ? 0.0 : v);
    }
    fprintf(f, "<clipPath id=\"clip%zu\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>"
               "</clipPath>\n<g clip-path=\"url(#clip%zu)\">\n",
            pi, pl->px, p->y, pl->pw, PANEL_H, pi);
    for (size_t k = 0; k < s->nparams; k++) {
        const struct series *se = &pl->ser[k];
        if ((size_t)se->panel != pi)
            continue;
        size_t n;
        const ds_span_t *sp = ds_spans(se->ds, &n);
        for (size_t i = 0; i < n; i++) {
            double x0 = xof(pl, sp[i].from), x1 = xof(pl, sp[i].to);
            char a1[40], a2[40];
            fprintf(f, "<rect class=\"gap %s\" data-param=\"%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\""
                       " height=\"%d\"><title>%s: %s %s .. %s</title></rect>\n",
                    sp[i].kind == DS_BAD_QUALITY ? "bad" : "nodata", se->p->name, x0, p->y,
                    x1 - x0 < 1.5 ? 1.5 : x1 - x0, PANEL_H, se->p->name,
                    sp[i].kind == DS_BAD_QUALITY ? "bad quality" : "no samples",
                    utc_format(sp[i].from, UTC_ISO_MS, a1, sizeof a1), utc_format(sp[i].to, UTC_ISO_MS, a2, sizeof a2));
        }
    }
    for (size_t k = 0; k < s->nparams; k++) {
        const struct series *se = &pl->ser[k];
        if ((size_t)se->panel != pi)
            continue;
        for (int m = 0; m < 2; m++) {
            bool has = m ? se->p->has_max : se->p->has_min;
            double lim = m ? se->p->max_limit : se->p->min_limit;
            if (!has || lim < p->lo || lim > p->hi)
                continue;
            double y = yof(p, lim);
            fprintf(f, "<line class=\"limit\" data-param=\"%s\" data-limit=\"%s\" data-value=\"%.17g\""
                       " x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                    se->p->name, m ? "max" : "min", lim, pl->px, y, pl->px + pl->pw, y, se->color);
            /* One label per distinct limit: series sharing a limit share it. */
            bool labelled = false;
            for (size_t j = 0; j < k; j++) {
                const qparam_t *o = pl->ser[j].p;
                labelled |= (size_t)pl->ser[j].panel == pi &&
                            (m ? o->has_max && o->max_limit == lim : o->has_min && o->min_limit == lim);
            }
            if (!labelled)
                fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\" fill=\"#6b7280\">"
                           "%s %s</text>\n", pl->px + pl->pw - 4, y - 4, m ? "max" : "min",
                        qtext_num(lim, b, sizeof b));
        }
    }
    for (size_t k = 0; k < s->nparams; k++)
        if ((size_t)pl->ser[k].panel == pi)
            svg_path(pl, p, &pl->ser[k], f);
    svg_setpoints(pl, pi, f);
    fputs("</g>\n", f);
    fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n</g>\n",
            pl->px, p->y, pl->pw, PANEL_H);
}

int plot_run(PGconn *conn, const qsel_t *s, const plot_opts_t *o, FILE *out,
             char *err, size_t errlen)
{
    struct plot pl = { .s = s, .width = o->width > 0 ? o->width : 1200 };
    int rc = -1;

    pl.t0 = s->from_us != INT64_MIN ? s->from_us : s->started_us;
    pl.t1 = s->to_us != INT64_MAX ? s->to_us : s->ended_us ? s->ended_us : clock_real_us();
    if (pl.t1 <= pl.t0)
        pl.t1 = pl.t0 + 1000000;
    pl.px = MARGIN_L;
    pl.pw = pl.width - MARGIN_L - MARGIN_R;
    if (pl.pw < 100) {
        snprintf(err, errlen, "--width %d is too narrow (at least %d)", pl.width, MARGIN_L + MARGIN_R + 100);
        return -1;
    }
    pl.ser = calloc(s->nparams + 1, sizeof *pl.ser);
    pl.pan = calloc(s->nparams + 1, sizeof *pl.pan);
    if (!pl.ser || !pl.pan) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < s->nparams; k++) {
        struct series *se = &pl.ser[k];
        se->p = &s->params[k];
        se->color = palette[k % NPALETTE];
        /* A hole longer than 2.5 expected intervals breaks the line. */
        se->ds = ds_new(pl.t0, pl.t1, pl.pw, (int64_t)se->p->expected_ms * 2500);
        if (!se->ds) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        size_t pi = 0;
        while (pi < pl.npan && strcmp(pl.pan[pi].units, se->p->units) != 0)
            pi++;
        if (pi == pl.npan)
            snprintf(pl.pan[pl.npan++].units, sizeof pl.pan[0].units, "%s", se->p->units);
        se->panel = (int)pi;
    }

    char pid[24], ids[4096], from[48], to[48], sql[512];
    utc_format(pl.t0, UTC_ISO_US, from, sizeof from);
    utc_format(pl.t1, UTC_ISO_US, to, sizeof to);
    const char *params[4] = { qsel_key_text(s, pid, sizeof pid),
                              qsel_ids_text(s, ids, sizeof ids), from, to };
    /* --machine and --before: the machine's rows, runs and idle history
     * alike, as export reads them. */
    snprintf(sql, sizeof sql, "SELECT parameter_id, ts, value, quality FROM %s"
             " AND ts >= $3::timestamptz AND ts < $4::timestamptz ORDER BY parameter_id, ts",
             qsel_rows_sql(s));
    if (qdb_stream(conn, sql,
            4, params, CHUNK, on_row, &pl, err, errlen) < 0)
        goto out;
    for (size_t k = 0; k < s->nparams; k++)
        if (ds_finish(pl.ser[k].ds) < 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    if (!(pl.sets = qdb_query(conn, SETPOINTS_SQL, 3, params + 1, err, errlen, NULL)))
        goto out;

    y_range(&pl);
    int y = TITLE_H + STEPS_H;
    for (size_t i = 0; i < pl.npan; i++) {
        pl.pan[i].y = y + PANEL_HEAD;
        y += PANEL_HEAD + PANEL_H + PANEL_GAP;
    }
    int bottom = y - PANEL_GAP;
    svg_head(&pl, bottom + AXIS_H, out);
    svg_time_axis(&pl, TITLE_H + STEPS_H, bottom, out);
    for (size_t i = 0; i < pl.npan; i++)
        svg_panel(&pl, i, out);
    svg_steps(&pl, bottom, out);
    fputs("</svg>\n", out);
    if (fflush(out) != 0 || ferror(out)) {
        snprintf(err, errlen, "writing the plot: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    for (size_t k = 0; pl.ser && k < s->nparams; k++)
        ds_free(pl.ser[k].ds);
    free(pl.ser);
    free(pl.pan);
    PQclear(pl.sets);
    return rc;
}
