/* test_setpoint.c — the checks a set point passes before it reaches a
 * device (setpoint.h), with the messages aldrecd's SET and aldrec set
 * --direct both give. */
#include <string.h>

#include "acq/setpoint.h"
#include "t.h"

static param_meta_t meta(const char *q, regtype_t table, dtype_t type, double scale,
                         double min, double max, bool writable)
{
    param_meta_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.qualified, sizeof p.qualified, "%s", q);
    snprintf(p.units, sizeof p.units, "%s", type == DT_BOOL ? "" : "degC");
    p.table = table;
    p.type = type;
    p.order = WO_ABCD;
    p.scale = scale;
    p.min = min;
    p.max = max;
    p.has_min = p.has_max = type != DT_BOOL;
    p.writable = writable;
    p.valid = true;
    return p;
}

int main(void)
{
    char err[512];
    setpoint_t sp;
    param_meta_t h = meta("heater1.setpoint", REG_HOLDING, DT_F32, 1, 0, 400, true);
    T_EQ_INT(setpoint_check(&h, "250", &sp, err, sizeof err), 0);
    T_EQ_DBL(sp.effective, 250, 0);
    T_EQ_INT(sp.nwords, 2);
    T_EQ_INT(sp.words[0], 0x437a);   /* 250.0f = 0x437A0000 */
    T_EQ_INT(sp.words[1], 0);
    T_EQ_INT(setpoint_check(&h, "500", &sp, err, sizeof err), -1);
    T_EQ_STR(err, "set heater1.setpoint: 500 is outside the limits [0, 400] degC; nothing written");
    T_EQ_INT(setpoint_check(&h, "2x0", &sp, err, sizeof err), -1);
    T_EQ_STR(err, "set heater1.setpoint: \"2x0\" is not a finite number; nothing written");
    T_EQ_INT(setpoint_check(&h, "nan", &sp, err, sizeof err), -1);
    T_EQ_INT(setpoint_check(&h, "", &sp, err, sizeof err), -1);

    param_meta_t ro = meta("heater1.temperature", REG_INPUT, DT_F32, 1, 0, 400, false);
    T_EQ_INT(setpoint_check(&ro, "10", &sp, err, sizeof err), -1);
    T_EQ_STR(err, "set heater1.temperature: read-only parameter (input 0, is_writable = false);"
                  " nothing written");
    param_meta_t ro2 = meta("x.y", REG_INPUT, DT_U16, 1, 0, 400, true);   /* writable flag, input table */
    T_EQ_INT(setpoint_check(&ro2, "10", &sp, err, sizeof err), -1);
    T_EQ_STR(err, "set x.y: read-only parameter (input 0); nothing written");

    /* rounding: u16 with scale 0.1 holds 12.5 exactly, 12.54 as 12.5 */
    param_meta_t m = meta("mfc_tma.setpoint", REG_HOLDING, DT_U16, 0.1, 0, 50, true);
    T_EQ_INT(setpoint_check(&m, "12.54", &sp, err, sizeof err), 0);
    T_EQ_INT(sp.words[0], 125);
    T_EQ_DBL(sp.effective, 12.5, 1e-9);
    T_EQ_DBL(sp.requested, 12.54, 0);
    /* within the limits as typed, outside once rounded */
    param_meta_t r2 = meta("r.t", REG_HOLDING, DT_U16, 1, 9.6, 9.9, true);
    T_EQ_INT(setpoint_check(&r2, "9.6", &sp, err, sizeof err), -1);
    T_EQ_STR(err, "set r.t: 9.6 degC would be written as 10 degC (the nearest value the register"
                  " holds), outside the limits [9.6, 9.9] degC; nothing written");
    /* not representable: beyond u16 */
    param_meta_t big = meta("b.c", REG_HOLDING, DT_U16, 1, 0, 1e9, true);
    T_EQ_INT(setpoint_check(&big, "70000", &sp, err, sizeof err), -1);
    T_CHECK(strstr(err, "cannot be stored as u16") != NULL);

    /* coils: booleans in words */
    param_meta_t c = meta("ald.enable", REG_COIL, DT_BOOL, 1, 0, 0, true);
    T_EQ_INT(setpoint_check(&c, "on", &sp, err, sizeof err), 0);
    T_EQ_INT(sp.nwords, 1);
    T_EQ_INT(sp.words[0] != 0, 1);
    uint16_t back[4] = { 1 };
    T_CHECK(setpoint_same(&c, &sp, back));
    back[0] = 0;
    T_CHECK(!setpoint_same(&c, &sp, back));
    T_EQ_INT(setpoint_check(&c, "maybe", &sp, err, sizeof err), -1);
    T_EQ_STR(err, "set ald.enable: \"maybe\" is not a boolean (0/1, true/false, on/off);"
                  " nothing written");

    /* unknown names without a map */
    setpoint_explain_unknown(NULL, "nodot", "set", err, sizeof err);
    T_EQ_STR(err, "set: \"nodot\" is not COMPONENT.PARAM");
    return t_done("test_setpoint");
}
