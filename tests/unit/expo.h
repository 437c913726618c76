/* expo.h — a strict reader of the Prometheus text exposition, for tests:
 * parses what metrics.c wrote back into samples and checks the format
 * (every sample after its family's TYPE, names and label syntax, escapes,
 * numeric values). */
#ifndef ALDREC_TEST_EXPO_H
#define ALDREC_TEST_EXPO_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPO_MAX 4096

typedef struct expo_sample {
    char name[128];
    char labels[8][2][400];    /* name, unescaped value */
    int nlabels;
    double value;
} expo_sample_t;

typedef struct expo {
    expo_sample_t s[EXPO_MAX];
    int n;
    char types[256][2][128];   /* family, type */
    int ntypes;
    char error[256];           /* first format error, "" if none */
} expo_t;

static int expo_name_ok(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

static const char *expo_type_of(const expo_t *e, const char *name)
{
    for (int i = 0; i < e->ntypes; i++)
        if (strcmp(e->types[i][0], name) == 0)
            return e->types[i][1];
    return NULL;
}

/* The family a sample belongs to: itself, or a summary's name_sum/_count. */
static const char *expo_family(const expo_t *e, const char *name, char *buf, size_t cap)
{
    if (expo_type_of(e, name))
        return name;
    static const char *const suffixes[] = { "_sum", "_count" };
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(name), k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0 && n - k < cap) {
            memcpy(buf, name, n - k);
            buf[n - k] = '\0';
            const char *t = expo_type_of(e, buf);
            if (t && strcmp(t, "summary") == 0)
                return buf;
        }
    }
    return NULL;
}

#define EXPO_FAIL(...) do { if (!e->error[0]) snprintf(e->error, sizeof e->error, __VA_ARGS__); return; } while (0)

static void expo_line(expo_t *e, const char *l)
{
    if (l[0] == '#') {
        char kw[16], name[128], rest[512];
        if (sscanf(l, "# %15s %127s %511[^\n]", kw, name, rest) < 3)
            EXPO_FAIL("bad comment line: %.200s", l);
        if (strcmp(kw, "TYPE") == 0) {
            if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "summary") &&
                strcmp(rest, "histogram") && strcmp(rest, "untyped"))
                EXPO_FAIL("bad type: %.200s", l);
            if (expo_type_of(e, name))
                EXPO_FAIL("TYPE twice: %.100s", name);
            if (e->ntypes < 256) {
                snprintf(e->types[e->ntypes][0], 128, "%s", name);
                snprintf(e->types[e->ntypes][1], 128, "%.100s", rest);
                e->ntypes++;
            }
        } else if (strcmp(kw, "HELP") != 0) {
            EXPO_FAIL("unknown comment: %.200s", l);
        }
        return;
    }
    if (e->n == EXPO_MAX)
        EXPO_FAIL("too many samples");
    expo_sample_t *s = &e->s[e->n];
    memset(s, 0, sizeof *s);
    size_t nl = strcspn(l, "{ ");
    if (!expo_name_ok(l, nl) || nl >= sizeof s->name)
        EXPO_FAIL("bad metric name: %.200s", l);
    memcpy(s->name, l, nl);
    const char *p = l + nl;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            size_t ln = strcspn(p, "=");
            if (!expo_name_ok(p, ln) || p[ln] != '=' || p[ln + 1] != '"' || s->nlabels == 8)
                EXPO_FAIL("bad label: %.200s", l);
            memcpy(s->labels[s->nlabels][0], p, ln < 399 ? ln : 399);
            p += ln + 2;
            char *v = s->labels[s->nlabels][1];
            size_t vn = 0;
            while (*p != '"') {
                if (*p == '\0')
                    EXPO_FAIL("unterminated label value: %.200s", l);
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    if (c == 'n')
                        c = '\n';
                    else if (c != '\\' && c != '"')
                        EXPO_FAIL("bad escape: %.200s", l);
                } else if (c == '\n') {
                    EXPO_FAIL("raw newline in label value");
                }
                if (vn < 399)
                    v[vn++] = c;
            }
            p++;
            s->nlabels++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                EXPO_FAIL("expected , or } in: %.200s", l);
        }
        p++;
    }
    if (*p != ' ')
        EXPO_FAIL("expected a space before the value: %.200s", l);
    p++;
    char *end;
    if (strcmp(p, "NaN") == 0)
        s->value = NAN;
    else if (strcmp(p, "+Inf") == 0)
        s->value = INFINITY;
    else if (strcmp(p, "-Inf") == 0)
        s->value = -INFINITY;
    else {
        s->value = strtod(p, &end);
        if (end == p || *end != '\0')
            EXPO_FAIL("bad value: %.200s", l);
    }
    char fam[128];
    if (!expo_family(e, s->name, fam, sizeof fam))
        EXPO_FAIL("sample before its TYPE: %.200s", l);
    e->n++;
}

/* Parses text (must end with a newline). Returns 0, or -1 with e->error. */
static int expo_parse(expo_t *e, const char *text)
{
    memset(e, 0, sizeof *e);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl) {
            snprintf(e->error, sizeof e->error, "last line without a newline");
            break;
        }
        char line[2048];
        size_t n = (size_t)(nl - p);
        if (n >= sizeof line) {
            snprintf(e->error, sizeof e->error, "line too long");
            break;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        if (n)
            expo_line(e, line);
        p = nl + 1;
    }
    return e->error[0] ? -1 : 0;
}

/* Value of the sample name{k1="v1",...} (labels as "k=v" strings, exactly
 * those); NAN-as-missing is -12345 to keep comparisons simple. */
static double expo_get(const expo_t *e, const char *name, int nl, const char *const *kv)
{
    for (int i = 0; i < e->n; i++) {
        const expo_sample_t *s = &e->s[i];
        if (strcmp(s->name, name) != 0 || s->nlabels != nl)
            continue;
        int match = 1;
        for (int k = 0; k < nl && match; k++) {
            char want[900];
            snprintf(want, sizeof want, "%s=%s", s->labels[k][0], s->labels[k][1]);
            match = strcmp(want, kv[k]) == 0;
        }
        if (match)
            return s->value;
    }
    return -12345;
}

#endif
