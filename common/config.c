/* config.c — INI parser for aldrec_config_t; a table maps each key to its
 * field and its check, so adding a setting is one line. */
#include "common/config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
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
    STR("recorder", "socket_group", socket_group, 0),

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

    /* [metrics], [health] and [alerts] — operating the service */
    STR("metrics", "listen", metrics_listen, 0),
    CHOICE("metrics", "allow_remote", metrics_allow_remote, "yes,no"),
    INT("health", "database_down_s", health_database_down_s, 1, 86400),
    INT("health", "device_down_s", health_device_down_s, 1, 86400),
    INT("health", "spool_degraded_pct", health_spool_degraded_pct, 1, 100),
    INT("health", "spool_failing_pct", health_spool_failing_pct, 1, 100),
    INT("alerts", "window_s", alert_window_s, 5, 3600),
    INT("alerts", "flush_p95_ms", alert_flush_p95_ms, 0, 3600000),
    INT("alerts", "copy_p95_ms", alert_copy_p95_ms, 0, 3600000),
    INT("alerts", "cache_hit_pct", alert_cache_hit_pct, 0, 100),
    INT("alerts", "spool_pct", alert_spool_pct, 0, 100),
    INT("alerts", "device_down_s", alert_device_down_s, 0, 86400),
    INT("alerts", "database_down_s", alert_database_down_s, 0, 86400),
};
#define NKEYS (sizeof keys / sizeof keys[0])
_Static_assert(NKEYS <= sizeof ((aldrec_config_t *)0)->key_line /
                        sizeof ((aldrec_config_t *)0)->key_line[0], "key_line too small");

/* What SIGHUP applies; every other key needs a restart. Sections whose
 * every key reloads are named as "section.*". */
static const char *const reloadable[] = {
    "recorder.batch_rows", "recorder.flush_interval_ms", "recorder.log_level",
    "cache.ttl_s", "cache.refresh_s", "health.*", "alerts.*",
};

#define MAX_ERRORS 20

/* Errors collected while parsing: one "name:line: message" per line. */
struct perr {
    char *buf;
    size_t cap, len;
    int n;
};

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
        .metrics_listen = "127.0.0.1:9464",
        .metrics_allow_remote = "no",
        .health_database_down_s = 30,
        .health_device_down_s = 10,
        .health_spool_degraded_pct = 50,
        .health_spool_failing_pct = 90,
        .alert_window_s = 60,
        .alert_flush_p95_ms = 50,
        .alert_copy_p95_ms = 1000,
        .alert_cache_hit_pct = 90,
        .alert_spool_pct = 80,
        .alert_device_down_s = 30,
        .alert_database_down_s = 60,
    };
}

static void vnote(struct perr *e, const char *name, int line, const char *fmt, va_list ap)
{
    e->n++;
    if (e->n > MAX_ERRORS || e->cap == 0 || e->len + 1 >= e->cap)
        return;
    char msg[1024];
    int n = line > 0 ? snprintf(msg, sizeof msg, "%s%s:%d: ", e->len ? "\n" : "", name, line)
                     : snprintf(msg, sizeof msg, "%s%s: ", e->len ? "\n" : "", name);
    if (n < 0 || (size_t)n >= sizeof msg)
        return;
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    int k = snprintf(e->buf + e->len, e->cap - e->len, "%s", msg);
    if (k > 0)
        e->len = e->len + (size_t)k < e->cap ? e->len + (size_t)k : e->cap - 1;
}

static int note(struct perr *e, const char *name, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int note(struct perr *e, const char *name, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnote(e, name, line, fmt, ap);
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
                     const char *name, int line, struct perr *e)
{
    char *field = (char *)cfg + k->off;

    if (k->kind == K_STR) {
        size_t n = strlen(val);
        if (n == 0)
            return note(e, name, line, "%s: empty value", k->name);
        if (n >= k->size)
            return note(e, name, line, "%s: value longer than %zu characters",
                        k->name, k->size - 1);
        memcpy(field, val, n + 1);
        return 0;
    }
    if (k->kind == K_GONE)
        return note(e, name, line, "%s: no longer supported: %s", k->name, k->choices);
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
        return note(e, name, line, "%s: expected %s, got \"%s\"", k->name, list, val);
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
            return note(e, name, line,
                        "%s: expected a size in bytes from %lld to %lld (k, M, G suffixes"
                        " allowed), got \"%s\"", k->name, k->lo, k->hi, val);
        return note(e, name, line, "%s: expected an integer in %lld..%lld, got \"%s\"",
                    k->name, k->lo, k->hi, val);
    }
    if (k->kind == K_BYTES)
        *(long long *)(void *)field = v;
    else
        *(int *)(void *)field = (int)v;
    return 0;
}

static size_t key_index(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return i;
    return NKEYS;
}

int config_key_line(const aldrec_config_t *cfg, const char *section, const char *name)
{
    size_t i = key_index(section, name);
    return i < NKEYS ? cfg->key_line[i] : 0;
}

/* A conninfo with a password in it, in any form libpq accepts (keyword
 * with or without spaces, URI user:password@). */
static int has_password(const char *conninfo)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    int found = 0;
    if (!opts) {
        PQfreemem(msg);
        /* Not parseable (config_check_system says so); be strict. */
        return strcasestr(conninfo, "password") != NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            found = 1;
    PQconninfoFree(opts);
    return found;
}

int config_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

int config_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    struct in_addr a4;
    struct in6_addr a6;
    const char *colon;
    size_t hl;

    if (strcmp(s, "off") == 0)
        return 1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        hl = (size_t)(close - s - 1);
        if (hl == 0 || hl >= hostlen)
            return -1;
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return -1;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return -1;
        hl = (size_t)(colon - s);
        if (hl >= hostlen)
            return -1;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, &a4) != 1)
            return -1;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* The rules that tie keys together, after every line was read. */
static void check_rules(aldrec_config_t *cfg, const char *name, struct perr *e)
{
    if (cfg->admin_conninfo[0] == '\0')
        memcpy(cfg->admin_conninfo, cfg->conninfo, sizeof cfg->conninfo);
    if (cfg->reader_conninfo[0] == '\0')
        memcpy(cfg->reader_conninfo, cfg->conninfo, sizeof cfg->conninfo);
    if (strcmp(cfg->parity, "N") && strcmp(cfg->parity, "E") && strcmp(cfg->parity, "O"))
        note(e, name, config_key_line(cfg, "modbus", "parity"),
             "parity: expected N, E or O, got \"%s\"", cfg->parity);
    if (strcmp(cfg->partition_interval, "day") && strcmp(cfg->partition_interval, "week") &&
        strcmp(cfg->partition_interval, "month"))
        note(e, name, config_key_line(cfg, "database", "partition_interval"),
             "partition_interval: expected day, week or month, got \"%s\"",
             cfg->partition_interval);
    if (cfg->cache_refresh_s > cfg->cache_ttl_s)
        note(e, name, config_key_line(cfg, "cache", "refresh_s"),
             "refresh_s (%d) must not exceed ttl_s (%d): entries would go stale"
             " between refreshes", cfg->cache_refresh_s, cfg->cache_ttl_s);
    if (strcmp(cfg->log_level, "error") && strcmp(cfg->log_level, "warn") &&
        strcmp(cfg->log_level, "info") && strcmp(cfg->log_level, "debug"))
        note(e, name, config_key_line(cfg, "recorder", "log_level"),
             "log_level: expected error, warn, info or debug, got \"%s\"", cfg->log_level);
    char host[64];
    int port;
    int lr = config_parse_listen(cfg->metrics_listen, host, sizeof host, &port);
    int line = config_key_line(cfg, "metrics", "listen");
    if (lr < 0)
        note(e, name, line, "listen: expected ADDRESS:PORT (127.0.0.1:9464, [::1]:9464,"
             " localhost:9464) or off, got \"%s\"", cfg->metrics_listen);
    else if (lr == 0 && !config_host_is_loopback(host) &&
             strcmp(cfg->metrics_allow_remote, "yes") != 0)
        note(e, name, line, "listen: %s is not a loopback address; metrics and health would be"
             " open to the network: set allow_remote = yes to mean it", host);
    if (cfg->health_spool_degraded_pct >= cfg->health_spool_failing_pct)
        note(e, name, config_key_line(cfg, "health", "spool_degraded_pct") ?
                          config_key_line(cfg, "health", "spool_degraded_pct") :
                          config_key_line(cfg, "health", "spool_failing_pct"),
             "spool_degraded_pct (%d) must be below spool_failing_pct (%d)",
             cfg->health_spool_degraded_pct, cfg->health_spool_failing_pct);
    if (cfg->alert_window_s * 1000LL < cfg->flush_interval_ms)
        note(e, name, config_key_line(cfg, "alerts", "window_s"),
             "window_s (%d) is shorter than [recorder] flush_interval_ms (%d ms): the window"
             " would often hold no flush", cfg->alert_window_s, cfg->flush_interval_ms);
}

int config_parse(aldrec_config_t *cfg, const char *buf, size_t len,
                 const char *name, char *err, size_t errlen)
{
    char section[32] = "";
    bool skip_section = false;     /* after a bad header: its keys are not checked */
    int lineno = 0;
    size_t pos = 0;
    struct perr e = { .buf = err, .cap = errlen };

    if (errlen)
        err[0] = '\0';
    memset(cfg->key_line, 0, sizeof cfg->key_line);
    while (pos < len) {
        char line[2048];
        size_t eol = pos;
        while (eol < len && buf[eol] != '\n')
            eol++;
        lineno++;
        size_t start = pos;
        pos = eol + 1;
        if (eol - start >= sizeof line) {
            note(&e, name, lineno, "line longer than %zu characters", sizeof line - 1);
            continue;
        }
        if (memchr(buf + start, '\0', eol - start)) {
            note(&e, name, lineno, "NUL byte in line; not a text file?");
            continue;
        }
        memcpy(line, buf + start, eol - start);
        line[eol - start] = '\0';
        char *s = trim(line, line + strlen(line));
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            skip_section = true;
            section[0] = '\0';
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0') {
                note(&e, name, lineno, "malformed section header \"%s\"", s);
                continue;
            }
            char *sec = trim(s + 1, close);
            size_t n = strlen(sec);
            if (n == 0 || n >= sizeof section) {
                note(&e, name, lineno, "bad section name \"%s\"", sec);
                continue;
            }
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
                note(&e, name, lineno, "unknown section [%s] (expected one of %s)", sec, list);
                continue;
            }
            memcpy(section, sec, n + 1);
            skip_section = false;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            note(&e, name, lineno, "expected \"key = value\", got \"%s\"", s);
            continue;
        }
        char *key = trim(s, eq);
        char *val = eq + 1;
        val = trim(val, val + strlen(val));
        if (*key == '\0') {
            note(&e, name, lineno, "missing key before '='");
            continue;
        }
        if (skip_section)
            continue;
        if (section[0] == '\0') {
            note(&e, name, lineno, "\"%s\" outside of any [section]", key);
            continue;
        }
        size_t i = key_index(section, key);
        if (i == NKEYS) {
            note(&e, name, lineno, "unknown key \"%s\" in [%s]", key, section);
            continue;
        }
        if (cfg->key_line[i]) {
            note(&e, name, lineno, "\"%s\" set twice in [%s] (first on line %d)", key, section,
                 cfg->key_line[i]);
            continue;
        }
        cfg->key_line[i] = (unsigned short)(lineno > 65535 ? 65535 : lineno);
        if (set_value(cfg, &keys[i], val, name, lineno, &e) < 0)
            continue;
        if (keys[i].kind == K_STR && strstr(keys[i].name, "conninfo") && has_password(val))
            note(&e, name, lineno, "%s: passwords do not belong in conninfo; use passfile=PATH",
                 keys[i].name);
    }
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].required && ((char *)cfg + keys[i].off)[0] == '\0')
            note(&e, name, 0, "missing required key \"%s\" in [%s]", keys[i].name,
                 keys[i].section);
    check_rules(cfg, name, &e);
    if (e.n > MAX_ERRORS && e.len + 1 < e.cap)
        snprintf(err + e.len, e.cap - e.len, "\n%s: ... %d more errors", name,
                 e.n - MAX_ERRORS);
    return e.n ? -1 : 0;
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

/* "section.key" as reloadable? */
static bool is_reloadable(const struct key *k)
{
    char full[96], all[64];
    snprintf(full, sizeof full, "%s.%s", k->section, k->name);
    snprintf(all, sizeof all, "%s.*", k->section);
    for (size_t i = 0; i < sizeof reloadable / sizeof reloadable[0]; i++)
        if (strcmp(reloadable[i], full) == 0 || strcmp(reloadable[i], all) == 0)
            return true;
    return false;
}

static void add_word(char *buf, size_t cap, const char *section, const char *name)
{
    if (cap == 0)
        return;
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%s.%s", used ? " " : "", section, name);
}

int config_diff(const aldrec_config_t *old, const aldrec_config_t *new_cfg,
                char *reload, size_t reloadlen, char *restart, size_t restartlen)
{
    int n = 0;
    if (reloadlen)
        reload[0] = '\0';
    if (restartlen)
        restart[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *a = (const char *)old + k->off, *b = (const char *)new_cfg + k->off;
        bool same;
        switch (k->kind) {
        case K_STR:
        case K_CHOICE:
            same = strcmp(a, b) == 0;
            break;
        case K_INT:
            same = *(const int *)(const void *)a == *(const int *)(const void *)b;
            break;
        case K_BYTES:
            same = *(const long long *)(const void *)a == *(const long long *)(const void *)b;
            break;
        case K_GONE:
            continue;
        default:
            continue;
        }
        if (same)
            continue;
        n++;
        if (is_reloadable(k))
            add_word(reload, reloadlen, k->section, k->name);
        else
            add_word(restart, restartlen, k->section, k->name);
    }
    return n;
}

void config_apply_reloadable(aldrec_config_t *running, const aldrec_config_t *new_cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (!is_reloadable(k))
            continue;
        size_t size = k->kind == K_INT ? sizeof(int)
                    : k->kind == K_BYTES ? sizeof(long long)
                    : k->kind == K_GONE ? 0 : k->size;
        memcpy((char *)running + k->off, (const char *)new_cfg + k->off, size);
    }
}

int config_keys_set(const aldrec_config_t *cfg)
{
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++)
        n += cfg->key_line[i] != 0;
    return n;
}

static void dir_must_exist(const aldrec_config_t *cfg, const char *path, const char *section,
                           const char *key, const char *value, struct perr *e)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", value);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(dir, &st) < 0)
        note(e, path, config_key_line(cfg, section, key), "%s: directory %s: %s", key, dir,
             strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        note(e, path, config_key_line(cfg, section, key), "%s: %s is not a directory", key, dir);
}

int config_check_system(const aldrec_config_t *cfg, const char *path, char *err, size_t errlen)
{
    struct perr e = { .buf = err, .cap = errlen };
    static const struct { const char *key; size_t off; } conn[] = {
        { "conninfo", offsetof(aldrec_config_t, conninfo) },
        { "admin_conninfo", offsetof(aldrec_config_t, admin_conninfo) },
        { "reader_conninfo", offsetof(aldrec_config_t, reader_conninfo) },
    };
    if (errlen)
        err[0] = '\0';
    for (size_t i = 0; i < sizeof conn / sizeof conn[0]; i++) {
        const char *v = (const char *)cfg + conn[i].off;
        char *msg = NULL;
        PQconninfoOption *o = PQconninfoParse(v, &msg);
        if (!o) {
            int line = config_key_line(cfg, "database", conn[i].key);
            if (line == 0 && i > 0) {
                PQfreemem(msg);
                continue;   /* a copy of conninfo: reported there */
            }
            if (msg)
                msg[strcspn(msg, "\n")] = '\0';
            note(&e, path, line, "%s: libpq cannot parse it: %s", conn[i].key,
                 msg ? msg : "out of memory");
        }
        PQfreemem(msg);
        PQconninfoFree(o);
    }
    if (cfg->socket_group[0] && !getgrnam(cfg->socket_group))
        note(&e, path, config_key_line(cfg, "recorder", "socket_group"),
             "socket_group: no group \"%s\" on this machine", cfg->socket_group);
    dir_must_exist(cfg, path, "recorder", "socket", cfg->socket_path, &e);
    dir_must_exist(cfg, path, "spool", "path", cfg->spool_path, &e);
    dir_must_exist(cfg, path, "cache", "snapshot", cfg->snapshot_path, &e);
    if (cfg->redis_password_file[0] && access(cfg->redis_password_file, F_OK) < 0)
        note(&e, path, config_key_line(cfg, "cache", "redis_password_file"),
             "redis_password_file: %s: %s", cfg->redis_password_file, strerror(errno));
    return e.n;
}

int config_file_warnings(const char *path, char *warn, size_t warnlen)
{
    struct stat st;
    int n = 0;
    if (warnlen)
        warn[0] = '\0';
    if (stat(path, &st) < 0)
        return 0;
    if (st.st_mode & S_IWOTH) {
        n++;
        snprintf(warn, warnlen, "%s is world-writable (mode %04o): anyone on this machine can"
                 " point aldrecd at another database, password file or spool; chmod o-w it"
                 " (0640 root:aldrec is the recommended mode)", path,
                 (unsigned)(st.st_mode & 07777));
    }
    if (st.st_mode & S_IROTH) {
        size_t used = strlen(warn);
        n++;
        snprintf(warn + used, warnlen - used, "%s%s is world-readable (mode %04o): it names"
                 " the database connection and password files; chmod o-r it (0640"
                 " root:aldrec is the recommended mode)", used ? "\n" : "", path,
                 (unsigned)(st.st_mode & 07777));
    }
    return n;
}
