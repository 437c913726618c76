/* pmap.c — the machine's parameter map: validation of every parameter,
 * O(1) indexes, reference counting, and the serialised form; see pmap.h
 * (which also documents the blob layout). Loading it from PostgreSQL is
 * cache/pmapdb.c's: the acquisition layer needs no libpq. */
#include "acq/pmap.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fnv.h"

struct pmap {
    atomic_int refs;
    int32_t machine_id;
    char machine[64];
    int64_t version;
    int64_t loaded_at_us;
    size_t n;
    param_meta_t *params;
    /* Open addressing, linear probing; a slot holds index + 1, 0 = empty.
     * Capacity is a power of two at least twice n, so probes stay short. */
    uint32_t mask;
    uint32_t *by_id;
    uint32_t *by_name;
};

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Checks a parameter whose enums are already parsed; sets valid/why. */
static void check_usable(param_meta_t *p)
{
    p->valid = false;
    if (!regcodec_fits(p->table, p->type)) {
        snprintf(p->why, sizeof p->why, "data type %s cannot live in %s registers",
                 regcodec_type_name(p->type), regcodec_regtype_name(p->table));
        return;
    }
    if (p->address < 0 || p->address + regcodec_words(p->type) > 65536) {
        snprintf(p->why, sizeof p->why, "address %d + %d registers runs past 65535",
                 p->address, regcodec_words(p->type));
        return;
    }
    if (p->scale == 0 || !isfinite(p->scale) || !isfinite(p->offset)) {
        snprintf(p->why, sizeof p->why, "scale must be finite and non-zero");
        return;
    }
    if (p->transport == TR_TCP && (p->port < 1 || p->port > 65535 || p->host[0] == '\0')) {
        snprintf(p->why, sizeof p->why, "component endpoint \"%.100s:%d\" is not usable",
                 p->host, p->port);
        return;
    }
    if (p->transport == TR_RTU && p->serial_port[0] == '\0') {
        snprintf(p->why, sizeof p->why, "RTU component without a serial_port");
        return;
    }
    p->valid = true;
    p->why[0] = '\0';
}

void pmap_validate(param_meta_t *p, const char *type, const char *order,
                   const char *table)
{
    p->valid = false;
    if (regcodec_parse_type(type, &p->type) < 0) {
        snprintf(p->why, sizeof p->why, "unknown data type \"%s\"", type);
        return;
    }
    if (regcodec_parse_order(order, &p->order) < 0) {
        snprintf(p->why, sizeof p->why, "unknown word order \"%s\"", order);
        return;
    }
    if (regcodec_parse_regtype(table, &p->table) < 0) {
        snprintf(p->why, sizeof p->why, "unknown register type \"%s\"", table);
        return;
    }
    check_usable(p);
}

/* ---- indexes ------------------------------------------------------------ */

static uint32_t hash_name(const char *s)
{
    return (uint32_t)fnv1a64(FNV1A64_INIT, s, strlen(s));
}

static uint32_t hash_id(int32_t id)
{
    uint32_t x = (uint32_t)id;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Allocates the map shell for n parameters (zeroed). */
static pmap_t *shell_new(size_t n)
{
    pmap_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->params = calloc(n ? n : 1, sizeof *m->params);
    if (!m->params) {
        free(m);
        return NULL;
    }
    return m;
}

/* Fills the qualified names and builds both indexes over m->params[0..n).
 * Returns 0, or -1 with errno ENOMEM or EINVAL (duplicate id or name). */
static int build_index(pmap_t *m)
{
    size_t cap = 8;
    while (cap < 2 * m->n)
        cap *= 2;
    m->mask = (uint32_t)(cap - 1);
    m->by_id = calloc(cap, sizeof *m->by_id);
    m->by_name = calloc(cap, sizeof *m->by_name);
    if (!m->by_id || !m->by_name) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < m->n; i++) {
        param_meta_t *p = &m->params[i];
        snprintf(p->qualified, sizeof p->qualified, "%s.%s", p->component, p->name);
        uint32_t h = hash_id(p->id) & m->mask;
        while (m->by_id[h]) {
            if (m->params[m->by_id[h] - 1].id == p->id) {
                errno = EINVAL;
                return -1;
            }
            h = (h + 1) & m->mask;
        }
        m->by_id[h] = (uint32_t)i + 1;
        h = hash_name(p->qualified) & m->mask;
        while (m->by_name[h]) {
            if (strcmp(m->params[m->by_name[h] - 1].qualified, p->qualified) == 0) {
                errno = EINVAL;
                return -1;
            }
            h = (h + 1) & m->mask;
        }
        m->by_name[h] = (uint32_t)i + 1;
    }
    return 0;
}

static void destroy(pmap_t *m)
{
    free(m->by_id);
    free(m->by_name);
    free(m->params);
    free(m);
}

pmap_t *pmap_new(int32_t machine_id, const char *machine, int64_t version,
                 int64_t loaded_at_us, const param_meta_t *params, size_t n)
{
    if (n > PMAP_MAX_PARAMS) {
        errno = EINVAL;
        return NULL;
    }
    pmap_t *m = shell_new(n);
    if (!m) {
        errno = ENOMEM;
        return NULL;
    }
    m->machine_id = machine_id;
    copy_str(m->machine, sizeof m->machine, machine);
    m->version = version;
    m->loaded_at_us = loaded_at_us;
    if (n)
        memcpy(m->params, params, n * sizeof *params);
    m->n = n;
    if (build_index(m) < 0) {
        int e = errno;
        destroy(m);
        errno = e;
        return NULL;
    }
    return m;
}

pmap_t *pmap_ref(pmap_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void pmap_free(pmap_t *m)
{
    if (!m)
        return;
    /* acq_rel: the thread that frees sees every other holder's reads done. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        destroy(m);
}

/* ---- accessors ---------------------------------------------------------- */

int32_t pmap_machine_id(const pmap_t *m)
{
    return m->machine_id;
}

const char *pmap_machine(const pmap_t *m)
{
    return m->machine;
}

int64_t pmap_version(const pmap_t *m)
{
    return m->version;
}

int64_t pmap_loaded_at(const pmap_t *m)
{
    return m->loaded_at_us;
}

size_t pmap_count(const pmap_t *m)
{
    return m->n;
}

const param_meta_t *pmap_at(const pmap_t *m, size_t i)
{
    return i < m->n ? &m->params[i] : NULL;
}

const param_meta_t *pmap_find(const pmap_t *m, const char *qualified)
{
    uint32_t h = hash_name(qualified) & m->mask;
    for (uint32_t slot; (slot = m->by_name[h]) != 0; h = (h + 1) & m->mask)
        if (strcmp(m->params[slot - 1].qualified, qualified) == 0)
            return &m->params[slot - 1];
    return NULL;
}

const param_meta_t *pmap_find_id(const pmap_t *m, int32_t id)
{
    uint32_t h = hash_id(id) & m->mask;
    for (uint32_t slot; (slot = m->by_id[h]) != 0; h = (h + 1) & m->mask)
        if (m->params[slot - 1].id == id)
            return &m->params[slot - 1];
    return NULL;
}

/* ---- serialised form ---------------------------------------------------- */

static const uint8_t blob_magic[8] = { 'A', 'L', 'D', 'P', 'M', 'A', 'P', 0 };

enum {
    F_HAS_MIN = 1, F_HAS_MAX = 2, F_HAS_SET = 4, F_WRITABLE = 8, F_HAS_DEADBAND = 16,
    F_VALID = 32, F_ALL = 63,
};

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} wbuf_t;

static void put(wbuf_t *w, const void *src, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *np = realloc(w->p, cap);
        if (!np) {
            w->oom = true;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_le(wbuf_t *w, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, (size_t)bytes);
}

static void put_u8(wbuf_t *w, unsigned v) { put_le(w, v, 1); }
static void put_i32(wbuf_t *w, int32_t v) { put_le(w, (uint32_t)v, 4); }

static void put_f64(wbuf_t *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_le(w, v, 8);
}

static void put_str(wbuf_t *w, const char *s)
{
    size_t n = strlen(s);
    put_le(w, n, 2);
    put(w, s, n);
}

static void store_le(uint8_t *dst, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        dst[i] = (uint8_t)(v >> (8 * i));
}

uint8_t *pmap_encode(const pmap_t *m, size_t *len)
{
    wbuf_t w = { 0 };
    uint8_t header[PMAP_BLOB_HEADER] = { 0 };

    put(&w, header, sizeof header);   /* filled in at the end */
    put_str(&w, m->machine);
    for (size_t i = 0; i < m->n; i++) {
        const param_meta_t *p = &m->params[i];
        put_i32(&w, p->id);
        put_str(&w, p->component);
        put_str(&w, p->name);
        put_str(&w, p->units);
        put_u8(&w, (unsigned)p->transport);
        put_str(&w, p->host);
        put_i32(&w, p->port);
        put_str(&w, p->serial_port);
        put_i32(&w, p->baud);
        put_u8(&w, (uint8_t)p->parity);
        put_i32(&w, p->data_bits);
        put_i32(&w, p->stop_bits);
        put_i32(&w, p->unit_id);
        put_i32(&w, p->dev_max_registers);
        put_i32(&w, p->dev_max_bits);
        put_i32(&w, p->dev_max_gap);
        put_i32(&w, p->dev_response_timeout_ms);
        put_str(&w, p->no_bridge);
        put_u8(&w, (unsigned)p->table);
        put_u8(&w, (unsigned)p->type);
        put_u8(&w, (unsigned)p->order);
        put_i32(&w, p->address);
        put_f64(&w, p->scale);
        put_f64(&w, p->offset);
        put_f64(&w, p->min);
        put_f64(&w, p->max);
        put_f64(&w, p->set_value);
        put_u8(&w, (p->has_min ? F_HAS_MIN : 0) | (p->has_max ? F_HAS_MAX : 0) |
                   (p->has_set ? F_HAS_SET : 0) | (p->writable ? F_WRITABLE : 0) |
                   (p->has_deadband ? F_HAS_DEADBAND : 0) | (p->valid ? F_VALID : 0));
        put_i32(&w, p->poll_ms);
        put_f64(&w, p->deadband);
        put_i32(&w, p->max_interval_ms);
        put_i32(&w, p->stale_after_ms);
        put_i32(&w, p->idle_interval_ms);
        put_str(&w, p->why);
    }
    if (w.oom) {
        free(w.p);
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *h = w.p;
    memcpy(h, blob_magic, sizeof blob_magic);
    store_le(h + 8, PMAP_BLOB_FORMAT, 2);
    store_le(h + 10, 0, 2);
    store_le(h + 12, m->n, 4);
    store_le(h + 16, (uint32_t)m->machine_id, 4);
    store_le(h + 20, w.len - PMAP_BLOB_HEADER, 4);
    store_le(h + 24, (uint64_t)m->version, 8);
    store_le(h + 32, (uint64_t)m->loaded_at_us, 8);
    uint64_t sum = fnv1a64(fnv1a64(FNV1A64_INIT, h, 40), h + PMAP_BLOB_HEADER,
                           w.len - PMAP_BLOB_HEADER);
    store_le(h + 40, sum, 8);
    *len = w.len;
    return w.p;
}

typedef struct rbuf {
    const uint8_t *p;
    size_t left;
    const char *bad;     /* first problem found, NULL while fine */
} rbuf_t;

static uint64_t get_le(rbuf_t *r, int bytes)
{
    if (r->bad)
        return 0;
    if (r->left < (size_t)bytes) {
        r->bad = "truncated";
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    r->left -= (size_t)bytes;
    return v;
}

static int32_t get_i32(rbuf_t *r) { return (int32_t)(uint32_t)get_le(r, 4); }

static double get_f64(rbuf_t *r)
{
    uint64_t v = get_le(r, 8);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static void get_str(rbuf_t *r, char *dst, size_t cap)
{
    size_t n = (size_t)get_le(r, 2);
    dst[0] = '\0';
    if (r->bad)
        return;
    if (n >= cap) {
        r->bad = "string longer than its field";
        return;
    }
    if (n > r->left) {
        r->bad = "truncated";
        return;
    }
    if (memchr(r->p, '\0', n)) {
        r->bad = "NUL inside a string";
        return;
    }
    memcpy(dst, r->p, n);
    dst[n] = '\0';
    r->p += n;
    r->left -= n;
}

/* Reads a small enum; marks the buffer bad when it is above max. */
static unsigned get_enum(rbuf_t *r, unsigned max, const char *what)
{
    unsigned v = (unsigned)get_le(r, 1);
    if (!r->bad && v > max)
        r->bad = what;
    return v;
}

static void get_param(rbuf_t *r, param_meta_t *p)
{
    p->id = get_i32(r);
    get_str(r, p->component, sizeof p->component);
    get_str(r, p->name, sizeof p->name);
    get_str(r, p->units, sizeof p->units);
    p->transport = (transport_t)get_enum(r, TR_RTU, "bad transport");
    get_str(r, p->host, sizeof p->host);
    p->port = get_i32(r);
    get_str(r, p->serial_port, sizeof p->serial_port);
    p->baud = get_i32(r);
    p->parity = (char)get_le(r, 1);
    if (!r->bad && p->parity && !strchr("NEO", p->parity))
        r->bad = "bad parity";
    p->data_bits = get_i32(r);
    p->stop_bits = get_i32(r);
    p->unit_id = get_i32(r);
    p->dev_max_registers = get_i32(r);
    p->dev_max_bits = get_i32(r);
    p->dev_max_gap = get_i32(r);
    p->dev_response_timeout_ms = get_i32(r);
    get_str(r, p->no_bridge, sizeof p->no_bridge);
    p->table = (regtype_t)get_enum(r, REG_INPUT, "bad register type");
    p->type = (dtype_t)get_enum(r, DT_F64, "bad data type");
    p->order = (worder_t)get_enum(r, WO_DCBA, "bad word order");
    p->address = get_i32(r);
    p->scale = get_f64(r);
    p->offset = get_f64(r);
    p->min = get_f64(r);
    p->max = get_f64(r);
    p->set_value = get_f64(r);
    unsigned flags = get_enum(r, F_ALL, "unknown flag bits");
    p->has_min = flags & F_HAS_MIN;
    p->has_max = flags & F_HAS_MAX;
    p->has_set = flags & F_HAS_SET;
    p->writable = flags & F_WRITABLE;
    p->has_deadband = flags & F_HAS_DEADBAND;
    p->poll_ms = get_i32(r);
    p->deadband = get_f64(r);
    p->max_interval_ms = get_i32(r);
    p->stale_after_ms = get_i32(r);
    if (!r->bad && p->stale_after_ms < 0)
        r->bad = "negative stale_after_ms";
    p->idle_interval_ms = get_i32(r);
    if (!r->bad && p->idle_interval_ms < -1)
        r->bad = "idle_interval_ms below -1";
    get_str(r, p->why, sizeof p->why);
    if (r->bad || !(flags & F_VALID)) {
        p->valid = false;
        return;
    }
    /* Marked valid: it must pass the loader's own checks, and the poller
     * relies on a positive interval. */
    check_usable(p);
    if (!p->valid || p->poll_ms <= 0)
        r->bad = "parameter marked valid fails validation";
}

pmap_t *pmap_decode(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    pmap_t *m = NULL;
    const char *why = NULL;

    if (!buf || len < PMAP_BLOB_HEADER) {
        why = "shorter than the header";
        goto bad;
    }
    if (memcmp(buf, blob_magic, sizeof blob_magic) != 0) {
        why = "bad magic";
        goto bad;
    }
    rbuf_t h = { .p = buf + 8, .left = PMAP_BLOB_HEADER - 8 };
    unsigned format = (unsigned)get_le(&h, 2);
    unsigned flags = (unsigned)get_le(&h, 2);
    uint32_t n = (uint32_t)get_le(&h, 4);
    int32_t machine_id = get_i32(&h);
    uint32_t body = (uint32_t)get_le(&h, 4);
    int64_t version = (int64_t)get_le(&h, 8);
    int64_t loaded_at = (int64_t)get_le(&h, 8);
    uint64_t sum = get_le(&h, 8);
    if (format != PMAP_BLOB_FORMAT || flags != 0) {
        why = "unknown format version or flags";
        goto bad;
    }
    if ((uint64_t)body + PMAP_BLOB_HEADER != len) {
        why = "length does not match the header (truncated or trailing bytes)";
        goto bad;
    }
    if (fnv1a64(fnv1a64(FNV1A64_INIT, buf, 40), buf + PMAP_BLOB_HEADER, body) != sum) {
        why = "checksum mismatch";
        goto bad;
    }
    if (n > PMAP_MAX_PARAMS) {
        why = "too many parameters";
        goto bad;
    }
    m = shell_new(n);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    m->machine_id = machine_id;
    m->version = version;
    m->loaded_at_us = loaded_at;
    rbuf_t r = { .p = buf + PMAP_BLOB_HEADER, .left = body };
    get_str(&r, m->machine, sizeof m->machine);
    for (uint32_t i = 0; i < n && !r.bad; i++)
        get_param(&r, &m->params[m->n++]);
    if (!r.bad && r.left != 0)
        r.bad = "bytes after the last parameter";
    if (r.bad) {
        why = r.bad;
        goto bad;
    }
    if (build_index(m) < 0) {
        why = errno == ENOMEM ? "out of memory" : "duplicate parameter id or name";
        goto bad;
    }
    return m;
bad:
    if (m)
        destroy(m);
    snprintf(err, errlen, "invalid parameter map blob (%zu bytes): %s", len, why);
    errno = EINVAL;
    return NULL;
}
