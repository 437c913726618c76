/* aldrecd.c — the recorder daemon.
 *
 * One event loop on the main thread (poll(2) on CLOCK_MONOTONIC deadlines):
 * it drains the samples that the device threads (poller.h) queued, appends
 * them to the current batch while a process is active, flushes the batch on
 * batch_rows or flush_interval_ms, and answers the control socket. Flushed
 * batches go to the forwarder thread, the only place that waits on
 * PostgreSQL. Polling itself never waits for this loop.
 *
 *   device threads --queue--> batch (pgcopy) --flush--> forwarder --COPY--> PostgreSQL
 *
 * Signals only set a flag. SIGTERM/SIGINT: flush, let the forwarder drain
 * (bounded), exit 0. */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "forwarder.h"
#include "log.h"
#include "pgcopy.h"
#include "pmap.h"
#include "poller.h"

#define MAX_CLIENTS 16
#define STOP_WAIT_MS 15000
#define SHUTDOWN_DRAIN_MS 10000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct client {
    int fd;                  /* -1: free slot */
    char in[512];
    size_t inlen;
    int64_t wait_seq;        /* >0: STOP waits until this batch left the queue */
    int64_t wait_deadline_ns;
    int64_t stopped_process;
    uint64_t stopped_rows;
};

struct recorder {
    aldrec_config_t cfg;
    pmap_t *map;
    poller_t *poller;
    forwarder_t *fwd;
    int listen_fd;
    struct client clients[MAX_CLIENTS];
    /* current batch */
    pgcopy_t *enc;
    int64_t process_id;          /* 0: not recording */
    uint64_t process_rows;       /* samples of the current process */
    int64_t first_ts, last_ts;
    int64_t flush_deadline_ns;
    int64_t last_seq;            /* highest seq handed to the forwarder */
    int64_t started_ns;
};

static void flush_batch(struct recorder *r)
{
    size_t rows = pgcopy_rows(r->enc);
    if (rows == 0)
        return;
    size_t len;
    uint8_t *data = pgcopy_take(r->enc, &len);
    if (!data) {
        log_msg(LL_ERROR, "out of memory encoding a batch of %zu rows; rows lost", rows);
        pgcopy_reset(r->enc);
        return;
    }
    pgsink_batch_t b = {
        .seq = ++r->last_seq,
        .process_id = r->process_id,
        .rows = (uint32_t)rows,
        .first_ts_us = r->first_ts,
        .last_ts_us = r->last_ts,
        .len = len,
    };
    forwarder_submit(r->fwd, &b, data);
    r->flush_deadline_ns = INT64_MAX;
}

static void on_sample(void *arg, const sample_t *s)
{
    struct recorder *r = arg;
    if (r->process_id == 0)
        return;
    if (pgcopy_rows(r->enc) == 0) {
        r->first_ts = s->ts_us;
        r->flush_deadline_ns = poller_mono_ns() + (int64_t)r->cfg.flush_interval_ms * 1000000LL;
    }
    if (pgcopy_add(r->enc, r->process_id, s) < 0) {
        log_msg(LL_ERROR, "out of memory adding a sample of parameter %d", s->parameter_id);
        return;
    }
    r->last_ts = s->ts_us;
    r->process_rows++;
    if (pgcopy_rows(r->enc) >= (size_t)r->cfg.batch_rows)
        flush_batch(r);
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    *c = (struct client){ .fd = -1 };
}

static void client_reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void client_reply(struct client *c, const char *fmt, ...)
{
    char buf[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    /* Replies are small and the peer is a local CLI that is reading: a
     * short write just truncates the answer, it never blocks the loop. */
    ssize_t w = send(c->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    client_close(c);
}

static const char *link_name(enum link_state s)
{
    switch (s) {
    case LINK_DOWN:
        return "down";
    case LINK_UP:
        return "up";
    }
    return "?";
}

static void reply_status(struct recorder *r, struct client *c)
{
    poller_stats_t ps;
    forwarder_stats_t fs;
    char devices[8192];
    poller_get_stats(r->poller, &ps);
    poller_format_devices(r->poller, devices, sizeof devices);
    forwarder_get_stats(r->fwd, &fs);
    double up = (double)(poller_mono_ns() - r->started_ns) / 1e9;
    char proc[64];
    if (r->process_id)
        snprintf(proc, sizeof proc, "%lld", (long long)r->process_id);
    else
        snprintf(proc, sizeof proc, "none");

    client_reply(c,
                 "OK\n"
                 "machine:            %s\n"
                 "recorder_id:        %s\n"
                 "pid:                %d\n"
                 "uptime_s:           %.1f\n"
                 "process:            %s\n"
                 "process_rows:       %llu\n"
                 "parameters:         %zu polled, %zu skipped\n"
                 "devices:            %zu (%zu connected)\n"
                 "requests_per_cycle: %zu\n"
                 "poll_cycles:        %llu (%llu overruns)\n"
                 "requests:           %llu (%llu failed)\n"
                 "samples:            %llu polled, %llu stored (deadband), %llu dropped\n"
                 "cycle_ms:           p50 %.2f, p99 %.2f, max %.2f\n"
                 "late_ms:            p50 %.2f, p99 %.2f, max %.2f\n"
                 "%s"
                 "batch_rows:         %zu pending\n"
                 "database_link:      %s\n"
                 "queue:              %zu batches, %zu rows\n"
                 "stored:             %llu batches, %llu rows\n"
                 "duplicates_skipped: %llu batches\n"
                 "rejected:           %llu batches, %llu rows\n"
                 "dropped:            %llu batches, %llu rows\n"
                 "last_batch_seq:     %lld\n"
                 "last_error:         %s\n",
                 r->cfg.machine, r->cfg.recorder_id, (int)getpid(), up, proc,
                 (unsigned long long)r->process_rows, ps.params, ps.params_skipped,
                 ps.devices, ps.devices_up, ps.requests_per_cycle,
                 (unsigned long long)ps.cycles, (unsigned long long)ps.overruns,
                 (unsigned long long)ps.requests, (unsigned long long)ps.request_errors,
                 (unsigned long long)ps.samples_polled, (unsigned long long)ps.samples_stored,
                 (unsigned long long)ps.queue_dropped,
                 hist_quantile(&ps.cycle_us, 0.5) / 1e3, hist_quantile(&ps.cycle_us, 0.99) / 1e3,
                 ps.cycle_us.max / 1e3, hist_quantile(&ps.late_us, 0.5) / 1e3,
                 hist_quantile(&ps.late_us, 0.99) / 1e3, ps.late_us.max / 1e3, devices,
                 pgcopy_rows(r->enc), link_name(fs.link),
                 fs.queued_batches, fs.queued_rows, (unsigned long long)fs.stored_batches,
                 (unsigned long long)fs.stored_rows, (unsigned long long)fs.duplicate_batches,
                 (unsigned long long)fs.rejected_batches, (unsigned long long)fs.rejected_rows,
                 (unsigned long long)fs.dropped_batches, (unsigned long long)fs.dropped_rows,
                 (long long)r->last_seq, fs.last_error[0] ? fs.last_error : "-");
}

static void handle_command(struct recorder *r, struct client *c, char *line)
{
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';

    if (strcmp(line, "PING") == 0) {
        client_reply(c, "OK aldrecd for machine %s, pid %d\n", r->cfg.machine, (int)getpid());
    } else if (strcmp(line, "STATUS") == 0) {
        reply_status(r, c);
    } else if (strcmp(line, "START") == 0) {
        /* samples of cycles completed before START are not part of the run */
        poller_drain(r->poller, on_sample, r);
        char *end;
        long long id = arg ? strtoll(arg, &end, 10) : 0;
        if (!arg || *end != '\0' || id <= 0) {
            client_reply(c, "ERR START needs a process id\n");
        } else if (r->process_id) {
            client_reply(c, "ERR process %lld is being recorded; stop it first\n",
                         (long long)r->process_id);
        } else {
            r->process_id = id;
            r->process_rows = 0;
            poller_resync(r->poller);
            log_msg(LL_INFO, "recording process %lld", id);
            client_reply(c, "OK recording process %lld\n", id);
        }
    } else if (strcmp(line, "STOP") == 0) {
        if (!r->process_id) {
            client_reply(c, "ERR no process is being recorded\n");
            return;
        }
        /* ... and those completed before STOP are */
        poller_drain(r->poller, on_sample, r);
        flush_batch(r);
        log_msg(LL_INFO, "process %lld stopped: %llu rows", (long long)r->process_id,
                (unsigned long long)r->process_rows);
        c->stopped_process = r->process_id;
        c->stopped_rows = r->process_rows;
        r->process_id = 0;
        /* Answer once everything of the process has left the queue, so the
         * caller can read the complete run right after "stop" returns. */
        c->wait_seq = r->last_seq > 0 ? r->last_seq : 1;
        c->wait_deadline_ns = poller_mono_ns() + (int64_t)STOP_WAIT_MS * 1000000LL;
    } else {
        client_reply(c, "ERR unknown command \"%.40s\" (expected PING, STATUS, START, STOP)\n", line);
    }
}

static void check_stop_waiters(struct recorder *r, int64_t now)
{
    forwarder_stats_t fs;
    forwarder_get_stats(r->fwd, &fs);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &r->clients[i];
        if (c->fd < 0 || c->wait_seq == 0)
            continue;
        if (fs.last_done_seq >= c->wait_seq || fs.queued_batches == 0) {
            client_reply(c, "OK stopped process %lld: %llu rows recorded, all stored\n",
                         (long long)c->stopped_process, (unsigned long long)c->stopped_rows);
        } else if (now >= c->wait_deadline_ns) {
            client_reply(c, "OK stopped process %lld: %llu rows recorded; %zu rows still"
                         " waiting for the database (%s)\n",
                         (long long)c->stopped_process, (unsigned long long)c->stopped_rows,
                         fs.queued_rows, fs.last_error[0] ? fs.last_error : "no error yet");
        }
    }
}

static void client_read(struct recorder *r, struct client *c)
{
    ssize_t n = read(c->fd, c->in + c->inlen, sizeof c->in - 1 - c->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    c->inlen += (size_t)n;
    c->in[c->inlen] = '\0';
    char *nl = strchr(c->in, '\n');
    if (!nl) {
        if (c->inlen == sizeof c->in - 1)
            client_reply(c, "ERR request too long\n");
        return;
    }
    *nl = '\0';
    if (nl > c->in && nl[-1] == '\r')
        nl[-1] = '\0';
    handle_command(r, c, c->in);
}

static void accept_clients(struct recorder *r)
{
    for (;;) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int i;
        for (i = 0; i < MAX_CLIENTS; i++)
            if (r->clients[i].fd < 0)
                break;
        if (i == MAX_CLIENTS) {
            const char busy[] = "ERR busy: too many control connections\n";
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
            close(fd);
            continue;
        }
        r->clients[i] = (struct client){ .fd = fd };
    }
}

/* Start-up: the parameter map, the ledger position and an interrupted
 * process, from PostgreSQL. Retries until it works or we are told to stop. */
static int load_from_database(struct recorder *r)
{
    complain_t down = { 0 };
    int backoff_ms = 500;

    while (!stop_requested) {
        char err[512] = "";
        char tmo[16];
        snprintf(tmo, sizeof tmo, "%d", r->cfg.connect_timeout_s);
        const char *keys[] = { "connect_timeout", "application_name", "dbname", NULL };
        const char *vals[] = { tmo, "aldrecd", r->cfg.conninfo, NULL };
        PGconn *conn = PQconnectdbParams(keys, vals, 1);
        if (PQstatus(conn) == CONNECTION_OK) {
            r->map = pmap_load(conn, r->cfg.machine, err, sizeof err);
            if (r->map) {
                const char *p[2] = { NULL, r->cfg.recorder_id };
                char mid[16];
                snprintf(mid, sizeof mid, "%d", pmap_machine_id(r->map));
                p[0] = mid;
                PGresult *res = PQexecParams(conn,
                    "SELECT (SELECT coalesce(max(batch_seq), 0) FROM ingest_ledger"
                    "         WHERE recorder_id = $2),"
                    "       (SELECT id FROM processes WHERE machine_id = $1::int"
                    "         AND recorder_id = $2 AND status = 'running'"
                    "         ORDER BY id DESC LIMIT 1)",
                    2, NULL, p, NULL, NULL, 0);
                if (PQresultStatus(res) == PGRES_TUPLES_OK) {
                    r->last_seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                    if (!PQgetisnull(res, 0, 1)) {
                        r->process_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
                        log_msg(LL_INFO, "resuming process %lld, which was running when"
                                " the recorder last stopped", (long long)r->process_id);
                    }
                    PQclear(res);
                    PQfinish(conn);
                    log_release(&down, LL_INFO, "PostgreSQL reachable");
                    return 0;
                }
                snprintf(err, sizeof err, "reading the ledger: %s", PQerrorMessage(conn));
                PQclear(res);
                pmap_free(r->map);
                r->map = NULL;
            } else if (strncmp(err, "unknown machine", 15) == 0) {
                PQfinish(conn);
                log_msg(LL_ERROR, "%s: check [recorder] machine in the config", err);
                return -1;
            }
        } else {
            snprintf(err, sizeof err, "%s", PQerrorMessage(conn));
        }
        PQfinish(conn);
        err[strcspn(err, "\n")] = '\0';
        log_complain(&down, LL_WARN, "cannot load the machine description: %s; retrying", err);
        for (int waited = 0; waited < backoff_ms && !stop_requested; waited += 100)
            poll(NULL, 0, 100);
        backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
    }
    return -1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: aldrecd --config FILE\n"
               "Records the machine's Modbus parameters into PostgreSQL while a\n"
               "process is active. Controlled with the aldrec command.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = getenv("ALDREC_CONFIG");
    struct recorder r = { .listen_fd = -1, .flush_deadline_ns = INT64_MAX };
    char err[512];
    int opt, status = 1;

    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !config_path) {
        usage(stderr);
        return 2;
    }
    if (config_load(&r.cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "aldrecd: %s\n", err);
        return 2;
    }
    enum log_level lvl = LL_INFO;
    log_parse_level(r.cfg.log_level, &lvl);
    log_init("aldrecd", lvl);
    for (int i = 0; i < MAX_CLIENTS; i++)
        r.clients[i].fd = -1;

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    r.listen_fd = ctl_listen(r.cfg.socket_path, err, sizeof err);
    if (r.listen_fd < 0) {
        log_msg(LL_ERROR, "control socket: %s", err);
        goto out;
    }
    if (load_from_database(&r) < 0) {
        status = stop_requested ? 0 : 1;
        goto out;
    }
    poller_opts_t po = {
        .response_timeout_ms = r.cfg.response_timeout_ms,
        .limits = { .max_registers = r.cfg.max_registers, .max_bits = r.cfg.max_bits,
                    .max_gap = r.cfg.max_gap },
        .baud = r.cfg.baud, .parity = r.cfg.parity[0],
        .data_bits = r.cfg.data_bits, .stop_bits = r.cfg.stop_bits,
        .reconnect_min_ms = 100, .reconnect_max_ms = r.cfg.reconnect_max_ms,
    };
    r.poller = poller_new(r.map, &po);
    r.enc = pgcopy_new();
    r.fwd = forwarder_start(r.cfg.conninfo, r.cfg.recorder_id,
                            r.cfg.connect_timeout_s * 1000, (size_t)r.cfg.queue_batches,
                            err, sizeof err);
    if (!r.poller || !r.enc || !r.fwd) {
        log_msg(LL_ERROR, "start-up failed: %s", r.fwd ? "out of memory" : err);
        goto out;
    }
    poller_stats_t ps;
    poller_get_stats(r.poller, &ps);
    log_msg(LL_INFO, "machine %s: %zu parameters on %zu device(s), %zu requests per cycle"
            " (%zu skipped); batch %d rows / %d ms; control socket %s",
            r.cfg.machine, ps.params, ps.devices, ps.requests_per_cycle, ps.params_skipped,
            r.cfg.batch_rows, r.cfg.flush_interval_ms, r.cfg.socket_path);
    r.started_ns = poller_mono_ns();

    while (!stop_requested) {
        struct pollfd pfd[3 + MAX_CLIENTS];
        int idx[MAX_CLIENTS];
        int nfds = 0;
        pfd[nfds++] = (struct pollfd){ .fd = r.listen_fd, .events = POLLIN };
        pfd[nfds++] = (struct pollfd){ .fd = forwarder_notify_fd(r.fwd), .events = POLLIN };
        pfd[nfds++] = (struct pollfd){ .fd = poller_notify_fd(r.poller), .events = POLLIN };
        int64_t wake = r.flush_deadline_ns;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &r.clients[i];
            if (c->fd < 0)
                continue;
            if (c->wait_seq) {
                if (c->wait_deadline_ns < wake)
                    wake = c->wait_deadline_ns;
                continue;
            }
            idx[nfds - 3] = i;
            pfd[nfds++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
        }
        int64_t now = poller_mono_ns();
        int64_t wait_ms = wake == INT64_MAX ? 1000 : (wake - now + 999999) / 1000000;
        if (wait_ms < 0)
            wait_ms = 0;
        if (wait_ms > 1000)
            wait_ms = 1000;
        int rc = poll(pfd, (nfds_t)nfds, (int)wait_ms);
        if (rc < 0 && errno != EINTR) {
            log_msg(LL_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (rc > 0) {
            if (pfd[0].revents)
                accept_clients(&r);
            if (pfd[1].revents)
                forwarder_drain_notify(r.fwd);
            if (pfd[2].revents)
                poller_drain(r.poller, on_sample, &r);
            for (int k = 3; k < nfds; k++)
                if (pfd[k].revents)
                    client_read(&r, &r.clients[idx[k - 3]]);
        }
        if (poller_mono_ns() >= r.flush_deadline_ns)
            flush_batch(&r);
        check_stop_waiters(&r, poller_mono_ns());
    }
    /* samples of cycles completed before the signal still belong to the run */
    poller_drain(r.poller, on_sample, &r);
    log_msg(LL_INFO, "stopping: flushing %zu pending rows", pgcopy_rows(r.enc));
    flush_batch(&r);
    status = 0;
out:
    if (r.fwd) {
        forwarder_stats_t fs;
        forwarder_get_stats(r.fwd, &fs);
        size_t rows = fs.queued_rows;
        size_t left = forwarder_stop(r.fwd, SHUTDOWN_DRAIN_MS);
        if (left)
            log_msg(LL_ERROR, "exiting with %zu batches (up to %zu rows) not stored:"
                    " PostgreSQL unreachable for %d s", left, rows, SHUTDOWN_DRAIN_MS / 1000);
        else
            log_msg(LL_INFO, "all batches stored");
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (r.clients[i].fd >= 0)
            client_close(&r.clients[i]);
    if (r.listen_fd >= 0) {
        close(r.listen_fd);
        unlink(r.cfg.socket_path);
    }
    poller_free(r.poller);
    pgcopy_free(r.enc);
    pmap_free(r.map);
    return status;
}
