/* test_regcodec.c — every data type × word order against fixed vectors,
 * round trips, saturation, scale/offset, names. */
#include <errno.h>
#include <stdint.h>

#include "acq/regcodec.h"
#include "t.h"

static const worder_t orders[] = { WO_ABCD, WO_CDAB, WO_BADC, WO_DCBA };

/* Fixed vectors: for every data type and word order, the wire registers
 * of a value whose bytes all differ, spelled out by hand from docs/acquisition.md's
 * "Word orders" table (A = most significant byte):
 *   ABCD  reg0 = AB, reg1 = CD ...       CDAB  registers reversed
 *   BADC  bytes swapped in each register DCBA  registers reversed, bytes swapped
 * and checked with an implementation that shares no code with regcodec,
 * Python's struct module (v packed big-endian "b" or little-endian "l",
 * read back as 16-bit words big-endian ">H" or little-endian "<H"):
 *   ABCD = unpack(">nH", b)   CDAB = unpack("<nH", l)
 *   BADC = unpack("<nH", b)   DCBA = unpack(">nH", l)
 * Both directions are checked: encode(value) == regs, decode(regs) == value.
 *
 *   f64 1234.5678901234 = 0x40934A4584FD0EE6 (IEEE-754 binary64):
 *     A..H = 40 93 4A 45 84 FD 0E E6
 *     ABCD 4093 4A45 84FD 0EE6     CDAB 0EE6 84FD 4A45 4093
 *     BADC 9340 454A FD84 E60E     DCBA E60E FD84 454A 9340
 *   f64 with the bit pattern 0x0102030405060708 = 0x1.2030405060708p-1007
 *     (exponent field 0x010 = 16, 16 - 1023 = -1007; about 8.2e-304):
 *     ABCD 0102 0304 0506 0708     CDAB 0708 0506 0304 0102
 *     BADC 0201 0403 0605 0807     DCBA 0807 0605 0403 0201
 *   u32 0xA1B2C3D4 = 2712847316
 *   i32 0xF1E2D3C4 = -236792892 (0xF1E2D3C4 - 2^32)
 *   f32 pi = 0x40490FDB (nearest float: 3.1415927410125732)
 *   u16 0x1234 = 4660, i16 0xFEDC = -292: BADC/DCBA swap the two bytes. */
static const struct vector {
    dtype_t type;
    double value;          /* what encode is given; decode must give it back */
    uint16_t regs[4][4];   /* [word order][register] */
} vectors[] = {
    { DT_F64, 1234.5678901234, {
        [WO_ABCD] = { 0x4093, 0x4A45, 0x84FD, 0x0EE6 },
        [WO_CDAB] = { 0x0EE6, 0x84FD, 0x4A45, 0x4093 },
        [WO_BADC] = { 0x9340, 0x454A, 0xFD84, 0xE60E },
        [WO_DCBA] = { 0xE60E, 0xFD84, 0x454A, 0x9340 } } },
    { DT_F64, 0x1.2030405060708p-1007, {
        [WO_ABCD] = { 0x0102, 0x0304, 0x0506, 0x0708 },
        [WO_CDAB] = { 0x0708, 0x0506, 0x0304, 0x0102 },
        [WO_BADC] = { 0x0201, 0x0403, 0x0605, 0x0807 },
        [WO_DCBA] = { 0x0807, 0x0605, 0x0403, 0x0201 } } },
    { DT_U32, 2712847316.0, {
        [WO_ABCD] = { 0xA1B2, 0xC3D4 }, [WO_CDAB] = { 0xC3D4, 0xA1B2 },
        [WO_BADC] = { 0xB2A1, 0xD4C3 }, [WO_DCBA] = { 0xD4C3, 0xB2A1 } } },
    { DT_I32, -236792892.0, {
        [WO_ABCD] = { 0xF1E2, 0xD3C4 }, [WO_CDAB] = { 0xD3C4, 0xF1E2 },
        [WO_BADC] = { 0xE2F1, 0xC4D3 }, [WO_DCBA] = { 0xC4D3, 0xE2F1 } } },
    { DT_F32, 3.1415927410125732, {
        [WO_ABCD] = { 0x4049, 0x0FDB }, [WO_CDAB] = { 0x0FDB, 0x4049 },
        [WO_BADC] = { 0x4940, 0xDB0F }, [WO_DCBA] = { 0xDB0F, 0x4940 } } },
    { DT_U16, 4660, {
        [WO_ABCD] = { 0x1234 }, [WO_CDAB] = { 0x1234 },
        [WO_BADC] = { 0x3412 }, [WO_DCBA] = { 0x3412 } } },
    { DT_I16, -292, {
        [WO_ABCD] = { 0xFEDC }, [WO_CDAB] = { 0xFEDC },
        [WO_BADC] = { 0xDCFE }, [WO_DCBA] = { 0xDCFE } } },
    /* bool is one bit: the word order does not apply. */
    { DT_BOOL, 1, { [WO_ABCD] = { 1 }, [WO_CDAB] = { 1 }, [WO_BADC] = { 1 }, [WO_DCBA] = { 1 } } },
    { DT_BOOL, 0, { { 0 } } },
};

static void test_vectors(void)
{
    static const int words[] = {
        [DT_BOOL] = 1, [DT_U16] = 1, [DT_I16] = 1, [DT_U32] = 2, [DT_I32] = 2,
        [DT_F32] = 2, [DT_F64] = 4,
    };
    for (size_t v = 0; v < sizeof vectors / sizeof vectors[0]; v++) {
        const struct vector *x = &vectors[v];
        T_EQ_INT(regcodec_words(x->type), words[x->type]);
        for (int i = 0; i < 4; i++) {
            worder_t o = orders[i];
            /* 0xAAAA marks registers encode must not touch. */
            uint16_t regs[5] = { 0xAAAA, 0xAAAA, 0xAAAA, 0xAAAA, 0xAAAA };
            char what[160];
            regcodec_encode(x->value, x->type, o, regs);
            for (int w = 0; w < words[x->type]; w++) {
                snprintf(what, sizeof what, "encode %s %s %.17g: reg%d = 0x%04X, want 0x%04X",
                         regcodec_type_name(x->type), regcodec_order_name(o), x->value, w,
                         regs[w], x->regs[o][w]);
                t_report(regs[w] == x->regs[o][w], __FILE__, __LINE__, what);
            }
            T_EQ_INT(regs[words[x->type]], 0xAAAA);
            double got = regcodec_decode(x->regs[o], x->type, o);
            snprintf(what, sizeof what, "decode %s %s: %.17g, want %.17g",
                     regcodec_type_name(x->type), regcodec_order_name(o), got, x->value);
            t_report(got == x->value, __FILE__, __LINE__, what);
        }
    }
    /* Any non-zero register is true; a NaN is not. */
    uint16_t hi = 0x8000, r = 7;
    T_EQ_DBL(regcodec_decode(&hi, DT_BOOL, WO_ABCD), 1, 0);
    regcodec_encode(NAN, DT_BOOL, WO_ABCD, &r);
    T_EQ_INT(r, 0);
    regcodec_encode(-3, DT_BOOL, WO_DCBA, &r);
    T_EQ_INT(r, 1);
}

/* Round trips show only that decode inverts encode: a word order wrong the
 * same way in both directions passes them. test_vectors catches that; these
 * add the edges of each type's range. */
static void test_round_trips(void)
{
    static const struct { dtype_t t; double v; } cases[] = {
        { DT_U16, 0 }, { DT_U16, 65535 }, { DT_I16, -32768 }, { DT_I16, 32767 },
        { DT_I16, -1 }, { DT_U32, 4294967295.0 }, { DT_U32, 3000000000.0 },
        { DT_I32, -2147483648.0 }, { DT_I32, -123456789 }, { DT_F32, -0.0025f },
        { DT_F32, 1e30f }, { DT_F64, 1234.5678901234 }, { DT_F64, -1e-300 },
        { DT_BOOL, 1 }, { DT_BOOL, 0 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int i = 0; i < 4; i++) {
            uint16_t regs[4] = { 0 };
            regcodec_encode(cases[c].v, cases[c].t, orders[i], regs);
            T_EQ_DBL(regcodec_decode(regs, cases[c].t, orders[i]), cases[c].v, 0);
        }
    }
    /* sign handling: 0xFFFF is 65535 as u16, -1 as i16 */
    uint16_t ff = 0xFFFF;
    T_EQ_DBL(regcodec_decode(&ff, DT_U16, WO_ABCD), 65535, 0);
    T_EQ_DBL(regcodec_decode(&ff, DT_I16, WO_ABCD), -1, 0);
    /* saturation on encode */
    uint16_t r;
    regcodec_encode(70000, DT_U16, WO_ABCD, &r);
    T_EQ_INT(r, 65535);
    regcodec_encode(-5, DT_U16, WO_ABCD, &r);
    T_EQ_INT(r, 0);
}

/* Engineering value -> raw, (value - offset) / scale, against results
 * worked out by hand. The forward direction (raw * scale + offset) is not
 * regcodec's: device.c and mbio.c apply it, and record.sh / acq_rtu.sh /
 * cache_param.sh compare test.scaled with the constant -37.66. */
static void test_scale_offset(void)
{
    double raw;
    /* test.scaled: i16, scale 0.01, offset -50: (-37.66 + 50) / 0.01 = 1234 */
    T_EQ_INT(regcodec_to_raw(-37.66, 0.01, -50, DT_I16, &raw), 0);
    T_EQ_DBL(raw, 1234, 0);
    T_EQ_INT(regcodec_to_raw(20.0, 0.1, 0, DT_U16, &raw), 0);
    T_EQ_DBL(raw, 200, 0);
    /* (151.25 - 1.25) / 0.5 = 300; (-0.75 - 0) / 0.25 = -3 */
    T_EQ_INT(regcodec_to_raw(151.25, 0.5, 1.25, DT_F32, &raw), 0);
    T_EQ_DBL(raw, 300, 0);
    T_EQ_INT(regcodec_to_raw(-0.75, 0.25, 0, DT_F64, &raw), 0);
    T_EQ_DBL(raw, -3, 0);
    /* Float types keep fractions: 1 / 4 = 0.25; integer types round to
     * nearest, halves away from zero: 1.26 / 0.1 = 12.6 -> 13,
     * -1.25 / 0.5 = -2.5 -> -3, (10 - 8.75) / 0.5 = 2.5 -> 3. */
    T_EQ_INT(regcodec_to_raw(1.0, 4, 0, DT_F64, &raw), 0);
    T_EQ_DBL(raw, 0.25, 0);
    T_EQ_INT(regcodec_to_raw(1.26, 0.1, 0, DT_I16, &raw), 0);
    T_EQ_DBL(raw, 13, 0);
    T_EQ_INT(regcodec_to_raw(-1.25, 0.5, 0, DT_I32, &raw), 0);
    T_EQ_DBL(raw, -3, 0);
    T_EQ_INT(regcodec_to_raw(10, 0.5, 8.75, DT_U32, &raw), 0);
    T_EQ_DBL(raw, 3, 0);
    /* A negative scale flips the sign: (5 - 0) / -0.5 = -10. */
    T_EQ_INT(regcodec_to_raw(5, -0.5, 0, DT_I16, &raw), 0);
    T_EQ_DBL(raw, -10, 0);
    /* The edges of i16: 3276.7 / 0.1 = 32767 fits, 3276.8 / 0.1 = 32768 does not. */
    T_EQ_INT(regcodec_to_raw(3276.7, 0.1, 0, DT_I16, &raw), 0);
    T_EQ_DBL(raw, 32767, 0);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(3276.8, 0.1, 0, DT_I16, &raw), -1);
    T_EQ_INT(errno, ERANGE);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(7000.0, 0.1, 0, DT_U16, &raw), -1);   /* 70000 > 65535 */
    T_EQ_INT(errno, ERANGE);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(-1.0, 1, 0, DT_U32, &raw), -1);
    T_EQ_INT(errno, ERANGE);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(1.0, 0, 0, DT_F32, &raw), -1);
    T_EQ_INT(errno, EDOM);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(NAN, 1, 0, DT_F64, &raw), -1);
    T_EQ_INT(errno, EDOM);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(1e39, 1, 0, DT_F32, &raw), -1);      /* > FLT_MAX */
    T_EQ_INT(errno, ERANGE);
}

static void test_names(void)
{
    dtype_t t;
    worder_t o;
    regtype_t r;
    T_EQ_INT(regcodec_parse_type("F32", &t), 0);
    T_EQ_INT(t, DT_F32);
    T_EQ_INT(regcodec_parse_type("float128", &t), -1);
    T_EQ_INT(regcodec_parse_type(NULL, &t), -1);
    T_EQ_INT(regcodec_parse_order("cdab", &o), 0);
    T_EQ_INT(o, WO_CDAB);
    T_EQ_INT(regcodec_parse_order("ABDC", &o), -1);
    T_EQ_INT(regcodec_parse_regtype("discrete", &r), 0);
    T_EQ_INT(r, REG_DISCRETE);
    T_EQ_STR(regcodec_type_name(DT_F64), "f64");
    T_EQ_STR(regcodec_order_name(WO_DCBA), "DCBA");
    T_EQ_STR(regcodec_regtype_name(REG_INPUT), "input");
    T_CHECK(regcodec_fits(REG_COIL, DT_BOOL));
    T_CHECK(!regcodec_fits(REG_COIL, DT_U16));
    T_CHECK(!regcodec_fits(REG_HOLDING, DT_BOOL));
    T_EQ_INT(regcodec_words(DT_F64), 4);
    T_EQ_INT(regcodec_words(DT_I32), 2);
    T_EQ_INT(regcodec_words(DT_BOOL), 1);
}

int main(void)
{
    test_vectors();
    test_round_trips();
    test_scale_offset();
    test_names();
    return t_done("test_regcodec");
}
