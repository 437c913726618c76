/* config.h — aldrecd/aldrec configuration: an INI file.
 *
 *   # comment            ; comment
 *   [section]
 *   key = value          # values run to the end of the line, trimmed
 *
 * Every key is known (a typo is an error, not a silently ignored line) and
 * every value is checked. Errors name the file and line: "aldrec.conf:12:
 * batch_rows: expected an integer in 1..1000000, got "12x"".
 *
 * config.c holds one table with a row per key — name, type, default,
 * bounds, whether SIGHUP applies it, a one-line description, the field it
 * fills. Parsing, the defaults, the reload diff and the reference table in
 * the docs (config_write_reference, `aldrecd --config-reference`) all come
 * from that row: adding a key is one row plus its field below. Enumerated
 * and yes/no values are parsed once, into the enum or bool field; users
 * never parse them again.
 *
 * conninfo strings must not carry passwords: use a passfile (conninfo
 * "passfile=/etc/aldrec/pgpass") so that secrets never reach argv or logs. */
#ifndef ALDREC_CONFIG_H
#define ALDREC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/log.h"

/* [database] partition_interval: the period of one partition. */
enum config_partition {
    CONFIG_PARTITION_DAY,
    CONFIG_PARTITION_WEEK,
    CONFIG_PARTITION_MONTH,
};

/* [modbus] parity: the values are the characters libmodbus takes. */
enum config_parity {
    CONFIG_PARITY_NONE = 'N',
    CONFIG_PARITY_EVEN = 'E',
    CONFIG_PARITY_ODD = 'O',
};

/* [spool] full_policy: which batches go when max_bytes is reached
 * (store/spool.h's enum spool_policy; the daemon maps one to the other). */
enum config_full_policy {
    CONFIG_DROP_OLDEST,
    CONFIG_DROP_NEWEST,
};

typedef struct aldrec_config {
    /* [database] */
    char conninfo[1024];        /* aldrecd and aldrec (required) */
    char admin_conninfo[1024];  /* aldrec db migrate; defaults to conninfo */
    int  connect_timeout_s;     /* default 5 */
    char reader_conninfo[1024]; /* aldrec runs|export|summary|plot; defaults to conninfo */
    char listen_conninfo[1024]; /* the metadata refresher's LISTEN session; defaults to conninfo */
    enum config_partition partition_interval; /* one partition of process_data_points (default day) */
    int  partitions_ahead;      /* aldrec db maintain creates this many periods ahead (default 7) */
    int  retention_days;        /* ... and drops partitions older than this; 0 = keep (default 0) */
    int  idle_retention_days;   /* ... and idle history older than this; 0 = keep (default 30) */
    /* [recorder] */
    char machine[64];           /* machines.name (required) */
    char recorder_id[64];       /* ingest_ledger.recorder_id (required) */
    char socket_path[108];      /* control socket (default /run/aldrec/aldrecd.sock) */
    int  batch_rows;            /* flush after this many rows (default 5000) */
    int  flush_interval_ms;     /* ... or this long after the batch's first row (default 1000) */
    int  idle_interval_ms;      /* outside a process: one sample per parameter this often; 0 = off (default 1000) */
    enum log_level log_level;   /* error|warn|info|debug (default info) */
    char socket_group[64];      /* group of the control socket (mode 0660); "" = the daemon's */
    /* [modbus] */
    int  response_timeout_ms;   /* per request (default 500) */
    int  max_registers;         /* per read request, 1..125 (default 125) */
    int  max_bits;              /* per coil/discrete read, 1..2000 (default 2000) */
    int  max_gap;               /* unused registers bridged in one request (default 8) */
    int  reconnect_max_ms;      /* cap of the reconnect backoff (default 5000) */
    int  baud;                  /* RTU line defaults: 19200 8E1, the Modbus */
    enum config_parity parity;  /*   serial line specification's default */
    int  data_bits;
    int  stop_bits;
    /* [cache] — parameter metadata (cache/pcache.h) */
    char redis_host[256];       /* L2 (default 127.0.0.1) */
    int  redis_port;            /* default 6379; 0 = no L2 */
    int  redis_db;              /* default 0 */
    char redis_password_file[256]; /* AUTH password, first line; default none */
    int  redis_timeout_ms;      /* connect and command deadline (default 250) */
    int  cache_ttl_s;           /* an entry is fresh this long (default 300) */
    int  cache_refresh_s;       /* bulk refresh period (default 60), <= ttl_s */
    char snapshot_path[256];    /* last good map (default /var/lib/aldrec/pmap-snapshot.db) */
    /* [spool] */
    char spool_path[1024];      /* the SQLite queue (default /var/lib/aldrec/spool.db) */
    long long spool_max_bytes;  /* cap on queued payload, k/M/G suffixes (default 1G) */
    enum config_full_policy spool_full_policy; /* drop_oldest | drop_newest (default drop_oldest) */
    int  drain_batches;         /* most batches per transaction when draining (default 32) */
    int  drain_rows;            /* most rows per transaction when draining (default 100000) */
    int  drain_connections;     /* connections a backlog drains over (default 2) */
    /* [metrics] — Prometheus exposition and /health over HTTP */
    char metrics_listen[80];    /* "127.0.0.1:9464" (default), "[::1]:9464" or "off" */
    bool metrics_allow_remote;  /* yes|no (default no): may listen bind a non-loopback address */
    /* [web] — aldrec web (web/webd.h) */
    char web_listen[80];        /* "127.0.0.1:8080" (default) or "off" */
    bool web_allow_remote;      /* may listen bind a non-loopback address (default no) */
    int  web_pool;              /* reader connections kept open (default 4) */
    char web_root[1024];        /* the pages; empty: installed, else the build's */
    /* [health] — ok / degraded / failing (ops/service.h) */
    int  health_database_down_s;   /* PostgreSQL out of reach this long: degraded (default 30) */
    int  health_device_down_s;     /* a device down this long: degraded; all: failing (default 10) */
    int  health_spool_degraded_pct; /* spool above this % of max_bytes: degraded (default 50) */
    int  health_spool_failing_pct;  /* ... above this %: failing (default 90) */
    /* [alerts] — a warning when crossed, a notice when cleared; 0 disables */
    int  alert_window_s;        /* percentiles and ratios over this many seconds (default 60) */
    int  alert_flush_p95_ms;    /* spool append (flush) p95 above (default 50) */
    int  alert_copy_p95_ms;     /* PostgreSQL write (COPY transaction) p95 above (default 1000) */
    int  alert_cache_hit_pct;   /* metadata cache L1 hit ratio below (default 90) */
    int  alert_spool_pct;       /* spool above this % of max_bytes (default 80) */
    int  alert_device_down_s;   /* a device down this long (default 30) */
    int  alert_database_down_s; /* PostgreSQL out of reach this long (default 60) */

    /* Where each key was set (0: default), for messages about its value;
     * filled by config_parse, read with config_key_line(). */
    unsigned short key_line[96];
} aldrec_config_t;

/* Fills *cfg with every key's default (the table's; strings without one
 * are empty). */
void config_defaults(aldrec_config_t *cfg);

/* Parses INI text buf[0..len) named `name` (for messages) over the values
 * already in *cfg, then checks required keys and the rules that tie keys
 * together. Returns 0, or -1 with every error found (up to 20, one
 * "name:line: message" per line, newline-separated) in err. */
int config_parse(aldrec_config_t *cfg, const char *buf, size_t len,
                 const char *name, char *err, size_t errlen);

/* Defaults, then reads and parses the file at path. Returns 0, or -1 with
 * the message in err. */
int config_load(aldrec_config_t *cfg, const char *path, char *err, size_t errlen);

/* Line of `name` in [section] in the text parsed last (0: not set there). */
int config_key_line(const aldrec_config_t *cfg, const char *section, const char *name);

/* The [metrics] listen value split into host and port ("127.0.0.1:9464",
 * "[::1]:9464", "localhost:9464"). Returns 1 for "off", 0 when parsed,
 * -1 when malformed. host gets at most hostlen - 1 characters. */
int config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

/* True when host (numeric IPv4/IPv6 or "localhost") is a loopback address. */
int config_host_is_loopback(const char *host);

/* "day", "week" or "month", as the SQL functions take it ("?" if out of range). */
const char *config_partition_name(enum config_partition p);

/* One key whose value differs between two configurations. The strings are
 * borrowed for the duration of the callback. */
typedef struct config_change {
    const char *key;           /* "section.key" */
    bool reloadable;           /* a running aldrecd takes it on SIGHUP */
    const char *old_value;     /* printable, as a file would write it */
    const char *new_value;
} config_change_t;

typedef void config_change_fn(const config_change_t *change, void *arg);

/* Calls fn (unless NULL) for each key whose value differs between old and
 * new_cfg, in table order. The keys a running aldrecd takes on SIGHUP are
 * the flush settings, the log level, the cache TTLs and the health and
 * alert thresholds; the others need a restart. Returns the number of
 * changed keys. */
int config_diff(const aldrec_config_t *old, const aldrec_config_t *new_cfg,
                config_change_fn *fn, void *arg);

/* config_diff as the reload log writes it: applied gets the changed
 * reloadable keys as "section.key (old -> new)", comma-separated; restart
 * the others as "section.key" words, space-separated. Both NUL-terminated
 * and truncated. Returns the number of changed keys. */
int config_diff_summary(const aldrec_config_t *old, const aldrec_config_t *new_cfg,
                        char *applied, size_t appliedlen, char *restart, size_t restartlen);

/* Copies the values of the reloadable keys (see config_diff) from new_cfg
 * into running; every other key keeps its running value. */
void config_apply_reloadable(aldrec_config_t *running, const aldrec_config_t *new_cfg);

/* A key as the reference describes it (a plain copy of its table row). */
typedef struct config_key_info {
    const char *name;          /* "section.key" */
    const char *type;          /* "integer", "milliseconds", "yes/no", "enum", ... */
    const char *def;           /* the default as a file would write it; NULL: none */
    bool numeric;              /* lo..hi bound the value */
    long long lo, hi;
    bool required, reloadable;
    const char *desc;          /* one line */
} config_key_info_t;

/* The i-th key in table order (settable keys only). Returns 0, or -1 when
 * i is past the last key. */
int config_key_get(size_t i, config_key_info_t *out);

/* Writes the configuration reference to f: a Markdown table with one row
 * per key (key, type, default, bounds, reloadable, description), in table
 * order. docs/operating.md carries it verbatim. Returns 0, or -1 with
 * errno set when writing failed. */
int config_write_reference(FILE *f);

/* Number of keys set in the text parsed last. */
int config_keys_set(const aldrec_config_t *cfg);

/* Checks against this machine what parsing cannot: conninfo strings libpq
 * can parse, socket_group exists, the spool's and snapshot's directories
 * exist, redis_password_file exists. Errors ("path:line: message", one per
 * line) go to err; returns their number. */
int config_check_system(const aldrec_config_t *cfg, const char *path, char *err, size_t errlen);

/* Warnings about the file's permissions: it names password files and the
 * database connection, so it should be readable by root and the service
 * group only. World-writable: anyone could point aldrecd at another
 * database, password file or spool; world-readable: anyone learns where
 * the secrets are. Writes the warnings (one per line) to warn; returns
 * their number (0 when the file cannot be stat'ed: loading reports that). */
int config_file_warnings(const char *path, char *warn, size_t warnlen);

#endif
