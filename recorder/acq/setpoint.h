/* setpoint.h — the checks a set point passes before anything reaches the
 * device, and the texts that tell people about it: one place, used by
 * aldrecd (SET on the control socket) and by `aldrec set --direct`, so
 * both refuse the same values with the same words.
 *
 * Pure: no I/O, no clock. */
#ifndef ALDREC_SETPOINT_H
#define ALDREC_SETPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/pmap.h"

/* What is written for a checked set point. */
typedef struct setpoint {
    double requested;            /* as typed */
    double effective;            /* what the registers hold: rounded to the type */
    uint16_t words[4];           /* regcodec_encode()d, as sent */
    uint16_t nwords;             /* registers (1 for a coil) */
} setpoint_t;

/* Checks text as a set point of p: writable (coil or holding register),
 * a boolean (0/1, true/false, on/off) or finite number, within
 * [min, max], representable with p's type, scale and offset, and still
 * within the limits once rounded. Returns 0 with *out, or -1 with err
 * ("set P: ...; nothing written", without "aldrec: "). */
int setpoint_check(const param_meta_t *p, const char *text, setpoint_t *out, char *err,
                   size_t errlen);

/* Why name is not a parameter of map m (NULL: no map), naming what there
 * is: "get: unknown parameter ..." (cmd is "get" or "set"). */
void setpoint_explain_unknown(const pmap_t *m, const char *name, const char *cmd, char *buf,
                              size_t len);

/* p's value for people: "250 degC", a bool as 0/1. */
void setpoint_format_value(char *buf, size_t cap, const param_meta_t *p, double v);

/* p's limits for people: "[0, 400] degC". */
void setpoint_format_limits(char *buf, size_t cap, const param_meta_t *p);

/* Engineering value of words read for p: raw × scale + offset. */
double setpoint_value(const param_meta_t *p, const uint16_t words[4]);

/* True when words read back hold what w wrote (a coil: the same truth). */
bool setpoint_same(const param_meta_t *p, const setpoint_t *w, const uint16_t back[4]);

#endif
