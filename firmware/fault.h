/* fault.h — aldsim's fault injection: the fault specs, and what a device
 * with those faults does with one request.
 *
 * A fault set is what `--fault SPEC` options and a `--fault-file` describe
 * (syntax: firmware/REGISTERS.md, "Breaking the device on purpose"):
 *
 *   latency=MS                       every answer is sent MS ms late
 *   silent                           no request is answered
 *   freeze                           the reactor model stands still: every
 *                                    request is answered, with the same
 *                                    values (a hung controller whose Modbus
 *                                    stack goes on answering)
 *   silent_rate=P                    a fraction P (0..1) is not answered
 *   exception=TABLE:ADDR[-ADDR]:CODE requests touching those addresses get
 *                                    exception CODE (repeatable)
 *   exception_rate=P:CODE            a fraction P gets exception CODE
 *   drop_every=N                     every N-th request closes the connection
 *   refuse_ms=MS                     connections are refused for MS ms
 *   max_registers=N, max_bits=N      larger requests get exception 3
 *
 * No I/O and no clock here: aldsim.c owns the sockets and timers and asks
 * fault_decide() what to do with each request; the unit test drives both
 * halves directly. */
#ifndef ALDSIM_FAULT_H
#define ALDSIM_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acq/regcodec.h"

#define FAULT_MAX_EXCEPTIONS 32
#define FAULT_MAX_LATENCY_MS 600000    /* 10 min */
#define FAULT_MAX_REFUSE_MS  3600000   /* 1 h */
/* Longest canonical text of a set (fault_set_format()). */
#define FAULT_TEXT_MAX       2048

/* exception=TABLE:FIRST-LAST:CODE */
typedef struct fault_range {
    regtype_t table;
    int first, last;          /* inclusive, 0..65535 */
    int code;                 /* Modbus exception code, 1..11 */
} fault_range_t;

/* A plain value: copy it, compare it, zero means "no faults". */
typedef struct fault_set {
    int latency_ms;           /* 0: answers at once */
    bool silent;
    bool freeze;              /* the model is not stepped (aldsim.c) */
    double silent_rate;       /* 0..1 */
    int nranges;
    fault_range_t ranges[FAULT_MAX_EXCEPTIONS];
    double exception_rate;    /* 0..1 */
    int exception_rate_code;
    int drop_every;           /* 0: off */
    int refuse_ms;            /* 0: off */
    int max_registers;        /* 0: no limit of our own */
    int max_bits;
    int max_clients;          /* TCP: 0 no limit of our own; else a further
                               * connection is accepted and closed at once */
} fault_set_t;

/* The tables and addresses one request touches. */
typedef struct fault_request {
    int function;             /* Modbus function code */
    bool is_read;             /* FC1-FC4, FC23 */
    int nranges;              /* 0 (e.g. report slave id), 1, or 2 (FC23) */
    struct {
        regtype_t table;
        int addr, count;
    } range[2];
} fault_request_t;

/* What the device does with a request. */
enum fault_action {
    FAULT_ANSWER,             /* answer normally (after latency_ms) */
    FAULT_EXCEPTION,          /* answer with an exception (after latency_ms) */
    FAULT_SILENT,             /* read it, never answer */
    FAULT_DROP,               /* close the connection instead of answering */
};

/* Empties f: no faults. */
void fault_set_clear(fault_set_t *f);

/* True when f holds no fault. */
bool fault_set_empty(const fault_set_t *f);

/* Adds one spec ("latency=200", "exception=input:20-21:2") to f. Every
 * key but "exception" may be given once per set. Returns 0, or -1 with a
 * message naming the spec in err (f unchanged). */
int fault_set_add(fault_set_t *f, const char *spec, char *err, size_t errlen);

/* Adds the specs of a fault file to f: one spec per line; blank lines and
 * '#' comments (whole line or after a spec) are ignored. All or nothing:
 * returns 0, or -1 with "path:line: message" (or the open error) in err and
 * f unchanged. */
int fault_set_load(fault_set_t *f, const char *path, char *err, size_t errlen);

/* Canonical text of f: its specs separated by single spaces in the order of
 * the list above (exceptions in the order given), or "none". Truncated to
 * len - 1 characters; FAULT_TEXT_MAX always suffices. */
void fault_set_format(const fault_set_t *f, char *buf, size_t len);

/* Fills *req from a request PDU (function code first, no unit id, no
 * checksum) of pdu_len bytes as libmodbus received it. Function codes
 * without addresses give nranges 0. Returns 0, or -1 when the PDU is too
 * short for its function code. */
int fault_parse_request(const uint8_t *pdu, size_t pdu_len, fault_request_t *req);

/* Decides what happens to req, the seq-th request (1, 2, ...) since f was
 * loaded. Checked in this order: drop_every (seq a multiple of N), silent,
 * silent_rate, max_registers/max_bits (exception 3), exception ranges (the
 * first range touched), exception_rate. Rates draw from *rng (splitmix64
 * state) only when non-zero, so a seed gives the same decisions for the same
 * request sequence. Sets *code for FAULT_EXCEPTION. */
enum fault_action fault_decide(const fault_set_t *f, const fault_request_t *req,
                               uint64_t seq, uint64_t *rng, int *code);

#endif
