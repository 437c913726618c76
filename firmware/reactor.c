/* reactor.c — the simulated ALD reactor behind aldsim.
 *
 * Three parts:
 *   - the register map: one table, in the order and words of
 *     firmware/REGISTERS.md; every value reaches the register image through
 *     it (put()/get() with regcodec), so the code cannot disagree with it;
 *   - the model: first-order lags for heaters, mass-flow controllers and
 *     chamber pressure, advanced piecewise between sequencer events;
 *   - the ALD sequencer: TMA pulse, purge, H2O pulse, purge, repeated while
 *     coil ald.enable is on.
 *
 * Measurement noise is added to what is reported, not to the model state, so
 * the state itself moves smoothly towards its target. */
#include "firmware/reactor.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "acq/regcodec.h"

/* ---- register map ------------------------------------------------------ */

enum param {
    /* holding registers: set points */
    P_H1_SETPOINT, P_H2_SETPOINT, P_CARRIER_SETPOINT, P_TMA_SETPOINT,
    P_H2O_SETPOINT, P_PULSE_MS, P_PURGE_MS,
    /* input registers: measurements */
    P_PRESSURE, P_H1_TEMP, P_H2_TEMP, P_H1_POWER, P_CARRIER_FLOW, P_TMA_FLOW,
    P_H2O_FLOW, P_PULSES_TMA, P_PULSES_H2O, P_CYCLES, P_READ_COUNTER, P_UPTIME,
    /* input registers: test pattern */
    P_TEST_U16, P_TEST_I16, P_TEST_U32, P_TEST_I32, P_TEST_F32_BADC,
    P_TEST_F32_DCBA, P_TEST_F64_CDAB, P_TEST_SCALED,
    /* coils */
    P_VALVE_TMA, P_VALVE_H2O, P_ALD_ENABLE,
    /* discrete inputs */
    P_H1_AT_SETPOINT, P_H2_AT_SETPOINT,
    P_COUNT
};

enum role {
    ROLE_SETPOINT,   /* written by clients; .init is the default, .min/.max the range */
    ROLE_MEASURED,   /* computed by the model at every step */
    ROLE_CONSTANT,   /* written once from .init */
};

struct regdef {
    const char *name;
    regtype_t table;
    int addr;
    dtype_t type;
    worder_t order;
    double scale;      /* engineering value = raw * scale + offset */
    double offset;
    enum role role;
    double init;       /* default (set points) or constant, engineering units */
    double min, max;   /* accepted range of a set point */
};

/* Each row: name, table, address, type, word order, scale, offset — the
 * columns of REGISTERS.md — then its role. All fields are designated; the
 * macros only keep a row on one line. */
#define REG(nm, tbl, a, ty, ord, sc, off) \
    .name = (nm), .table = (tbl), .addr = (a), .type = (ty), .order = (ord), \
    .scale = (sc), .offset = (off)
/* SETPOINT(min, max, default); CONSTANT(value); all in engineering units. */
#define SETPOINT(lo, hi, dflt) .role = ROLE_SETPOINT, .init = (dflt), .min = (lo), .max = (hi)
#define MEASURED               .role = ROLE_MEASURED
#define CONSTANT(v)            .role = ROLE_CONSTANT, .init = (v)

static const struct regdef regmap[P_COUNT] = {
    /*                           name                    table        addr  type     order    scale offset  role */
    /* Holding registers (FC3 read, FC6/FC16 write) — set points */
    [P_H1_SETPOINT]      = { REG("heater1.setpoint",     REG_HOLDING,   0, DT_F32,  WO_ABCD, 1,     0), SETPOINT(0, 400,   200.0) },
    [P_H2_SETPOINT]      = { REG("heater2.setpoint",     REG_HOLDING,   2, DT_F32,  WO_CDAB, 1,     0), SETPOINT(0, 400,   150.0) },
    [P_CARRIER_SETPOINT] = { REG("mfc_carrier.setpoint", REG_HOLDING,   4, DT_F32,  WO_ABCD, 1,     0), SETPOINT(0, 500,   100.0) },
    [P_TMA_SETPOINT]     = { REG("mfc_tma.setpoint",     REG_HOLDING,   6, DT_U16,  WO_ABCD, 0.1,   0), SETPOINT(0, 50,    20.0) },
    [P_H2O_SETPOINT]     = { REG("mfc_h2o.setpoint",     REG_HOLDING,   7, DT_U16,  WO_ABCD, 0.1,   0), SETPOINT(0, 50,    30.0) },
    [P_PULSE_MS]         = { REG("ald.pulse_ms",         REG_HOLDING,   8, DT_U16,  WO_ABCD, 1,     0), SETPOINT(1, 5000,  50) },
    [P_PURGE_MS]         = { REG("ald.purge_ms",         REG_HOLDING,   9, DT_U16,  WO_ABCD, 1,     0), SETPOINT(1, 60000, 200) },

    /* Input registers (FC4, read-only) — measurements */
    [P_PRESSURE]         = { REG("chamber.pressure",     REG_INPUT,     0, DT_F32,  WO_ABCD, 1,     0), MEASURED },
    [P_H1_TEMP]          = { REG("heater1.temperature",  REG_INPUT,     2, DT_F32,  WO_ABCD, 1,     0), MEASURED },
    [P_H2_TEMP]          = { REG("heater2.temperature",  REG_INPUT,     4, DT_I16,  WO_ABCD, 0.1,   0), MEASURED },
    [P_H1_POWER]         = { REG("heater1.power",        REG_INPUT,     5, DT_I16,  WO_ABCD, 0.1,   0), MEASURED },
    [P_CARRIER_FLOW]     = { REG("mfc_carrier.flow",     REG_INPUT,     6, DT_F32,  WO_CDAB, 1,     0), MEASURED },
    [P_TMA_FLOW]         = { REG("mfc_tma.flow",         REG_INPUT,     8, DT_U16,  WO_ABCD, 0.1,   0), MEASURED },
    [P_H2O_FLOW]         = { REG("mfc_h2o.flow",         REG_INPUT,     9, DT_U16,  WO_ABCD, 0.1,   0), MEASURED },
    [P_PULSES_TMA]       = { REG("ald.pulses_tma",       REG_INPUT,    10, DT_U32,  WO_CDAB, 1,     0), MEASURED },
    [P_PULSES_H2O]       = { REG("ald.pulses_h2o",       REG_INPUT,    12, DT_U32,  WO_ABCD, 1,     0), MEASURED },
    [P_CYCLES]           = { REG("ald.cycles",           REG_INPUT,    14, DT_U32,  WO_DCBA, 1,     0), MEASURED },
    [P_READ_COUNTER]     = { REG("system.read_counter",  REG_INPUT,    20, DT_U32,  WO_ABCD, 1,     0), MEASURED },
    [P_UPTIME]           = { REG("system.uptime",        REG_INPUT,    22, DT_F64,  WO_ABCD, 1,     0), MEASURED },

    /* Input registers — test pattern */
    [P_TEST_U16]         = { REG("test.u16",             REG_INPUT,    30, DT_U16,  WO_ABCD, 1,     0), CONSTANT(54321) },
    [P_TEST_I16]         = { REG("test.i16",             REG_INPUT,    31, DT_I16,  WO_ABCD, 1,     0), CONSTANT(-12345) },
    [P_TEST_U32]         = { REG("test.u32",             REG_INPUT,    32, DT_U32,  WO_ABCD, 1,     0), CONSTANT(3000000000.0) },
    [P_TEST_I32]         = { REG("test.i32",             REG_INPUT,    34, DT_I32,  WO_CDAB, 1,     0), CONSTANT(-123456789) },
    [P_TEST_F32_BADC]    = { REG("test.f32_badc",        REG_INPUT,    36, DT_F32,  WO_BADC, 1,     0), CONSTANT(3.14159274) },
    [P_TEST_F32_DCBA]    = { REG("test.f32_dcba",        REG_INPUT,    38, DT_F32,  WO_DCBA, 1,     0), CONSTANT(-0.0025) },
    [P_TEST_F64_CDAB]    = { REG("test.f64_cdab",        REG_INPUT,    40, DT_F64,  WO_CDAB, 1,     0), CONSTANT(1234.5678901234) },
    [P_TEST_SCALED]      = { REG("test.scaled",          REG_INPUT,    44, DT_I16,  WO_ABCD, 0.01,  -50), CONSTANT(-37.66) },

    /* Coils (FC1 read, FC5/FC15 write) */
    [P_VALVE_TMA]        = { REG("valve_tma.open",       REG_COIL,      0, DT_BOOL, WO_ABCD, 1,     0), SETPOINT(0, 1, 0) },
    [P_VALVE_H2O]        = { REG("valve_h2o.open",       REG_COIL,      1, DT_BOOL, WO_ABCD, 1,     0), SETPOINT(0, 1, 0) },
    [P_ALD_ENABLE]       = { REG("ald.enable",           REG_COIL,      2, DT_BOOL, WO_ABCD, 1,     0), SETPOINT(0, 1, 1) },

    /* Discrete inputs (FC2, read-only) */
    [P_H1_AT_SETPOINT]   = { REG("heater1.at_setpoint",  REG_DISCRETE,  0, DT_BOOL, WO_ABCD, 1,     0), MEASURED },
    [P_H2_AT_SETPOINT]   = { REG("heater2.at_setpoint",  REG_DISCRETE,  1, DT_BOOL, WO_ABCD, 1,     0), MEASURED },
};

/* ---- model constants (REGISTERS.md "behaviour" column) ------------------ */

#define ROOM_TEMP_C         25.0
#define H1_TAU_S            5.0
#define H2_TAU_S            8.0
#define HEATER_NOISE_C      0.05    /* uniform ±, both zones */
#define H1_POWER_PER_C      2.0     /* % per degC of remaining error: 100 % at 50 degC */
#define AT_SETPOINT_BAND_C  1.0
#define MFC_TAU_S           0.3
#define CARRIER_NOISE_SCCM  0.2     /* uniform ± */
#define PRESSURE_BASE_TORR  0.05
#define PRESSURE_PER_SCCM   0.002   /* Torr per sccm of total flow */
#define PRESSURE_PULSE_TORR 0.3     /* while a precursor valve is open */
#define PRESSURE_TAU_S      0.2
#define PRESSURE_NOISE_TORR 0.001   /* uniform ± */
/* A step longer than this many ALD cycles jumps whole cycles arithmetically
 * and integrates only the last SEQ_KEEP_CYCLES piecewise. */
#define SEQ_SKIP_CYCLES     20000
#define SEQ_KEEP_CYCLES     1000

enum ald_phase {
    ALD_OFF,         /* ald.enable is off; valves are under manual control */
    ALD_TMA_PULSE,
    ALD_TMA_PURGE,
    ALD_H2O_PULSE,
    ALD_H2O_PURGE,
};

struct reactor {
    modbus_mapping_t *mb;
    uint64_t rng;               /* splitmix64 state */
    double t;                   /* model time, s since reactor_new() */
    double sp[P_COUNT];         /* set points in force (ROLE_SETPOINT only) */
    /* model state, noise-free */
    double h1_temp, h2_temp;
    double carrier_flow, tma_flow, h2o_flow;
    double pressure;
    bool valve_tma, valve_h2o;
    enum ald_phase phase;
    double phase_end;           /* model time the current phase ends */
    uint64_t pulses_tma, pulses_h2o, cycles, reads;
};

/* ---- register access ---------------------------------------------------- */

/* Writes engineering value v into the register image; integer types round
 * and saturate (regcodec_encode). */
static void put(reactor_t *r, enum param p, double v)
{
    const struct regdef *d = &regmap[p];
    double raw = (v - d->offset) / d->scale;
    uint16_t w;

    switch (d->table) {
    case REG_COIL:
        regcodec_encode(raw, DT_BOOL, d->order, &w);
        r->mb->tab_bits[d->addr] = (uint8_t)w;
        break;
    case REG_DISCRETE:
        regcodec_encode(raw, DT_BOOL, d->order, &w);
        r->mb->tab_input_bits[d->addr] = (uint8_t)w;
        break;
    case REG_HOLDING:
        regcodec_encode(raw, d->type, d->order, &r->mb->tab_registers[d->addr]);
        break;
    case REG_INPUT:
        regcodec_encode(raw, d->type, d->order, &r->mb->tab_input_registers[d->addr]);
        break;
    }
}

/* Engineering value of p as it is in the register image. */
static double get(const reactor_t *r, enum param p)
{
    const struct regdef *d = &regmap[p];
    uint16_t w;
    double raw = 0;

    switch (d->table) {
    case REG_COIL:
        w = r->mb->tab_bits[d->addr];
        raw = regcodec_decode(&w, DT_BOOL, d->order);
        break;
    case REG_DISCRETE:
        w = r->mb->tab_input_bits[d->addr];
        raw = regcodec_decode(&w, DT_BOOL, d->order);
        break;
    case REG_HOLDING:
        raw = regcodec_decode(&r->mb->tab_registers[d->addr], d->type, d->order);
        break;
    case REG_INPUT:
        raw = regcodec_decode(&r->mb->tab_input_registers[d->addr], d->type, d->order);
        break;
    }
    return raw * d->scale + d->offset;
}

/* Counters are served modulo 2^32 (u32 registers wrap rather than saturate). */
static double u32_wrap(uint64_t n)
{
    return (double)(uint32_t)n;
}

/* ---- noise -------------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014): every seed, including 0, is fine. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-amplitude, amplitude). */
static double noise(reactor_t *r, double amplitude)
{
    double u = (double)(rng_next(&r->rng) >> 11) * 0x1.0p-53;   /* [0, 1) */
    return amplitude * (2.0 * u - 1.0);
}

/* ---- model -------------------------------------------------------------- */

/* First-order lag over dt >= 0: exact for a constant target, stable for any
 * dt (exp(-dt/tau) is in (0, 1]). */
static double lag(double x, double target, double dt, double tau)
{
    return target + (x - target) * exp(-dt / tau);
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Advances the continuous states over dt with the valves as they are. */
static void advance(reactor_t *r, double dt)
{
    r->h1_temp = lag(r->h1_temp, r->sp[P_H1_SETPOINT], dt, H1_TAU_S);
    r->h2_temp = lag(r->h2_temp, r->sp[P_H2_SETPOINT], dt, H2_TAU_S);
    r->carrier_flow = lag(r->carrier_flow, r->sp[P_CARRIER_SETPOINT], dt, MFC_TAU_S);
    r->tma_flow = lag(r->tma_flow, r->sp[P_TMA_SETPOINT], dt, MFC_TAU_S);
    r->h2o_flow = lag(r->h2o_flow, r->sp[P_H2O_SETPOINT], dt, MFC_TAU_S);

    double total_flow = r->carrier_flow + r->tma_flow + r->h2o_flow;
    double target = PRESSURE_BASE_TORR + PRESSURE_PER_SCCM * total_flow +
                    ((r->valve_tma || r->valve_h2o) ? PRESSURE_PULSE_TORR : 0.0);
    r->pressure = lag(r->pressure, target, dt, PRESSURE_TAU_S);
}

/* ---- ALD sequencer ------------------------------------------------------ */

static double pulse_s(const reactor_t *r)
{
    return r->sp[P_PULSE_MS] / 1000.0;
}

static double purge_s(const reactor_t *r)
{
    return r->sp[P_PURGE_MS] / 1000.0;
}

/* A pulse is counted when its valve opens, by hand or by the sequencer. */
static void set_valve_tma(reactor_t *r, bool open)
{
    if (open && !r->valve_tma)
        r->pulses_tma++;
    r->valve_tma = open;
}

static void set_valve_h2o(reactor_t *r, bool open)
{
    if (open && !r->valve_h2o)
        r->pulses_h2o++;
    r->valve_h2o = open;
}

/* Starts a cycle at the current model time: the TMA pulse begins now. */
static void seq_start(reactor_t *r)
{
    set_valve_h2o(r, false);
    set_valve_tma(r, true);
    r->phase = ALD_TMA_PULSE;
    r->phase_end = r->t + pulse_s(r);
}

static void seq_stop(reactor_t *r)
{
    r->phase = ALD_OFF;
    set_valve_tma(r, false);
    set_valve_h2o(r, false);
}

/* The current phase has ended (at phase_end): enter the next one. Phase ends
 * accumulate from the previous end, not from the step time, so the cycle
 * does not drift with the step size. Durations are read when a phase starts:
 * a new pulse_ms/purge_ms applies from the next phase on. */
static void seq_next(reactor_t *r)
{
    double dur = 0;

    switch (r->phase) {
    case ALD_OFF:
        return;
    case ALD_TMA_PULSE:
        set_valve_tma(r, false);
        r->phase = ALD_TMA_PURGE;
        dur = purge_s(r);
        break;
    case ALD_TMA_PURGE:
        set_valve_h2o(r, true);
        r->phase = ALD_H2O_PULSE;
        dur = pulse_s(r);
        break;
    case ALD_H2O_PULSE:
        set_valve_h2o(r, false);
        r->phase = ALD_H2O_PURGE;
        dur = purge_s(r);
        break;
    case ALD_H2O_PURGE:
        r->cycles++;
        set_valve_tma(r, true);
        r->phase = ALD_TMA_PULSE;
        dur = pulse_s(r);
        break;
    }
    /* At absurd model times dur can be below the resolution of phase_end;
     * move on by at least one step so reactor_step() always ends. */
    double next = r->phase_end + dur;
    r->phase_end = next > r->phase_end ? next : nextafter(r->phase_end, INFINITY);
}

/* On a step spanning very many cycles (a suspended process, a test jumping
 * ahead) jump whole cycles at once: each whole cycle, starting anywhere, has
 * one TMA pulse, one H2O pulse and one cycle end. The continuous states are
 * advanced over the jump with the valves as they are; the SEQ_KEEP_CYCLES
 * integrated piecewise afterwards outlast every lag that depends on them. */
static void seq_skip(reactor_t *r, double t)
{
    double cycle = 2.0 * (pulse_s(r) + purge_s(r));
    double ahead = (t - r->phase_end) / cycle;

    if (!(ahead > SEQ_SKIP_CYCLES))
        return;
    double n = floor(ahead) - SEQ_KEEP_CYCLES;
    double jump = n * cycle;
    /* Counters are served modulo 2^32; fmod keeps the cast defined for
     * absurd spans. */
    uint64_t k = (uint64_t)fmod(n, 0x1p64);
    advance(r, jump);
    r->t += jump;
    r->phase_end += jump;
    r->pulses_tma += k;
    r->pulses_h2o += k;
    r->cycles += k;
}

/* ---- register image ----------------------------------------------------- */

/* Measured registers from the model state, with fresh noise. */
static void refresh(reactor_t *r)
{
    put(r, P_PRESSURE, r->pressure + noise(r, PRESSURE_NOISE_TORR));
    put(r, P_H1_TEMP, r->h1_temp + noise(r, HEATER_NOISE_C));
    put(r, P_H2_TEMP, r->h2_temp + noise(r, HEATER_NOISE_C));
    put(r, P_H1_POWER,
        clamp(H1_POWER_PER_C * (r->sp[P_H1_SETPOINT] - r->h1_temp), 0.0, 100.0));
    put(r, P_CARRIER_FLOW, r->carrier_flow + noise(r, CARRIER_NOISE_SCCM));
    put(r, P_TMA_FLOW, r->tma_flow);
    put(r, P_H2O_FLOW, r->h2o_flow);
    put(r, P_PULSES_TMA, u32_wrap(r->pulses_tma));
    put(r, P_PULSES_H2O, u32_wrap(r->pulses_h2o));
    put(r, P_CYCLES, u32_wrap(r->cycles));
    put(r, P_UPTIME, r->t);
    put(r, P_VALVE_TMA, r->valve_tma);
    put(r, P_VALVE_H2O, r->valve_h2o);
    /* Compared as served, so a client reading both sees them agree. */
    put(r, P_H1_AT_SETPOINT,
        fabs(get(r, P_H1_TEMP) - r->sp[P_H1_SETPOINT]) < AT_SETPOINT_BAND_C);
    put(r, P_H2_AT_SETPOINT,
        fabs(get(r, P_H2_TEMP) - r->sp[P_H2_SETPOINT]) < AT_SETPOINT_BAND_C);
}

/* ---- public API --------------------------------------------------------- */

reactor_t *reactor_new(uint64_t seed)
{
    reactor_t *r = calloc(1, sizeof *r);
    if (!r)
        goto fail;
    r->mb = modbus_mapping_new(REACTOR_TABLE_SIZE, REACTOR_TABLE_SIZE,
                               REACTOR_TABLE_SIZE, REACTOR_TABLE_SIZE);
    if (!r->mb)
        goto fail;
    r->rng = seed;
    for (int p = 0; p < P_COUNT; p++) {
        if (regmap[p].role == ROLE_MEASURED)
            continue;
        put(r, (enum param)p, regmap[p].init);
        /* What the registers hold, e.g. 20.0 sccm as it reads back from raw 200. */
        r->sp[p] = get(r, (enum param)p);
    }
    r->h1_temp = ROOM_TEMP_C;
    r->h2_temp = ROOM_TEMP_C;
    r->pressure = PRESSURE_BASE_TORR;
    if (r->sp[P_ALD_ENABLE] != 0)
        seq_start(r);
    refresh(r);
    return r;

fail:
    reactor_free(r);
    errno = ENOMEM;
    return NULL;
}

void reactor_free(reactor_t *r)
{
    if (!r)
        return;
    modbus_mapping_free(r->mb);
    r->mb = NULL;
    free(r);
}

void reactor_step(reactor_t *r, double t_s)
{
    if (!isfinite(t_s) || !(t_s > r->t))
        return;
    while (r->t < t_s) {
        double end = t_s;
        if (r->phase != ALD_OFF) {
            seq_skip(r, t_s);
            if (r->phase_end < end)
                end = r->phase_end;
        }
        if (end > r->t) {
            advance(r, end - r->t);
            r->t = end;
        }
        if (r->phase != ALD_OFF && r->t >= r->phase_end)
            seq_next(r);
    }
    refresh(r);
}

modbus_mapping_t *reactor_mapping(reactor_t *r)
{
    return r->mb;
}

void reactor_apply_writes(reactor_t *r)
{
    for (int i = 0; i < P_COUNT; i++) {
        enum param p = (enum param)i;
        if (regmap[p].role != ROLE_SETPOINT || regmap[p].table != REG_HOLDING)
            continue;
        double v = get(r, p);
        if (isnan(v) || v < regmap[p].min || v > regmap[p].max)
            put(r, p, r->sp[p]);        /* refused: revert */
        else
            r->sp[p] = v;
    }

    bool enable = get(r, P_ALD_ENABLE) != 0;
    bool was_enabled = r->phase != ALD_OFF;
    r->sp[P_ALD_ENABLE] = enable;
    if (enable && !was_enabled) {
        seq_start(r);
    } else if (!enable && was_enabled) {
        seq_stop(r);
    } else if (!enable) {
        /* Manual valves. */
        set_valve_tma(r, get(r, P_VALVE_TMA) != 0);
        set_valve_h2o(r, get(r, P_VALVE_H2O) != 0);
    }
    /* Valve coils show the valves: the sequencer's state overrides writes. */
    put(r, P_VALVE_TMA, r->valve_tma);
    put(r, P_VALVE_H2O, r->valve_h2o);
    put(r, P_PULSES_TMA, u32_wrap(r->pulses_tma));
    put(r, P_PULSES_H2O, u32_wrap(r->pulses_h2o));
}

void reactor_count_read(reactor_t *r)
{
    r->reads++;
    put(r, P_READ_COUNTER, u32_wrap(r->reads));
}

int reactor_get(const reactor_t *r, const char *name, double *value)
{
    for (int p = 0; p < P_COUNT; p++) {
        if (strcmp(regmap[p].name, name) == 0) {
            *value = get(r, (enum param)p);
            return 0;
        }
    }
    errno = ENOENT;
    return -1;
}
