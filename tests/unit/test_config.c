/* test_config.c — INI parsing: values, defaults, and errors with file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
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
    T_EQ_STR(c.machine, "ald-01");
    T_EQ_STR(c.recorder_id, "ald-01-a ; not a comment: values run to the end of the line");
    T_EQ_INT(c.batch_rows, 250);
    T_EQ_INT(c.flush_interval_ms, 1000);
    T_EQ_INT(c.max_registers, 16);
    T_EQ_INT(c.max_gap, 8);
    T_EQ_STR(c.socket_path, "/run/aldrec/aldrecd.sock");
    T_EQ_STR(c.spool_path, "/var/lib/aldrec/spool.db");
    T_EQ_INT(c.spool_max_bytes, 1LL << 30);
    T_EQ_STR(c.spool_full_policy, "drop_oldest");
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
    T_EQ_STR(c.spool_full_policy, "drop_newest");
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

/* Issue 7: [metrics], [health], [alerts], several errors at once. */
static void test_service_keys(void)
{
    aldrec_config_t c;
    char err[2048] = "", text[1024];
    T_EQ_INT(parse(&c, base7, err, sizeof err), 0);
    T_EQ_STR(c.metrics_listen, "127.0.0.1:9464");
    T_EQ_STR(c.metrics_allow_remote, "no");
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
}

static void test_diff(void)
{
    aldrec_config_t a, b;
    char err[1024], text[1024], reload[256], restart[256];
    T_EQ_INT(parse(&a, base7, err, sizeof err), 0);
    snprintf(text, sizeof text, "[database]\nconninfo = host=other\n[recorder]\nmachine = m\n"
             "id = r\nflush_interval_ms = 200\nlog_level = debug\n[spool]\npath = /x/s.db\n"
             "[alerts]\nspool_pct = 70\n");
    T_EQ_INT(parse(&b, text, err, sizeof err), 0);
    T_EQ_INT(config_diff(&a, &b, reload, sizeof reload, restart, sizeof restart), 7);
    T_EQ_STR(reload, "recorder.flush_interval_ms recorder.log_level alerts.spool_pct");
    /* admin/reader conninfo default to conninfo, so they changed too */
    T_EQ_STR(restart, "database.conninfo database.admin_conninfo database.reader_conninfo spool.path");
    T_EQ_INT(config_diff(&a, &a, reload, sizeof reload, restart, sizeof restart), 0);
    T_EQ_STR(reload, "");
    /* applying takes the reloadable values only */
    aldrec_config_t run = a;
    config_apply_reloadable(&run, &b);
    T_EQ_INT(run.flush_interval_ms, 200);
    T_EQ_STR(run.log_level, "debug");
    T_EQ_INT(run.alert_spool_pct, 70);
    T_EQ_STR(run.conninfo, "host=db");
    T_EQ_STR(run.spool_path, "/var/lib/aldrec/spool.db");
    T_EQ_INT(config_diff(&run, &b, reload, sizeof reload, restart, sizeof restart), 4);
    T_EQ_STR(reload, "");
    T_EQ_INT(config_keys_set(&b), 7);
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

int main(void)
{
    test_good();
    test_errors();
    test_spool_block();
    test_spool_errors();
    test_load_missing_file();
    test_service_keys();
    test_diff();
    test_system_and_perms();
    return t_done("test_config");
}
