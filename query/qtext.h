/* qtext.h — text in and out of the query commands: durations, timestamps,
 * numbers, and CSV/JSON quoting. No I/O besides the FILE * writers; no
 * allocation. */
#ifndef ALDREC_QTEXT_H
#define ALDREC_QTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Parses a positive duration: a decimal number and a unit, "250us",
 * "100ms", "1s", "1.5s", "5m", "2h", "1d". Returns 0 with *us set
 * (> 0, at most 366 days), or -1 when s is not such a duration. */
int qtext_duration_us(const char *s, int64_t *us);

/* Parses a decimal integer in [lo, hi] (the whole string). Returns 0, or -1. */
int qtext_int(const char *s, long long lo, long long hi, long long *v);

/* utc_format() (common/utc.h) by digits of the fraction: frac 6
 * UTC_ISO_US, 3 UTC_ISO_MS, otherwise UTC_ISO. Returns buf. New code calls
 * utc_format. */
char *qtext_ts(int64_t t, int frac, char *buf, size_t len);

/* Writes v in the shortest form that reads back as the same double
 * ("0.1", "199.5", "3.1415927410125732"); "NaN"/"Infinity" never occur in
 * the database's good values but are written as null by the JSON writer.
 * Returns buf. */
char *qtext_num(double v, char *buf, size_t len);

/* A duration in seconds for people: "850 ms", "12.4 s", "3 min 20 s",
 * "10 h 02 min". Returns buf. */
char *qtext_human_s(double s, char *buf, size_t len);

/* Writes s as a CSV field (quoted when it holds a comma, quote, CR or LF). */
void qtext_csv_str(FILE *f, const char *s);

/* Writes s as a JSON string literal (with the quotes), escaping what JSON
 * requires. s is UTF-8. */
void qtext_json_str(FILE *f, const char *s);

/* Writes s escaped for XML text and attribute values (&, <, >, "). */
void qtext_xml_str(FILE *f, const char *s);

/* Writes v as a JSON number, or null when v is not finite. */
void qtext_json_num(FILE *f, double v);

#endif
