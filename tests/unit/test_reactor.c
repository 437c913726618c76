/* test_reactor.c — the aldsim reactor model without a network: test-pattern
 * constants, the raw register words served, read counter, heater lags, ALD
 * sequencer timing, set-point writes, seeded noise, odd step sizes.
 *
 * The Makefile links unit tests against libaldrec.a only, which does not
 * hold firmware/, so the model is compiled into this translation unit. Most
 * checks go through reactor.h; a few look at the noise-free state. Expected
 * register layouts are restated here from firmware/REGISTERS.md rather than
 * taken from reactor.c's table, so a slip in that table shows up. */
#include "../../firmware/reactor.c"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "acq/regcodec.h"
#include "t.h"

/* Engineering value of a parameter as served; fails the test if unknown. */
static double val(const reactor_t *r, const char *name)
{
    double v = NAN;
    if (reactor_get(r, name, &v) < 0)
        t_report(0, __FILE__, __LINE__, name);
    return v;
}

static double input_raw(reactor_t *r, int addr, dtype_t t, worder_t o)
{
    return regcodec_decode(&reactor_mapping(r)->tab_input_registers[addr], t, o);
}

/* A client writing holding registers, then the server applying them. */
static void write_holding(reactor_t *r, int addr, double raw, dtype_t t, worder_t o)
{
    regcodec_encode(raw, t, o, &reactor_mapping(r)->tab_registers[addr]);
    reactor_apply_writes(r);
}

static void write_coil(reactor_t *r, int addr, int on)
{
    reactor_mapping(r)->tab_bits[addr] = on ? 1 : 0;
    reactor_apply_writes(r);
}

/* REGISTERS.md, input registers 30-44. */
static void test_pattern(void)
{
    static const struct {
        int addr;
        dtype_t type;
        worder_t order;
        double scale, offset, want, eps;
    } pat[] = {
        { .addr = 30, .type = DT_U16, .order = WO_ABCD, .scale = 1, .want = 54321 },
        { .addr = 31, .type = DT_I16, .order = WO_ABCD, .scale = 1, .want = -12345 },
        { .addr = 32, .type = DT_U32, .order = WO_ABCD, .scale = 1, .want = 3000000000.0 },
        { .addr = 34, .type = DT_I32, .order = WO_CDAB, .scale = 1, .want = -123456789 },
        { .addr = 36, .type = DT_F32, .order = WO_BADC, .scale = 1, .want = 3.1415927410125732 },
        { .addr = 38, .type = DT_F32, .order = WO_DCBA, .scale = 1, .want = (double)-0.0025f },
        { .addr = 40, .type = DT_F64, .order = WO_CDAB, .scale = 1, .want = 1234.5678901234 },
        { .addr = 44, .type = DT_I16, .order = WO_ABCD, .scale = 0.01, .offset = -50,
          .want = -37.66, .eps = 1e-9 },
    };
    reactor_t *r = reactor_new(1);
    T_CHECK(r != NULL);
    if (!r)
        return;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof pat / sizeof pat[0]; i++) {
            double raw = input_raw(r, pat[i].addr, pat[i].type, pat[i].order);
            T_EQ_DBL(raw * pat[i].scale + pat[i].offset, pat[i].want, pat[i].eps);
        }
        reactor_step(r, 123.456);   /* constants stay constant */
    }
    /* Gaps read 0 (uptime, an f64 at 22, takes 22-25). */
    uint16_t *in = reactor_mapping(r)->tab_input_registers;
    for (int a = 16; a < REACTOR_TABLE_SIZE; a++) {
        if ((a >= 16 && a <= 19) || (a >= 26 && a <= 29) || a >= 45)
            T_EQ_INT(in[a], 0);
    }
    reactor_free(r);
}

/* The registers aldsim serves, word by word, against constants derived by
 * hand from REGISTERS.md's word-order table (A = most significant byte) and
 * checked with Python's struct module, which shares no code with regcodec
 * (ABCD = unpack(">nH", pack(">T", v)), CDAB = unpack("<nH", pack("<T", v)),
 * BADC = unpack("<nH", pack(">T", v)), DCBA = unpack(">nH", pack("<T", v))).
 * reactor.c writes them with regcodec, which test_vectors in
 * test_regcodec.c pins the same way; here a slip in either, or in
 * reactor.c's table, shows up as a wrong register. Every order the map
 * uses is covered: f64 ABCD and CDAB, 32-bit ABCD, CDAB, BADC and DCBA.
 *
 *   f64 1234.5678901234 = 0x40934A4584FD0EE6
 *     ABCD 4093 4A45 84FD 0EE6            CDAB 0EE6 84FD 4A45 4093
 *   u32 3000000000 = 0xB2D05E00           ABCD B2D0 5E00
 *   i32 -123456789 = 0xF8A432EB           CDAB 32EB F8A4
 *   f32 3.14159274 = 0x40490FDB           BADC 4940 DB0F
 *   f32 -0.0025    = 0xBB23D70A           DCBA 0AD7 23BB
 *   u16 54321 = 0xD431, i16 -12345 = 0xCFC7, i16 raw 1234 = 0x04D2
 *   f32 200 = 0x43480000 ABCD 4348 0000, f32 150 = 0x43160000 CDAB 0000 4316,
 *   f32 100 = 0x42C80000 ABCD 42C8 0000, f32 380.5 = 0x43BE4000 CDAB 4000 43BE
 * The counters get values with four distinct bytes:
 *   0x5A6B7C8D ABCD 5A6B 7C8D, 0xF1E2D3C4 CDAB D3C4 F1E2,
 *   0x0A0B0C0D ABCD 0A0B 0C0D, 0xA1B2C3D4 DCBA D4C3 B2A1 */
static void test_raw_words(void)
{
    static const struct {
        regtype_t table;
        int addr;
        uint16_t want;
        const char *what;
    } words[] = {
        { REG_INPUT, 10, 0xD3C4, "ald.pulses_tma u32 CDAB" },
        { REG_INPUT, 11, 0xF1E2, "ald.pulses_tma u32 CDAB" },
        { REG_INPUT, 12, 0x0A0B, "ald.pulses_h2o u32 ABCD" },
        { REG_INPUT, 13, 0x0C0D, "ald.pulses_h2o u32 ABCD" },
        { REG_INPUT, 14, 0xD4C3, "ald.cycles u32 DCBA" },
        { REG_INPUT, 15, 0xB2A1, "ald.cycles u32 DCBA" },
        { REG_INPUT, 20, 0x5A6B, "system.read_counter u32 ABCD" },
        { REG_INPUT, 21, 0x7C8D, "system.read_counter u32 ABCD" },
        { REG_INPUT, 22, 0x4093, "system.uptime f64 ABCD" },
        { REG_INPUT, 23, 0x4A45, "system.uptime f64 ABCD" },
        { REG_INPUT, 24, 0x84FD, "system.uptime f64 ABCD" },
        { REG_INPUT, 25, 0x0EE6, "system.uptime f64 ABCD" },
        { REG_INPUT, 30, 0xD431, "test.u16" },
        { REG_INPUT, 31, 0xCFC7, "test.i16" },
        { REG_INPUT, 32, 0xB2D0, "test.u32 ABCD" },
        { REG_INPUT, 33, 0x5E00, "test.u32 ABCD" },
        { REG_INPUT, 34, 0x32EB, "test.i32 CDAB" },
        { REG_INPUT, 35, 0xF8A4, "test.i32 CDAB" },
        { REG_INPUT, 36, 0x4940, "test.f32_badc BADC" },
        { REG_INPUT, 37, 0xDB0F, "test.f32_badc BADC" },
        { REG_INPUT, 38, 0x0AD7, "test.f32_dcba DCBA" },
        { REG_INPUT, 39, 0x23BB, "test.f32_dcba DCBA" },
        { REG_INPUT, 40, 0x0EE6, "test.f64_cdab CDAB" },
        { REG_INPUT, 41, 0x84FD, "test.f64_cdab CDAB" },
        { REG_INPUT, 42, 0x4A45, "test.f64_cdab CDAB" },
        { REG_INPUT, 43, 0x4093, "test.f64_cdab CDAB" },
        { REG_INPUT, 44, 0x04D2, "test.scaled i16" },
        { REG_HOLDING, 0, 0x4348, "heater1.setpoint f32 ABCD" },
        { REG_HOLDING, 1, 0x0000, "heater1.setpoint f32 ABCD" },
        { REG_HOLDING, 2, 0x0000, "heater2.setpoint f32 CDAB" },
        { REG_HOLDING, 3, 0x4316, "heater2.setpoint f32 CDAB" },
        { REG_HOLDING, 4, 0x42C8, "mfc_carrier.setpoint f32 ABCD" },
        { REG_HOLDING, 5, 0x0000, "mfc_carrier.setpoint f32 ABCD" },
        { REG_HOLDING, 6, 200, "mfc_tma.setpoint u16 (0.1 sccm)" },
        { REG_HOLDING, 7, 300, "mfc_h2o.setpoint u16 (0.1 sccm)" },
        { REG_HOLDING, 8, 50, "ald.pulse_ms u16" },
        { REG_HOLDING, 9, 200, "ald.purge_ms u16" },
    };
    reactor_t *r = reactor_new(1);
    T_CHECK(r != NULL);
    if (!r)
        return;
    modbus_mapping_t *mb = reactor_mapping(r);
    /* Sequencer off, so the counters stand still; then the model time is
     * the f64 test value, and system.uptime reports it. */
    write_coil(r, 2, 0);
    r->pulses_tma = 0xF1E2D3C4;
    r->pulses_h2o = 0x0A0B0C0D;
    r->cycles = 0xA1B2C3D4;
    r->reads = 0x5A6B7C8C;
    reactor_count_read(r);
    reactor_step(r, 1234.5678901234);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        uint16_t got = words[i].table == REG_INPUT ? mb->tab_input_registers[words[i].addr]
                                                   : mb->tab_registers[words[i].addr];
        char msg[160];
        snprintf(msg, sizeof msg, "%s register %d: 0x%04X, want 0x%04X (%s)",
                 regcodec_regtype_name(words[i].table), words[i].addr, got, words[i].want,
                 words[i].what);
        t_report(got == words[i].want, __FILE__, __LINE__, msg);
    }
    /* A client writes 380.5 as CDAB words made by hand: the reactor takes
     * it (and would revert anything it cannot decode to a value in range). */
    mb->tab_registers[2] = 0x4000;
    mb->tab_registers[3] = 0x43BE;
    reactor_apply_writes(r);
    T_EQ_DBL(val(r, "heater2.setpoint"), 380.5, 0);
    T_EQ_INT(mb->tab_registers[2], 0x4000);
    T_EQ_INT(mb->tab_registers[3], 0x43BE);
    reactor_free(r);
}

static void test_defaults(void)
{
    reactor_t *r = reactor_new(1);
    uint16_t *hr = reactor_mapping(r)->tab_registers;
    T_EQ_DBL(val(r, "heater1.setpoint"), 200.0, 0);
    T_EQ_DBL(regcodec_decode(&hr[0], DT_F32, WO_ABCD), 200.0, 0);
    T_EQ_DBL(regcodec_decode(&hr[2], DT_F32, WO_CDAB), 150.0, 0);
    T_EQ_DBL(regcodec_decode(&hr[4], DT_F32, WO_ABCD), 100.0, 0);
    T_EQ_INT(hr[6], 200);
    T_EQ_INT(hr[7], 300);
    T_EQ_INT(hr[8], 50);
    T_EQ_INT(hr[9], 200);
    T_EQ_INT(reactor_mapping(r)->tab_bits[2], 1);
    T_EQ_DBL(val(r, "heater1.temperature"), 25.0, 0.05);
    T_EQ_DBL(val(r, "heater2.temperature"), 25.0, 0.1);
    T_EQ_DBL(val(r, "mfc_tma.flow"), 0, 0);
    T_EQ_DBL(val(r, "system.uptime"), 0, 0);
    T_EQ_DBL(val(r, "heater1.power"), 100.0, 1e-9);   /* 175 degC to go */
    T_EQ_DBL(val(r, "system.read_counter"), 0, 0);
    double v;
    errno = 0;
    T_EQ_INT(reactor_get(r, "no.such", &v), -1);
    T_EQ_INT(errno, ENOENT);
    reactor_free(r);
}

static void test_read_counter(void)
{
    reactor_t *r = reactor_new(1);
    for (uint32_t i = 1; i <= 1000; i++) {
        reactor_count_read(r);
        if (input_raw(r, 20, DT_U32, WO_ABCD) != (double)i) {
            T_EQ_DBL(input_raw(r, 20, DT_U32, WO_ABCD), (double)i, 0);
            break;
        }
    }
    T_EQ_DBL(input_raw(r, 20, DT_U32, WO_ABCD), 1000, 0);
    reactor_step(r, 1.0);            /* stepping does not count */
    T_EQ_DBL(val(r, "system.read_counter"), 1000, 0);
    r->reads = UINT32_MAX - 1;       /* wraps, does not saturate */
    reactor_count_read(r);
    T_EQ_DBL(val(r, "system.read_counter"), UINT32_MAX, 0);
    reactor_count_read(r);
    T_EQ_DBL(val(r, "system.read_counter"), 0, 0);
    reactor_free(r);
}

/* Heater 1 tracks a new set point up, then down: the model state moves
 * strictly monotonically, the reported value within its ±0.05 noise, and is
 * within 1 degC after 10 tau. */
static void test_heater_lag(void)
{
    reactor_t *r = reactor_new(3);
    double t = 2.0;
    reactor_step(r, t);
    const double targets[] = { 300.0, 100.0 };
    for (int k = 0; k < 2; k++) {
        double sp = targets[k], dir = k == 0 ? 1 : -1;
        write_holding(r, 0, sp, DT_F32, WO_ABCD);
        T_EQ_DBL(val(r, "heater1.setpoint"), sp, 0);
        double state = r->h1_temp, shown = val(r, "heater1.temperature");
        int bad_state = 0, bad_shown = 0;
        double t_end = t + 10 * H1_TAU_S;
        while (t < t_end) {
            t += 0.25;
            reactor_step(r, t);
            bad_state += dir * (r->h1_temp - state) <= 0;
            bad_shown += dir * (val(r, "heater1.temperature") - shown) < -0.1;
            state = r->h1_temp;
            shown = val(r, "heater1.temperature");
        }
        T_EQ_INT(bad_state, 0);
        T_EQ_INT(bad_shown, 0);
        T_EQ_DBL(val(r, "heater1.temperature"), sp, 1.0);
        T_EQ_INT(reactor_mapping(r)->tab_input_bits[0], 1);   /* at set point */
        T_EQ_DBL(val(r, "heater1.power"), 0, 0.5);
    }
    /* Heater 2 (tau 8 s, 0.1 degC steps) got to its 150 degC meanwhile. */
    T_EQ_DBL(val(r, "heater2.temperature"), 150.0, 1.0);
    double h2 = input_raw(r, 4, DT_I16, WO_ABCD);
    T_EQ_DBL(h2, round(h2), 0);
    T_EQ_INT(reactor_mapping(r)->tab_input_bits[1], 1);
    /* Flows reached their set points; pressure = base + flow term. */
    T_EQ_DBL(val(r, "mfc_carrier.flow"), 100.0, CARRIER_NOISE_SCCM);
    T_EQ_DBL(val(r, "mfc_tma.flow"), 20.0, 1e-9);
    T_EQ_DBL(val(r, "mfc_h2o.flow"), 30.0, 1e-9);
    reactor_free(r);
}

/* Heater 1 after one tau from 25 to 200 degC: 1 - 1/e of the way. */
static void test_heater_tau(void)
{
    reactor_t *r = reactor_new(1);
    reactor_step(r, H1_TAU_S);
    T_EQ_DBL(r->h1_temp, 200.0 - 175.0 * exp(-1.0), 1e-9);
    /* The same span in 5000 small steps lands on the same value. */
    reactor_t *q = reactor_new(1);
    for (int i = 1; i <= 5000; i++)
        reactor_step(q, H1_TAU_S * i / 5000.0);
    T_EQ_DBL(q->h1_temp, r->h1_temp, 1e-9);
    reactor_free(q);
    reactor_free(r);
}

/* pulse 50 ms, purge 200 ms: one cycle per 500 ms. */
static void test_sequencer(void)
{
    reactor_t *r = reactor_new(1);
    uint8_t *coil = reactor_mapping(r)->tab_bits;
    int tma_open_ms = 0, h2o_open_ms = 0, both = 0;

    T_EQ_DBL(val(r, "ald.pulses_tma"), 1, 0);   /* first pulse starts at 0 */
    for (int i = 1; i <= 10000; i++) {
        reactor_step(r, i / 1000.0);
        tma_open_ms += coil[0];
        h2o_open_ms += coil[1];
        both += coil[0] && coil[1];
        if (i == 25) {
            T_EQ_INT(coil[0], 1);
            T_EQ_INT(coil[1], 0);
        } else if (i == 100) {
            T_EQ_INT(coil[0], 0);
            T_EQ_INT(coil[1], 0);
        } else if (i == 275) {
            T_EQ_INT(coil[0], 0);
            T_EQ_INT(coil[1], 1);
            T_EQ_DBL(val(r, "ald.pulses_h2o"), 1, 0);
        } else if (i == 400) {
            T_EQ_DBL(val(r, "ald.cycles"), 0, 0);
        } else if (i == 600) {
            T_EQ_DBL(val(r, "ald.cycles"), 1, 0);
            T_EQ_DBL(val(r, "ald.pulses_tma"), 2, 0);
        }
    }
    double cycles = val(r, "ald.cycles");
    T_CHECK(cycles >= 19 && cycles <= 21);
    T_EQ_DBL(input_raw(r, 14, DT_U32, WO_DCBA), cycles, 0);
    T_EQ_DBL(val(r, "ald.pulses_tma"), 21, 1);
    T_EQ_DBL(val(r, "ald.pulses_h2o"), 20, 1);
    T_EQ_DBL(input_raw(r, 10, DT_U32, WO_CDAB), val(r, "ald.pulses_tma"), 0);
    /* 50 ms per pulse, sampled every ms; a boundary may land on either
     * side of a sample. */
    T_EQ_DBL(tma_open_ms, 20 * 50, 20);
    T_EQ_DBL(h2o_open_ms, 20 * 50, 20);
    T_EQ_INT(both, 0);
    T_EQ_DBL(val(r, "system.uptime"), 10.0, 1e-12);

    /* Slower recipe, written by a client: 100 + 400 ms → 1 cycle per s. */
    double c0 = val(r, "ald.cycles");
    write_holding(r, 8, 100, DT_U16, WO_ABCD);
    write_holding(r, 9, 400, DT_U16, WO_ABCD);
    T_EQ_DBL(val(r, "ald.pulse_ms"), 100, 0);
    for (int i = 1; i <= 10000; i++)
        reactor_step(r, 10.0 + i / 1000.0);
    T_EQ_DBL(val(r, "ald.cycles") - c0, 10, 1);
    reactor_free(r);
}

/* Stepping in one jump or in many small steps counts the same. */
static void test_step_sizes(void)
{
    reactor_t *a = reactor_new(1), *b = reactor_new(1);
    reactor_step(a, 7.3);
    for (int i = 1; i <= 7300; i++)
        reactor_step(b, i / 1000.0);
    T_EQ_DBL(val(a, "ald.cycles"), val(b, "ald.cycles"), 0);
    T_EQ_DBL(val(a, "ald.pulses_tma"), val(b, "ald.pulses_tma"), 0);
    T_EQ_DBL(val(a, "ald.pulses_h2o"), val(b, "ald.pulses_h2o"), 0);
    T_EQ_DBL(a->pressure, b->pressure, 1e-6);

    /* dt = 0, backwards, NaN, Inf: nothing changes, no noise drawn. */
    uint16_t before[REACTOR_TABLE_SIZE];
    memcpy(before, reactor_mapping(a)->tab_input_registers, sizeof before);
    reactor_step(a, 7.3);
    reactor_step(a, 1.0);
    reactor_step(a, NAN);
    reactor_step(a, INFINITY);
    T_CHECK(memcmp(before, reactor_mapping(a)->tab_input_registers, sizeof before) == 0);

    /* A tiny step moves time and stays finite. */
    reactor_step(a, 7.3 + 1e-9);
    T_CHECK(val(a, "system.uptime") > 7.3);
    T_CHECK(isfinite(a->pressure) && isfinite(a->h1_temp));

    /* A huge step: 10^6 s is 2·10^6 cycles, done arithmetically. */
    reactor_step(a, 1e6);
    T_EQ_DBL(val(a, "ald.cycles"), 2e6, 1);
    T_EQ_DBL(val(a, "ald.pulses_h2o"), 2e6, 1);
    T_EQ_DBL(val(a, "heater1.temperature"), 200.0, 0.051);
    T_EQ_DBL(val(a, "system.uptime"), 1e6, 0);
    T_CHECK(isfinite(a->pressure));
    /* Absurd ones still return. */
    reactor_step(a, 1e12);
    reactor_step(a, 1e300);
    T_EQ_DBL(val(a, "system.uptime"), 1e300, 0);
    T_EQ_DBL(val(a, "heater1.temperature"), 200.0, 0.051);
    reactor_free(b);
    reactor_free(a);
}

/* Out-of-range set points are refused; the register reverts. */
static void test_setpoint_writes(void)
{
    reactor_t *r = reactor_new(1);
    write_holding(r, 0, 500.0, DT_F32, WO_ABCD);
    T_EQ_DBL(val(r, "heater1.setpoint"), 200.0, 0);
    write_holding(r, 0, NAN, DT_F32, WO_ABCD);
    T_EQ_DBL(val(r, "heater1.setpoint"), 200.0, 0);
    write_holding(r, 2, 380.5, DT_F32, WO_CDAB);
    T_EQ_DBL(val(r, "heater2.setpoint"), 380.5, 0);
    write_holding(r, 8, 0, DT_U16, WO_ABCD);           /* below 1 ms */
    T_EQ_DBL(val(r, "ald.pulse_ms"), 50, 0);
    write_holding(r, 6, 501, DT_U16, WO_ABCD);         /* 50.1 sccm */
    T_EQ_DBL(val(r, "mfc_tma.setpoint"), 20.0, 1e-9);
    write_holding(r, 6, 455, DT_U16, WO_ABCD);
    T_EQ_DBL(val(r, "mfc_tma.setpoint"), 45.5, 1e-9);
    reactor_step(r, 3.0);                               /* 10 tau of the MFC */
    T_EQ_DBL(val(r, "mfc_tma.flow"), 45.5, 0.05);
    /* Registers outside the map are plain storage. */
    write_holding(r, 50, 4242, DT_U16, WO_ABCD);
    T_EQ_INT(reactor_mapping(r)->tab_registers[50], 4242);
    reactor_free(r);
}

/* Valves: by hand with ald.enable off, overridden by the sequencer when on. */
static void test_valves(void)
{
    reactor_t *r = reactor_new(1);
    uint8_t *coil = reactor_mapping(r)->tab_bits;

    reactor_step(r, 0.01);                 /* mid TMA pulse */
    T_EQ_INT(coil[0], 1);
    write_coil(r, 0, 0);                   /* overridden */
    T_EQ_INT(coil[0], 1);
    write_coil(r, 1, 1);
    T_EQ_INT(coil[1], 0);

    write_coil(r, 2, 0);                   /* sequencer off closes valves */
    T_EQ_INT(coil[0], 0);
    T_EQ_INT(coil[1], 0);
    double cycles = val(r, "ald.cycles"), pulses = val(r, "ald.pulses_h2o");
    reactor_step(r, 5.0);
    T_EQ_DBL(val(r, "ald.cycles"), cycles, 0);
    T_EQ_INT(coil[0], 0);
    /* Steady pressure, valves closed: 0.05 + 0.002 * 150 sccm. */
    T_EQ_DBL(val(r, "chamber.pressure"), 0.35, 0.0011);
    write_coil(r, 1, 1);                   /* by hand */
    T_EQ_INT(coil[1], 1);
    T_EQ_DBL(val(r, "ald.pulses_h2o"), pulses + 1, 0);
    reactor_step(r, 7.0);
    T_EQ_INT(coil[1], 1);
    T_EQ_DBL(val(r, "chamber.pressure"), 0.65, 0.0011);
    write_coil(r, 1, 1);                   /* already open: not a new pulse */
    T_EQ_DBL(val(r, "ald.pulses_h2o"), pulses + 1, 0);
    write_coil(r, 1, 0);

    double tma = val(r, "ald.pulses_tma");
    write_coil(r, 2, 1);                   /* restart: TMA pulse begins now */
    T_EQ_INT(coil[0], 1);
    T_EQ_DBL(val(r, "ald.pulses_tma"), tma + 1, 0);
    reactor_step(r, 7.0 + 5.0);
    T_EQ_DBL(val(r, "ald.cycles"), cycles + 10, 1);
    reactor_free(r);
}

static void run_noise(uint64_t seed, uint16_t out[50][REACTOR_TABLE_SIZE])
{
    reactor_t *r = reactor_new(seed);
    for (int i = 0; i < 50; i++) {
        reactor_step(r, 0.1 * (i + 1));
        memcpy(out[i], reactor_mapping(r)->tab_input_registers, sizeof out[i]);
    }
    reactor_free(r);
}

static void test_seeded_noise(void)
{
    static uint16_t a[50][REACTOR_TABLE_SIZE], b[50][REACTOR_TABLE_SIZE],
        c[50][REACTOR_TABLE_SIZE];
    run_noise(42, a);
    run_noise(42, b);
    run_noise(43, c);
    T_CHECK(memcmp(a, b, sizeof a) == 0);
    T_CHECK(memcmp(a, c, sizeof a) != 0);
    /* The noise is in the heater reading: seeds differ there. */
    int differ = 0;
    for (int i = 0; i < 50; i++)
        differ += a[i][2] != c[i][2] || a[i][3] != c[i][3];
    T_CHECK(differ > 40);
    /* Noise stays within ±0.05 degC of the model. */
    reactor_t *r = reactor_new(7);
    double worst = 0;
    for (int i = 1; i <= 2000; i++) {
        reactor_step(r, i * 0.01);
        double d = fabs(val(r, "heater1.temperature") - r->h1_temp);
        worst = d > worst ? d : worst;
    }
    T_CHECK(worst <= 0.0501);
    T_CHECK(worst > 0.03);
    reactor_free(r);
}

int main(void)
{
    test_pattern();
    test_raw_words();
    test_defaults();
    test_read_counter();
    test_heater_lag();
    test_heater_tau();
    test_sequencer();
    test_step_sizes();
    test_setpoint_writes();
    test_valves();
    test_seeded_noise();
    return t_done("test_reactor");
}
