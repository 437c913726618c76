/* config.c — the configuration keys, one table row each, and what is
 * derived from the rows: the INI parser, the defaults, the reload diff and
 * the reference table of the docs. Adding a key is one row in keys[] plus
 * its field in aldrec_config_t. */
#include "common/config.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a value is: decides how it is parsed, printed and described. */
enum type {
    T_STRING,
    T_CONNINFO,   /* a libpq conninfo: a string that must not carry a password */
    T_PATH,       /* a file name; .exists says what config_check_system checks */
    T_LISTEN,     /* ADDRESS:PORT or off (config_parse_listen) */
    T_INT,        /* int in lo..hi; T_MS, T_S and T_PCT say its unit */
    T_MS,
    T_S,
    T_PCT,
    T_BYTES,      /* long long in lo..hi, with an optional k/M/G/T (binary) suffix */
    T_BOOL,       /* yes | no, into a bool */
    T_ENUM,       /* one of .names, into an int-sized enum */
    T_GONE,       /* removed: refused with .desc saying what replaced it */
};

/* The reference's type column. */
static const char *const type_names[] = {
    [T_STRING] = "string", [T_CONNINFO] = "conninfo", [T_PATH] = "path",
    [T_LISTEN] = "address", [T_INT] = "integer", [T_MS] = "milliseconds",
    [T_S] = "seconds", [T_PCT] = "percent", [T_BYTES] = "size", [T_BOOL] = "yes/no",
    [T_ENUM] = "enum", [T_GONE] = "removed",
};

/* What config_check_system checks for a T_PATH. */
enum exists {
    EXISTS_NOTHING,
    EXISTS_DIR,     /* the directory it is in */
    EXISTS_FILE,    /* the file itself, when set */
};

struct enum_name {
    const char *name;
    int value;
};

struct key {
    const char *name;        /* "section.key" */
    enum type type;
    size_t off, size;        /* the field it fills in aldrec_config_t */
    const char *def;         /* the default as a file writes it; NULL: zero, empty */
    const char *unset;       /* reference's default column when there is no def */
    long long lo, hi;        /* numeric types: the accepted range */
    const struct enum_name *names;   /* T_ENUM: { NULL }-terminated */
    bool required;
    bool reload;             /* SIGHUP applies it; every other key needs a restart */
    enum exists exists;      /* T_PATH */
    const char *desc;        /* one line for the reference; T_GONE: what replaced it */
};

/* The field's size is what its type stores (strings: a buffer larger than
 * any scalar); a row whose field does not fit fails to compile (an array
 * of size -1). */
#define TYPE_FITS(t, size) \
    ((t) == T_BYTES ? (size) == sizeof(long long) : \
     (t) == T_BOOL ? (size) == sizeof(bool) : \
     (t) >= T_INT && (t) <= T_ENUM ? (size) == sizeof(int) : (size) > sizeof(long long))
#define FIELD_SIZE(t, field) \
    (sizeof(((aldrec_config_t *)0)->field) + \
     0 * sizeof(char[TYPE_FITS(t, sizeof(((aldrec_config_t *)0)->field)) ? 1 : -1]))
#define KEY(n, t, field, ...) \
    { .name = n, .type = t, .off = offsetof(aldrec_config_t, field), \
      .size = FIELD_SIZE(t, field), __VA_ARGS__ }
#define GONE(n, hint) { .name = n, .type = T_GONE, .desc = hint }

static const struct enum_name partition_names[] = {
    { "day", CONFIG_PARTITION_DAY }, { "week", CONFIG_PARTITION_WEEK },
    { "month", CONFIG_PARTITION_MONTH }, { NULL, 0 },
};
static const struct enum_name level_names[] = {   /* log.c's names, tested to agree */
    { "error", LL_ERROR }, { "warn", LL_WARN }, { "info", LL_INFO }, { "debug", LL_DEBUG },
    { NULL, 0 },
};
static const struct enum_name parity_names[] = {
    { "N", CONFIG_PARITY_NONE }, { "E", CONFIG_PARITY_EVEN }, { "O", CONFIG_PARITY_ODD },
    { NULL, 0 },
};
static const struct enum_name policy_names[] = {
    { "drop_oldest", CONFIG_DROP_OLDEST }, { "drop_newest", CONFIG_DROP_NEWEST }, { NULL, 0 },
};
static const struct enum_name yes_no[] = { { "yes", 1 }, { "no", 0 }, { NULL, 0 } };

/* One row per key, one block per section, in the order of the reference
 * (and of "unknown section" messages). */
static const struct key keys[] = {
    /* [database] */
    KEY("database.conninfo", T_CONNINFO, conninfo, .required = true,
        .desc = "the recorder's login (member of `aldrec_recorder`); `passfile=` for the password"),
    KEY("database.admin_conninfo", T_CONNINFO, admin_conninfo, .unset = "same as `conninfo`",
        .desc = "`aldrec db migrate` / `db maintain` (member of `aldrec_owner`)"),
    KEY("database.connect_timeout_s", T_S, connect_timeout_s, .def = "5", .lo = 1, .hi = 300,
        .desc = "deadline of every wait on PostgreSQL, and of every statement of the writer"),
    KEY("database.reader_conninfo", T_CONNINFO, reader_conninfo, .unset = "same as `conninfo`",
        .desc = "`aldrec runs/export/summary/plot` (member of `aldrec_reader`)"),
    KEY("database.listen_conninfo", T_CONNINFO, listen_conninfo, .unset = "same as `conninfo`",
        .desc = "aldrecd's metadata refresher, a `LISTEN` session (through pgbouncer: a"
                " session-mode pool)"),
    KEY("database.partition_interval", T_ENUM, partition_interval, .def = "day",
        .names = partition_names, .desc = "the period of one partition of `process_data_points`"),
    KEY("database.partitions_ahead", T_INT, partitions_ahead, .def = "7", .lo = 0, .hi = 1000,
        .desc = "`db maintain` creates this many periods ahead"),
    KEY("database.retention_days", T_INT, retention_days, .def = "0", .lo = 0, .hi = 100000,
        .desc = "`db maintain` drops partitions older than this many days; 0 keeps all"),
    KEY("database.idle_retention_days", T_INT, idle_retention_days, .def = "30", .lo = 0,
        .hi = 100000, .desc = "`db maintain` drops idle history (`machine_history`) older than"
                              " this many days; 0 keeps all; never touches runs"),

    /* [recorder] */
    KEY("recorder.machine", T_STRING, machine, .required = true, .desc = "`machines.name`"),
    KEY("recorder.id", T_STRING, recorder_id, .required = true,
        .desc = "this recorder in the ingest ledger"),
    KEY("recorder.socket", T_PATH, socket_path, .def = "/run/aldrec/aldrecd.sock",
        .exists = EXISTS_DIR, .desc = "the control socket"),
    KEY("recorder.batch_rows", T_INT, batch_rows, .def = "5000", .lo = 1, .hi = 1000000,
        .reload = true, .desc = "flush a batch after this many rows ..."),
    KEY("recorder.flush_interval_ms", T_MS, flush_interval_ms, .def = "1000", .lo = 10,
        .hi = 3600000, .reload = true, .desc = "... or this long after its first row"),
    KEY("recorder.idle_interval_ms", T_MS, idle_interval_ms, .def = "1000", .lo = 0,
        .hi = 86400000, .reload = true,
        .desc = "outside a process keep one sample per parameter this often (idle history);"
                " a parameter's `idle_interval_ms` wins; 0 = off"),
    GONE("recorder.queue_batches", "batches wait in the spool now; see [spool] max_bytes"),
    KEY("recorder.log_level", T_ENUM, log_level, .def = "info", .names = level_names,
        .reload = true, .desc = "the least severe level that is logged"),
    KEY("recorder.socket_group", T_STRING, socket_group, .unset = "the daemon's group",
        .desc = "group of the control socket (mode 0660): who may run `aldrec process ...`,"
                " `status`, `set`"),

    /* [modbus] — defaults for every device; a component's own settings
     * (machine_components) take precedence */
    KEY("modbus.response_timeout_ms", T_MS, response_timeout_ms, .def = "500", .lo = 10,
        .hi = 60000, .desc = "per request; a component's own setting wins"),
    KEY("modbus.max_registers", T_INT, max_registers, .def = "125", .lo = 1, .hi = 125,
        .desc = "registers per FC3/FC4 request"),
    KEY("modbus.max_bits", T_INT, max_bits, .def = "2000", .lo = 1, .hi = 2000,
        .desc = "coils or inputs per FC1/FC2 request"),
    KEY("modbus.max_gap", T_INT, max_gap, .def = "8", .lo = 0, .hi = 125,
        .desc = "unused registers bridged to save a request"),
    KEY("modbus.reconnect_max_ms", T_MS, reconnect_max_ms, .def = "5000", .lo = 100,
        .hi = 600000, .desc = "cap of the reconnect backoff (jittered)"),
    KEY("modbus.baud", T_INT, baud, .def = "19200", .lo = 300, .hi = 921600,
        .desc = "RTU line default: bits per second"),
    KEY("modbus.parity", T_ENUM, parity, .def = "E", .names = parity_names,
        .desc = "RTU line default: none, even or odd"),
    KEY("modbus.data_bits", T_INT, data_bits, .def = "8", .lo = 7, .hi = 8,
        .desc = "RTU line default"),
    KEY("modbus.stop_bits", T_INT, stop_bits, .def = "1", .lo = 1, .hi = 2,
        .desc = "RTU line default"),

    /* [spool] — store and forward */
    KEY("spool.path", T_PATH, spool_path, .def = "/var/lib/aldrec/spool.db",
        .exists = EXISTS_DIR, .desc = "the store-and-forward file"),
    KEY("spool.max_bytes", T_BYTES, spool_max_bytes, .def = "1G", .lo = 64LL << 10,
        .hi = 1LL << 50, .desc = "cap on spooled + quarantined data (k, M, G, T suffixes)"),
    KEY("spool.full_policy", T_ENUM, spool_full_policy, .def = "drop_oldest",
        .names = policy_names, .desc = "which batches go when `max_bytes` is reached"),
    KEY("spool.drain_batches", T_INT, drain_batches, .def = "32", .lo = 1, .hi = 1000,
        .desc = "batches per transaction while draining a backlog"),
    KEY("spool.drain_rows", T_INT, drain_rows, .def = "100000", .lo = 1, .hi = 10000000,
        .desc = "... and at most this many rows"),
    KEY("spool.drain_connections", T_INT, drain_connections, .def = "2", .lo = 1, .hi = 2,
        .desc = "connections a backlog drains over (2: two transactions at once, committed in order)"),

    /* [cache] — parameter metadata */
    KEY("cache.redis_host", T_STRING, redis_host, .def = "127.0.0.1", .desc = "Redis L2"),
    KEY("cache.redis_port", T_INT, redis_port, .def = "6379", .lo = 0, .hi = 65535,
        .desc = "Redis L2; 0 disables it"),
    KEY("cache.redis_db", T_INT, redis_db, .def = "0", .lo = 0, .hi = 1000,
        .desc = "Redis database number"),
    KEY("cache.redis_password_file", T_PATH, redis_password_file, .unset = "none",
        .exists = EXISTS_FILE, .desc = "`AUTH` password, first line (mode 0640 at most)"),
    KEY("cache.redis_timeout_ms", T_MS, redis_timeout_ms, .def = "250", .lo = 10, .hi = 10000,
        .desc = "Redis connect and command deadline"),
    KEY("cache.ttl_s", T_S, cache_ttl_s, .def = "300", .lo = 1, .hi = 86400, .reload = true,
        .desc = "an entry is fresh this long"),
    KEY("cache.refresh_s", T_S, cache_refresh_s, .def = "60", .lo = 1, .hi = 86400,
        .reload = true, .desc = "bulk refresh period (at most `ttl_s`)"),
    KEY("cache.snapshot", T_PATH, snapshot_path, .def = "/var/lib/aldrec/pmap-snapshot.db",
        .exists = EXISTS_DIR, .desc = "last good parameter map"),

    /* [metrics], [health] and [alerts] — operating the service */
    KEY("metrics.listen", T_LISTEN, metrics_listen, .def = "127.0.0.1:9464",
        .desc = "`/metrics` and `/health` (`[::1]:9464`, `localhost:9464`), or `off`"),
    KEY("metrics.allow_remote", T_BOOL, metrics_allow_remote, .def = "no",
        .desc = "a non-loopback `listen` is refused unless `yes`"),
    /* [web] — aldrec web, the trend pages (web/) */
    KEY("web.listen", T_LISTEN, web_listen, .def = "127.0.0.1:8080",
        .desc = "`aldrec web`: the run and compare pages and their JSON"),
    KEY("web.allow_remote", T_BOOL, web_allow_remote, .def = "no",
        .desc = "a non-loopback `listen` is refused unless `yes`"),
    KEY("web.pool", T_INT, web_pool, .def = "4", .lo = 1, .hi = 32,
        .desc = "reader connections kept open (each with the hot queries prepared)"),
    KEY("web.root", T_PATH, web_root, .unset = "the installed pages",
        .desc = "the pages and their scripts (`build/web` in a checkout)"),
    KEY("health.database_down_s", T_S, health_database_down_s, .def = "30", .lo = 1,
        .hi = 86400, .reload = true, .desc = "PostgreSQL out of reach this long: degraded"),
    KEY("health.device_down_s", T_S, health_device_down_s, .def = "10", .lo = 1, .hi = 86400,
        .reload = true, .desc = "a device down this long: degraded; every device: failing"),
    KEY("health.spool_degraded_pct", T_PCT, health_spool_degraded_pct, .def = "50", .lo = 1,
        .hi = 100, .reload = true, .desc = "spool above this % of `max_bytes`: degraded"),
    KEY("health.spool_failing_pct", T_PCT, health_spool_failing_pct, .def = "90", .lo = 1,
        .hi = 100, .reload = true,
        .desc = "... above this: failing (must be above `spool_degraded_pct`)"),
    KEY("alerts.window_s", T_S, alert_window_s, .def = "60", .lo = 5, .hi = 3600,
        .reload = true,
        .desc = "percentiles and ratios over this many seconds (at least the flush interval)"),
    KEY("alerts.flush_p95_ms", T_MS, alert_flush_p95_ms, .def = "50", .lo = 0, .hi = 3600000,
        .reload = true, .desc = "spool append (flush) p95 above this; 0 disables"),
    KEY("alerts.copy_p95_ms", T_MS, alert_copy_p95_ms, .def = "1000", .lo = 0, .hi = 3600000,
        .reload = true,
        .desc = "PostgreSQL write (ledger + COPY + COMMIT) p95 above this; 0 disables"),
    KEY("alerts.cache_hit_pct", T_PCT, alert_cache_hit_pct, .def = "90", .lo = 0, .hi = 100,
        .reload = true, .desc = "metadata cache L1 hit ratio below this (needs 20 lookups in"
                                " the window); 0 disables"),
    KEY("alerts.spool_pct", T_PCT, alert_spool_pct, .def = "80", .lo = 0, .hi = 100,
        .reload = true, .desc = "spool above this % of `max_bytes`; 0 disables"),
    KEY("alerts.device_down_s", T_S, alert_device_down_s, .def = "30", .lo = 0, .hi = 86400,
        .reload = true, .desc = "a device down this long; 0 disables"),
    KEY("alerts.database_down_s", T_S, alert_database_down_s, .def = "60", .lo = 0,
        .hi = 86400, .reload = true, .desc = "PostgreSQL out of reach this long; 0 disables"),
};
#define NKEYS (sizeof keys / sizeof keys[0])
_Static_assert(NKEYS <= sizeof ((aldrec_config_t *)0)->key_line /
                        sizeof ((aldrec_config_t *)0)->key_line[0], "key_line too small");

#define MAX_ERRORS 20

/* Errors collected while parsing: one "name:line: message" per line. */
struct perr {
    char *buf;
    size_t cap, len;
    int n;
};

static bool is_number(enum type t)
{
    return t == T_INT || t == T_MS || t == T_S || t == T_PCT || t == T_BYTES;
}

/* The key's name without its section, as messages name it. */
static const char *key_of(const struct key *k)
{
    return strchr(k->name, '.') + 1;
}

static int section_len(const struct key *k)
{
    return (int)(strchr(k->name, '.') - k->name);
}

static bool in_section(const struct key *k, const char *section)
{
    size_t n = (size_t)section_len(k);
    return strncmp(k->name, section, n) == 0 && section[n] == '\0';
}

static const char *enum_name(const struct enum_name *names, int value)
{
    for (const struct enum_name *n = names; n->name; n++)
        if (n->value == value)
            return n->name;
    return "?";
}

/* The names joined: "a, b or c" with last " or "; quoted: "`a`, `b`, `c`"
 * with last ", ". */
static void name_list(const struct enum_name *names, bool quoted, const char *last,
                      char *buf, size_t cap)
{
    const char *q = quoted ? "`" : "";
    size_t used = 0;
    buf[0] = '\0';
    for (const struct enum_name *n = names; n->name && used < cap; n++) {
        const char *sep = n == names ? "" : n[1].name ? ", " : last;
        int w = snprintf(buf + used, cap - used, "%s", sep);
        used += w > 0 ? (size_t)w : 0;
        if (used >= cap)
            break;
        w = snprintf(buf + used, cap - used, "%s%s%s", q, n->name, q);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* Binary multiples as a file writes them: 65536 is "64k", 1 << 30 "1G". */
static void format_bytes(long long v, char *buf, size_t cap)
{
    static const struct { int shift; char suffix; } units[] = {
        { 40, 'T' }, { 30, 'G' }, { 20, 'M' }, { 10, 'k' },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        long long m = 1LL << units[i].shift;
        if (v != 0 && v % m == 0) {
            snprintf(buf, cap, "%lld%c", v / m, units[i].suffix);
            return;
        }
    }
    snprintf(buf, cap, "%lld", v);
}

/* The key's value in cfg as a file would write it. */
static void format_value(const aldrec_config_t *cfg, const struct key *k, char *buf, size_t cap)
{
    const char *field = (const char *)cfg + k->off;
    switch (k->type) {
    case T_STRING:
    case T_CONNINFO:
    case T_PATH:
    case T_LISTEN:
        snprintf(buf, cap, "%.*s", (int)k->size, field);
        return;
    case T_INT:
    case T_MS:
    case T_S:
    case T_PCT:
        snprintf(buf, cap, "%d", *(const int *)(const void *)field);
        return;
    case T_BYTES:
        format_bytes(*(const long long *)(const void *)field, buf, cap);
        return;
    case T_BOOL:
        snprintf(buf, cap, "%s", *(const bool *)(const void *)field ? "yes" : "no");
        return;
    case T_ENUM:
        snprintf(buf, cap, "%s", enum_name(k->names, *(const int *)(const void *)field));
        return;
    case T_GONE:
        break;
    }
    if (cap)
        buf[0] = '\0';
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

static int has_password(const char *conninfo);

static int set_number(char *field, const struct key *k, const char *val, const char *name,
                      int line, struct perr *e)
{
    char *endp;
    errno = 0;
    long long v = strtoll(val, &endp, 10);
    if (k->type == T_BYTES && endp != val && errno == 0) {
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
        if (k->type == T_BYTES)
            return note(e, name, line,
                        "%s: expected a size in bytes from %lld to %lld (k, M, G suffixes"
                        " allowed), got \"%s\"", key_of(k), k->lo, k->hi, val);
        return note(e, name, line, "%s: expected an integer in %lld..%lld, got \"%s\"",
                    key_of(k), k->lo, k->hi, val);
    }
    if (k->type == T_BYTES)
        *(long long *)(void *)field = v;
    else
        *(int *)(void *)field = (int)v;
    return 0;
}

/* Checks val for key k and stores it in its field. Returns 0, or -1 with
 * the error (naming the key) noted. */
static int set_value(aldrec_config_t *cfg, const struct key *k, const char *val,
                     const char *name, int line, struct perr *e)
{
    char *field = (char *)cfg + k->off;

    switch (k->type) {
    case T_STRING:
    case T_CONNINFO:
    case T_PATH:
    case T_LISTEN: {
        size_t n = strlen(val);
        char host[64];
        int port;
        if (n == 0)
            return note(e, name, line, "%s: empty value", key_of(k));
        if (n >= k->size)
            return note(e, name, line, "%s: value longer than %zu characters",
                        key_of(k), k->size - 1);
        if (k->type == T_LISTEN && config_parse_listen(val, host, sizeof host, &port) < 0)
            return note(e, name, line, "%s: expected ADDRESS:PORT (127.0.0.1:9464, [::1]:9464,"
                        " localhost:9464) or off, got \"%s\"", key_of(k), val);
        memcpy(field, val, n + 1);
        if (k->type == T_CONNINFO && has_password(val))
            return note(e, name, line, "%s: passwords do not belong in conninfo; use"
                        " passfile=PATH", key_of(k));
        return 0;
    }
    case T_BOOL:
    case T_ENUM: {
        const struct enum_name *names = k->type == T_BOOL ? yes_no : k->names;
        for (const struct enum_name *n = names; n->name; n++) {
            if (strcmp(n->name, val) != 0)
                continue;
            if (k->type == T_BOOL)
                *(bool *)(void *)field = n->value != 0;
            else
                *(int *)(void *)field = n->value;
            return 0;
        }
        char list[256];
        name_list(names, false, " or ", list, sizeof list);
        return note(e, name, line, "%s: expected %s, got \"%s\"", key_of(k), list, val);
    }
    case T_INT:
    case T_MS:
    case T_S:
    case T_PCT:
    case T_BYTES:
        return set_number(field, k, val, name, line, e);
    case T_GONE:
        break;
    }
    return note(e, name, line, "%s: no longer supported: %s", key_of(k), k->desc);
}

void config_defaults(aldrec_config_t *cfg)
{
    struct perr e = { .buf = NULL };   /* none: test_config parses every default */
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].def)
            set_value(cfg, &keys[i], keys[i].def, "defaults", 0, &e);
}

static size_t key_index(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (in_section(&keys[i], section) && strcmp(key_of(&keys[i]), name) == 0)
            return i;
    return NKEYS;
}

int config_key_line(const aldrec_config_t *cfg, const char *section, const char *name)
{
    size_t i = key_index(section, name);
    return i < NKEYS ? cfg->key_line[i] : 0;
}

const char *config_partition_name(enum config_partition p)
{
    return enum_name(partition_names, (int)p);
}

/* libpq's conninfo parser, loaded on first use rather than linked: the
 * commands that only talk to aldrecd's control socket read this file too,
 * and loading libpq with its TLS, Kerberos and LDAP chain costs them more
 * than all their own work (docs/ARCH.md "The command-line tool"). A
 * program that links libpq gets the copy it already has. NULL when libpq
 * cannot be loaded. */
struct pq_api {
    PQconninfoOption *(*parse)(const char *conninfo, char **errmsg);
    void (*free_options)(PQconninfoOption *opts);
    void (*freemem)(void *p);
};
static struct pq_api pq;
static char pq_error[256] = "libpq.so.5 not loaded";
static pthread_once_t pq_once = PTHREAD_ONCE_INIT;

static void pq_load(void)
{
    void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(pq_error, sizeof pq_error, "%s", why ? why : "dlopen failed");
        return;
    }
    pq.parse = (PQconninfoOption *(*)(const char *, char **))dlsym(h, "PQconninfoParse");
    pq.free_options = (void (*)(PQconninfoOption *))dlsym(h, "PQconninfoFree");
    pq.freemem = (void (*)(void *))dlsym(h, "PQfreemem");
    if (!pq.parse || !pq.free_options || !pq.freemem)
        pq.parse = NULL;
}

static const struct pq_api *pq_api(void)
{
    pthread_once(&pq_once, pq_load);
    return pq.parse ? &pq : NULL;
}

/* A conninfo with a password in it, in any form libpq accepts (keyword
 * with or without spaces, URI user:password@). */
static int has_password(const char *conninfo)
{
    /* Without the word and without a URI there is no password, whatever
     * the spelling (libpq's keywords are case-sensitive, this is not), so
     * libpq is asked only when it must tell the cases apart. */
    if (!strcasestr(conninfo, "password") && !strstr(conninfo, "://"))
        return 0;
    const struct pq_api *api = pq_api();
    char *msg = NULL;
    PQconninfoOption *opts = api ? api->parse(conninfo, &msg) : NULL;
    int found = 0;
    if (!opts) {
        if (api)
            api->freemem(msg);
        /* Not parseable (config_check_system says so); be strict. */
        return strcasestr(conninfo, "password") != NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            found = 1;
    api->free_options(opts);
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
    if (cfg->listen_conninfo[0] == '\0')
        memcpy(cfg->listen_conninfo, cfg->conninfo, sizeof cfg->conninfo);
    if (cfg->cache_refresh_s > cfg->cache_ttl_s)
        note(e, name, config_key_line(cfg, "cache", "refresh_s"),
             "refresh_s (%d) must not exceed ttl_s (%d): entries would go stale"
             " between refreshes", cfg->cache_refresh_s, cfg->cache_ttl_s);
    char host[64];
    int port;
    if (config_parse_listen(cfg->metrics_listen, host, sizeof host, &port) == 0 &&
        !config_host_is_loopback(host) && !cfg->metrics_allow_remote)
        note(e, name, config_key_line(cfg, "metrics", "listen"),
             "listen: %s is not a loopback address; metrics and health would be"
             " open to the network: set allow_remote = yes to mean it", host);
    if (config_parse_listen(cfg->web_listen, host, sizeof host, &port) == 0 &&
        !config_host_is_loopback(host) && !cfg->web_allow_remote)
        note(e, name, config_key_line(cfg, "web", "listen"),
             "listen: %s is not a loopback address; the run pages would be"
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
            bool known = false;
            for (size_t i = 0; i < NKEYS; i++)
                known |= in_section(&keys[i], sec);
            if (!known) {
                char list[256] = "";
                for (size_t i = 0; i < NKEYS; i++) {
                    int sl = section_len(&keys[i]);
                    if (i > 0 && section_len(&keys[i - 1]) == sl &&
                        strncmp(keys[i].name, keys[i - 1].name, (size_t)sl) == 0)
                        continue;
                    size_t used = strlen(list);
                    snprintf(list + used, sizeof list - used, "%s[%.*s]", used ? ", " : "",
                             sl, keys[i].name);
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
        set_value(cfg, &keys[i], val, name, lineno, &e);
    }
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].required && ((char *)cfg + keys[i].off)[0] == '\0')
            note(&e, name, 0, "missing required key \"%s\" in [%.*s]", key_of(&keys[i]),
                 section_len(&keys[i]), keys[i].name);
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
/* Large enough for any field's printed value (the longest is 1023 characters). */
#define VALUE_MAX 1040

int config_diff(const aldrec_config_t *old, const aldrec_config_t *new_cfg,
                config_change_fn *fn, void *arg)
{
    char a[VALUE_MAX], b[VALUE_MAX];
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (k->type == T_GONE)
            continue;
        format_value(old, k, a, sizeof a);
        format_value(new_cfg, k, b, sizeof b);
        if (strcmp(a, b) == 0)
            continue;
        n++;
        if (fn) {
            config_change_t c = { .key = k->name, .reloadable = k->reload,
                                  .old_value = a, .new_value = b };
            fn(&c, arg);
        }
    }
    return n;
}

/* Appends to a NUL-terminated buf of cap bytes, truncating. */
static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return;
    size_t used = strlen(buf);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

struct summary {
    char *applied, *restart;
    size_t appliedlen, restartlen;
};

static void summarize(const config_change_t *c, void *arg)
{
    struct summary *s = arg;
    if (c->reloadable)
        append(s->applied, s->appliedlen, "%s%s (%s -> %s)",
               s->appliedlen && s->applied[0] ? ", " : "", c->key, c->old_value, c->new_value);
    else
        append(s->restart, s->restartlen, "%s%s", s->restartlen && s->restart[0] ? " " : "",
               c->key);
}

int config_diff_summary(const aldrec_config_t *old, const aldrec_config_t *new_cfg,
                        char *applied, size_t appliedlen, char *restart, size_t restartlen)
{
    struct summary s = { .applied = applied, .appliedlen = appliedlen,
                         .restart = restart, .restartlen = restartlen };
    if (appliedlen)
        applied[0] = '\0';
    if (restartlen)
        restart[0] = '\0';
    return config_diff(old, new_cfg, summarize, &s);
}

void config_apply_reloadable(aldrec_config_t *running, const aldrec_config_t *new_cfg)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].reload)
            memcpy((char *)running + keys[i].off, (const char *)new_cfg + keys[i].off,
                   keys[i].size);
}

int config_keys_set(const aldrec_config_t *cfg)
{
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++)
        n += cfg->key_line[i] != 0;
    return n;
}

int config_key_get(size_t i, config_key_info_t *out)
{
    for (size_t j = 0; j < NKEYS; j++) {
        const struct key *k = &keys[j];
        if (k->type == T_GONE || i-- > 0)
            continue;
        *out = (config_key_info_t){
            .name = k->name, .type = type_names[k->type], .def = k->def,
            .numeric = is_number(k->type), .lo = k->lo, .hi = k->hi,
            .required = k->required, .reloadable = k->reload, .desc = k->desc,
        };
        return 0;
    }
    return -1;
}

/* The reference's bounds column. */
static void format_bounds(const struct key *k, char *buf, size_t cap)
{
    char lo[32], hi[32];
    switch (k->type) {
    case T_STRING:
    case T_CONNINFO:
    case T_PATH:
        snprintf(buf, cap, "up to %zu characters", k->size - 1);
        return;
    case T_LISTEN:
        snprintf(buf, cap, "`ADDRESS:PORT` or `off`");
        return;
    case T_INT:
    case T_MS:
    case T_S:
    case T_PCT:
        snprintf(buf, cap, "%lld..%lld", k->lo, k->hi);
        return;
    case T_BYTES:
        format_bytes(k->lo, lo, sizeof lo);
        format_bytes(k->hi, hi, sizeof hi);
        snprintf(buf, cap, "%s..%s", lo, hi);
        return;
    case T_BOOL:
    case T_ENUM:
        name_list(k->type == T_BOOL ? yes_no : k->names, true, ", ", buf, cap);
        return;
    case T_GONE:
        break;
    }
    if (cap)
        buf[0] = '\0';
}

int config_write_reference(FILE *f)
{
    char def[VALUE_MAX], bounds[256];
    fprintf(f, "| key | type | default | bounds | reloadable | description |\n"
               "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (k->type == T_GONE)
            continue;
        if (k->def)
            snprintf(def, sizeof def, "`%s`", k->def);
        else
            snprintf(def, sizeof def, "%s", k->required ? "(required)"
                                            : k->unset ? k->unset : "(none)");
        format_bounds(k, bounds, sizeof bounds);
        fprintf(f, "| `%s` | %s | %s | %s | %s | %s |\n", k->name, type_names[k->type], def,
                bounds, k->reload ? "yes" : "no", k->desc);
    }
    if (fflush(f) != 0 || ferror(f))
        return -1;
    return 0;
}

static void dir_must_exist(const aldrec_config_t *cfg, const char *path, size_t i,
                           struct perr *e)
{
    const struct key *k = &keys[i];
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", (const char *)cfg + k->off);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(dir, &st) < 0)
        note(e, path, cfg->key_line[i], "%s: directory %s: %s", key_of(k), dir,
             strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        note(e, path, cfg->key_line[i], "%s: %s is not a directory", key_of(k), dir);
}

int config_check_system(const aldrec_config_t *cfg, const char *path, char *err, size_t errlen)
{
    struct perr e = { .buf = err, .cap = errlen };
    if (errlen)
        err[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (k->type != T_CONNINFO)
            continue;
        const char *v = (const char *)cfg + k->off;
        const struct pq_api *api = pq_api();
        char *msg = NULL;
        if (!api) {
            note(&e, path, cfg->key_line[i], "%s: cannot load libpq to check it: %s",
                 key_of(k), pq_error);
            break;
        }
        PQconninfoOption *o = api->parse(v, &msg);
        if (!o) {
            int line = cfg->key_line[i];
            if (line == 0 && !k->required) {
                api->freemem(msg);
                continue;   /* a copy of conninfo: reported there */
            }
            if (msg)
                msg[strcspn(msg, "\n")] = '\0';
            note(&e, path, line, "%s: libpq cannot parse it: %s", key_of(k),
                 msg ? msg : "out of memory");
        }
        api->freemem(msg);
        api->free_options(o);
    }
    if (cfg->socket_group[0] && !getgrnam(cfg->socket_group))
        note(&e, path, config_key_line(cfg, "recorder", "socket_group"),
             "socket_group: no group \"%s\" on this machine", cfg->socket_group);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == T_PATH && keys[i].exists == EXISTS_DIR)
            dir_must_exist(cfg, path, i, &e);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *v = (const char *)cfg + keys[i].off;
        if (keys[i].type == T_PATH && keys[i].exists == EXISTS_FILE && v[0] &&
            access(v, F_OK) < 0)
            note(&e, path, cfg->key_line[i], "%s: %s: %s", key_of(&keys[i]), v,
                 strerror(errno));
    }
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
