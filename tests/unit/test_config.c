/* test_config.c — INI parsing: values, defaults, and errors with file:line. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "cache/pcache.h"
#include "t.h"

static int parse(aldrec_config_t *c, const char *text, char *err, size_t errlen)
{
    config_defaults(c);
    return config_parse(c, text, strlen(text), "t.conf", err, errlen);
}

static const char good[] =
    "# aldrec\n"
    "[database]\n"
    "conninfo = host=db dbname=aldrec user=aldrecd passfile=/etc/aldrec/pgpass  \n"
    "\n"
    "[recorder]\n"
    "  machine=ald-01\n"
    "id = ald-01-a ; not a comment: values run to the end of the line\n"
    "batch_rows = 250\n"
    "; comment\n"
    "[modbus]\n"
    "max_registers = 16\n";

static void test_good(void)
{
    aldrec_config_t c;
    char err[256] = "";
    T_EQ_INT(parse(&c, good, err, sizeof err), 0);
    T_EQ_STR(err, "");
    T_EQ_STR(c.conninfo, "host=db dbname=aldrec user=aldrecd passfile=/etc/aldrec/pgpass");
    T_EQ_STR(c.admin_conninfo, c.conninfo);
    T_EQ_STR(c.listen_conninfo, c.conninfo);
    T_EQ_STR(c.machine, "ald-01");
    T_EQ_STR(c.recorder_id, "ald-01-a ; not a comment: values run to the end of the line");
    T_EQ_INT(c.batch_rows, 250);
    T_EQ_INT(c.flush_interval_ms, 1000);
    T_EQ_INT(c.max_registers, 16);
    T_EQ_INT(c.max_gap, 8);
    T_EQ_STR(c.socket_path, "/run/aldrec/aldrecd.sock");
    T_EQ_STR(c.spool_path, "/var/lib/aldrec/spool.db");
    T_EQ_INT(c.spool_max_bytes, 1LL << 30);
    T_EQ_INT(c.spool_full_policy, CONFIG_DROP_OLDEST);
    T_EQ_INT(c.drain_batches, 32);
    T_EQ_INT(c.drain_rows, 100000);
}

static void test_spool_block(void)
{
    static const char base[] = "[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\n[spool]\n";
    aldrec_config_t c;
    char err[256] = "", text[512];
    snprintf(text, sizeof text, "%spath = /data/spool.db\nmax_bytes = 512M\n"
             "full_policy = drop_newest\ndrain_batches = 8\ndrain_rows = 20000\n", base);
    T_EQ_INT(parse(&c, text, err, sizeof err), 0);
    T_EQ_STR(err, "");
    T_EQ_STR(c.spool_path, "/data/spool.db");
    T_EQ_INT(c.spool_max_bytes, 512LL << 20);
    T_EQ_INT(c.spool_full_policy, CONFIG_DROP_NEWEST);
    T_EQ_INT(c.drain_batches, 8);
    T_EQ_INT(c.drain_rows, 20000);
    static const struct { const char *v; long long want; } sizes[] = {
        { "65536", 65536 }, { "64k", 65536 }, { "64K", 65536 }, { "2G", 2LL << 30 },
        { "1t", 1LL << 40 },
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(text, sizeof text, "%smax_bytes = %s\n", base, sizes[i].v);
        T_EQ_INT(parse(&c, text, err, sizeof err), 0);
        T_EQ_INT(c.spool_max_bytes, sizes[i].want);
    }
}

static void expect_error(const char *text, const char *want);

static void test_spool_errors(void)
{
    expect_error("[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\n[spool]\nmax_bytes = 12x\n",
                 "t.conf:7: max_bytes: expected a size in bytes from 65536 to");
    expect_error("[spool]\nmax_bytes = 1k\n", "t.conf:2: max_bytes: expected a size in bytes");
    expect_error("[spool]\nmax_bytes = 99999999999G\n", "t.conf:2: max_bytes");
    expect_error("[spool]\nmax_bytes = -5M\n", "t.conf:2: max_bytes");
    expect_error("[spool]\nfull_policy = block\n",
                 "t.conf:2: full_policy: expected drop_oldest or drop_newest, got \"block\"");
    expect_error("[spool]\nfull_policy = drop_oldestx\n", "t.conf:2: full_policy: expected");
    expect_error("[spool]\ndrain_batches = 0\n", "t.conf:2: drain_batches: expected an integer in 1..1000");
    expect_error("[recorder]\nqueue_batches = 256\n",
                 "t.conf:2: queue_batches: no longer supported: batches wait in the spool now;"
                 " see [spool] max_bytes");
}

static void expect_error(const char *text, const char *want)
{
    aldrec_config_t c;
    char err[256] = "";
    T_EQ_INT(parse(&c, text, err, sizeof err), -1);
    char msg[400];
    snprintf(msg, sizeof msg, "error \"%s\" contains \"%s\"", err, want);
    t_report(strstr(err, want) != NULL, __FILE__, __LINE__, msg);
}

static void test_errors(void)
{
    expect_error("[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\nbatch_rows = 12x\n",
                 "t.conf:6: batch_rows: expected an integer in 1..1000000, got \"12x\"");
    expect_error("[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\nbatch_rows = 0\n",
                 "t.conf:6: batch_rows");
    expect_error("[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\nbatch_rows = 99999999999999999999\n",
                 "t.conf:6: batch_rows");
    expect_error("[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\nflush_ms = 5\n",
                 "t.conf:6: unknown key \"flush_ms\" in [recorder]");
    expect_error("[databse]\n", "t.conf:1: unknown section [databse]");
    expect_error("[database\n", "t.conf:1: malformed section header");
    expect_error("conninfo = x\n", "t.conf:1: \"conninfo\" outside of any [section]");
    expect_error("[recorder]\nmachine ald\n", "t.conf:2: expected \"key = value\"");
    expect_error("[recorder]\n = ald\n", "t.conf:2: missing key");
    expect_error("[recorder]\nmachine =\n", "t.conf:2: machine: empty value");
    expect_error("[recorder]\nmachine = a\nmachine = b\n", "t.conf:3: \"machine\" set twice in [recorder] (first on line 2)");
    expect_error("[recorder]\nmachine = a\nid = r\n", "t.conf: missing required key \"conninfo\" in [database]");
    expect_error("[database]\nconninfo = host=x password=hunter2\n",
                 "t.conf:2: conninfo: passwords do not belong in conninfo");
    expect_error("[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\nlog_level = loud\n",
                 "t.conf:6: log_level: expected error, warn, info or debug");
    expect_error("[modbus]\nmax_registers = 126\n", "t.conf:2: max_registers: expected an integer in 1..125");
    static const char nul[] = "[recorder]\nmachine = a\0b\n";
    aldrec_config_t c;
    char err[256];
    config_defaults(&c);
    T_EQ_INT(config_parse(&c, nul, sizeof nul - 1, "t.conf", err, sizeof err), -1);
    T_CHECK(strstr(err, "t.conf:2: NUL byte") != NULL);
    char longline[3000];
    memset(longline, 'x', sizeof longline);
    longline[sizeof longline - 1] = '\0';
    expect_error(longline, "t.conf:1: line longer than");
}

static const char base7[] = "[database]\nconninfo = host=db\n[recorder]\nmachine = m\nid = r\n";

/* [metrics], [health], [alerts], several errors at once. */
static void test_service_keys(void)
{
    aldrec_config_t c;
    char err[2048] = "", text[1024];
    T_EQ_INT(parse(&c, base7, err, sizeof err), 0);
    T_EQ_STR(c.metrics_listen, "127.0.0.1:9464");
    T_CHECK(!c.metrics_allow_remote);
    T_EQ_INT(c.alert_flush_p95_ms, 50);
    T_EQ_INT(c.health_spool_failing_pct, 90);
    T_EQ_STR(c.socket_group, "");
    snprintf(text, sizeof text, "%ssocket_group = aldrec\n[metrics]\nlisten = [::1]:0\n"
             "[health]\ndevice_down_s = 3\n[alerts]\nflush_p95_ms = 0\n", base7);
    T_EQ_INT(parse(&c, text, err, sizeof err), 0);
    T_EQ_STR(err, "");
    T_EQ_STR(c.socket_group, "aldrec");
    T_EQ_INT(c.health_device_down_s, 3);
    T_EQ_INT(c.alert_flush_p95_ms, 0);
    T_EQ_INT(config_key_line(&c, "metrics", "listen"), 8);
    T_EQ_INT(config_key_line(&c, "alerts", "copy_p95_ms"), 0);

    char host[64];
    int port = -1;
    T_EQ_INT(config_parse_listen("off", host, sizeof host, &port), 1);
    T_EQ_INT(config_parse_listen("127.0.0.1:9464", host, sizeof host, &port), 0);
    T_EQ_STR(host, "127.0.0.1");
    T_EQ_INT(port, 9464);
    T_EQ_INT(config_parse_listen("[::1]:80", host, sizeof host, &port), 0);
    T_EQ_STR(host, "::1");
    T_EQ_INT(config_parse_listen("localhost:1", host, sizeof host, &port), 0);
    T_EQ_INT(config_parse_listen("example.com:1", host, sizeof host, &port), -1);
    T_EQ_INT(config_parse_listen("127.0.0.1:65536", host, sizeof host, &port), -1);
    T_EQ_INT(config_parse_listen("127.0.0.1", host, sizeof host, &port), -1);
    T_EQ_INT(config_parse_listen("::1:80", host, sizeof host, &port), -1);
    T_CHECK(config_host_is_loopback("127.0.0.1"));
    T_CHECK(config_host_is_loopback("127.3.2.1"));
    T_CHECK(config_host_is_loopback("::1"));
    T_CHECK(!config_host_is_loopback("0.0.0.0"));
    T_CHECK(!config_host_is_loopback("::"));
    T_CHECK(!config_host_is_loopback("10.1.2.3"));

    /* A non-loopback address needs allow_remote = yes. */
    snprintf(text, sizeof text, "%s[metrics]\nlisten = 0.0.0.0:9464\n", base7);
    T_EQ_INT(parse(&c, text, err, sizeof err), -1);
    T_CHECK(strstr(err, "t.conf:7: listen: 0.0.0.0 is not a loopback address") != NULL);
    snprintf(text, sizeof text, "%s[metrics]\nlisten = 0.0.0.0:9464\nallow_remote = yes\n", base7);
    T_EQ_INT(parse(&c, text, err, sizeof err), 0);
    T_CHECK(c.metrics_allow_remote);
    snprintf(text, sizeof text, "%s[metrics]\nallow_remote = true\n", base7);
    T_EQ_INT(parse(&c, text, err, sizeof err), -1);
    T_CHECK(strstr(err, "t.conf:7: allow_remote: expected yes or no, got \"true\"") != NULL);

    /* Cross-field rules name the line of the key. */
    snprintf(text, sizeof text, "%s[health]\nspool_degraded_pct = 95\n", base7);
    T_EQ_INT(parse(&c, text, err, sizeof err), -1);
    T_CHECK(strstr(err, "t.conf:7: spool_degraded_pct (95) must be below spool_failing_pct (90)") != NULL);

    /* Every error is reported, each with its line. */
    snprintf(text, sizeof text, "%sbatch_rows = x\nlog_level = loud\n[modbus]\nmax_bits = 0\n"
             "bogus = 1\n[metrics]\nlisten = nowhere\n", base7);
    T_EQ_INT(parse(&c, text, err, sizeof err), -1);
    T_CHECK(strstr(err, "t.conf:6: batch_rows: expected an integer") != NULL);
    T_CHECK(strstr(err, "\nt.conf:9: max_bits: expected an integer") != NULL);
    T_CHECK(strstr(err, "\nt.conf:10: unknown key \"bogus\" in [modbus]") != NULL);
    T_CHECK(strstr(err, "\nt.conf:12: listen: expected ADDRESS:PORT") != NULL);
    T_CHECK(strstr(err, "\nt.conf:7: log_level: expected error, warn") != NULL);

    /* Passwords in any form libpq accepts are refused. */
    expect_error("[database]\nconninfo = host=x password = hunter2\n",
                 "t.conf:2: conninfo: passwords do not belong in conninfo");
    expect_error("[database]\nconninfo = postgresql://u:hunter2@db/aldrec\n",
                 "t.conf:2: conninfo: passwords do not belong in conninfo");
    expect_error("[database]\nreader_conninfo = host=x PASSWORD=y\n",
                 "t.conf:2: reader_conninfo: passwords do not belong");
    /* fuzz corpus crash-password-in-a-value: "password=" inside a value is no password */
    snprintf(text, sizeof text, "[database]\nconninfo = host=dspassword=\n[recorder]\n"
             "machine = -02\nid = ald-01-a");
    T_EQ_INT(parse(&c, text, err, sizeof err), 0);
    T_EQ_STR(c.conninfo, "host=dspassword=");
}

static void test_diff(void)
{
    aldrec_config_t a, b;
    char err[1024], text[1024], reload[512], restart[256];
    T_EQ_INT(parse(&a, base7, err, sizeof err), 0);
    snprintf(text, sizeof text, "[database]\nconninfo = host=other\n[recorder]\nmachine = m\n"
             "id = r\nflush_interval_ms = 200\nlog_level = debug\n[spool]\npath = /x/s.db\n"
             "[alerts]\nspool_pct = 70\n");
    T_EQ_INT(parse(&b, text, err, sizeof err), 0);
    T_EQ_INT(b.log_level, LL_DEBUG);
    T_EQ_INT(config_diff_summary(&a, &b, reload, sizeof reload, restart, sizeof restart), 8);
    T_EQ_STR(reload, "recorder.flush_interval_ms (1000 -> 200), recorder.log_level (info -> debug),"
                     " alerts.spool_pct (80 -> 70)");
    /* admin/reader/listen conninfo default to conninfo, so they changed too */
    T_EQ_STR(restart, "database.conninfo database.admin_conninfo database.reader_conninfo"
                      " database.listen_conninfo spool.path");
    T_EQ_INT(config_diff_summary(&a, &a, reload, sizeof reload, restart, sizeof restart), 0);
    T_EQ_STR(reload, "");
    T_EQ_STR(restart, "");
    T_EQ_INT(config_diff(&a, &b, NULL, NULL), 8);
    /* applying takes the reloadable values only */
    aldrec_config_t run = a;
    config_apply_reloadable(&run, &b);
    T_EQ_INT(run.flush_interval_ms, 200);
    T_EQ_INT(run.log_level, LL_DEBUG);
    T_EQ_INT(run.alert_spool_pct, 70);
    T_EQ_STR(run.conninfo, "host=db");
    T_EQ_STR(run.spool_path, "/var/lib/aldrec/spool.db");
    T_EQ_INT(config_diff_summary(&run, &b, reload, sizeof reload, restart, sizeof restart), 5);
    T_EQ_STR(reload, "");
    T_EQ_INT(config_keys_set(&b), 7);
    /* truncated, still terminated */
    char small[12];
    T_EQ_INT(config_diff_summary(&a, &b, small, sizeof small, restart, sizeof restart), 8);
    T_EQ_STR(small, "recorder.fl");
}

static void test_system_and_perms(void)
{
    aldrec_config_t c;
    char err[2048], text[1024];
    snprintf(text, sizeof text, "[database]\nconninfo = x\n[recorder]\nmachine = m\nid = r\n"
             "socket_group = no-such-group-aldrec\nsocket = /nonexistent-dir/a.sock\n"
             "[spool]\npath = /tmp/spool.db\n[cache]\nsnapshot = /tmp/s.db\n"
             "redis_password_file = /nonexistent/pw\n");
    T_EQ_INT(parse(&c, text, err, sizeof err), 0);
    T_EQ_INT(config_check_system(&c, "t.conf", err, sizeof err), 4);
    T_CHECK(strstr(err, "t.conf:2: conninfo: libpq cannot parse it") != NULL);
    T_CHECK(strstr(err, "t.conf:6: socket_group: no group \"no-such-group-aldrec\"") != NULL);
    T_CHECK(strstr(err, "t.conf:7: socket: directory /nonexistent-dir: No such file") != NULL);
    T_CHECK(strstr(err, "t.conf:12: redis_password_file: /nonexistent/pw: No such file") != NULL);
    T_CHECK(strstr(err, "spool") == NULL);

    char path[] = "/tmp/test_config.XXXXXX", warn[1024];
    int fd = mkstemp(path);
    T_CHECK(fd >= 0);
    close(fd);
    chmod(path, 0640);
    T_EQ_INT(config_file_warnings(path, warn, sizeof warn), 0);
    chmod(path, 0644);
    T_EQ_INT(config_file_warnings(path, warn, sizeof warn), 1);
    T_CHECK(strstr(warn, "is world-readable (mode 0644)") != NULL);
    chmod(path, 0666);
    T_EQ_INT(config_file_warnings(path, warn, sizeof warn), 2);
    T_CHECK(strstr(warn, "is world-writable (mode 0666)") != NULL);
    unlink(path);
    T_EQ_INT(config_file_warnings(path, warn, sizeof warn), 0);
}

static void test_load_missing_file(void)
{
    aldrec_config_t c;
    char err[256];
    T_EQ_INT(config_load(&c, "/nonexistent/aldrec.conf", err, sizeof err), -1);
    T_EQ_STR(err, "/nonexistent/aldrec.conf: No such file or directory");
}

/* ---- the key table: every row, whatever it is ------------------------- */

/* Every required key set, and admin/reader/listen conninfo set on their own, so
 * that changing one key changes that key only. */
static const char *const base_keys[][2] = {
    { "database.conninfo", "host=db" },
    { "database.admin_conninfo", "host=db user=admin" },
    { "database.reader_conninfo", "host=db user=reader" },
    { "database.listen_conninfo", "host=db user=listen" },
    { "recorder.machine", "m" },
    { "recorder.id", "r" },
};
#define NBASE (sizeof base_keys / sizeof base_keys[0])

/* A file with the base keys and `key = value` (replacing a base key's
 * value); *line gets the line of key. */
static void key_text(char *buf, size_t cap, const char *key, const char *value, int *line)
{
    size_t used = 0;
    int ln = 0;
    char section[32] = "";
    bool replaced = false;
    for (size_t i = 0; i <= NBASE; i++) {
        const char *k = i < NBASE ? base_keys[i][0] : key;
        const char *v = i < NBASE ? base_keys[i][1] : value;
        if (i < NBASE && key && strcmp(k, key) == 0) {
            v = value;
            replaced = true;
            *line = ln + 1 + (strncmp(section, k, strlen(section)) != 0 || !section[0]);
        }
        if (i == NBASE && (replaced || !key))
            break;
        const char *dot = strchr(k, '.');
        if (strlen(section) != (size_t)(dot - k) || strncmp(section, k, (size_t)(dot - k))) {
            snprintf(section, sizeof section, "%.*s", (int)(dot - k), k);
            used += (size_t)snprintf(buf + used, cap - used, "[%s]\n", section);
            ln++;
        }
        used += (size_t)snprintf(buf + used, cap - used, "%s = %s\n", dot + 1, v);
        ln++;
        if (i == NBASE)
            *line = ln;
    }
}

/* A valid value other than the default, for the keys whose type does not
 * say one; a new key of such a type needs a line here. */
static const char *other_value(const config_key_info_t *k)
{
    static const char *const others[][2] = {
        { "database.partition_interval", "month" },
        { "recorder.log_level", "debug" },
        { "modbus.parity", "O" },
        { "spool.full_policy", "drop_newest" },
        { "metrics.allow_remote", "yes" },
        { "metrics.listen", "off" },
        { "web.allow_remote", "yes" },
        { "web.listen", "off" },
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (strcmp(others[i][0], k->name) == 0)
            return others[i][1];
    if (!strcmp(k->type, "string") || !strcmp(k->type, "path") || !strcmp(k->type, "conninfo"))
        return "/other";
    return NULL;
}

struct changes {
    int n;
    char keys[512];
    bool reloadable;
    char old_value[64], new_value[64];
};

static void collect(const config_change_t *c, void *arg)
{
    struct changes *ch = arg;
    size_t used = strlen(ch->keys);
    snprintf(ch->keys + used, sizeof ch->keys - used, "%s%s", used ? " " : "", c->key);
    ch->n++;
    ch->reloadable = c->reloadable;
    snprintf(ch->old_value, sizeof ch->old_value, "%s", c->old_value);
    snprintf(ch->new_value, sizeof ch->new_value, "%s", c->new_value);
}

static int nkeys(void)
{
    config_key_info_t k;
    int n = 0;
    while (config_key_get((size_t)n, &k) == 0)
        n++;
    return n;
}

/* Every key has a description and a default that parses back to itself
 * (or is required, or a string whose absence means something). */
static void test_table_defaults(void)
{
    aldrec_config_t ref, c;
    char text[2048], err[1024], want[128];
    int line = 0;
    key_text(text, sizeof text, NULL, NULL, &line);
    T_EQ_INT(parse(&ref, text, err, sizeof err), 0);
    T_CHECK(nkeys() >= 49);   /* none lost: the 49 keys of this table's first version */
    config_key_info_t k;
    for (size_t i = 0; config_key_get(i, &k) == 0; i++) {
        snprintf(want, sizeof want, "%s: has a one-line description", k.name);
        t_report(k.desc && k.desc[0] && !strchr(k.desc, '\n') && !strchr(k.desc, '|'),
                 __FILE__, __LINE__, want);
        for (size_t j = 0; j < i; j++) {
            config_key_info_t o;
            config_key_get(j, &o);
            if (strcmp(o.name, k.name) == 0)
                t_report(0, __FILE__, __LINE__, k.name);   /* named twice */
        }
        if (!k.def) {
            snprintf(want, sizeof want, "%s: no default: required or a string", k.name);
            t_report(k.required || !k.numeric, __FILE__, __LINE__, want);
            continue;
        }
        snprintf(want, sizeof want, "%s: not both required and defaulted", k.name);
        t_report(!k.required, __FILE__, __LINE__, want);
        key_text(text, sizeof text, k.name, k.def, &line);
        int rc = parse(&c, text, err, sizeof err);
        snprintf(want, sizeof want, "%s = %s parses (%.60s)", k.name, k.def, err);
        t_report(rc == 0, __FILE__, __LINE__, want);
        snprintf(want, sizeof want, "%s = %s is the default", k.name, k.def);
        t_report(config_diff(&ref, &c, NULL, NULL) == 0, __FILE__, __LINE__, want);
        snprintf(want, sizeof want, "%s: set on line %d", k.name, line);
        const char *dot = strchr(k.name, '.');
        char sec[32];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - k.name), k.name);
        t_report(config_key_line(&c, sec, dot + 1) == line, __FILE__, __LINE__, want);
    }
    /* the level names are log.c's */
    for (int l = LL_ERROR; l <= LL_DEBUG; l++) {
        key_text(text, sizeof text, "recorder.log_level", log_level_name((enum log_level)l), &line);
        T_EQ_INT(parse(&c, text, err, sizeof err), 0);
        T_EQ_INT(c.log_level, l);
    }
    T_EQ_STR(config_partition_name(CONFIG_PARTITION_WEEK), "week");
    T_EQ_STR(config_partition_name((enum config_partition)7), "?");
    config_defaults(&c);
    T_EQ_INT(c.parity, 'E');
    T_EQ_INT(c.spool_max_bytes, 1LL << 30);
    T_EQ_INT(c.partition_interval, CONFIG_PARTITION_DAY);
}

/* Values just outside the bounds are refused naming file:line and the key;
 * the bounds themselves are not refused for the key's sake. */
static void test_table_bounds(void)
{
    aldrec_config_t c;
    char text[2048], err[2048], v[64], want[256];
    int line = 0;
    config_key_info_t k;
    for (size_t i = 0; config_key_get(i, &k) == 0; i++) {
        const char *key = strchr(k.name, '.') + 1;
        if (k.numeric) {
            long long out[2] = { k.lo - 1, k.hi + 1 }, in[2] = { k.lo, k.hi };
            for (int j = 0; j < 2; j++) {
                snprintf(v, sizeof v, "%lld", out[j]);
                key_text(text, sizeof text, k.name, v, &line);
                T_EQ_INT(parse(&c, text, err, sizeof err), -1);
                snprintf(want, sizeof want, "t.conf:%d: %s: expected ", line, key);
                char msg[640];
                snprintf(msg, sizeof msg, "%s = %s: \"%s\" in \"%.200s\"", k.name, v, want, err);
                t_report(strstr(err, want) != NULL, __FILE__, __LINE__, msg);
                snprintf(v, sizeof v, "%lld", in[j]);
                key_text(text, sizeof text, k.name, v, &line);
                parse(&c, text, err, sizeof err);   /* cross-key rules may refuse it */
                snprintf(want, sizeof want, "%s: expected", key);
                snprintf(msg, sizeof msg, "%s = %s accepted (%.200s)", k.name, v, err);
                t_report(strstr(err, want) == NULL, __FILE__, __LINE__, msg);
            }
            key_text(text, sizeof text, k.name, "12x", &line);
            T_EQ_INT(parse(&c, text, err, sizeof err), -1);
            snprintf(want, sizeof want, "t.conf:%d: %s: expected ", line, key);
            t_report(strstr(err, want) != NULL, __FILE__, __LINE__, k.name);
        } else if (!strcmp(k.type, "enum") || !strcmp(k.type, "yes/no") ||
                   !strcmp(k.type, "address")) {
            key_text(text, sizeof text, k.name, "bogus", &line);
            T_EQ_INT(parse(&c, text, err, sizeof err), -1);
            snprintf(want, sizeof want, "t.conf:%d: %s: expected ", line, key);
            char msg[512];
            snprintf(msg, sizeof msg, "%s = bogus: \"%s\" in \"%.200s\"", k.name, want, err);
            t_report(strstr(err, want) != NULL && strstr(err, "got \"bogus\"") != NULL,
                     __FILE__, __LINE__, msg);
        } else {
            char big[1100];
            memset(big, 'x', sizeof big - 1);
            big[sizeof big - 1] = '\0';
            key_text(text, sizeof text, k.name, big, &line);
            T_EQ_INT(parse(&c, text, err, sizeof err), -1);
            snprintf(want, sizeof want, "t.conf:%d: %s: value longer than", line, key);
            t_report(strstr(err, want) != NULL, __FILE__, __LINE__, k.name);
        }
    }
}

/* Changing one key: the diff reports exactly that key, whether SIGHUP
 * takes it, and a printed new value that parses back to the same config;
 * applying takes it iff it is reloadable. */
static void test_table_diff(void)
{
    aldrec_config_t ref, c, back, run;
    char text[2048], err[1024], v[64], msg[256];
    int line = 0;
    key_text(text, sizeof text, NULL, NULL, &line);
    T_EQ_INT(parse(&ref, text, err, sizeof err), 0);
    config_key_info_t k;
    int reloadable = 0;
    for (size_t i = 0; config_key_get(i, &k) == 0; i++) {
        const char *value = other_value(&k);
        int rc = -1;
        if (k.numeric) {
            /* the first of the bounds the cross-key rules accept */
            long long cand[] = { k.lo, k.hi, k.lo + 1, k.hi - 1 };
            for (size_t j = 0; j < sizeof cand / sizeof cand[0] && rc < 0; j++) {
                snprintf(v, sizeof v, "%lld", cand[j]);
                key_text(text, sizeof text, k.name, v, &line);
                rc = parse(&c, text, err, sizeof err) == 0 && config_diff(&ref, &c, NULL, NULL) ? 0 : -1;
            }
        } else if (value) {
            key_text(text, sizeof text, k.name, value, &line);
            rc = parse(&c, text, err, sizeof err);
        }
        snprintf(msg, sizeof msg, "%s: a different valid value (%.150s)", k.name, err);
        t_report(rc == 0, __FILE__, __LINE__, msg);
        if (rc != 0)
            continue;
        struct changes ch = { 0 };
        T_EQ_INT(config_diff(&ref, &c, collect, &ch), 1);
        T_EQ_STR(ch.keys, k.name);
        snprintf(msg, sizeof msg, "%s: reloadable %d", k.name, k.reloadable);
        t_report(ch.reloadable == k.reloadable, __FILE__, __LINE__, msg);
        reloadable += k.reloadable;
        /* the printed values are what a file would say */
        key_text(text, sizeof text, k.name, ch.new_value, &line);
        T_EQ_INT(parse(&back, text, err, sizeof err), 0);
        snprintf(msg, sizeof msg, "%s = %s parses back", k.name, ch.new_value);
        t_report(config_diff(&c, &back, NULL, NULL) == 0, __FILE__, __LINE__, msg);
        if (k.def) {
            snprintf(msg, sizeof msg, "%s: old value %s is the default %s", k.name, ch.old_value,
                     k.def);
            t_report(strcmp(ch.old_value, k.def) == 0, __FILE__, __LINE__, msg);
        }
        run = ref;
        config_apply_reloadable(&run, &c);
        snprintf(msg, sizeof msg, "%s: applied iff reloadable", k.name);
        t_report(config_diff(&run, &c, NULL, NULL) == (k.reloadable ? 0 : 1), __FILE__,
                 __LINE__, msg);
    }
    /* flush settings, idle_interval_ms, log level, cache TTLs, [health], [alerts] */
    T_EQ_INT(reloadable, 3 + 1 + 2 + 4 + 7);
}

/* The reference: a Markdown table, every key on one row, once. */
static void test_reference(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    T_CHECK(f != NULL);
    if (!f)
        return;
    T_EQ_INT(config_write_reference(f), 0);
    fclose(f);
    T_CHECK(strncmp(buf, "| key | type | default | bounds | reloadable | description |\n"
                         "|---|---|---|---|---|---|\n", 72) == 0);
    int rows = 0;
    for (const char *p = buf; (p = strstr(p, "\n| `")) != NULL; p++)
        rows++;
    T_EQ_INT(rows, nkeys());
    config_key_info_t k;
    for (size_t i = 0; config_key_get(i, &k) == 0; i++) {
        char cell[128];
        snprintf(cell, sizeof cell, "\n| `%s` | %s | ", k.name, k.type);
        const char *at = strstr(buf, cell);
        char msg[256];
        snprintf(msg, sizeof msg, "reference lists %s once", k.name);
        t_report(at && !strstr(at + 1, cell), __FILE__, __LINE__, msg);
        if (!at)
            continue;
        const char *eol = strchr(at + 1, '\n');
        int pipes = 0;
        for (const char *p = at + 1; p < eol; p++)
            pipes += *p == '|';
        snprintf(msg, sizeof msg, "%s: 6 cells", k.name);
        t_report(pipes == 7, __FILE__, __LINE__, msg);
        snprintf(msg, sizeof msg, "%s: reloadable column", k.name);
        t_report(strstr(at, k.reloadable ? " | yes | " : " | no | ") < eol, __FILE__, __LINE__,
                 msg);
    }
    T_CHECK(strstr(buf, "queue_batches") == NULL);
    T_CHECK(strstr(buf, "\n| `spool.max_bytes` | size | `1G` | 64k..1024T | no | ") != NULL);
    T_CHECK(strstr(buf, "\n| `database.partition_interval` | enum | `day` | `day`, `week`,"
                        " `month` | no | ") != NULL);
    T_CHECK(strstr(buf, "\n| `recorder.batch_rows` | integer | `5000` | 1..1000000 | yes | ") != NULL);
    T_CHECK(strstr(buf, "\n| `database.conninfo` | conninfo | (required) | up to 1023 characters"
                        " | no | ") != NULL);
    free(buf);
}

/* The [cache] block of config.c and what pcache_opts_from_config makes
 * of it. */
static void test_cache_config(void)
{
    aldrec_config_t c;
    char err[256] = "";
    const char base[] = "[database]\nconninfo = dbname=x\n[recorder]\nmachine = m\nid = r\n";
    char text[512];

    snprintf(text, sizeof text, "%s[cache]\nredis_port = 0\nttl_s = 30\nrefresh_s = 10\n"
             "snapshot = /tmp/s.db\nredis_password_file = /etc/aldrec/redis.pw\n", base);
    config_defaults(&c);
    T_EQ_INT(config_parse(&c, text, strlen(text), "t.conf", err, sizeof err), 0);
    pcache_opts_t o;
    pcache_opts_from_config(&o, &c);
    T_EQ_INT(o.redis_port, 0);
    T_EQ_INT(o.ttl_s, 30);
    T_EQ_INT(o.refresh_s, 10);
    T_EQ_INT(o.redis_timeout_ms, 250);
    T_EQ_STR(o.snapshot_path, "/tmp/s.db");
    T_EQ_STR(o.redis_password_file, "/etc/aldrec/redis.pw");
    T_EQ_STR(o.redis_host, "127.0.0.1");
    T_EQ_STR(o.machine, "m");

    config_defaults(&c);
    T_EQ_INT(c.cache_ttl_s, 300);
    T_EQ_INT(c.cache_refresh_s, 60);
    T_EQ_INT(c.redis_port, 6379);
    snprintf(text, sizeof text, "%s[cache]\nttl_s = 30\nrefresh_s = 60\n", base);
    T_EQ_INT(config_parse(&c, text, strlen(text), "t.conf", err, sizeof err), -1);
    T_EQ_STR(err, "t.conf:8: refresh_s (60) must not exceed ttl_s (30): entries would go stale"
                  " between refreshes");
    snprintf(text, sizeof text, "%s[cache]\nredis_timeout_ms = 5\n", base);
    config_defaults(&c);
    T_EQ_INT(config_parse(&c, text, strlen(text), "t.conf", err, sizeof err), -1);
    T_CHECK(strstr(err, "t.conf:7: redis_timeout_ms: expected an integer in 10..10000") != NULL);
}

int main(void)
{
    test_cache_config();
    test_good();
    test_errors();
    test_spool_block();
    test_spool_errors();
    test_load_missing_file();
    test_service_keys();
    test_diff();
    test_system_and_perms();
    test_table_defaults();
    test_table_bounds();
    test_table_diff();
    test_reference();
    return t_done("test_config");
}
