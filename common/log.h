/* log.h — one line per event on stderr (journald captures it), in logfmt:
 *
 *   ts=2026-11-24T10:01:04.123Z level=warn prog=aldrecd pid=812 msg="device
 *   10.0.0.7:502 unit 1: cannot connect: Connection refused" device=10.0.0.7:502
 *
 * ts is UTC with milliseconds; msg is always quoted (backslash, double quote
 * and control characters escaped: \\ \" \n \t, others \xNN); extra fields
 * follow as key=value, the value quoted the same way when it holds a space,
 * '=', '"', a backslash or a control character (or is empty).
 *
 * Repeated failures (a device that stays dead, a database that stays down)
 * are logged when they start and when they end, not on every attempt:
 * log_complain() / log_release() on a complain_t kept by the caller
 * (the pattern of collectd's c_complain/c_release). */
#ifndef ALDREC_LOG_H
#define ALDREC_LOG_H

#include <stddef.h>

enum log_level { LL_ERROR, LL_WARN, LL_INFO, LL_DEBUG };

typedef struct complain {
    int active;              /* 1 while the condition persists */
    unsigned long repeats;   /* failures since it started */
} complain_t;

/* One extra key=value field of a line. key: [A-Za-z0-9_.]+, borrowed. */
typedef struct log_field {
    const char *key;
    const char *value;
} log_field_t;

/* Sets the program name printed on each line and the most verbose level
 * printed. Call once before starting threads (prog is borrowed). */
void log_init(const char *prog, enum log_level max_level);

/* Changes the most verbose level printed (SIGHUP reload). Thread-safe. */
void log_set_level(enum log_level max_level);

/* The level in force. Thread-safe. */
enum log_level log_get_level(void);

/* Parses "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_parse_level(const char *s, enum log_level *out);

/* "error", "warn", "info", "debug". */
const char *log_level_name(enum log_level level);

/* Prints one line. Thread-safe (one write(2) per line). */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints one line with n extra fields after msg. Thread-safe. */
void log_event(enum log_level level, const log_field_t *fields, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs fmt only when c is not already active, then marks it active; always
 * counts the failure. */
void log_complain(complain_t *c, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* When c is active: logs fmt with the number of failures appended and
 * clears it. Otherwise does nothing. */
void log_release(complain_t *c, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats one line (without the final newline) into buf, as printed:
 * exposed for tests and for callers that log elsewhere. Returns the length
 * (truncated to cap - 1). */
size_t log_format(char *buf, size_t cap, enum log_level level, const char *msg,
                  const log_field_t *fields, size_t n);

#endif
