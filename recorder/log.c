/* log.c — timestamped stderr logging and start/end-of-failure complaints. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "aldrec";
static enum log_level log_max = LL_INFO;
static const char *const level_names[] = {
    [LL_ERROR] = "error", [LL_WARN] = "warn", [LL_INFO] = "info", [LL_DEBUG] = "debug",
};

void log_init(const char *prog, enum log_level max_level)
{
    log_prog = prog;
    log_max = max_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = LL_ERROR; i <= LL_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

static void vlog(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;

    if (level > log_max)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s[%d] %s: ",
                          (long)(tv.tv_usec / 1000), log_prog, (int)getpid(),
                          level_names[level]);
    if (n < sizeof line) {
        int k = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (k > 0)
            n += (size_t)k;
    }
    if (n >= sizeof line - 2)
        n = sizeof line - 2;
    if (suffix) {
        int k = snprintf(line + n, sizeof line - n, "%s", suffix);
        if (k > 0)
            n += (size_t)k;
        if (n >= sizeof line - 2)
            n = sizeof line - 2;
    }
    line[n++] = '\n';
    /* One write per line so lines from several threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, fmt, ap);
    va_end(ap);
}

void log_complain(complain_t *c, enum log_level level, const char *fmt, ...)
{
    c->repeats++;
    if (c->active)
        return;
    c->active = 1;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, fmt, ap);
    va_end(ap);
}

void log_release(complain_t *c, enum log_level level, const char *fmt, ...)
{
    char suffix[64];
    if (!c->active)
        return;
    snprintf(suffix, sizeof suffix, " (after %lu failed attempt%s)", c->repeats,
             c->repeats == 1 ? "" : "s");
    c->active = 0;
    c->repeats = 0;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, suffix, fmt, ap);
    va_end(ap);
}
