/* log.c — logfmt lines on stderr and start/end-of-failure complaints. */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/utc.h"

#define LINE_MAX_LEN 4096

static const char *log_prog = "aldrec";
static atomic_int log_max = LL_INFO;
static const char *const level_names[] = {
    [LL_ERROR] = "error", [LL_WARN] = "warn", [LL_INFO] = "info", [LL_DEBUG] = "debug",
};

void log_init(const char *prog, enum log_level max_level)
{
    log_prog = prog;
    atomic_store(&log_max, (int)max_level);
}

void log_set_level(enum log_level max_level)
{
    atomic_store(&log_max, (int)max_level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_max);
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

const char *log_level_name(enum log_level level)
{
    return level >= LL_ERROR && level <= LL_DEBUG ? level_names[level] : "?";
}

/* Appending to a bounded buffer: pos may reach cap - 1, never beyond. */
struct out {
    char *buf;
    size_t cap, pos;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->pos + 1 >= o->cap)
        return;
    size_t room = o->cap - 1 - o->pos;
    if (n > room)
        n = room;
    memcpy(o->buf + o->pos, s, n);
    o->pos += n;
    o->buf[o->pos] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static bool needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
            return true;
    return false;
}

static void put_quoted(struct out *o, const char *v)
{
    put(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': put(o, "\\\"", 2); break;
        case '\\': put(o, "\\\\", 2); break;
        case '\n': put(o, "\\n", 2); break;
        case '\t': put(o, "\\t", 2); break;
        default:
            if (*p < ' ' || *p == 0x7f) {
                snprintf(esc, sizeof esc, "\\x%02x", *p);
                puts_(o, esc);
            } else {
                put(o, (const char *)p, 1);
            }
            break;
        }
    }
    put(o, "\"", 1);
}

size_t log_format(char *buf, size_t cap, enum log_level level, const char *msg,
                  const log_field_t *fields, size_t n)
{
    struct out o = { .buf = buf, .cap = cap };
    char head[128], ts[UTC_LEN];

    if (cap == 0)
        return 0;
    buf[0] = '\0';
    snprintf(head, sizeof head, "ts=%s level=%s prog=",
             utc_format(clock_real_us(), UTC_ISO_MS, ts, sizeof ts), log_level_name(level));
    puts_(&o, head);
    if (needs_quotes(log_prog))
        put_quoted(&o, log_prog);
    else
        puts_(&o, log_prog);
    snprintf(head, sizeof head, " pid=%d msg=", (int)getpid());
    puts_(&o, head);
    put_quoted(&o, msg);
    for (size_t i = 0; i < n; i++) {
        put(&o, " ", 1);
        puts_(&o, fields[i].key);
        put(&o, "=", 1);
        const char *v = fields[i].value ? fields[i].value : "";
        if (needs_quotes(v))
            put_quoted(&o, v);
        else
            puts_(&o, v);
    }
    return o.pos;
}

static void vlog(enum log_level level, const log_field_t *fields, size_t n, const char *suffix,
                 const char *fmt, va_list ap)
{
    char msg[2048];
    char line[LINE_MAX_LEN];

    if ((int)level > atomic_load(&log_max))
        return;
    int k = vsnprintf(msg, sizeof msg, fmt, ap);
    if (k < 0)
        msg[0] = '\0';
    if (suffix) {
        size_t used = strlen(msg);
        snprintf(msg + used, sizeof msg - used, "%s", suffix);
    }
    size_t len = log_format(line, sizeof line - 1, level, msg, fields, n);
    line[len++] = '\n';
    /* One write per line so lines from several threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, 0, NULL, fmt, ap);
    va_end(ap);
}

void log_event(enum log_level level, const log_field_t *fields, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fields, n, NULL, fmt, ap);
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
    vlog(level, NULL, 0, NULL, fmt, ap);
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
    vlog(level, NULL, 0, suffix, fmt, ap);
    va_end(ap);
}
