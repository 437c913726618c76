/* regcodec.c — register words <-> numbers; see regcodec.h for word orders.
 *
 * Every conversion goes through a canonical big-endian byte string (ABCD…):
 * decode gathers the wire registers into it according to the word order,
 * then reinterprets it as the data type; encode does the reverse. */
#include "acq/regcodec.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>

int regcodec_words(dtype_t t)
{
    switch (t) {
    case DT_BOOL:
    case DT_U16:
    case DT_I16:
        return 1;
    case DT_U32:
    case DT_I32:
    case DT_F32:
        return 2;
    case DT_F64:
        return 4;
    }
    return 1;
}

bool regcodec_fits(regtype_t r, dtype_t t)
{
    bool bit_table = (r == REG_COIL || r == REG_DISCRETE);
    return bit_table == (t == DT_BOOL);
}

/* Wire registers -> canonical big-endian bytes. */
static void gather(const uint16_t *regs, int n, worder_t o, uint8_t *b)
{
    bool reverse = (o == WO_CDAB || o == WO_DCBA);
    bool swap = (o == WO_BADC || o == WO_DCBA);
    for (int i = 0; i < n; i++) {
        uint16_t w = regs[reverse ? n - 1 - i : i];
        if (swap)
            w = (uint16_t)((w << 8) | (w >> 8));
        b[2 * i] = (uint8_t)(w >> 8);
        b[2 * i + 1] = (uint8_t)(w & 0xff);
    }
}

/* Canonical big-endian bytes -> wire registers. */
static void scatter(const uint8_t *b, int n, worder_t o, uint16_t *regs)
{
    bool reverse = (o == WO_CDAB || o == WO_DCBA);
    bool swap = (o == WO_BADC || o == WO_DCBA);
    for (int i = 0; i < n; i++) {
        uint16_t w = (uint16_t)((b[2 * i] << 8) | b[2 * i + 1]);
        if (swap)
            w = (uint16_t)((w << 8) | (w >> 8));
        regs[reverse ? n - 1 - i : i] = w;
    }
}

static uint64_t be_uint(const uint8_t *b, int nbytes)
{
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++)
        v = (v << 8) | b[i];
    return v;
}

static void put_be_uint(uint64_t v, uint8_t *b, int nbytes)
{
    for (int i = nbytes - 1; i >= 0; i--) {
        b[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

double regcodec_decode(const uint16_t *regs, dtype_t t, worder_t o)
{
    uint8_t b[8];
    int n = regcodec_words(t);

    if (t == DT_BOOL)
        return regs[0] ? 1.0 : 0.0;
    gather(regs, n, o, b);
    uint64_t u = be_uint(b, 2 * n);
    switch (t) {
    case DT_U16:
        return (double)(uint16_t)u;
    case DT_I16:
        return (double)(int16_t)(uint16_t)u;
    case DT_U32:
        return (double)(uint32_t)u;
    case DT_I32:
        return (double)(int32_t)(uint32_t)u;
    case DT_F32: {
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, sizeof f);
        return (double)f;
    }
    case DT_F64: {
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    case DT_BOOL:
        break;
    }
    return NAN;
}

static double clampd(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

void regcodec_encode(double raw, dtype_t t, worder_t o, uint16_t *regs)
{
    uint8_t b[8];
    uint64_t u = 0;
    int n = regcodec_words(t);

    switch (t) {
    case DT_BOOL:
        regs[0] = (raw != 0 && !isnan(raw)) ? 1 : 0;
        return;
    case DT_U16:
        u = (uint16_t)llround(clampd(raw, 0, UINT16_MAX));
        break;
    case DT_I16:
        u = (uint16_t)(int16_t)llround(clampd(raw, INT16_MIN, INT16_MAX));
        break;
    case DT_U32:
        u = (uint32_t)llround(clampd(raw, 0, UINT32_MAX));
        break;
    case DT_I32:
        u = (uint32_t)(int32_t)llround(clampd(raw, INT32_MIN, INT32_MAX));
        break;
    case DT_F32: {
        float f = (float)raw;
        uint32_t u32;
        memcpy(&u32, &f, sizeof u32);
        u = u32;
        break;
    }
    case DT_F64:
        memcpy(&u, &raw, sizeof u);
        break;
    }
    put_be_uint(u, b, 2 * n);
    scatter(b, n, o, regs);
}

int regcodec_to_raw(double value, double scale, double offset, dtype_t t,
                    double *raw)
{
    if (scale == 0 || isnan(value) || isnan(scale) || isnan(offset)) {
        errno = EDOM;
        return -1;
    }
    double r = (value - offset) / scale;
    double lo = 0, hi = 0;
    switch (t) {
    case DT_BOOL: lo = 0; hi = 1; break;
    case DT_U16: lo = 0; hi = UINT16_MAX; break;
    case DT_I16: lo = INT16_MIN; hi = INT16_MAX; break;
    case DT_U32: lo = 0; hi = UINT32_MAX; break;
    case DT_I32: lo = INT32_MIN; hi = INT32_MAX; break;
    case DT_F32: lo = -3.4028234663852886e38; hi = 3.4028234663852886e38; break;
    case DT_F64: lo = -INFINITY; hi = INFINITY; break;
    }
    if (t != DT_F32 && t != DT_F64)
        r = (double)llround(r);
    if (!(r >= lo && r <= hi)) {
        errno = ERANGE;
        return -1;
    }
    *raw = r;
    return 0;
}

static const char *const type_names[] = {
    [DT_BOOL] = "bool", [DT_U16] = "u16", [DT_I16] = "i16", [DT_U32] = "u32",
    [DT_I32] = "i32",   [DT_F32] = "f32", [DT_F64] = "f64",
};
static const char *const order_names[] = {
    [WO_ABCD] = "ABCD", [WO_CDAB] = "CDAB", [WO_BADC] = "BADC", [WO_DCBA] = "DCBA",
};
static const char *const regtype_names[] = {
    [REG_COIL] = "coil", [REG_DISCRETE] = "discrete",
    [REG_HOLDING] = "holding", [REG_INPUT] = "input",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int lookup(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

int regcodec_parse_type(const char *s, dtype_t *out)
{
    int i = lookup(type_names, NELEM(type_names), s);
    if (i < 0)
        return -1;
    *out = (dtype_t)i;
    return 0;
}

int regcodec_parse_order(const char *s, worder_t *out)
{
    int i = lookup(order_names, NELEM(order_names), s);
    if (i < 0)
        return -1;
    *out = (worder_t)i;
    return 0;
}

int regcodec_parse_regtype(const char *s, regtype_t *out)
{
    int i = lookup(regtype_names, NELEM(regtype_names), s);
    if (i < 0)
        return -1;
    *out = (regtype_t)i;
    return 0;
}

const char *regcodec_type_name(dtype_t t)
{
    return (size_t)t < NELEM(type_names) ? type_names[t] : "?";
}

const char *regcodec_order_name(worder_t o)
{
    return (size_t)o < NELEM(order_names) ? order_names[o] : "?";
}

const char *regcodec_regtype_name(regtype_t r)
{
    return (size_t)r < NELEM(regtype_names) ? regtype_names[r] : "?";
}
