/* aldsim.c — a simulated ALD reactor as a Modbus TCP server.
 *
 * Serves the register image of reactor.c (map: firmware/REGISTERS.md) to up
 * to MAX_CLIENTS clients at once from one poll(2) loop on the main thread:
 * the listening socket and every client socket are polled together; a
 * readable client gets exactly one request read and answered per turn. The
 * model is stepped (CLOCK_MONOTONIC) before every request and at least every
 * TICK_MS, so the ALD sequencer keeps time with no client connected.
 *
 *   aldsim [--port N] [--bind ADDR] [--unit N] [--seed N]
 *
 * Prints "aldsim: listening on ADDR:PORT unit N" on stdout once listening
 * (with --port 0, the port the kernel chose). SIGTERM/SIGINT: stop, print
 * "aldsim: served N read requests, M write requests" on stderr, exit 0.
 * Exit 1 when it cannot listen, 2 on a bad command line.
 *
 * Unit ids: requests for --unit, 0 or 255 (both mean "this device" over TCP)
 * are answered; others get exception 0x0B (gateway target device failed to
 * respond), as a gateway in front of a missing device would answer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

#include "log.h"
#include "reactor.h"

#define MAX_CLIENTS     32
#define LISTEN_BACKLOG  16
#define TICK_MS         10
/* A client that sent part of a request has this long to send the rest; the
 * whole loop waits meanwhile, so it is short. */
#define BYTE_TIMEOUT_US 100000
/* libmodbus sleeps the response timeout before flushing a malformed request;
 * in a server that stalls every client, so keep it minimal. */
#define FLUSH_SLEEP_US  1000

struct options {
    char bind[INET_ADDRSTRLEN];   /* normalised dotted quad */
    int port;                     /* 0: let the kernel choose */
    int unit;
    uint64_t seed;
};

struct server {
    struct options opt;
    modbus_t *ctx;                /* used for every client via modbus_set_socket() */
    reactor_t *reactor;
    int listen_fd;
    int clients[MAX_CLIENTS];     /* -1: free slot */
    int64_t start_ns;             /* model time 0 */
    uint64_t reads, writes;       /* requests answered */
    complain_t full;              /* refusing clients because all slots are taken */
};

/* What a function code does to the register image. */
enum req_kind {
    REQ_OTHER,        /* not counted (report slave id, unsupported codes) */
    REQ_READ,         /* FC1-FC4 */
    REQ_WRITE,        /* FC5, FC6, FC15, FC16, FC22 */
    REQ_READ_WRITE,   /* FC23: counted as a read and as a write */
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double model_time(const struct server *s)
{
    return (double)(mono_ns() - s->start_ns) / 1e9;
}

static enum req_kind classify(int function)
{
    switch (function) {
    case MODBUS_FC_READ_COILS:
    case MODBUS_FC_READ_DISCRETE_INPUTS:
    case MODBUS_FC_READ_HOLDING_REGISTERS:
    case MODBUS_FC_READ_INPUT_REGISTERS:
        return REQ_READ;
    case MODBUS_FC_WRITE_SINGLE_COIL:
    case MODBUS_FC_WRITE_SINGLE_REGISTER:
    case MODBUS_FC_WRITE_MULTIPLE_COILS:
    case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
    case MODBUS_FC_MASK_WRITE_REGISTER:
        return REQ_WRITE;
    case MODBUS_FC_WRITE_AND_READ_REGISTERS:
        return REQ_READ_WRITE;
    default:
        return REQ_OTHER;
    }
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aldsim [--port N] [--bind ADDR] [--unit N] [--seed N]\n"
            "\n"
            "Simulated ALD reactor, a Modbus TCP server (register map:\n"
            "firmware/REGISTERS.md).\n"
            "\n"
            "  --port N     TCP port, 0 = any free port (default 1502)\n"
            "  --bind ADDR  IPv4 address to listen on, 0.0.0.0 = all (default 127.0.0.1)\n"
            "  --unit N     Modbus unit id answered, 1..247 (default 1); 0 and 255\n"
            "               are answered too, other ids get exception 0x0B\n"
            "  --seed N     seed of the measurement noise, 0..2^64-1 (default 1)\n"
            "  --help       this text\n"
            "\n"
            "Prints \"aldsim: listening on ADDR:PORT unit N\" once listening.\n"
            "SIGTERM/SIGINT print a request summary on stderr and exit 0.\n");
}

/* Decimal min..max, the whole string. Prints an error naming opt on failure. */
static int parse_uint(const char *opt, const char *s, uint64_t min, uint64_t max,
                      uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        goto fail;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        goto fail;
    *out = v;
    return 0;

fail:
    fprintf(stderr, "aldsim: %s: expected an integer %llu..%llu, got \"%s\"\n", opt,
            (unsigned long long)min, (unsigned long long)max, s);
    return -1;
}

/* Returns 0 to run, 1 after --help, -1 after printing an error. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { .name = "port", .has_arg = required_argument, .val = 'p' },
        { .name = "bind", .has_arg = required_argument, .val = 'b' },
        { .name = "unit", .has_arg = required_argument, .val = 'u' },
        { .name = "seed", .has_arg = required_argument, .val = 's' },
        { .name = "help", .has_arg = no_argument, .val = 'h' },
        { 0 },
    };
    const char *bind_arg = "127.0.0.1";
    struct in_addr addr;
    uint64_t v;
    int c;

    *o = (struct options){ .port = 1502, .unit = 1, .seed = 1 };
    opterr = 0;   /* our messages: getopt's would name the full program path */
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_uint("--port", optarg, 0, 65535, &v) < 0)
                return -1;
            o->port = (int)v;
            break;
        case 'b':
            bind_arg = optarg;
            break;
        case 'u':
            if (parse_uint("--unit", optarg, 1, 247, &v) < 0)
                return -1;
            o->unit = (int)v;
            break;
        case 's':
            if (parse_uint("--seed", optarg, 0, UINT64_MAX, &v) < 0)
                return -1;
            o->seed = v;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case ':':
            fprintf(stderr, "aldsim: %s: missing value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "aldsim: unknown option \"%s\"\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aldsim: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    /* libmodbus takes a dotted quad only (and reads any address starting
     * with '0' as 0.0.0.0), so validate here and pass it normalised. */
    if (inet_pton(AF_INET, bind_arg, &addr) != 1) {
        fprintf(stderr, "aldsim: --bind: expected an IPv4 address, got \"%s\"\n", bind_arg);
        return -1;
    }
    inet_ntop(AF_INET, &addr, o->bind, sizeof o->bind);
    return 0;
}

/* ---- clients ------------------------------------------------------------ */

static void close_client(struct server *s, int i)
{
    close(s->clients[i]);
    s->clients[i] = -1;
}

static void accept_client(struct server *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED)
            log_msg(LL_WARN, "accept: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (s->clients[i] < 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            s->clients[i] = fd;
            log_release(&s->full, LL_INFO, "accepting clients again");
            return;
        }
    }
    /* Full: accept and close at once, so the client sees the connection
     * end instead of hanging in the backlog. */
    log_complain(&s->full, LL_WARN, "%d clients connected; refusing more", MAX_CLIENTS);
    close(fd);
}

/* Reads and answers one request of client i; closes it on error or EOF. */
static void serve_request(struct server *s, int i)
{
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    int hdr = modbus_get_header_length(s->ctx);
    int len, rc;

    modbus_set_socket(s->ctx, s->clients[i]);
    len = modbus_receive(s->ctx, req);
    if (len < 0) {
        /* EOF shows as ECONNRESET; anything else (timeout in mid-request,
         * garbage) also ends the connection. */
        if (errno != ECONNRESET)
            log_msg(LL_DEBUG, "client closed: %s", modbus_strerror(errno));
        close_client(s, i);
        return;
    }
    if (len == 0)   /* libmodbus ignored it */
        return;

    reactor_step(s->reactor, model_time(s));
    int unit = req[hdr - 1];
    enum req_kind kind = classify(req[hdr]);
    if (unit != s->opt.unit && unit != 0 && unit != MODBUS_TCP_SLAVE) {
        if (modbus_reply_exception(s->ctx, req, MODBUS_EXCEPTION_GATEWAY_TARGET) < 0)
            close_client(s, i);
        return;
    }

    if (kind == REQ_READ || kind == REQ_READ_WRITE) {
        reactor_count_read(s->reactor);   /* the response includes itself */
        s->reads++;
    }

    /* FAULT INJECTION HOOK (not implemented yet): this is the place to add
     * latency, drop the answer, answer an exception for chosen addresses or
     * close the connection — after the request is parsed and counted,
     * before modbus_reply() touches the register image. */

    rc = modbus_reply(s->ctx, req, len, reactor_mapping(s->reactor));
    if (kind == REQ_WRITE || kind == REQ_READ_WRITE) {
        /* Even if sending failed, the image may have been written. */
        reactor_apply_writes(s->reactor);
        if (rc >= 0)
            s->writes++;
    }
    if (rc < 0)
        close_client(s, i);
}

/* ---- main loop ---------------------------------------------------------- */

/* Opens the listening socket; fills s->opt.port with the port bound. */
static int server_listen(struct server *s)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;

    s->ctx = modbus_new_tcp(s->opt.bind, s->opt.port);
    if (!s->ctx)
        goto fail;
    modbus_set_byte_timeout(s->ctx, 0, BYTE_TIMEOUT_US);
    modbus_set_response_timeout(s->ctx, 0, FLUSH_SLEEP_US);
    s->listen_fd = modbus_tcp_listen(s->ctx, LISTEN_BACKLOG);
    if (s->listen_fd < 0)
        goto fail;
    if (fcntl(s->listen_fd, F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(s->listen_fd, F_SETFL, O_NONBLOCK) < 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&sa, &salen) < 0)
        goto fail;
    s->opt.port = ntohs(sa.sin_port);
    return 0;

fail:
    log_msg(LL_ERROR, "cannot listen on %s:%d: %s", s->opt.bind, s->opt.port,
            modbus_strerror(errno));
    return -1;
}

/* Runs until SIGTERM/SIGINT. Returns 0, or -1 if poll() failed. */
static int server_run(struct server *s)
{
    struct pollfd pfd[1 + MAX_CLIENTS];
    int slot[1 + MAX_CLIENTS];              /* client index of pfd[k], k >= 1 */
    int64_t next_tick = mono_ns();

    while (!stop_requested) {
        int n = 0;
        pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (s->clients[i] < 0)
                continue;
            slot[n] = i;
            pfd[n++] = (struct pollfd){ .fd = s->clients[i], .events = POLLIN };
        }

        int64_t now = mono_ns();
        if (now >= next_tick) {
            reactor_step(s->reactor, model_time(s));
            next_tick += (int64_t)TICK_MS * 1000000;
            if (next_tick <= now)           /* fell behind: no catch-up burst */
                next_tick = now + (int64_t)TICK_MS * 1000000;
        }
        int timeout_ms = (int)((next_tick - now + 999999) / 1000000);

        int ready = poll(pfd, (nfds_t)n, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LL_ERROR, "poll: %s", strerror(errno));
            return -1;
        }
        for (int k = 1; k < n; k++) {
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                serve_request(s, slot[k]);
        }
        if (pfd[0].revents & POLLIN)
            accept_client(s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct server s = { .listen_fd = -1 };
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART: poll gets EINTR */
    int status = 1;

    log_init("aldsim", LL_INFO);
    switch (parse_options(argc, argv, &s.opt)) {
    case 0:
        break;
    case 1:
        return 0;
    default:
        fprintf(stderr, "Try 'aldsim --help'.\n");
        return 2;
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        s.clients[i] = -1;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a client gone mid-answer is an EPIPE, not a death */

    s.reactor = reactor_new(s.opt.seed);
    if (!s.reactor) {
        log_msg(LL_ERROR, "cannot create the reactor model: %s", strerror(errno));
        goto fail;
    }
    s.start_ns = mono_ns();
    if (server_listen(&s) < 0)
        goto fail;
    printf("aldsim: listening on %s:%d unit %d\n", s.opt.bind, s.opt.port, s.opt.unit);
    fflush(stdout);

    if (server_run(&s) < 0)
        goto fail;
    status = 0;
    fprintf(stderr, "aldsim: served %llu read requests, %llu write requests\n",
            (unsigned long long)s.reads, (unsigned long long)s.writes);

fail:
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (s.clients[i] >= 0)
            close_client(&s, i);
    }
    if (s.listen_fd >= 0)
        close(s.listen_fd);
    s.listen_fd = -1;
    modbus_free(s.ctx);         /* does not close sockets; we did */
    s.ctx = NULL;
    reactor_free(s.reactor);
    s.reactor = NULL;
    return status;
}
