/* regcodec.h — Modbus register words <-> numbers.
 *
 * A parameter is stored in one or more 16-bit registers (or one bit for
 * coils and discrete inputs) with a data type and a word order. This module
 * converts between the registers as they travel on the wire and the raw
 * number they hold, and between raw numbers and engineering values
 * (value = raw * scale + offset). It is pure: no I/O, no allocation.
 *
 * Word orders, A being the most significant byte of the value:
 *   ABCD  big-endian, first register holds the high word ("Modicon")
 *   CDAB  registers in reverse order, bytes big-endian in each
 *   BADC  registers in order, the two bytes of each register swapped
 *   DCBA  registers reversed and bytes swapped (little-endian)
 * For 16-bit types BADC and DCBA swap the two bytes; ABCD/CDAB do not.
 */
#ifndef ALDREC_REGCODEC_H
#define ALDREC_REGCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum dtype {
    DT_BOOL,
    DT_U16,
    DT_I16,
    DT_U32,
    DT_I32,
    DT_F32,
    DT_F64,
} dtype_t;

typedef enum worder {
    WO_ABCD,
    WO_CDAB,
    WO_BADC,
    WO_DCBA,
} worder_t;

/* Modbus data tables, named by the function code that reads them. */
typedef enum regtype {
    REG_COIL,      /* FC1 read, FC5/FC15 write; one bit */
    REG_DISCRETE,  /* FC2 read-only; one bit */
    REG_HOLDING,   /* FC3 read, FC6/FC16 write */
    REG_INPUT,     /* FC4 read-only */
} regtype_t;

/* Registers (16-bit words) a value of type t occupies; 1 for DT_BOOL, which
 * occupies one bit in a coil/discrete table. */
int regcodec_words(dtype_t t);

/* True when values of type t can live in table r: bits in coil/discrete
 * tables, words in holding/input tables. */
bool regcodec_fits(regtype_t r, dtype_t t);

/* Raw number held in regs[0 .. regcodec_words(t)-1], in word order o.
 * DT_BOOL reads regs[0] != 0. NaN/Inf of float types pass through. */
double regcodec_decode(const uint16_t *regs, dtype_t t, worder_t o);

/* Inverse of regcodec_decode: writes regcodec_words(t) registers.
 * Integer types round to nearest and saturate at the type's range. */
void regcodec_encode(double raw, dtype_t t, worder_t o, uint16_t *regs);

/* Engineering value -> raw number: (value - offset) / scale. Returns 0, or -1
 * with errno EDOM when scale is 0 or the raw value does not fit type t
 * (ERANGE) — callers reject such a set point instead of saturating it. */
int regcodec_to_raw(double value, double scale, double offset, dtype_t t,
                    double *raw);

/* Names as used in SQL and config: "bool","u16","i16","u32","i32","f32",
 * "f64"; "ABCD".."DCBA"; "coil","discrete","holding","input".
 * Parsers are case-insensitive and return 0, or -1 for an unknown name. */
int regcodec_parse_type(const char *s, dtype_t *out);
int regcodec_parse_order(const char *s, worder_t *out);
int regcodec_parse_regtype(const char *s, regtype_t *out);
const char *regcodec_type_name(dtype_t t);
const char *regcodec_order_name(worder_t o);
const char *regcodec_regtype_name(regtype_t r);

#endif
