/* log.h — one line per event on stderr (journald captures it), with a
 * UTC timestamp, the program name and a level.
 *
 * Repeated failures (a device that stays dead, a database that stays down)
 * are logged when they start and when they end, not on every attempt:
 * log_complain() / log_release() on a complain_t kept by the caller
 * (the pattern of collectd's c_complain/c_release). */
#ifndef ALDREC_LOG_H
#define ALDREC_LOG_H

enum log_level { LL_ERROR, LL_WARN, LL_INFO, LL_DEBUG };

typedef struct complain {
    int active;              /* 1 while the condition persists */
    unsigned long repeats;   /* failures since it started */
} complain_t;

/* Sets the program name printed on each line and the most verbose level
 * printed. Not thread-safe; call once before starting threads. */
void log_init(const char *prog, enum log_level max_level);

/* Parses "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_parse_level(const char *s, enum log_level *out);

/* Prints one line. Thread-safe (one write(2) per line). */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logs fmt only when c is not already active, then marks it active; always
 * counts the failure. */
void log_complain(complain_t *c, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* When c is active: logs fmt with the number of failures appended and
 * clears it. Otherwise does nothing. */
void log_release(complain_t *c, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
