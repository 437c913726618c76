/* config.c — INI parser for aldrec_config_t; a table maps each key to its
 * field and its check, so adding a setting is one line. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind {
    K_STR,
    K_INT,
    K_BYTES,    /* long long, with an optional k/M/G (binary) suffix */
    K_CHOICE,   /* one of the comma-separated words in choices */
    K_GONE,     /* removed: an error that says what replaced it */
};

struct key {
    const char *section;
    const char *name;
    enum kind kind;
    size_t off;
    size_t size;       /* K_STR: buffer size */
    long long lo, hi;  /* K_INT, K_BYTES: accepted range */
    const char *choices;   /* K_CHOICE: "a,b"; K_GONE: what replaced it */
    int required;
};

#define STR(sec, key, field, req) \
    { .section = sec, .name = key, .kind = K_STR, \
      .off = offsetof(aldrec_config_t, field), \
      .size = sizeof(((aldrec_config_t *)0)->field), .required = req }
#define INT(sec, key, field, min, max) \
    { .section = sec, .name = key, .kind = K_INT, \
      .off = offsetof(aldrec_config_t, field), .lo = min, .hi = max }
#define BYTES(sec, key, field, min, max) \
    { .section = sec, .name = key, .kind = K_BYTES, \
      .off = offsetof(aldrec_config_t, field), .lo = min, .hi = max }
#define CHOICE(sec, key, field, list) \
    { .section = sec, .name = key, .kind = K_CHOICE, \
      .off = offsetof(aldrec_config_t, field), \
      .size = sizeof(((aldrec_config_t *)0)->field), .choices = list }
#define GONE(sec, key, hint) \
    { .section = sec, .name = key, .kind = K_GONE, .choices = hint }

/* One block per section; keep the README's configuration reference in step. */
static const struct key keys[] = {
    /* [database] */
    STR("database", "conninfo", conninfo, 1),
    STR("database", "admin_conninfo", admin_conninfo, 0),
    INT("database", "connect_timeout_s", connect_timeout_s, 1, 300),
    STR("database", "reader_conninfo", reader_conninfo, 0),
    STR("database", "partition_interval", partition_interval, 0),
    INT("database", "partitions_ahead", partitions_ahead, 0, 1000),
    INT("database", "retention_days", retention_days, 0, 100000),

    /* [recorder] */
    STR("recorder", "machine", machine, 1),
    STR("recorder", "id", recorder_id, 1),
    STR("recorder", "socket", socket_path, 0),
    INT("recorder", "batch_rows", batch_rows, 1, 1000000),
    INT("recorder", "flush_interval_ms", flush_interval_ms, 10, 3600000),
    GONE("recorder", "queue_batches", "batches wait in the spool now; see [spool] max_bytes"),
    STR("recorder", "log_level", log_level, 0),

    /* [modbus] — defaults for every device; a component's own settings
     * (machine_components) take precedence */
    INT("modbus", "response_timeout_ms", response_timeout_ms, 10, 60000),
    INT("modbus", "max_registers", max_registers, 1, 125),
    INT("modbus", "max_bits", max_bits, 1, 2000),
    INT("modbus", "max_gap", max_gap, 0, 125),
    INT("modbus", "reconnect_max_ms", reconnect_max_ms, 100, 600000),
    INT("modbus", "baud", baud, 300, 921600),
    STR("modbus", "parity", parity, 0),
    INT("modbus", "data_bits", data_bits, 7, 8),
    INT("modbus", "stop_bits", stop_bits, 1, 2),

    /* [spool] — store and forward */
    STR("spool", "path", spool_path, 0),
    BYTES("spool", "max_bytes", spool_max_bytes, 64LL << 10, 1LL << 50),
    CHOICE("spool", "full_policy", spool_full_policy, "drop_oldest,drop_newest"),
    INT("spool", "drain_batches", drain_batches, 1, 1000),
    INT("spool", "drain_rows", drain_rows, 1, 10000000),

    /* [cache] — parameter metadata */
    STR("cache", "redis_host", redis_host, 0),
    INT("cache", "redis_port", redis_port, 0, 65535),
    INT("cache", "redis_db", redis_db, 0, 1000),
    STR("cache", "redis_password_file", redis_password_file, 0),
    INT("cache", "redis_timeout_ms", redis_timeout_ms, 10, 10000),
    INT("cache", "ttl_s", cache_ttl_s, 1, 86400),
    INT("cache", "refresh_s", cache_refresh_s, 1, 86400),
    STR("cache", "snapshot", snapshot_path, 0),

    /* [metrics] and [alerts] — operating the service */
};
#define NKEYS (sizeof keys / sizeof keys[0])

void config_defaults(aldrec_config_t *cfg)
{
    *cfg = (aldrec_config_t){
        .connect_timeout_s = 5,
        .partition_interval = "day",
        .partitions_ahead = 7,
        .socket_path = "/run/aldrec/aldrecd.sock",
        .batch_rows = 5000,
        .flush_interval_ms = 1000,
        .log_level = "info",
        .response_timeout_ms = 500,
        .max_registers = 125,
        .max_bits = 2000,
        .max_gap = 8,
        .reconnect_max_ms = 5000,
        .baud = 19200,
        .parity = "E",
        .data_bits = 8,
        .stop_bits = 1,
        .redis_host = "127.0.0.1",
        .redis_port = 6379,
        .redis_timeout_ms = 250,
        .cache_ttl_s = 300,
        .cache_refresh_s = 60,
        .snapshot_path = "/var/lib/aldrec/pmap-snapshot.db",
        .spool_path = "/var/lib/aldrec/spool.db",
        .spool_max_bytes = 1LL << 30,
        .spool_full_policy = "drop_oldest",
        .drain_batches = 32,
        .drain_rows = 100000,
    };
}

static int fail(char *err, size_t errlen, const char *name, int line,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, const char *name, int line,
                const char *fmt, ...)
{
    va_list ap;
    int n = line > 0 ? snprintf(err, errlen, "%s:%d: ", name, line)
                     : snprintf(err, errlen, "%s: ", name);
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static char *trim(char *s, char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

static int set_value(aldrec_config_t *cfg, const struct key *k, const char *val,
                     const char *name, int line, char *err, size_t errlen)
{
    char *field = (char *)cfg + k->off;

    if (k->kind == K_STR) {
        size_t n = strlen(val);
        if (n == 0)
            return fail(err, errlen, name, line, "%s: empty value", k->name);
        if (n >= k->size)
            return fail(err, errlen, name, line, "%s: value longer than %zu characters",
                        k->name, k->size - 1);
        memcpy(field, val, n + 1);
        return 0;
    }
    if (k->kind == K_GONE)
        return fail(err, errlen, name, line, "%s: no longer supported: %s", k->name,
                    k->choices);
    if (k->kind == K_CHOICE) {
        size_t n = strlen(val);
        for (const char *c = k->choices; *c;) {
            size_t w = strcspn(c, ",");
            if (w == n && strncmp(c, val, n) == 0 && n < k->size) {
                memcpy(field, val, n + 1);
                return 0;
            }
            c += w + (c[w] == ',');
        }
        char list[128];
        snprintf(list, sizeof list, "%s", k->choices);
        char *comma = strrchr(list, ',');
        if (comma) {
            char rest[128];
            snprintf(rest, sizeof rest, "%s", comma + 1);
            snprintf(comma, sizeof list - (size_t)(comma - list), " or %s", rest);
        }
        return fail(err, errlen, name, line, "%s: expected %s, got \"%s\"", k->name, list, val);
    }
    char *endp;
    errno = 0;
    long long v = strtoll(val, &endp, 10);
    if (k->kind == K_BYTES && endp != val && errno == 0) {
        /* Binary multiples: 64k, 512M, 2G. */
        int shift = 0;
        switch (*endp) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: break;
        }
        if (shift) {
            endp++;
            if (v > (LLONG_MAX >> shift) || v < 0)
                errno = ERANGE;
            else
                v <<= shift;
        }
    }
    if (errno || endp == val || *endp != '\0' || v < k->lo || v > k->hi) {
        if (k->kind == K_BYTES)
            return fail(err, errlen, name, line,
                        "%s: expected a size in bytes from %lld to %lld (k, M, G suffixes"
                        " allowed), got \"%s\"", k->name, k->lo, k->hi, val);
        return fail(err, errlen, name, line,
                    "%s: expected an integer in %lld..%lld, got \"%s\"",
                    k->name, k->lo, k->hi, val);
    }
    if (k->kind == K_BYTES)
        *(long long *)(void *)field = v;
    else
        *(int *)(void *)field = (int)v;
    return 0;
}

/* Line where key was set (0: not set), for messages about its value. */
static int key_line(const int *seen, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, key) == 0)
            return seen[i];
    return 0;
}

int config_parse(aldrec_config_t *cfg, const char *buf, size_t len,
                 const char *name, char *err, size_t errlen)
{
    char section[32] = "";
    int seen[NKEYS] = { 0 };
    int lineno = 0;
    size_t pos = 0;

    while (pos < len) {
        char line[2048];
        size_t eol = pos;
        while (eol < len && buf[eol] != '\n')
            eol++;
        lineno++;
        if (eol - pos >= sizeof line)
            return fail(err, errlen, name, lineno, "line longer than %zu characters",
                        sizeof line - 1);
        if (memchr(buf + pos, '\0', eol - pos))
            return fail(err, errlen, name, lineno, "NUL byte in line; not a text file?");
        memcpy(line, buf + pos, eol - pos);
        line[eol - pos] = '\0';
        pos = eol + 1;
        char *s = trim(line, line + strlen(line));
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0')
                return fail(err, errlen, name, lineno, "malformed section header \"%s\"", s);
            char *sec = trim(s + 1, close);
            size_t n = strlen(sec);
            if (n == 0 || n >= sizeof section)
                return fail(err, errlen, name, lineno, "bad section name \"%s\"", sec);
            int known = 0;
            for (size_t i = 0; i < NKEYS; i++)
                known |= strcmp(keys[i].section, sec) == 0;
            if (!known) {
                char list[256] = "";
                for (size_t i = 0; i < NKEYS; i++) {
                    if (i > 0 && strcmp(keys[i].section, keys[i - 1].section) == 0)
                        continue;
                    size_t used = strlen(list);
                    snprintf(list + used, sizeof list - used, "%s[%s]", used ? ", " : "",
                             keys[i].section);
                }
                return fail(err, errlen, name, lineno, "unknown section [%s] (expected one of %s)",
                            sec, list);
            }
            memcpy(section, sec, n + 1);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq)
            return fail(err, errlen, name, lineno, "expected \"key = value\", got \"%s\"", s);
        char *key = trim(s, eq);
        char *val = eq + 1;
        val = trim(val, val + strlen(val));
        if (*key == '\0')
            return fail(err, errlen, name, lineno, "missing key before '='");
        if (section[0] == '\0')
            return fail(err, errlen, name, lineno, "\"%s\" outside of any [section]", key);
        size_t i;
        for (i = 0; i < NKEYS; i++)
            if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, key) == 0)
                break;
        if (i == NKEYS)
            return fail(err, errlen, name, lineno, "unknown key \"%s\" in [%s]", key, section);
        if (seen[i])
            return fail(err, errlen, name, lineno, "\"%s\" set twice in [%s] (first on line %d)",
                        key, section, seen[i]);
        seen[i] = lineno;
        if (set_value(cfg, &keys[i], val, name, lineno, err, errlen) < 0)
            return -1;
        if (keys[i].kind == K_STR && strstr(val, "password=") &&
            strstr(keys[i].name, "conninfo"))
            return fail(err, errlen, name, lineno,
                        "%s: passwords do not belong in conninfo; use passfile=PATH",
                        keys[i].name);
    }
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].required && ((char *)cfg + keys[i].off)[0] == '\0')
            return fail(err, errlen, name, 0, "missing required key \"%s\" in [%s]",
                        keys[i].name, keys[i].section);
    if (cfg->admin_conninfo[0] == '\0')
        memcpy(cfg->admin_conninfo, cfg->conninfo, sizeof cfg->conninfo);
    if (strcmp(cfg->parity, "N") && strcmp(cfg->parity, "E") && strcmp(cfg->parity, "O"))
        return fail(err, errlen, name, key_line(seen, "parity"),
                    "parity: expected N, E or O, got \"%s\"", cfg->parity);
    if (cfg->reader_conninfo[0] == '\0')
        memcpy(cfg->reader_conninfo, cfg->conninfo, sizeof cfg->conninfo);
    if (strcmp(cfg->partition_interval, "day") && strcmp(cfg->partition_interval, "week") &&
        strcmp(cfg->partition_interval, "month"))
        return fail(err, errlen, name, key_line(seen, "partition_interval"),
                    "partition_interval: expected day, week or month, got \"%s\"",
                    cfg->partition_interval);
    if (cfg->cache_refresh_s > cfg->cache_ttl_s) {
        return fail(err, errlen, name, key_line(seen, "refresh_s"),
                    "refresh_s (%d) must not exceed ttl_s (%d): entries would go stale"
                    " between refreshes", cfg->cache_refresh_s, cfg->cache_ttl_s);
    }
    if (strcmp(cfg->log_level, "error") && strcmp(cfg->log_level, "warn") &&
        strcmp(cfg->log_level, "info") && strcmp(cfg->log_level, "debug")) {
        return fail(err, errlen, name, key_line(seen, "log_level"),
                    "log_level: expected error, warn, info or debug, got \"%s\"",
                    cfg->log_level);
    }
    return 0;
}

int config_load(aldrec_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    config_defaults(cfg);
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        if (len + 4096 > cap) {
            if (cap > (1u << 20)) {
                snprintf(err, errlen, "%s: larger than 1 MiB; not a config file?", path);
                goto out;
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    rc = config_parse(cfg, buf, len, path, err, errlen);
out:
    if (f)
        fclose(f);
    free(buf);
    return rc;
}
