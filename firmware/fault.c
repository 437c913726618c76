/* fault.c — fault specs for aldsim: parsing, canonical text, and the
 * decision taken for each request (see fault.h). */
#include "firmware/fault.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

/* Longest line of a fault file. */
#define LINE_MAX_LEN 512

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- parsing ------------------------------------------------------------ */

/* Decimal integer min..max, the whole of s. */
static int parse_int(const char *s, long min, long max, int *out)
{
    char *end;
    long v;

    if (!isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* A fraction 0..1, the whole of s. */
static int parse_rate(const char *s, double *out)
{
    char *end;
    double v;

    if (!isdigit((unsigned char)s[0]) && s[0] != '.')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

/* "CODE" of an exception, 1..11 (MODBUS_EXCEPTION_ILLEGAL_FUNCTION ..
 * MODBUS_EXCEPTION_GATEWAY_TARGET). */
static int parse_code(const char *s, int *out)
{
    return parse_int(s, 1, MODBUS_EXCEPTION_GATEWAY_TARGET, out);
}

/* "TABLE:ADDR[-ADDR]:CODE" into *r. */
static int parse_range(char *v, fault_range_t *r, char *err, size_t errlen)
{
    char *addr = strchr(v, ':');
    char *code = addr ? strchr(addr + 1, ':') : NULL;
    char *dash;

    if (!code) {
        set_err(err, errlen, "expected TABLE:ADDR[-ADDR]:CODE");
        return -1;
    }
    *addr++ = '\0';
    *code++ = '\0';
    if (regcodec_parse_regtype(v, &r->table) < 0) {
        set_err(err, errlen, "unknown table \"%s\" (coil|discrete|holding|input)", v);
        return -1;
    }
    dash = strchr(addr, '-');
    if (dash)
        *dash++ = '\0';
    if (parse_int(addr, 0, 65535, &r->first) < 0 ||
        parse_int(dash ? dash : addr, 0, 65535, &r->last) < 0 || r->last < r->first) {
        set_err(err, errlen, "expected an address or FIRST-LAST in 0..65535");
        return -1;
    }
    if (parse_code(code, &r->code) < 0) {
        set_err(err, errlen, "expected an exception code 1..11, got \"%s\"", code);
        return -1;
    }
    return 0;
}

/* One fault key: how its value is parsed into a fault_set_t. */
enum value_kind {
    V_FLAG,        /* "silent", "freeze": no value; into *bool at .off */
    V_INT,         /* into *int at .off, .min ... .max */
    V_RATE,        /* into *double at .off */
    V_RATE_CODE,   /* exception_rate=P:CODE */
    V_RANGE,       /* exception=TABLE:ADDR[-ADDR]:CODE, repeatable */
};

static const struct key {
    const char *name;
    enum value_kind kind;
    size_t off;
    long min, max;
    const char *syntax;
} keys[] = {
    { .name = "latency", .kind = V_INT, .off = offsetof(fault_set_t, latency_ms),
      .min = 1, .max = FAULT_MAX_LATENCY_MS, .syntax = "latency=MS" },
    { .name = "silent", .kind = V_FLAG, .off = offsetof(fault_set_t, silent),
      .syntax = "silent" },
    { .name = "freeze", .kind = V_FLAG, .off = offsetof(fault_set_t, freeze),
      .syntax = "freeze" },
    { .name = "silent_rate", .kind = V_RATE, .off = offsetof(fault_set_t, silent_rate),
      .syntax = "silent_rate=P (0..1)" },
    { .name = "exception", .kind = V_RANGE, .syntax = "exception=TABLE:ADDR[-ADDR]:CODE" },
    { .name = "exception_rate", .kind = V_RATE_CODE, .syntax = "exception_rate=P:CODE" },
    { .name = "drop_every", .kind = V_INT, .off = offsetof(fault_set_t, drop_every),
      .min = 1, .max = 1000000000, .syntax = "drop_every=N" },
    { .name = "refuse_ms", .kind = V_INT, .off = offsetof(fault_set_t, refuse_ms),
      .min = 1, .max = FAULT_MAX_REFUSE_MS, .syntax = "refuse_ms=MS" },
    { .name = "max_registers", .kind = V_INT, .off = offsetof(fault_set_t, max_registers),
      .min = 1, .max = MODBUS_MAX_READ_REGISTERS, .syntax = "max_registers=N (1..125)" },
    { .name = "max_bits", .kind = V_INT, .off = offsetof(fault_set_t, max_bits),
      .min = 1, .max = MODBUS_MAX_READ_BITS, .syntax = "max_bits=N (1..2000)" },
    { .name = "max_clients", .kind = V_INT, .off = offsetof(fault_set_t, max_clients),
      .min = 1, .max = 32, .syntax = "max_clients=N (1..32)" },
};

/* True when key k already has a value in f (all keys but exception are
 * single-valued). */
static bool key_set(const fault_set_t *f, const struct key *k)
{
    switch (k->kind) {
    case V_FLAG:
        return *(const bool *)(const void *)((const char *)f + k->off);
    case V_INT:
        return *(const int *)(const void *)((const char *)f + k->off) != 0;
    case V_RATE:
        return *(const double *)(const void *)((const char *)f + k->off) != 0.0;
    case V_RATE_CODE:
        return f->exception_rate_code != 0;
    case V_RANGE:
        return false;
    }
    return false;
}

int fault_set_add(fault_set_t *f, const char *spec, char *err, size_t errlen)
{
    char buf[LINE_MAX_LEN];
    char msg[256] = "";
    const struct key *k = NULL;
    fault_set_t n = *f;
    char *value;

    if (strlen(spec) >= sizeof buf) {
        set_err(err, errlen, "fault spec too long");
        return -1;
    }
    strcpy(buf, spec);
    value = strchr(buf, '=');
    if (value)
        *value++ = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(buf, keys[i].name) == 0)
            k = &keys[i];
    }
    if (!k) {
        set_err(err, errlen, "unknown fault \"%s\" (latency, silent, freeze, silent_rate, "
                "exception, exception_rate, drop_every, refuse_ms, max_registers, "
                "max_bits, max_clients)", buf);
        return -1;
    }
    if ((k->kind == V_FLAG) != (value == NULL)) {
        set_err(err, errlen, "\"%s\": expected %s", spec, k->syntax);
        return -1;
    }
    if (key_set(f, k)) {
        set_err(err, errlen, "\"%s\": %s given twice", spec, k->name);
        return -1;
    }

    switch (k->kind) {
    case V_FLAG:
        *(bool *)(void *)((char *)&n + k->off) = true;
        break;
    case V_INT:
        if (parse_int(value, k->min, k->max, (int *)(void *)((char *)&n + k->off)) < 0)
            snprintf(msg, sizeof msg, "expected %s, %ld..%ld", k->syntax, k->min, k->max);
        break;
    case V_RATE:
        if (parse_rate(value, (double *)(void *)((char *)&n + k->off)) < 0)
            snprintf(msg, sizeof msg, "expected %s", k->syntax);
        break;
    case V_RATE_CODE: {
        char *code = strchr(value, ':');
        if (code)
            *code++ = '\0';
        if (!code || parse_rate(value, &n.exception_rate) < 0 ||
            parse_code(code, &n.exception_rate_code) < 0)
            snprintf(msg, sizeof msg, "expected %s with P in 0..1 and CODE 1..11", k->syntax);
        break;
    }
    case V_RANGE:
        if (n.nranges == FAULT_MAX_EXCEPTIONS)
            snprintf(msg, sizeof msg, "more than %d exception faults", FAULT_MAX_EXCEPTIONS);
        else if (parse_range(value, &n.ranges[n.nranges], msg, sizeof msg) == 0)
            n.nranges++;
        break;
    }
    if (msg[0] != '\0') {
        set_err(err, errlen, "\"%s\": %s", spec, msg);
        return -1;
    }
    *f = n;
    return 0;
}

void fault_set_clear(fault_set_t *f)
{
    *f = (fault_set_t){ .latency_ms = 0 };
}

bool fault_set_empty(const fault_set_t *f)
{
    char text[FAULT_TEXT_MAX];

    fault_set_format(f, text, sizeof text);
    return strcmp(text, "none") == 0;
}

int fault_set_load(fault_set_t *f, const char *path, char *err, size_t errlen)
{
    char line[LINE_MAX_LEN + 2];
    char msg[512];
    fault_set_t n = *f;
    int lineno = 0;
    FILE *fp = fopen(path, "r");

    if (!fp) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, fp)) {
        char *s = line, *end;
        lineno++;
        if (!strchr(line, '\n') && !feof(fp)) {
            set_err(err, errlen, "%s:%d: line too long", path, lineno);
            goto fail;
        }
        end = strchr(s, '#');
        if (end)
            *end = '\0';
        while (isspace((unsigned char)*s))
            s++;
        end = s + strlen(s);
        while (end > s && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*s == '\0')
            continue;
        if (fault_set_add(&n, s, msg, sizeof msg) < 0) {
            set_err(err, errlen, "%s:%d: %s", path, lineno, msg);
            goto fail;
        }
    }
    if (ferror(fp)) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(fp);
    *f = n;
    return 0;

fail:
    fclose(fp);
    return -1;
}

/* Appends to buf[*pos..len) like snprintf, keeping *pos within len - 1. */
static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (*pos + 1 >= len)
        return;
    va_start(ap, fmt);
    k = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (k > 0)
        *pos += (size_t)k < len - *pos ? (size_t)k : len - *pos - 1;
}

void fault_set_format(const fault_set_t *f, char *buf, size_t len)
{
    size_t pos = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (f->latency_ms)
        append(buf, len, &pos, " latency=%d", f->latency_ms);
    if (f->silent)
        append(buf, len, &pos, " silent");
    if (f->freeze)
        append(buf, len, &pos, " freeze");
    if (f->silent_rate > 0)
        append(buf, len, &pos, " silent_rate=%g", f->silent_rate);
    for (int i = 0; i < f->nranges; i++) {
        const fault_range_t *r = &f->ranges[i];
        append(buf, len, &pos, " exception=%s:%d", regcodec_regtype_name(r->table), r->first);
        if (r->last != r->first)
            append(buf, len, &pos, "-%d", r->last);
        append(buf, len, &pos, ":%d", r->code);
    }
    if (f->exception_rate_code)
        append(buf, len, &pos, " exception_rate=%g:%d", f->exception_rate,
               f->exception_rate_code);
    if (f->drop_every)
        append(buf, len, &pos, " drop_every=%d", f->drop_every);
    if (f->refuse_ms)
        append(buf, len, &pos, " refuse_ms=%d", f->refuse_ms);
    if (f->max_registers)
        append(buf, len, &pos, " max_registers=%d", f->max_registers);
    if (f->max_bits)
        append(buf, len, &pos, " max_bits=%d", f->max_bits);
    if (f->max_clients)
        append(buf, len, &pos, " max_clients=%d", f->max_clients);
    if (pos == 0)
        snprintf(buf, len, "none");
    else
        memmove(buf, buf + 1, pos);   /* drop the leading space, keep the NUL */
}

/* ---- requests ----------------------------------------------------------- */

static int be16(const uint8_t *p)
{
    return (p[0] << 8) | p[1];
}

int fault_parse_request(const uint8_t *pdu, size_t pdu_len, fault_request_t *req)
{
    /* Bytes a PDU needs so that our fields are there, and where they are. */
    size_t need = 1;
    regtype_t table = REG_HOLDING;
    bool fixed_one = false;   /* count is 1, not a field */

    *req = (fault_request_t){ .function = pdu_len > 0 ? pdu[0] : -1 };
    if (pdu_len < 1)
        return -1;
    switch (pdu[0]) {
    case MODBUS_FC_READ_COILS:
        table = REG_COIL;
        need = 5;
        req->is_read = true;
        break;
    case MODBUS_FC_READ_DISCRETE_INPUTS:
        table = REG_DISCRETE;
        need = 5;
        req->is_read = true;
        break;
    case MODBUS_FC_READ_HOLDING_REGISTERS:
        need = 5;
        req->is_read = true;
        break;
    case MODBUS_FC_READ_INPUT_REGISTERS:
        table = REG_INPUT;
        need = 5;
        req->is_read = true;
        break;
    case MODBUS_FC_WRITE_SINGLE_COIL:
        table = REG_COIL;
        need = 5;
        fixed_one = true;
        break;
    case MODBUS_FC_WRITE_SINGLE_REGISTER:
        need = 5;
        fixed_one = true;
        break;
    case MODBUS_FC_WRITE_MULTIPLE_COILS:
        table = REG_COIL;
        need = 6;
        break;
    case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
        need = 6;
        break;
    case MODBUS_FC_MASK_WRITE_REGISTER:
        need = 7;
        fixed_one = true;
        break;
    case MODBUS_FC_WRITE_AND_READ_REGISTERS:
        if (pdu_len < 10)
            return -1;
        req->is_read = true;
        req->nranges = 2;
        req->range[0].table = REG_HOLDING;
        req->range[0].addr = be16(pdu + 1);
        req->range[0].count = be16(pdu + 3);
        req->range[1].table = REG_HOLDING;
        req->range[1].addr = be16(pdu + 5);
        req->range[1].count = be16(pdu + 7);
        return 0;
    default:
        return 0;   /* no addresses (report slave id, unknown codes) */
    }
    if (pdu_len < need)
        return -1;
    req->nranges = 1;
    req->range[0].table = table;
    req->range[0].addr = be16(pdu + 1);
    req->range[0].count = fixed_one ? 1 : be16(pdu + 3);
    return 0;
}

/* splitmix64 step (the generator reactor.c uses for its noise). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* True with probability p; draws only when 0 < p. */
static bool chance(double p, uint64_t *rng)
{
    if (!(p > 0.0))
        return false;
    double u = (double)(next_random(rng) >> 11) * 0x1.0p-53;   /* [0, 1) */
    return u < p;
}

static bool is_bits(regtype_t t)
{
    return t == REG_COIL || t == REG_DISCRETE;
}

enum fault_action fault_decide(const fault_set_t *f, const fault_request_t *req,
                               uint64_t seq, uint64_t *rng, int *code)
{
    if (f->drop_every && seq % (uint64_t)f->drop_every == 0)
        return FAULT_DROP;
    if (f->silent || chance(f->silent_rate, rng))
        return FAULT_SILENT;
    for (int i = 0; i < req->nranges; i++) {
        int limit = is_bits(req->range[i].table) ? f->max_bits : f->max_registers;
        if (limit && req->range[i].count > limit) {
            *code = MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            return FAULT_EXCEPTION;
        }
    }
    for (int k = 0; k < f->nranges; k++) {
        const fault_range_t *r = &f->ranges[k];
        for (int i = 0; i < req->nranges; i++) {
            int first = req->range[i].addr;
            int last = first + req->range[i].count - 1;
            if (req->range[i].table == r->table && req->range[i].count > 0 &&
                first <= r->last && last >= r->first) {
                *code = r->code;
                return FAULT_EXCEPTION;
            }
        }
    }
    if (chance(f->exception_rate, rng)) {
        *code = f->exception_rate_code;
        return FAULT_EXCEPTION;
    }
    return FAULT_ANSWER;
}
