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
 * conninfo strings must not carry passwords: use a passfile (conninfo
 * "passfile=/etc/aldrec/pgpass") so that secrets never reach argv or logs. */
#ifndef ALDREC_CONFIG_H
#define ALDREC_CONFIG_H

#include <stddef.h>

typedef struct aldrec_config {
    /* [database] */
    char conninfo[1024];        /* aldrecd and aldrec (required) */
    char admin_conninfo[1024];  /* aldrec db migrate; defaults to conninfo */
    int  connect_timeout_s;     /* default 5 */
    char reader_conninfo[1024]; /* aldrec runs|export|summary|plot; defaults to conninfo */
    char partition_interval[8]; /* day|week|month: one partition of process_data_points (default day) */
    int  partitions_ahead;      /* aldrec db maintain creates this many periods ahead (default 7) */
    int  retention_days;        /* ... and drops partitions older than this; 0 = keep (default 0) */
    /* [recorder] */
    char machine[64];           /* machines.name (required) */
    char recorder_id[64];       /* ingest_ledger.recorder_id (required) */
    char socket_path[108];      /* control socket (default /run/aldrec/aldrecd.sock) */
    int  batch_rows;            /* flush after this many rows (default 5000) */
    int  flush_interval_ms;     /* ... or this long after the batch's first row (default 1000) */
    char log_level[16];         /* error|warn|info|debug (default info) */
    /* [modbus] */
    int  response_timeout_ms;   /* per request (default 500) */
    int  max_registers;         /* per read request, 1..125 (default 125) */
    int  max_bits;              /* per coil/discrete read, 1..2000 (default 2000) */
    int  max_gap;               /* unused registers bridged in one request (default 8) */
    int  reconnect_max_ms;      /* cap of the reconnect backoff (default 5000) */
    int  baud;                  /* RTU line defaults: 19200 8E1, the Modbus */
    char parity[2];             /*   serial line specification's default */
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
    char spool_full_policy[16]; /* drop_oldest | drop_newest (default drop_oldest) */
    int  drain_batches;         /* most batches per transaction when draining (default 32) */
    int  drain_rows;            /* most rows per transaction when draining (default 100000) */
} aldrec_config_t;

/* Fills *cfg with defaults. */
void config_defaults(aldrec_config_t *cfg);

/* Parses INI text buf[0..len) named `name` (for messages) over the values
 * already in *cfg, then checks required keys. Returns 0, or -1 with a
 * "name:line: message" in err. */
int config_parse(aldrec_config_t *cfg, const char *buf, size_t len,
                 const char *name, char *err, size_t errlen);

/* Defaults, then reads and parses the file at path. Returns 0, or -1 with
 * the message in err. */
int config_load(aldrec_config_t *cfg, const char *path, char *err, size_t errlen);

#endif
