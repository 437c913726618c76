/* test_regcodec.c — every data type × word order, scale/offset, names. */
#include <errno.h>
#include <stdint.h>

#include "acq/regcodec.h"
#include "t.h"

static const worder_t orders[] = { WO_ABCD, WO_CDAB, WO_BADC, WO_DCBA };

/* pi as float32 is 0x40490FDB: A=40 B=49 C=0F D=DB. */
static void test_f32_layouts(void)
{
    static const uint16_t want[4][2] = {
        [WO_ABCD] = { 0x4049, 0x0FDB },
        [WO_CDAB] = { 0x0FDB, 0x4049 },
        [WO_BADC] = { 0x4940, 0xDB0F },
        [WO_DCBA] = { 0xDB0F, 0x4940 },
    };
    for (int i = 0; i < 4; i++) {
        uint16_t regs[2];
        regcodec_encode(3.14159265358979, DT_F32, orders[i], regs);
        T_EQ_INT(regs[0], want[i][0]);
        T_EQ_INT(regs[1], want[i][1]);
        T_EQ_DBL(regcodec_decode(want[i], DT_F32, orders[i]), 3.1415927410125732, 0);
    }
}

/* 0x12345678 as u32 and 0x0102030405060708-pattern f64 bytes. */
static void test_int_layouts(void)
{
    static const uint16_t u32w[4][2] = {
        [WO_ABCD] = { 0x1234, 0x5678 }, [WO_CDAB] = { 0x5678, 0x1234 },
        [WO_BADC] = { 0x3412, 0x7856 }, [WO_DCBA] = { 0x7856, 0x3412 },
    };
    for (int i = 0; i < 4; i++) {
        uint16_t regs[2];
        regcodec_encode(0x12345678, DT_U32, orders[i], regs);
        T_EQ_INT(regs[0], u32w[i][0]);
        T_EQ_INT(regs[1], u32w[i][1]);
        T_EQ_DBL(regcodec_decode(u32w[i], DT_U32, orders[i]), 305419896.0, 0);
    }
    /* 1.0 as float64 = 3FF0 0000 0000 0000 */
    uint16_t r[4];
    regcodec_encode(1.0, DT_F64, WO_ABCD, r);
    T_EQ_INT(r[0], 0x3FF0);
    T_EQ_INT(r[3], 0);
    regcodec_encode(1.0, DT_F64, WO_CDAB, r);
    T_EQ_INT(r[3], 0x3FF0);
    regcodec_encode(1.0, DT_F64, WO_BADC, r);
    T_EQ_INT(r[0], 0xF03F);
    regcodec_encode(1.0, DT_F64, WO_DCBA, r);
    T_EQ_INT(r[3], 0xF03F);
    /* 16-bit: BADC/DCBA swap bytes */
    uint16_t one;
    regcodec_encode(0x1234, DT_U16, WO_ABCD, &one);
    T_EQ_INT(one, 0x1234);
    regcodec_encode(0x1234, DT_U16, WO_CDAB, &one);
    T_EQ_INT(one, 0x1234);
    regcodec_encode(0x1234, DT_U16, WO_BADC, &one);
    T_EQ_INT(one, 0x3412);
    regcodec_encode(0x1234, DT_U16, WO_DCBA, &one);
    T_EQ_INT(one, 0x3412);
}

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

static void test_scale_offset(void)
{
    double raw;
    /* value = raw * scale + offset; i16 0.01 / -50: raw 1234 -> -37.66 */
    uint16_t reg = 1234;
    T_EQ_DBL(regcodec_decode(&reg, DT_I16, WO_ABCD) * 0.01 - 50, -37.66, 1e-12);
    T_EQ_INT(regcodec_to_raw(-37.66, 0.01, -50, DT_I16, &raw), 0);
    T_EQ_DBL(raw, 1234, 0);
    T_EQ_INT(regcodec_to_raw(20.0, 0.1, 0, DT_U16, &raw), 0);
    T_EQ_DBL(raw, 200, 0);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(7000.0, 0.1, 0, DT_U16, &raw), -1);
    T_EQ_INT(errno, ERANGE);
    T_EQ_INT(regcodec_to_raw(-1.0, 1, 0, DT_U32, &raw), -1);
    errno = 0;
    T_EQ_INT(regcodec_to_raw(1.0, 0, 0, DT_F32, &raw), -1);
    T_EQ_INT(errno, EDOM);
    T_EQ_INT(regcodec_to_raw(1e39, 1, 0, DT_F32, &raw), -1);
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
    test_f32_layouts();
    test_int_layouts();
    test_round_trips();
    test_scale_offset();
    test_names();
    return t_done("test_regcodec");
}
