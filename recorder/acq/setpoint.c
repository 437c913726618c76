/* setpoint.c — set-point checks and texts; see setpoint.h. */
#include "acq/setpoint.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acq/regcodec.h"

void setpoint_format_limits(char *buf, size_t cap, const param_meta_t *p)
{
    char lo[32] = "-inf", hi[32] = "+inf";
    if (p->has_min)
        snprintf(lo, sizeof lo, "%.10g", p->min);
    if (p->has_max)
        snprintf(hi, sizeof hi, "%.10g", p->max);
    snprintf(buf, cap, "[%s, %s]%s%s", lo, hi, p->units[0] ? " " : "", p->units);
}

void setpoint_format_value(char *buf, size_t cap, const param_meta_t *p, double v)
{
    if (p->type == DT_BOOL)
        snprintf(buf, cap, "%d", v != 0);
    else
        snprintf(buf, cap, "%.10g%s%s", v, p->units[0] ? " " : "", p->units);
}

double setpoint_value(const param_meta_t *p, const uint16_t words[4])
{
    return regcodec_decode(words, p->type, p->order) * p->scale + p->offset;
}

/* A finite number, or for booleans also true/false/on/off. */
static int parse_value(const param_meta_t *p, const char *s, double *out)
{
    if (p->type == DT_BOOL) {
        static const char *const yes[] = { "1", "true", "on" }, *const no[] = { "0", "false", "off" };
        for (size_t i = 0; i < 3; i++) {
            if (strcasecmp(s, yes[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcasecmp(s, no[i]) == 0) {
                *out = 0;
                return 0;
            }
        }
        return -1;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int setpoint_check(const param_meta_t *p, const char *text, setpoint_t *out, char *err,
                   size_t errlen)
{
    char lim[96], req[96], wrote[96];
    double value, raw;
    memset(out, 0, sizeof *out);
    setpoint_format_limits(lim, sizeof lim, p);
    if (!p->writable || (p->table != REG_COIL && p->table != REG_HOLDING)) {
        snprintf(err, errlen, "set %s: read-only parameter (%s %d%s); nothing written",
                 p->qualified, regcodec_regtype_name(p->table), p->address,
                 p->writable ? "" : ", is_writable = false");
        return -1;
    }
    if (parse_value(p, text, &value) < 0) {
        snprintf(err, errlen, "set %s: \"%.64s\" is not a %s; nothing written", p->qualified,
                 text, p->type == DT_BOOL ? "boolean (0/1, true/false, on/off)" : "finite number");
        return -1;
    }
    if ((p->has_min && value < p->min) || (p->has_max && value > p->max)) {
        snprintf(err, errlen, "set %s: %.10g is outside the limits %s; nothing written",
                 p->qualified, value, lim);
        return -1;
    }
    if (regcodec_to_raw(value, p->scale, p->offset, p->type, &raw) < 0) {
        snprintf(err, errlen, "set %s: %.10g cannot be stored as %s with scale %g and offset"
                 " %g; nothing written", p->qualified, value, regcodec_type_name(p->type),
                 p->scale, p->offset);
        return -1;
    }
    regcodec_encode(raw, p->type, p->order, out->words);
    out->requested = value;
    out->effective = setpoint_value(p, out->words);   /* after rounding to the type */
    out->nwords = (uint16_t)(p->table == REG_COIL ? 1 : regcodec_words(p->type));
    setpoint_format_value(req, sizeof req, p, value);
    setpoint_format_value(wrote, sizeof wrote, p, out->effective);
    /* The limits rule what the device will hold, not what was typed. */
    if ((p->has_min && out->effective < p->min) || (p->has_max && out->effective > p->max)) {
        snprintf(err, errlen, "set %s: %s would be written as %s (the nearest value the"
                 " register holds), outside the limits %s; nothing written", p->qualified,
                 req, wrote, lim);
        return -1;
    }
    return 0;
}

bool setpoint_same(const param_meta_t *p, const setpoint_t *w, const uint16_t back[4])
{
    if (p->type == DT_BOOL)
        return (back[0] != 0) == (w->words[0] != 0);
    return memcmp(back, w->words, (size_t)regcodec_words(p->type) * sizeof *back) == 0;
}

void setpoint_explain_unknown(const pmap_t *m, const char *name, const char *cmd, char *buf,
                              size_t len)
{
    char comp[64], list[512] = "";
    size_t clen = strcspn(name, ".");
    snprintf(comp, sizeof comp, "%.*s", (int)(clen < sizeof comp ? clen : sizeof comp - 1), name);
    bool comp_known = false;
    for (size_t i = 0; m && i < pmap_count(m); i++)
        comp_known |= strcmp(pmap_at(m, i)->component, comp) == 0;
    for (size_t i = 0; m && i < pmap_count(m); i++) {
        const param_meta_t *p = pmap_at(m, i);
        const char *item = comp_known ? p->name : p->component;
        if (comp_known && strcmp(p->component, comp) != 0)
            continue;
        if (!comp_known && i > 0 && strcmp(pmap_at(m, i - 1)->component, p->component) == 0)
            continue;
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", item);
    }
    if (!name[clen])
        snprintf(buf, len, "%s: \"%.100s\" is not COMPONENT.PARAM", cmd, name);
    else if (comp_known)
        snprintf(buf, len, "%s: unknown parameter \"%.100s\" (%s has: %s)", cmd, name, comp, list);
    else
        snprintf(buf, len, "%s: unknown parameter \"%.100s\": no component \"%s\" on machine"
                 " %s (components: %s)", cmd, name, comp, m ? pmap_machine(m) : "?", list);
}
