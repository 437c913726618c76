/* test_pmap.c — the parameter map (acq/pmap.h) without servers: O(1)
 * lookups by id and name, reference counting, and the serialised form:
 * round trip, then truncated, corrupted and crafted blobs must all be
 * rejected (NULL + message), never crash or half-decode. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acq/pmap.h"
#include "t.h"

static param_meta_t mk(int32_t id, const char *comp, const char *name, dtype_t t,
                       regtype_t table, int address)
{
    param_meta_t p = {
        .id = id, .transport = TR_TCP, .port = 1502, .unit_id = 1, .table = table,
        .type = t, .order = WO_CDAB, .address = address, .scale = 0.1, .offset = -5,
        .min = 0, .max = 400, .has_min = true, .has_max = true, .writable = true,
        .poll_ms = 100, .dev_max_gap = -1, .valid = true,
    };
    snprintf(p.component, sizeof p.component, "%s", comp);
    snprintf(p.name, sizeof p.name, "%s", name);
    snprintf(p.units, sizeof p.units, "degC");
    snprintf(p.host, sizeof p.host, "127.0.0.1");
    return p;
}

static pmap_t *sample_map(void)
{
    param_meta_t ps[4] = {
        mk(11, "heater1", "setpoint", DT_F32, REG_HOLDING, 0),
        mk(12, "heater1", "temperature", DT_I16, REG_INPUT, 4),
        mk(40, "valve", "open", DT_BOOL, REG_COIL, 1),
        mk(7, "bad", "thing", DT_U16, REG_INPUT, 3),
    };
    ps[1].has_deadband = true;
    ps[1].deadband = 0.5;
    ps[1].max_interval_ms = 10000;
    ps[1].stale_after_ms = 2500;
    ps[1].idle_interval_ms = 5000;
    ps[2].idle_interval_ms = -1;
    ps[2].has_min = ps[2].has_max = false;
    ps[2].has_set = true;
    ps[2].set_value = 1;
    ps[3].valid = false;
    snprintf(ps[3].why, sizeof ps[3].why, "unknown data type \"f128\"");
    snprintf(ps[3].no_bridge, sizeof ps[3].no_bridge, "holding:16-19");
    return pmap_new(3, "ald-x", 42, 1700000000123456LL, ps, 4);
}

static void test_lookup(void)
{
    pmap_t *m = sample_map();
    T_CHECK(m != NULL);
    if (!m)
        return;
    T_EQ_INT(pmap_count(m), 4);
    T_EQ_INT(pmap_version(m), 42);
    T_EQ_STR(pmap_machine(m), "ald-x");
    const param_meta_t *p = pmap_find(m, "heater1.temperature");
    T_CHECK(p && p->id == 12);
    T_EQ_STR(p ? p->qualified : NULL, "heater1.temperature");
    p = pmap_find_id(m, 40);
    T_EQ_STR(p ? p->qualified : NULL, "valve.open");
    T_CHECK(pmap_find(m, "heater1.setpont") == NULL);
    T_CHECK(pmap_find(m, "") == NULL);
    T_CHECK(pmap_find_id(m, 13) == NULL);
    /* Every entry is found by both keys. */
    for (size_t i = 0; i < pmap_count(m); i++) {
        T_CHECK(pmap_find(m, pmap_at(m, i)->qualified) == pmap_at(m, i));
        T_CHECK(pmap_find_id(m, pmap_at(m, i)->id) == pmap_at(m, i));
    }
    /* References: the map survives until the last holder lets go. */
    pmap_t *again = pmap_ref(m);
    pmap_free(m);
    T_EQ_STR(pmap_find_id(again, 11)->qualified, "heater1.setpoint");
    pmap_free(again);
    pmap_free(NULL);

    param_meta_t dup[2] = { mk(1, "a", "x", DT_U16, REG_INPUT, 0), mk(1, "a", "y", DT_U16, REG_INPUT, 1) };
    errno = 0;
    T_CHECK(pmap_new(1, "m", 0, 0, dup, 2) == NULL && errno == EINVAL);
    dup[1] = mk(2, "a", "x", DT_U16, REG_INPUT, 1);
    errno = 0;
    T_CHECK(pmap_new(1, "m", 0, 0, dup, 2) == NULL && errno == EINVAL);
}

static void test_large_index(void)
{
    enum { N = 5000 };
    param_meta_t *ps = calloc(N, sizeof *ps);
    for (int i = 0; i < N; i++) {
        char comp[32], name[32];
        snprintf(comp, sizeof comp, "c%03d", i / 10);
        snprintf(name, sizeof name, "p%d", i % 10);
        ps[i] = mk(1000 + 7 * i, comp, name, DT_U16, REG_INPUT, i % 100);
    }
    pmap_t *m = pmap_new(9, "big", 1, 0, ps, N);
    free(ps);
    T_CHECK(m != NULL);
    int found = 0;
    for (int i = 0; m && i < N; i++) {
        char q[64];
        snprintf(q, sizeof q, "c%03d.p%d", i / 10, i % 10);
        const param_meta_t *a = pmap_find(m, q), *b = pmap_find_id(m, 1000 + 7 * i);
        found += a && a == b;
    }
    T_EQ_INT(found, N);
    pmap_free(m);
}

static void test_round_trip(void)
{
    pmap_t *m = sample_map();
    size_t len = 0;
    uint8_t *blob = pmap_encode(m, &len);
    T_CHECK(blob && len > PMAP_BLOB_HEADER);
    char err[256] = "";
    pmap_t *d = pmap_decode(blob, len, err, sizeof err);
    T_CHECK(d != NULL);
    T_EQ_STR(err, "");
    if (d) {
        T_EQ_INT(pmap_count(d), 4);
        T_EQ_INT(pmap_version(d), 42);
        T_EQ_INT(pmap_loaded_at(d), 1700000000123456LL);
        T_EQ_INT(pmap_machine_id(d), 3);
        T_EQ_STR(pmap_machine(d), "ald-x");
        const param_meta_t *p = pmap_find(d, "heater1.temperature");
        T_CHECK(p && p->has_deadband && p->deadband == 0.5 && p->max_interval_ms == 10000 &&
                p->stale_after_ms == 2500 && p->idle_interval_ms == 5000);
        T_CHECK(p && p->type == DT_I16 && p->order == WO_CDAB && p->scale == 0.1 &&
                p->offset == -5 && p->max == 400 && p->valid);
        p = pmap_find(d, "bad.thing");
        T_CHECK(p && !p->valid);
        T_EQ_STR(p ? p->why : NULL, "unknown data type \"f128\"");
        T_EQ_STR(p ? p->no_bridge : NULL, "holding:16-19");
        p = pmap_find_id(d, 40);
        T_CHECK(p && p->has_set && p->set_value == 1 && !p->has_min && p->writable);
        /* Re-encoding gives the same bytes: nothing was lost or changed. */
        size_t len2 = 0;
        uint8_t *blob2 = pmap_encode(d, &len2);
        T_CHECK(blob2 && len2 == len && memcmp(blob, blob2, len) == 0);
        free(blob2);
        pmap_free(d);
    }
    pmap_t *empty = pmap_new(5, "empty", 0, 0, NULL, 0);
    uint8_t *eb = pmap_encode(empty, &len);
    pmap_t *ed = pmap_decode(eb, len, err, sizeof err);
    T_CHECK(ed && pmap_count(ed) == 0 && pmap_find(ed, "a.b") == NULL);
    pmap_free(ed);
    pmap_free(empty);
    free(eb);
    free(blob);
    pmap_free(m);
}

static void test_truncated_and_corrupted(void)
{
    pmap_t *m = sample_map();
    size_t len = 0;
    uint8_t *blob = pmap_encode(m, &len);
    char err[256];
    int accepted = 0;

    /* Every proper prefix is rejected (each decoded from its own exact-size
     * copy so that ASan sees any read past the end). */
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, blob, n);
        err[0] = '\0';
        pmap_t *d = pmap_decode(cut, n, err, sizeof err);
        accepted += d != NULL || err[0] == '\0';
        pmap_free(d);
        free(cut);
    }
    T_EQ_INT(accepted, 0);
    /* One extra byte. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, blob, len);
    longer[len] = 0;
    T_CHECK(pmap_decode(longer, len + 1, err, sizeof err) == NULL);
    free(longer);
    /* Every single-byte corruption is rejected. */
    accepted = 0;
    for (size_t i = 0; i < len; i++) {
        blob[i] ^= 0x5a;
        pmap_t *d = pmap_decode(blob, len, err, sizeof err);
        accepted += d != NULL;
        pmap_free(d);
        blob[i] ^= 0x5a;
    }
    T_EQ_INT(accepted, 0);
    /* Random garbage of many sizes, including a correct magic. */
    srand(7);
    accepted = 0;
    for (int k = 0; k < 2000; k++) {
        size_t n = (size_t)(rand() % 600);
        uint8_t *g = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            g[i] = (uint8_t)rand();
        if (n >= 8 && k % 2)
            memcpy(g, blob, 8);
        pmap_t *d = pmap_decode(g, n, err, sizeof err);
        accepted += d != NULL;
        pmap_free(d);
        free(g);
    }
    T_EQ_INT(accepted, 0);
    T_CHECK(pmap_decode(NULL, 0, err, sizeof err) == NULL);
    free(blob);
    pmap_free(m);
}

/* ---- crafted blobs: a correct checksum around bad content -------------- */

static void le_store(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the header's length and FNV-1a 64 over bytes 0..39 + body. */
static void reseal(uint8_t *b, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    le_store(b + 20, len - PMAP_BLOB_HEADER, 4);
    for (size_t i = 0; i < len; i++) {
        if (i >= 40 && i < PMAP_BLOB_HEADER)
            continue;
        h ^= b[i];
        h *= 1099511628211ull;
    }
    le_store(b + 40, h, 8);
}

/* Offset of the first parameter record (after the machine name). */
static size_t first_record(const uint8_t *b)
{
    return PMAP_BLOB_HEADER + 2 + (size_t)(b[PMAP_BLOB_HEADER] | b[PMAP_BLOB_HEADER + 1] << 8);
}

static int decode_crafted(uint8_t *b, size_t len, const char *expect)
{
    char err[256] = "";
    reseal(b, len);
    pmap_t *d = pmap_decode(b, len, err, sizeof err);
    int ok = d == NULL && strstr(err, expect) != NULL;
    if (!ok)
        printf("# crafted blob: expected \"%s\", got %s \"%s\"\n", expect, d ? "a map" : "NULL", err);
    pmap_free(d);
    return ok;
}

static void test_crafted(void)
{
    param_meta_t one = mk(5, "h", "t", DT_U16, REG_HOLDING, 10);
    pmap_t *m = pmap_new(1, "m", 1, 0, &one, 1);
    size_t len;
    uint8_t *good = pmap_encode(m, &len);
    uint8_t *b = malloc(len + 64);
    char err[256];

    memcpy(b, good, len);
    reseal(b, len);
    pmap_t *d = pmap_decode(b, len, err, sizeof err);
    T_CHECK(d != NULL);   /* resealing an intact blob keeps it valid */
    pmap_free(d);

    size_t r = first_record(good);
    /* record layout: id(4) component(2+1) name(2+1) units(2+4) transport(1) ... */
    memcpy(b, good, len);
    b[r + 4] = 200;   /* component length 200 > field of 64 */
    T_CHECK(decode_crafted(b, len, "string longer than its field"));

    memcpy(b, good, len);
    b[r + 4 + 3 + 3 + 6] = 9;   /* transport */
    T_CHECK(decode_crafted(b, len, "bad transport"));

    memcpy(b, good, len);
    le_store(b + 12, 2, 4);     /* claims two parameters */
    T_CHECK(decode_crafted(b, len, "truncated"));

    memcpy(b, good, len);
    le_store(b + 12, 0xffffffffu, 4);
    T_CHECK(decode_crafted(b, len, "too many parameters"));

    memcpy(b, good, len);
    le_store(b + 8, PMAP_BLOB_FORMAT + 1, 2);   /* a newer format */
    T_CHECK(decode_crafted(b, len, "unknown format"));

    memcpy(b, good, len);
    le_store(b + 8, PMAP_BLOB_FORMAT - 1, 2);   /* format 2: no idle_interval_ms */
    T_CHECK(decode_crafted(b, len, "unknown format"));

    memcpy(b, good, len);
    b[len] = 1;                 /* a trailing byte inside the body */
    T_CHECK(decode_crafted(b, len + 1, "bytes after the last parameter"));

    /* A parameter marked valid whose address runs past 65535. Find the
     * address field by re-encoding with a distinctive value. */
    param_meta_t far = one;
    far.address = 0x12345;
    far.valid = true;
    pmap_t *fm = pmap_new(1, "m", 1, 0, &far, 1);
    size_t flen;
    uint8_t *fb = pmap_encode(fm, &flen);
    T_CHECK(decode_crafted(fb, flen, "fails validation"));
    free(fb);
    pmap_free(fm);

    /* Two records with the same id. */
    param_meta_t two[2] = { one, mk(6, "h", "u", DT_U16, REG_HOLDING, 11) };
    pmap_t *tm = pmap_new(1, "m", 1, 0, two, 2);
    size_t tlen;
    uint8_t *tb = pmap_encode(tm, &tlen);
    size_t second = first_record(tb) + (len - first_record(good));
    le_store(tb + second, 5, 4);
    T_CHECK(decode_crafted(tb, tlen, "duplicate parameter id or name"));
    free(tb);
    pmap_free(tm);

    free(b);
    free(good);
    pmap_free(m);
}

int main(void)
{
    test_lookup();
    test_large_index();
    test_round_trip();
    test_truncated_and_corrupted();
    test_crafted();
    return t_done("test_pmap");
}
