/* metrics.c — Prometheus text exposition writer; see metrics.h. */
#include "ops/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
    char *buf;
    size_t len, cap;
    bool failed;
};

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 4096;
    m->buf = malloc(m->cap);
    if (!m->buf) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->buf[0] = '\0';
    return m;
}

void metrics_free(metrics_t *m)
{
    if (!m)
        return;
    free(m->buf);
    free(m);
}

static bool reserve(metrics_t *m, size_t more)
{
    if (m->failed)
        return false;
    if (m->len + more + 1 <= m->cap)
        return true;
    size_t cap = m->cap;
    while (cap < m->len + more + 1)
        cap *= 2;
    char *nb = realloc(m->buf, cap);
    if (!nb) {
        m->failed = true;
        return false;
    }
    m->buf = nb;
    m->cap = cap;
    return true;
}

static void put(metrics_t *m, const char *s, size_t n)
{
    if (!reserve(m, n))
        return;
    memcpy(m->buf + m->len, s, n);
    m->len += n;
    m->buf[m->len] = '\0';
}

static void puts_(metrics_t *m, const char *s)
{
    put(m, s, strlen(s));
}

size_t metrics_escape(char *out, size_t cap, const char *s, bool help)
{
    size_t n = 0;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (*s == '"' && !help)
            rep = "\\\"";
        size_t k = rep ? 2 : 1;
        if (n + k < cap)
            memcpy(out + n, rep ? rep : s, k);
        n += k;
    }
    if (cap)
        out[n < cap ? n : cap - 1] = '\0';
    return n;
}

static void put_escaped(metrics_t *m, const char *s, bool help)
{
    size_t need = metrics_escape(NULL, 0, s, help);
    if (!reserve(m, need))
        return;
    metrics_escape(m->buf + m->len, need + 1, s, help);
    m->len += need;
}

static bool valid_name(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

void metrics_family(metrics_t *m, const char *name, enum metric_type type, const char *help)
{
    static const char *const types[] = {
        [METRIC_COUNTER] = "counter", [METRIC_GAUGE] = "gauge", [METRIC_SUMMARY] = "summary",
    };
    if (!valid_name(name)) {
        m->failed = true;
        return;
    }
    puts_(m, "# HELP ");
    puts_(m, name);
    put(m, " ", 1);
    put_escaped(m, help, true);
    puts_(m, "\n# TYPE ");
    puts_(m, name);
    put(m, " ", 1);
    puts_(m, types[type]);
    put(m, "\n", 1);
}

static void put_value(metrics_t *m, double v)
{
    char num[64];
    if (isnan(v))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(v))
        snprintf(num, sizeof num, "%sInf", v > 0 ? "+" : "-");
    else if (v == floor(v) && fabs(v) < 9.007199254740992e15)
        snprintf(num, sizeof num, "%.0f", v);
    else
        snprintf(num, sizeof num, "%.17g", v);
    puts_(m, num);
}

static void put_labels(metrics_t *m, const metric_label_t *labels, size_t n,
                       const char *extra_name, const char *extra_value)
{
    if (n == 0 && !extra_name)
        return;
    put(m, "{", 1);
    for (size_t i = 0; i < n + (extra_name != NULL); i++) {
        const char *ln = i < n ? labels[i].name : extra_name;
        const char *lv = i < n ? labels[i].value : extra_value;
        if (!valid_name(ln)) {
            m->failed = true;
            return;
        }
        if (i)
            put(m, ",", 1);
        puts_(m, ln);
        puts_(m, "=\"");
        put_escaped(m, lv ? lv : "", false);
        put(m, "\"", 1);
    }
    put(m, "}", 1);
}

static void sample(metrics_t *m, const char *name, const char *suffix,
                   const metric_label_t *labels, size_t n, const char *xn, const char *xv,
                   double value)
{
    if (!valid_name(name)) {
        m->failed = true;
        return;
    }
    puts_(m, name);
    puts_(m, suffix);
    put_labels(m, labels, n, xn, xv);
    put(m, " ", 1);
    put_value(m, value);
    put(m, "\n", 1);
}

void metrics_sample(metrics_t *m, const char *name, const metric_label_t *labels, size_t n,
                    double value)
{
    sample(m, name, "", labels, n, NULL, NULL, value);
}

void metrics_summary(metrics_t *m, const char *name, const metric_label_t *labels, size_t n,
                     const hist_t *h, double scale)
{
    static const struct { double q; const char *label; } qs[] = {
        { 0.5, "0.5" }, { 0.95, "0.95" }, { 0.99, "0.99" },
    };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double v = h->count ? (double)hist_quantile(h, qs[i].q) * scale : NAN;
        sample(m, name, "", labels, n, "quantile", qs[i].label, v);
    }
    sample(m, name, "_sum", labels, n, NULL, NULL, (double)h->sum * scale);
    sample(m, name, "_count", labels, n, NULL, NULL, (double)h->count);
}

const char *metrics_text(const metrics_t *m, size_t *len)
{
    if (len)
        *len = m->len;
    return m->buf;
}

bool metrics_failed(const metrics_t *m)
{
    return m->failed;
}
