/* test_ctlsrv.c — the control socket's command table without a listening
 * socket or servers: requests go in through socketpair(2) connections
 * (ctlsrv_adopt), the commands work on a batcher and a real spool file.
 * Every verb of the table is reached and its error answers are the
 * protocol's; STATUS is checked line for line against its documented
 * contract (service.h) for a synthetic snapshot; STOP answers only once
 * the spool holds nothing more of the process; slots run out with
 * "ERR busy". */
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/batcher.h"
#include "daemon/ctlsrv.h"
#include "ops/ops.h"
#include "store/spool.h"
#include "t.h"

static char dir[256];
static aldrec_config_t cfg;
static spool_t *sp;
static batcher_t *bat;
static ops_t *ops;
static ctlsrv_t *srv;

/* ---- a client on the other end of a socketpair ------------------------------- */

/* Sends line (and "\n") on a new connection; returns the client's end. */
static int send_request(const char *line)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    T_EQ_INT(ctlsrv_adopt(srv, sv[0]), 0);
    ssize_t w = write(sv[1], line, strlen(line));
    w += write(sv[1], "\n", 1);
    T_EQ_INT(w, (ssize_t)strlen(line) + 1);
    return sv[1];
}

/* Turns of the main loop's control part: until the server has closed fd
 * (1, the answer in buf) or after turns turns (0). STOP waiters are
 * checked as if it were now_ns. */
static int serve(int fd, int64_t now_ns, int turns, char *buf, size_t cap)
{
    size_t len = strlen(buf);
    for (int t = 0; t < turns; t++) {
        struct pollfd pfd[CTLSRV_MAX_FDS];
        int64_t wake = INT64_MAX;
        size_t n = ctlsrv_pollfds(srv, pfd, &wake);
        poll(pfd, (nfds_t)n, 5);
        ctlsrv_handle(srv, pfd, n);
        ctlsrv_check_waiters(srv, now_ns);
        ssize_t r;
        while ((r = read(fd, buf + len, cap - 1 - len)) > 0)
            len += (size_t)r;
        buf[len] = '\0';
        if (r == 0)
            return 1;
    }
    return 0;
}

/* The whole answer to line. */
static const char *request(const char *line)
{
    static char buf[65536];
    buf[0] = '\0';
    int fd = send_request(line);
    if (fd < 0)
        return "(socketpair failed)";
    if (!serve(fd, clock_mono_ns(), 200, buf, sizeof buf))
        snprintf(buf, sizeof buf, "(no answer)");
    close(fd);
    return buf;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- the snapshot STATUS and METRICS render ----------------------------------- */

static void fake_snapshot(void *arg, svc_snapshot_t *s)
{
    (void)arg;
    *s = (svc_snapshot_t){
        .machine = "m1", .recorder_id = "r1", .spool_path = "/var/lib/aldrec/spool.db",
        .pid = 4242, .ready = true, .uptime_s = 12.34, .process_id = 0, .process_rows = 99,
        .idle_rows = 1800, .idle_params = 30, .idle_per_s = 30.5,
        .batch_pending_rows = 7, .append_last_ms = 1.234, .append_max_ms = 5.678,
        .poll = { .params = 32, .params_skipped = 1, .devices = 1, .devices_up = 1,
                  .requests_per_cycle = 4, .cycles = 100, .overruns = 2, .requests = 400,
                  .request_errors = 3, .samples_polled = 3200, .samples_stored = 3000,
                  .queue_dropped = 5 },
        .have_spool = true, .have_fwd = true, .have_cache = true,
        .spool = { .spool_id = 0x1234, .max_bytes = 1073741824, .batches = 2, .rows = 40,
                   .bytes = 2048, .q_batches = 1, .q_rows = 20, .q_bytes = 1024,
                   .dropped_batches = 3, .dropped_points = 60, .dropping = true },
        .queue_oldest_s = 1.5,
        .fwd = { .link = LINK_UP, .link_for_s = 3.3, .stored_batches = 10, .stored_rows = 1000,
                 .transactions = 9, .duplicate_batches = 1, .rows_per_s = 1234.4 },
        .cache = { .version = 3, .params = 32, .age_s = 2.0, .source = PCACHE_SRC_POSTGRES,
                   .refresher_running = true, .listening = true, .ttl_s = 300 },
    };
    s->devices = calloc(1, sizeof *s->devices);
    if (!s->devices)
        return;
    s->ndevices = 1;
    device_stats_t *d = &s->devices[0].st;
    snprintf(d->label, sizeof d->label, "10.0.0.1:502 unit 1");
    d->up = true;
    d->params = 10;
    d->groups = 2;
    d->requests_per_cycle = d->min_requests_per_cycle = 2;
    d->cycles = 50;
    d->requests = 100;
}

/* The contract's keys, in order (service.h, svc_render_status). */
static const char *const status_keys[] = {
    "machine", "recorder_id", "pid", "uptime_s", "process", "process_rows", "idle", "parameters",
    "devices", "requests_per_cycle", "poll_cycles", "requests", "samples", "cycle_ms",
    "late_ms", "device 10.0.0.1:502 unit 1", "batch_rows", "spool_append_ms",
    "database_link", "queue", "drain_rate", "stored", "duplicates_skipped", "quarantined",
    "dropped", "spool", "last_error", "cache_state", "cache_map", "cache_links", "cache_l1",
    "cache_l2", "cache_refresh", "cache_changes", "cache_snapshot", "health", "alerts",
    "metrics",
};

/* What STATUS answers for fake_snapshot(). */
static const char status_want[] =
        "OK\n"
        "machine:            m1\n"
        "recorder_id:        r1\n"
        "pid:                4242\n"
        "uptime_s:           12.3\n"
        "process:            none\n"
        "process_rows:       99\n"
        "idle:               30 params, 1800 rows, 30.5 points/s (last 10 s)\n"
        "parameters:         32 polled, 1 skipped\n"
        "devices:            1 (1 connected)\n"
        "requests_per_cycle: 4\n"
        "poll_cycles:        100 (2 overruns)\n"
        "requests:           400 (3 failed)\n"
        "samples:            3200 polled, 3000 stored (deadband), 5 dropped\n"
        "cycle_ms:           p50 0.00, p99 0.00, max 0.00\n"
        "late_ms:            p50 0.00, p99 0.00, max 0.00\n"
        "device 10.0.0.1:502 unit 1: up; 10 params in 2 groups, 2 requests/cycle (min 2);"
        " cycles 50 (0 overruns); requests 100 (0 failed); cycle_ms p50 0.00 p95 0.00"
        " p99 0.00 max 0.00; late_ms p50 0.00 p95 0.00 p99 0.00 max 0.00\n"
        "batch_rows:         7 pending\n"
        "spool_append_ms:    last 1.23, max 5.68\n"
        "database_link:      up (for 3.3 s)\n"
        "queue:              2 batches, 40 rows, 2048 bytes, oldest 1.5 s\n"
        "drain_rate:         1234 rows/s (last 10 s)\n"
        "stored:             10 batches, 1000 rows in 9 transactions\n"
        "duplicates_skipped: 1 batches\n"
        "quarantined:        1 batches, 20 rows\n"
        "dropped:            3 batches, 60 rows (dropping now: spool full)\n"
        "spool:              /var/lib/aldrec/spool.db (id 0000000000001234, 3072 of"
        " 1073741824 bytes)\n"
        "last_error:         -\n"
        "cache_state:        ok\n"
        "cache_map:          version 3, 32 parameters, from PostgreSQL, read 2.0 s ago\n"
        "cache_links:        PostgreSQL listening, Redis down (last contact)\n"
        "cache_l1:           0 hits, 0 misses, 0 stale serves\n"
        "cache_l2:           0 hits, 0 misses, 0 writes, 0 errors\n"
        "cache_refresh:      0 done, 0 failed; ms last 0.00, min 0.00, avg 0.00, max 0.00\n"
        "cache_changes:      0 notifications, 0 maps swapped in\n"
        "cache_snapshot:     0 saves, 0 loads\n"
        "health:             starting\n"
        "alerts:             0 active\n"
        "metrics:            off ([metrics] listen = off)\n";

static void test_status(void)
{
    const char *out = request("STATUS");
    T_CHECK(starts_with(out, "OK\n"));
    /* parsed the way the contract says: key up to ": ", spaces, value */
    const char *p = strchr(out, '\n') + 1;
    size_t nkeys = sizeof status_keys / sizeof status_keys[0], k = 0;
    int bad = 0;
    for (; *p && k < nkeys; k++) {
        const char *nl = strchr(p, '\n');
        const char *colon = strstr(p, ": ");
        if (!nl || !colon || colon > nl || strncmp(p, status_keys[k], strlen(status_keys[k])) ||
            colon - p != (ptrdiff_t)strlen(status_keys[k])) {
            printf("# line %zu: \"%.*s\", expected key \"%s\"\n", k, nl ? (int)(nl - p) : 40, p,
                   status_keys[k]);
            bad++;
            break;
        }
        /* the value starts at column 21, or one space after a longer key */
        size_t col = (size_t)(colon - p) + 2;
        while (p[col] == ' ')
            col++;
        if (col != (strlen(status_keys[k]) + 2 > 20 ? strlen(status_keys[k]) + 2 : 20))
            bad++;
        p = nl + 1;
    }
    T_EQ_INT(bad, 0);
    T_EQ_INT(k, nkeys);
    T_EQ_STR(p, "");

    /* byte for byte: the format tests and scripts parse */
    T_EQ_STR(out, status_want);

    /* METRICS renders the same snapshot */
    out = request("METRICS");
    T_CHECK(starts_with(out, "OK\n# HELP aldrec_ready "));
    T_CHECK(strstr(out, "\naldrec_process_rows 99\n") != NULL);
    T_CHECK(strstr(out, "\naldrec_idle_points_total 1800\n") != NULL);
    T_CHECK(strstr(out, "\naldrec_idle_points_per_second 30.5\n") != NULL);
    T_CHECK(strstr(out, "\naldrec_batch_pending_rows 7\n") != NULL);
    T_CHECK(strstr(out, "\naldrec_queue_rows 40\n") != NULL);
}

/* ---- the command table ------------------------------------------------------------ */

static void test_table(void)
{
    char want[128];
    snprintf(want, sizeof want, "OK aldrecd for machine m1, pid %d\n", (int)getpid());
    T_EQ_STR(request("PING"), want);
    T_EQ_STR(request("PING\r"), want);
    T_EQ_STR(request("NOPE x"), "ERR unknown command \"NOPE\" (expected PING, SESSION, STATUS, METRICS,"
                                " START, STOP, STEP, EVENT, SET, GET, QUARANTINE)\n");
    T_EQ_STR(request("ping"), "ERR unknown command \"ping\" (expected PING, SESSION, STATUS, METRICS,"
                              " START, STOP, STEP, EVENT, SET, GET, QUARANTINE)\n");
    T_EQ_STR(request(""), "ERR unknown command \"\" (expected PING, SESSION, STATUS, METRICS,"
                          " START, STOP, STEP, EVENT, SET, GET, QUARANTINE)\n");
    char longline[600];
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    T_EQ_STR(request(longline), "ERR request too long\n");

    /* idle */
    T_EQ_STR(request("START"), "ERR START needs a process id\n");
    T_EQ_STR(request("START x"), "ERR START needs a process id\n");
    T_EQ_STR(request("START 0"), "ERR START needs a process id\n");
    T_EQ_STR(request("STOP"), "ERR no process is being recorded\n");
    T_EQ_STR(request("STEP 1 heat up"), "ERR STEP: no process is being recorded (a step belongs"
                                        " to a process: aldrec process start)\n");
    T_CHECK(starts_with(request("STEP x"), "ERR STEP: NUMBER must be a step number"));
    T_CHECK(starts_with(request("EVENT"), "ERR EVENT: PARAM_ID missing"));
    T_EQ_STR(request("QUARANTINE"), "ERR usage: QUARANTINE LIST | RETRY SEQ|all | DROP SEQ|all\n");
    T_EQ_STR(request("QUARANTINE RETRY"),
             "ERR usage: QUARANTINE LIST | RETRY SEQ|all | DROP SEQ|all\n");
    T_EQ_STR(request("QUARANTINE DROP x"), "ERR expected a batch number or \"all\", got \"x\"\n");
    T_EQ_STR(request("QUARANTINE DROP 5"), "ERR no quarantined batch 5\n");
    T_EQ_STR(request("QUARANTINE RETRY all"), "OK queued again 0 batch(es)\n");
    T_EQ_STR(request("QUARANTINE LIST"), "OK 0\n");

    /* recording */
    T_EQ_STR(request("START 42"), "OK recording process 42\n");
    T_EQ_INT(batcher_process(bat), 42);
    int64_t pid = 0;
    bool known = false;
    char err[512];
    T_EQ_INT(spool_get_process(sp, &pid, &known, err, sizeof err), 0);
    T_EQ_INT(pid, 42);
    T_EQ_STR(request("START 43"), "ERR process 42 is being recorded; stop it first\n");
    const char *out = request("STEP 1 heat up");
    T_CHECK(starts_with(out, "OK process 42: step 1 \"heat up\" from 20"));
    T_CHECK(strlen(out) > 2 && strcmp(out + strlen(out) - 2, "Z\n") == 0);
    T_EQ_STR(request("STEP 1 again"), "ERR STEP: step 1 of process 42 is already marked; step"
                                      " numbers are unique within a run\n");
    for (int i = 0; i < 3; i++) {
        sample_t s = { .parameter_id = 1, .ts_us = 1700000000000000LL + i, .has_value = true };
        batcher_on_sample(bat, &s);
    }

    /* STOP: flushed, not answered while the spool holds the process */
    char buf[4096] = "";
    int fd = send_request("STOP");
    T_EQ_INT(serve(fd, clock_mono_ns(), 20, buf, sizeof buf), 0);
    T_EQ_INT(batcher_process(bat), 0);
    T_EQ_STR(buf, "");
    struct pollfd pfd[CTLSRV_MAX_FDS];
    int64_t wake = INT64_MAX;
    T_EQ_INT(ctlsrv_pollfds(srv, pfd, &wake), 1);    /* a waiter is not read: only the ops' eventfd */
    T_CHECK(wake > clock_mono_ns() && wake <= clock_mono_ns() + CTLSRV_STOP_WAIT_MS * 1000000LL);
    /* ... answered at its deadline, saying what is still spooled */
    T_EQ_INT(serve(fd, INT64_MAX, 5, buf, sizeof buf), 1);
    T_CHECK(starts_with(buf, "OK stopped process 42: 3 rows recorded; 0 stored, "));
    T_CHECK(strstr(buf, "still spooled (PostgreSQL has not taken them yet: no error yet)") != NULL);
    close(fd);

    /* ... or as soon as the spool holds nothing more of it */
    T_EQ_STR(request("START 44"), "OK recording process 44\n");
    sample_t s = { .parameter_id = 1, .ts_us = 1700000001000000LL, .has_value = true };
    batcher_on_sample(bat, &s);
    buf[0] = '\0';
    fd = send_request("STOP");
    T_EQ_INT(serve(fd, clock_mono_ns(), 10, buf, sizeof buf), 0);
    /* the forwarder's part: every batch committed, in claims of one kind */
    size_t n, total = 0;
    do {
        batch_t *got = NULL;
        n = 0;
        T_EQ_INT(spool_claim(sp, 100, 1u << 30, &got, &n, NULL, err, sizeof err), 0);
        if (n)
            T_EQ_INT(spool_remove(sp, got, n, err, sizeof err), 0);
        spool_batches_free(got, n);
        total += n;
    } while (n > 0);
    T_CHECK(total >= 2);
    T_EQ_INT(serve(fd, clock_mono_ns(), 10, buf, sizeof buf), 1);
    T_EQ_STR(buf, "OK stopped process 44: 1 rows recorded, all stored\n");
    close(fd);
}

/* SESSION: several requests on one connection, each answer ending with
 * a line "."; a request without a device (SET with no poller) is answered
 * in the session too, and bad input says "input". */
static void test_session(void)
{
    char buf[8192] = "", want[256];
    int fd = send_request("SESSION");
    T_EQ_INT(serve(fd, clock_mono_ns(), 5, buf, sizeof buf), 0);   /* still open */
    T_EQ_STR(buf, "OK session: one request per line, each answer ends with \".\"\n.\n");
    buf[0] = '\0';
    /* two requests in one write: both answered, in order */
    ssize_t w = write(fd, "PING\nSET heater1.setpoint=5\n", 29);
    T_EQ_INT(w, 29);
    T_EQ_INT(serve(fd, clock_mono_ns(), 5, buf, sizeof buf), 0);
    snprintf(want, sizeof want, "OK aldrecd for machine m1, pid %d\n.\n"
             "ERR input: set: unknown parameter \"heater1.setpoint\": no component"
             " \"heater1\" on machine ? (components: ); nothing written\n.\n", (int)getpid());
    T_EQ_STR(buf, want);
    close(fd);
    /* the slot is free again once the peer hung up */
    T_EQ_INT(serve(-1, clock_mono_ns(), 2, buf, sizeof buf), 0);
}

static void test_busy(void)
{
    int peers[CTLSRV_MAX_CLIENTS];
    for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++) {
        int sv[2];
        T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        T_EQ_INT(ctlsrv_adopt(srv, sv[0]), 0);
        peers[i] = sv[1];
    }
    int sv[2];
    T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    T_EQ_INT(ctlsrv_adopt(srv, sv[0]), -1);
    char buf[128] = "";
    ssize_t r = read(sv[1], buf, sizeof buf - 1);
    buf[r > 0 ? r : 0] = '\0';
    T_EQ_STR(buf, "ERR busy: too many control connections\n");
    close(sv[1]);
    /* a client that hangs up frees its slot */
    for (int i = 0; i < CTLSRV_MAX_CLIENTS; i++)
        close(peers[i]);
    struct pollfd pfd[CTLSRV_MAX_FDS];
    int64_t wake = INT64_MAX;
    size_t nfd = ctlsrv_pollfds(srv, pfd, &wake);
    T_EQ_INT(nfd, CTLSRV_MAX_CLIENTS + 1);   /* and the device ops' eventfd */
    poll(pfd, (nfds_t)nfd, 100);
    ctlsrv_handle(srv, pfd, nfd);
    T_EQ_INT(ctlsrv_pollfds(srv, pfd, &wake), 1);
    T_CHECK(starts_with(request("PING"), "OK aldrecd"));
}

int main(void)
{
    log_init("test_ctlsrv", LL_ERROR);
    snprintf(dir, sizeof dir, "%s/aldrec-test-ctlsrv.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    config_defaults(&cfg);
    snprintf(cfg.machine, sizeof cfg.machine, "m1");
    snprintf(cfg.metrics_listen, sizeof cfg.metrics_listen, "off");
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/spool.db", dir);
    spool_opts_t so = { .path = path, .max_bytes = 1 << 30, .policy = SPOOL_DROP_OLDEST };
    spool_open_info_t info;
    sp = spool_open(&so, &info, err, sizeof err);
    batcher_opts_t bo = { .spool = sp, .batch_rows = 1000, .flush_interval_ms = 500 };
    bat = sp ? batcher_new(&bo) : NULL;
    ops = ops_new(&cfg);
    srv = ctlsrv_new(NULL, NULL, err, sizeof err);
    T_CHECK(sp && bat && ops && srv);
    if (sp && bat && ops && srv) {
        ctlsrv_env_t env = { .cfg = &cfg, .batcher = bat, .spool = sp, .ops = ops,
                             .snapshot = fake_snapshot };
        ctlsrv_attach(srv, &env);
        test_status();
        test_table();
        test_session();
        test_busy();
    }
    ctlsrv_free(srv);
    ops_free(ops);
    batcher_free(bat);
    spool_close(sp);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return t_done("test_ctlsrv");
}
