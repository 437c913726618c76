/* utc.h — a Unix-epoch timestamp in µs as UTC text, in the few shapes the
 * project prints: ISO 8601 / RFC 3339 for logs, exports and replies, a
 * table column for people, a compact stamp for file names.
 *
 * Pure: no clock is read and no locale applies (digits and separators are
 * fixed). Times before 1970 work too (the fraction never goes negative). */
#ifndef ALDREC_UTC_H
#define ALDREC_UTC_H

#include <stddef.h>
#include <stdint.h>

enum utc_form {
    UTC_ISO,        /* 2025-11-22T08:26:40Z */
    UTC_ISO_MS,     /* 2025-11-22T08:26:40.123Z */
    UTC_ISO_US,     /* 2025-11-22T08:26:40.123456Z */
    UTC_TABLE_MS,   /* 2025-11-22 08:26:40.123        (columns for people) */
    UTC_COMPACT,    /* 20251122T082640Z               (file names) */
};

/* Room for every form, NUL included. */
#define UTC_LEN 32

/* Writes us (µs since 1970-01-01 00:00:00 UTC) into buf as form,
 * NUL-terminated and truncated to len (UTC_LEN always suffices; len 0
 * writes nothing). Returns buf. */
char *utc_format(int64_t us, enum utc_form form, char *buf, size_t len);

#endif
