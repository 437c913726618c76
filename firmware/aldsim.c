/* aldsim.c — a simulated ALD reactor as a Modbus TCP or RTU server, with
 * faults on demand.
 *
 * Serves the register image of reactor.c (map: firmware/REGISTERS.md) from
 * one poll(2) loop on the main thread: over TCP to up to MAX_CLIENTS clients
 * at once (the listening socket and every client socket are polled
 * together), or over RTU on one serial line (--rtu). A readable connection
 * gets exactly one request read per turn. The model is stepped
 * (CLOCK_MONOTONIC) before every answer and at least every TICK_MS, so the
 * ALD sequencer keeps time with no client connected.
 *
 *   aldsim [--port N] [--bind ADDR] [--unit N] [--seed N]
 *          [--fault SPEC]... [--fault-file FILE]
 *   aldsim --rtu DEVICE [--baud N] [--parity N|E|O] [--data-bits 7|8]
 *          [--stop-bits 1|2] [--unit N] [--seed N] [--fault SPEC]... [--fault-file FILE]
 *
 * Faults (fault.h) make the device misbehave on purpose. Every decision is
 * taken when a request has been read (fault_decide()); an answer that must
 * come late is kept with its connection and sent by the loop when its time
 * is due — nothing sleeps, so other clients and the model keep running.
 * A connection with an answer pending is not read meanwhile (a device
 * answers its requests in order). SIGHUP re-reads --fault-file, whose specs
 * then are the whole active set; every change prints
 * "aldsim: faults: <specs or none>" on stderr once it is in effect.
 *
 * Prints "aldsim: listening on ADDR:PORT unit N" (TCP; with --port 0, the
 * port the kernel chose) or "aldsim: serving RTU on DEVICE unit N" on stdout
 * once ready. SIGTERM/SIGINT: stop, print "aldsim: served N read requests,
 * M write requests" and "aldsim: faults applied: ..." on stderr, exit 0.
 * Exit 1 when it cannot listen or open the line (or the line hangs up), 2 on
 * a bad command line or fault file at start.
 *
 * Unit ids: requests for --unit, 0 or 255 (both mean "this device" over TCP)
 * are answered; others get exception 0x0B (gateway target device failed to
 * respond), as a gateway in front of a missing device would answer. Faults
 * apply to requests for this device only. Over RTU, libmodbus ignores
 * requests for other units, and unit 0 is a broadcast: executed, never
 * answered. */
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
#include <unistd.h>

#include <modbus.h>

#include "firmware/fault.h"
#include "common/log.h"
#include "firmware/reactor.h"
#include "common/clock.h"

#define MAX_CLIENTS     32
#define LISTEN_BACKLOG  16
#define TICK_MS         10
/* A client that sent part of a request has this long to send the rest; the
 * whole loop waits meanwhile, so it is short. */
#define BYTE_TIMEOUT_US 100000
/* libmodbus sleeps the response timeout before flushing a malformed request;
 * in a server that stalls every client, so keep it minimal. */
#define FLUSH_SLEEP_US  1000
/* After refuse_ms, a port that cannot be bound again is retried this often. */
#define RELISTEN_RETRY_MS 100
#define MAX_ADU         MODBUS_TCP_MAX_ADU_LENGTH   /* > MODBUS_RTU_MAX_ADU_LENGTH */
#define RTU_CRC_LEN     2
#define NS_PER_MS       1000000LL

struct options {
    char bind[INET_ADDRSTRLEN];   /* normalised dotted quad */
    int port;                     /* 0: let the kernel choose */
    int unit;
    uint64_t seed;
    const char *rtu;              /* serial device; NULL: TCP */
    int baud;
    char parity;                  /* 'N', 'E', 'O' */
    int data_bits, stop_bits;
    const char *fault_file;       /* NULL: none */
    fault_set_t faults;           /* from --fault */
};

/* A TCP client, or (RTU) the serial line. */
struct conn {
    int fd;                       /* -1: free slot */
    bool pending;                 /* an answer waits until due_ns */
    int64_t due_ns;
    int exception;                /* answer with this exception; 0: a normal answer */
    int req_len;
    uint8_t req[MAX_ADU];         /* the request being answered late */
};

/* Faults applied since start, for the exit summary. */
struct fault_counts {
    uint64_t delayed;             /* answers sent latency_ms late (or meant to be) */
    uint64_t unanswered;          /* silent, silent_rate, RTU drop/refusal */
    uint64_t exceptions;          /* injected exceptions (ranges, rate, limits) */
    uint64_t dropped;             /* connections closed by drop_every */
    uint64_t refusals;            /* refuse_ms periods started */
};

struct server {
    struct options opt;
    modbus_t *ctx;                /* used for every client via modbus_set_socket() */
    reactor_t *reactor;
    int listen_fd;                /* TCP; -1 while refusing */
    struct conn conns[MAX_CLIENTS];   /* RTU: conns[0] is the line */
    int64_t start_ns;             /* model time 0 */
    uint64_t reads, writes;       /* requests answered */
    /* answered writes per register (coil, holding), printed at exit */
    uint64_t wcount[2][REACTOR_TABLE_SIZE];
    fault_set_t faults;           /* in effect */
    uint64_t fault_seq;           /* requests for this device since faults were loaded */
    uint64_t fault_rng;           /* splitmix64 state, from --seed */
    int64_t refuse_until_ns;      /* 0: not refusing */
    struct fault_counts applied;
    complain_t full;              /* refusing clients because all slots are taken */
    complain_t relisten;          /* the port could not be bound again */
};

/* What a function code does to the register image. */
enum req_kind {
    REQ_OTHER,        /* not counted (report slave id, unsupported codes) */
    REQ_READ,         /* FC1-FC4 */
    REQ_WRITE,        /* FC5, FC6, FC15, FC16, FC22 */
    REQ_READ_WRITE,   /* FC23: counted as a read and as a write */
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

static double model_time(const struct server *s)
{
    return (double)(clock_mono_ns() - s->start_ns) / 1e9;
}

/* Advances the reactor model to now, unless the device is frozen (fault
 * "freeze": it answers with the values of the moment it froze). */
static void model_step(struct server *s)
{
    if (!s->faults.freeze)
        reactor_step(s->reactor, model_time(s));
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
            "usage: aldsim [--port N] [--bind ADDR] [OPTIONS]\n"
            "       aldsim --rtu DEVICE [--baud N] [--parity N|E|O] [--data-bits 7|8]\n"
            "              [--stop-bits 1|2] [OPTIONS]\n"
            "\n"
            "Simulated ALD reactor, a Modbus TCP or RTU server (register map and\n"
            "fault specs: firmware/REGISTERS.md).\n"
            "\n"
            "  --port N          TCP port, 0 = any free port (default 1502)\n"
            "  --bind ADDR       IPv4 address to listen on, 0.0.0.0 = all (default 127.0.0.1)\n"
            "  --rtu DEVICE      serve Modbus RTU on this serial device instead of TCP\n"
            "  --baud N          RTU line speed (default 19200)\n"
            "  --parity N|E|O    RTU parity (default N)\n"
            "  --data-bits 7|8   RTU data bits (default 8)\n"
            "  --stop-bits 1|2   RTU stop bits (default 1)\n"
            "  --unit N          Modbus unit id answered, 1..247 (default 1); over TCP 0 and\n"
            "                    255 are answered too, other ids get exception 0x0B\n"
            "  --seed N          seed of the measurement noise and of fault rates (default 1)\n"
            "  --fault SPEC      inject a fault (repeatable): latency=MS, silent, freeze,\n"
            "                    silent_rate=P, exception=TABLE:ADDR[-ADDR]:CODE,\n"
            "                    exception_rate=P:CODE, drop_every=N, refuse_ms=MS,\n"
            "                    max_registers=N, max_bits=N\n"
            "  --fault-file FILE more faults, one spec per line; re-read on SIGHUP, when\n"
            "                    its specs replace every fault in effect\n"
            "  --help            this text\n"
            "\n"
            "Prints \"aldsim: listening on ADDR:PORT unit N\" (TCP) or \"aldsim: serving\n"
            "RTU on DEVICE unit N\" once ready, and \"aldsim: faults: ...\" on stderr\n"
            "whenever the faults change. SIGTERM/SIGINT print a summary and exit 0.\n");
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

/* Line speeds libmodbus maps to termios speeds (others it would silently
 * replace by 9600). */
static bool valid_baud(uint64_t b)
{
    static const unsigned speeds[] = { 300, 600, 1200, 2400, 4800, 9600, 19200, 38400,
                                       57600, 115200, 230400, 460800, 921600 };
    for (size_t i = 0; i < sizeof speeds / sizeof speeds[0]; i++) {
        if (speeds[i] == b)
            return true;
    }
    return false;
}

/* Options that only make sense for one transport. */
enum { OPT_TCP = 1, OPT_SERIAL = 2 };

/* Returns 0 to run, 1 after --help, -1 after printing an error. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { .name = "port", .has_arg = required_argument, .val = 'p' },
        { .name = "bind", .has_arg = required_argument, .val = 'b' },
        { .name = "unit", .has_arg = required_argument, .val = 'u' },
        { .name = "seed", .has_arg = required_argument, .val = 's' },
        { .name = "fault", .has_arg = required_argument, .val = 'f' },
        { .name = "fault-file", .has_arg = required_argument, .val = 'F' },
        { .name = "rtu", .has_arg = required_argument, .val = 'r' },
        { .name = "baud", .has_arg = required_argument, .val = 'B' },
        { .name = "parity", .has_arg = required_argument, .val = 'P' },
        { .name = "data-bits", .has_arg = required_argument, .val = 'D' },
        { .name = "stop-bits", .has_arg = required_argument, .val = 'S' },
        { .name = "help", .has_arg = no_argument, .val = 'h' },
        { 0 },
    };
    const char *bind_arg = "127.0.0.1";
    const char *tcp_opt = NULL, *serial_opt = NULL;   /* first of each given */
    char err[512];
    struct in_addr addr;
    uint64_t v;
    int c;

    *o = (struct options){ .port = 1502, .unit = 1, .seed = 1, .baud = 19200,
                           .parity = 'N', .data_bits = 8, .stop_bits = 1 };
    fault_set_clear(&o->faults);
    opterr = 0;   /* our messages: getopt's would name the full program path */
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            tcp_opt = "--port";
            if (parse_uint("--port", optarg, 0, 65535, &v) < 0)
                return -1;
            o->port = (int)v;
            break;
        case 'b':
            tcp_opt = "--bind";
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
        case 'f':
            if (fault_set_add(&o->faults, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "aldsim: --fault: %s\n", err);
                return -1;
            }
            break;
        case 'F':
            o->fault_file = optarg;
            break;
        case 'r':
            o->rtu = optarg;
            break;
        case 'B':
            serial_opt = "--baud";
            if (parse_uint("--baud", optarg, 300, 921600, &v) < 0)
                return -1;
            if (!valid_baud(v)) {
                fprintf(stderr, "aldsim: --baud: %s is not a standard line speed "
                        "(300, 600, 1200 ... 115200, 230400, 460800, 921600)\n", optarg);
                return -1;
            }
            o->baud = (int)v;
            break;
        case 'P':
            serial_opt = "--parity";
            if (strlen(optarg) != 1 || !strchr("NEO", optarg[0])) {
                fprintf(stderr, "aldsim: --parity: expected N, E or O, got \"%s\"\n", optarg);
                return -1;
            }
            o->parity = optarg[0];
            break;
        case 'D':
            serial_opt = "--data-bits";
            if (parse_uint("--data-bits", optarg, 7, 8, &v) < 0)
                return -1;
            o->data_bits = (int)v;
            break;
        case 'S':
            serial_opt = "--stop-bits";
            if (parse_uint("--stop-bits", optarg, 1, 2, &v) < 0)
                return -1;
            o->stop_bits = (int)v;
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
    if (o->rtu && tcp_opt) {
        fprintf(stderr, "aldsim: %s is a TCP option; --rtu serves a serial line\n", tcp_opt);
        return -1;
    }
    if (!o->rtu && serial_opt) {
        fprintf(stderr, "aldsim: %s needs --rtu DEVICE\n", serial_opt);
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

/* ---- listening socket --------------------------------------------------- */

/* Binds and listens on opt.bind:opt.port; with port 0 fills in the port the
 * kernel chose, so a later listen (after refuse_ms) takes the same one.
 * Returns 0, or -1 with errno set. */
static int listen_open(struct server *s)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->opt.port) };
    socklen_t salen = sizeof sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    inet_pton(AF_INET, s->opt.bind, &sa.sin_addr);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    s->opt.port = ntohs(sa.sin_port);
    s->listen_fd = fd;
    return 0;
}

static void listen_close(struct server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
}

/* ---- connections -------------------------------------------------------- */

/* Closes a TCP client, forgetting an answer it was waiting for. */
static void close_client(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->pending = false;
}

/* After a request that could not be read or answered: a TCP client is
 * closed; the serial line stays, with whatever arrived half-way discarded. */
static void conn_failed(struct server *s, struct conn *c)
{
    if (s->opt.rtu)
        modbus_flush(s->ctx);
    else
        close_client(c);
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
    int open = 0;
    for (int i = 0; i < MAX_CLIENTS; i++)
        open += s->conns[i].fd >= 0;
    if (s->faults.max_clients && open >= s->faults.max_clients) {
        /* a small device: a further client is accepted and closed at once */
        log_msg(LL_DEBUG, "max_clients=%d: closing a further connection", s->faults.max_clients);
        close(fd);
        return;
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (s->conns[i].fd < 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            s->conns[i] = (struct conn){ .fd = fd };
            log_release(&s->full, LL_INFO, "accepting clients again");
            return;
        }
    }
    /* Full: accept and close at once, so the client sees the connection
     * end instead of hanging in the backlog. */
    log_complain(&s->full, LL_WARN, "%d clients connected; refusing more", MAX_CLIENTS);
    close(fd);
}

/* "aldsim: writes per register: holding 10: 5, coil 3: 2" (or "none"), a
 * line tests read to count what reached the device. */
static void print_write_counts(const struct server *s)
{
    char buf[4096] = "";
    size_t pos = 0;
    static const char *const names[2] = { "coil", "holding" };
    for (int t = 0; t < 2; t++)
        for (int a = 0; a < REACTOR_TABLE_SIZE; a++)
            if (s->wcount[t][a] && pos < sizeof buf) {
                int n = snprintf(buf + pos, sizeof buf - pos, "%s%s %d: %llu", pos ? ", " : "",
                                 names[t], a, (unsigned long long)s->wcount[t][a]);
                if (n > 0)
                    pos += (size_t)n;
            }
    fprintf(stderr, "aldsim: writes per register: %s\n", pos ? buf : "none");
}

/* ---- faults ------------------------------------------------------------- */

/* refuse_ms: TCP stops listening and closes every client; RTU reads and
 * discards requests. Either way nothing is answered until refuse_until_ns. */
static void refuse_start(struct server *s, int ms)
{
    s->refuse_until_ns = clock_mono_ns() + ms * NS_PER_MS;
    s->applied.refusals++;
    if (s->opt.rtu) {
        s->conns[0].pending = false;
    } else {
        listen_close(s);
        for (int i = 0; i < MAX_CLIENTS; i++)
            close_client(&s->conns[i]);
    }
    fprintf(stderr, "aldsim: refusing connections for %d ms\n", ms);
}

/* Ends a refusal: listens again on the same port. If that port cannot be
 * bound now, tries again every RELISTEN_RETRY_MS. */
static void refuse_end(struct server *s)
{
    if (!s->opt.rtu && s->listen_fd < 0 && listen_open(s) < 0) {
        log_complain(&s->relisten, LL_WARN, "cannot listen on %s:%d again: %s; retrying",
                     s->opt.bind, s->opt.port, strerror(errno));
        s->refuse_until_ns = clock_mono_ns() + RELISTEN_RETRY_MS * NS_PER_MS;
        return;
    }
    log_release(&s->relisten, LL_INFO, "listening again");
    s->refuse_until_ns = 0;
    if (s->opt.rtu)
        fprintf(stderr, "aldsim: answering again on %s\n", s->opt.rtu);
    else
        fprintf(stderr, "aldsim: accepting connections again on %s:%d\n",
                s->opt.bind, s->opt.port);
}

/* Puts f in effect, then says so: when the "faults:" line appears, a
 * refusal has started (or a previous one ended) and the request count that
 * drop_every uses starts again from 0. */
static void faults_set(struct server *s, const fault_set_t *f)
{
    char text[FAULT_TEXT_MAX];

    s->faults = *f;
    s->fault_seq = 0;
    if (f->refuse_ms)
        refuse_start(s, f->refuse_ms);
    else if (s->refuse_until_ns)
        refuse_end(s);
    fault_set_format(f, text, sizeof text);
    fprintf(stderr, "aldsim: faults: %s\n", text);
}

/* SIGHUP: the fault file's specs replace every fault in effect. A file
 * that cannot be read or parsed changes nothing. */
static void faults_reload(struct server *s)
{
    char err[1024];
    fault_set_t f;

    if (!s->opt.fault_file) {
        fprintf(stderr, "aldsim: SIGHUP without --fault-file; faults unchanged\n");
        return;
    }
    fault_set_clear(&f);
    if (fault_set_load(&f, s->opt.fault_file, err, sizeof err) < 0) {
        fprintf(stderr, "aldsim: fault file %s; faults unchanged\n", err);
        return;
    }
    faults_set(s, &f);
}

/* ---- requests ----------------------------------------------------------- */

/* Counts an answered write per register it touched (FC23: its write range). */
static void count_writes(struct server *s, const uint8_t *req, int len)
{
    int hdr = modbus_get_header_length(s->ctx);
    int crc = s->opt.rtu ? RTU_CRC_LEN : 0;
    fault_request_t fr;
    if (len - hdr - crc <= 0 ||
        fault_parse_request(req + hdr, (size_t)(len - hdr - crc), &fr) < 0)
        return;
    for (int i = 0; i < fr.nranges; i++) {
        int t = fr.range[i].table == REG_COIL ? 0 : fr.range[i].table == REG_HOLDING ? 1 : -1;
        if (t < 0 || (fr.function == 23 && i == 0))
            continue;   /* FC23's first range is what it reads */
        for (int a = fr.range[i].addr; a < fr.range[i].addr + fr.range[i].count; a++)
            if (a >= 0 && a < REACTOR_TABLE_SIZE)
                s->wcount[t][a]++;
    }
}

/* Answers the request in req[0..len) on c: normally, or with exception
 * code when code != 0. The model is brought up to date first, and a read is
 * counted before the answer is built so that the answer includes itself. */
static void answer(struct server *s, struct conn *c, const uint8_t *req, int len, int code)
{
    int hdr = modbus_get_header_length(s->ctx);
    enum req_kind kind = classify(req[hdr]);
    /* libmodbus sends nothing for an RTU broadcast (unit 0). */
    bool sent = !(s->opt.rtu && req[hdr - 1] == 0);
    int rc = 0;

    model_step(s);
    if (sent && (kind == REQ_READ || kind == REQ_READ_WRITE)) {
        reactor_count_read(s->reactor);
        s->reads++;
    }
    modbus_set_socket(s->ctx, c->fd);
    if (code) {
        if (sent)
            rc = modbus_reply_exception(s->ctx, req, code);
    } else {
        rc = modbus_reply(s->ctx, req, len, reactor_mapping(s->reactor));
        if (kind == REQ_WRITE || kind == REQ_READ_WRITE) {
            /* Even if sending failed, the image may have been written. */
            reactor_apply_writes(s->reactor);
            if (rc >= 0) {
                s->writes++;
                count_writes(s, req, len);
            }
        }
    }
    if (rc < 0)
        conn_failed(s, c);
}

/* Reads one request from c and does what the faults in effect say. */
static void serve_request(struct server *s, struct conn *c)
{
    uint8_t req[MAX_ADU];
    int hdr = modbus_get_header_length(s->ctx);
    int crc = s->opt.rtu ? RTU_CRC_LEN : 0;
    fault_request_t fr;
    int len, code = 0;

    modbus_set_socket(s->ctx, c->fd);
    len = modbus_receive(s->ctx, req);
    if (len < 0) {
        /* TCP EOF shows as ECONNRESET; anything else (timeout in
         * mid-request, garbage, a bad CRC) also ends a TCP connection. */
        if (errno != ECONNRESET)
            log_msg(LL_DEBUG, "bad request: %s", modbus_strerror(errno));
        conn_failed(s, c);
        return;
    }
    if (len == 0) {
        /* libmodbus ignored a request for another RTU unit and now takes
         * the next frame for that unit's answer. With no such unit on the
         * line that frame would be the master's next request, lost; so let
         * it look for the answer now, for FLUSH_SLEEP_US. */
        if (s->opt.rtu)
            (void)modbus_receive(s->ctx, req);
        return;
    }

    int unit = req[hdr - 1];
    if (!s->opt.rtu && unit != s->opt.unit && unit != 0 && unit != MODBUS_TCP_SLAVE) {
        model_step(s);
        if (modbus_reply_exception(s->ctx, req, MODBUS_EXCEPTION_GATEWAY_TARGET) < 0)
            conn_failed(s, c);
        return;
    }
    if (s->refuse_until_ns) {       /* RTU: a refusing device is deaf */
        s->applied.unanswered++;
        return;
    }

    /* libmodbus checked the length for the function code; a PDU too short
     * for our fields leaves fr without ranges. */
    (void)fault_parse_request(req + hdr, (size_t)(len - hdr - crc), &fr);
    switch (fault_decide(&s->faults, &fr, ++s->fault_seq, &s->fault_rng, &code)) {
    case FAULT_DROP:
        if (s->opt.rtu) {           /* a serial line cannot be closed: lose the frame */
            s->applied.unanswered++;
        } else {
            s->applied.dropped++;
            close_client(c);
        }
        return;
    case FAULT_SILENT:
        s->applied.unanswered++;
        return;
    case FAULT_EXCEPTION:
        s->applied.exceptions++;
        break;
    case FAULT_ANSWER:
        code = 0;
        break;
    }
    if (s->faults.latency_ms) {
        s->applied.delayed++;
        c->pending = true;
        c->due_ns = clock_mono_ns() + s->faults.latency_ms * NS_PER_MS;
        c->exception = code;
        c->req_len = len;
        memcpy(c->req, req, (size_t)len);
        return;
    }
    answer(s, c, req, len, code);
}

/* ---- main loop ---------------------------------------------------------- */

/* Opens the TCP listening socket or the serial line; fills s->opt.port
 * with the port bound. */
static int server_open(struct server *s)
{
    if (s->opt.rtu) {
        s->ctx = modbus_new_rtu(s->opt.rtu, s->opt.baud, s->opt.parity,
                                s->opt.data_bits, s->opt.stop_bits);
        if (!s->ctx || modbus_set_slave(s->ctx, s->opt.unit) < 0 ||
            modbus_connect(s->ctx) < 0) {
            log_msg(LL_ERROR, "cannot open %s: %s", s->opt.rtu, modbus_strerror(errno));
            return -1;
        }
        s->conns[0] = (struct conn){ .fd = modbus_get_socket(s->ctx) };
    } else {
        /* The context only frames requests and answers; we own the sockets. */
        s->ctx = modbus_new_tcp(s->opt.bind, s->opt.port);
        if (!s->ctx || listen_open(s) < 0) {
            log_msg(LL_ERROR, "cannot listen on %s:%d: %s", s->opt.bind, s->opt.port,
                    strerror(errno));
            return -1;
        }
    }
    modbus_set_byte_timeout(s->ctx, 0, BYTE_TIMEOUT_US);
    modbus_set_response_timeout(s->ctx, 0, FLUSH_SLEEP_US);
    return 0;
}

/* Milliseconds from now to the earliest of: the model tick, a pending
 * answer, the end of a refusal; rounded up, at least 0. */
static int next_timeout_ms(const struct server *s, int64_t now, int64_t next_tick)
{
    int64_t due = next_tick;

    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (s->conns[i].fd >= 0 && s->conns[i].pending && s->conns[i].due_ns < due)
            due = s->conns[i].due_ns;
    }
    if (s->refuse_until_ns && s->refuse_until_ns < due)
        due = s->refuse_until_ns;
    return due <= now ? 0 : (int)((due - now + NS_PER_MS - 1) / NS_PER_MS);
}

/* Sends the answers that are due. */
static void run_timers(struct server *s)
{
    int64_t now = clock_mono_ns();

    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct conn *c = &s->conns[i];
        if (c->fd >= 0 && c->pending && c->due_ns <= now) {
            c->pending = false;
            answer(s, c, c->req, c->req_len, c->exception);
        }
    }
    if (s->refuse_until_ns && s->refuse_until_ns <= now)
        refuse_end(s);
}

/* Runs until SIGTERM/SIGINT. Returns 0, or -1 if poll() failed or the
 * serial line hung up. */
static int server_run(struct server *s)
{
    struct pollfd pfd[1 + MAX_CLIENTS];
    int slot[1 + MAX_CLIENTS];              /* conns index of pfd[k] */
    int64_t next_tick = clock_mono_ns();

    while (!stop_requested) {
        int n = 0, first_conn;
        if (reload_requested) {
            reload_requested = 0;
            faults_reload(s);
        }
        if (s->listen_fd >= 0)
            pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
        first_conn = n;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct conn *c = &s->conns[i];
            if (c->fd < 0)
                continue;
            slot[n] = i;
            /* A connection waiting for its answer is not read; a TCP peer
             * that goes away meanwhile is noticed by POLLRDHUP. */
            pfd[n++] = (struct pollfd){
                .fd = c->fd,
                .events = !c->pending ? POLLIN : s->opt.rtu ? 0 : POLLRDHUP,
            };
        }

        int64_t now = clock_mono_ns();
        if (now >= next_tick) {
            model_step(s);
            next_tick += (int64_t)TICK_MS * NS_PER_MS;
            if (next_tick <= now)           /* fell behind: no catch-up burst */
                next_tick = now + (int64_t)TICK_MS * NS_PER_MS;
        }

        int ready = poll(pfd, (nfds_t)n, next_timeout_ms(s, now, next_tick));
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LL_ERROR, "poll: %s", strerror(errno));
            return -1;
        }
        for (int k = first_conn; k < n; k++) {
            struct conn *c = &s->conns[slot[k]];
            short ev = pfd[k].revents;
            if (c->fd != pfd[k].fd || ev == 0)
                continue;                   /* closed by a refusal meanwhile */
            if (s->opt.rtu && (ev & (POLLHUP | POLLERR))) {
                log_msg(LL_ERROR, "serial line %s hung up", s->opt.rtu);
                return -1;
            }
            if (c->pending)                 /* peer gone: its answer goes nowhere */
                close_client(c);
            else
                serve_request(s, c);
        }
        if (first_conn == 1 && s->listen_fd >= 0 && (pfd[0].revents & POLLIN))
            accept_client(s);
        run_timers(s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct server s = { .listen_fd = -1 };
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART: poll gets EINTR */
    char err[1024];
    fault_set_t faults;
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
    faults = s.opt.faults;
    if (s.opt.fault_file && fault_set_load(&faults, s.opt.fault_file, err, sizeof err) < 0) {
        fprintf(stderr, "aldsim: --fault-file: %s\n", err);
        return 2;
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        s.conns[i] = (struct conn){ .fd = -1 };
    /* Its own stream: the noise sequence of a seed does not depend on faults. */
    s.fault_rng = s.opt.seed ^ 0xA1D5F00DC0FFEE11ull;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a client gone mid-answer is an EPIPE, not a death */

    s.reactor = reactor_new(s.opt.seed);
    if (!s.reactor) {
        log_msg(LL_ERROR, "cannot create the reactor model: %s", strerror(errno));
        goto fail;
    }
    s.start_ns = clock_mono_ns();
    if (server_open(&s) < 0)
        goto fail;
    /* The port is bound (and known) before a refuse_ms at start closes it;
     * the ready line below comes once the faults are in effect. */
    if (s.opt.fault_file || !fault_set_empty(&faults))
        faults_set(&s, &faults);
    if (s.opt.rtu)
        printf("aldsim: serving RTU on %s unit %d\n", s.opt.rtu, s.opt.unit);
    else
        printf("aldsim: listening on %s:%d unit %d\n", s.opt.bind, s.opt.port, s.opt.unit);
    fflush(stdout);

    if (server_run(&s) < 0)
        goto fail;
    status = 0;
    fprintf(stderr, "aldsim: served %llu read requests, %llu write requests\n",
            (unsigned long long)s.reads, (unsigned long long)s.writes);
    print_write_counts(&s);
    fprintf(stderr, "aldsim: faults applied: %llu answers delayed, %llu requests unanswered, "
            "%llu exceptions, %llu connections dropped, %llu refusals\n",
            (unsigned long long)s.applied.delayed, (unsigned long long)s.applied.unanswered,
            (unsigned long long)s.applied.exceptions, (unsigned long long)s.applied.dropped,
            (unsigned long long)s.applied.refusals);

fail:
    if (!s.opt.rtu) {
        for (int i = 0; i < MAX_CLIENTS; i++)
            close_client(&s.conns[i]);
    }
    listen_close(&s);
    if (s.opt.rtu && s.ctx)
        modbus_close(s.ctx);    /* the serial line is the context's own */
    modbus_free(s.ctx);         /* does not close TCP sockets; we did */
    s.ctx = NULL;
    reactor_free(s.reactor);
    s.reactor = NULL;
    return status;
}
