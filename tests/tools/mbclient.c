/* mbclient.c — a small libmodbus client for the tests: reads registers or
 * bits over TCP or RTU and prints what came back, one line per read.
 *
 *   mbclient (--tcp HOST:PORT | --rtu DEVICE [--baud N] [--parity N|E|O]
 *            [--data-bits 7|8] [--stop-bits 1|2]) [--unit N] [--timeout MS]
 *            [--repeat N] [--type T --order O] TABLE ADDR [COUNT]
 *
 * TABLE is coil|discrete|holding|input. Each read prints
 *   ok MS V...            the values (raw words or bits, decimal), or with
 *                         --type the one value decoded (regcodec, %.17g)
 *   exception CODE MS     the device answered Modbus exception CODE
 *   error MS MESSAGE      timeout, connection reset, bad answer
 * where MS is how long the read took, in milliseconds (one decimal).
 * --repeat reads N times on the same connection. Exit 0 when every read
 * was ok, 1 otherwise, 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

#include "common/clock.h"
#include "acq/regcodec.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: mbclient (--tcp HOST:PORT | --rtu DEVICE [--baud N] [--parity N|E|O]\n"
            "                [--data-bits 7|8] [--stop-bits 1|2]) [--unit N] [--timeout MS]\n"
            "                [--repeat N] [--type T --order O] TABLE ADDR [COUNT]\n");
}

/* One read of count items at addr; prints its line. Returns 0 if ok. */
static int read_once(modbus_t *m, regtype_t table, int addr, int count, const dtype_t *type,
                     worder_t order)
{
    uint16_t regs[MODBUS_MAX_READ_REGISTERS];
    uint8_t bits[MODBUS_MAX_READ_BITS];
    double t0 = ((double)clock_mono_ns() / 1e6);
    int rc = -1;

    switch (table) {
    case REG_COIL:
        rc = modbus_read_bits(m, addr, count, bits);
        break;
    case REG_DISCRETE:
        rc = modbus_read_input_bits(m, addr, count, bits);
        break;
    case REG_HOLDING:
        rc = modbus_read_registers(m, addr, count, regs);
        break;
    case REG_INPUT:
        rc = modbus_read_input_registers(m, addr, count, regs);
        break;
    }
    double took = ((double)clock_mono_ns() / 1e6) - t0;
    if (rc != count) {
        int e = errno;
        if (rc < 0 && e > MODBUS_ENOBASE && e < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX)
            printf("exception %d %.1f\n", e - MODBUS_ENOBASE, took);
        else
            printf("error %.1f %s\n", took, rc < 0 ? modbus_strerror(e) : "short answer");
        return -1;
    }
    printf("ok %.1f", took);
    if (type && regcodec_fits(table, DT_BOOL)) {
        printf(" %d", bits[0]);
    } else if (type) {
        printf(" %.17g", regcodec_decode(regs, *type, order));
    } else {
        for (int i = 0; i < count; i++)
            printf(" %d", regcodec_fits(table, DT_BOOL) ? bits[i] : regs[i]);
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { .name = "tcp", .has_arg = required_argument, .val = 't' },
        { .name = "rtu", .has_arg = required_argument, .val = 'r' },
        { .name = "baud", .has_arg = required_argument, .val = 'B' },
        { .name = "parity", .has_arg = required_argument, .val = 'P' },
        { .name = "data-bits", .has_arg = required_argument, .val = 'D' },
        { .name = "stop-bits", .has_arg = required_argument, .val = 'S' },
        { .name = "unit", .has_arg = required_argument, .val = 'u' },
        { .name = "timeout", .has_arg = required_argument, .val = 'T' },
        { .name = "repeat", .has_arg = required_argument, .val = 'n' },
        { .name = "type", .has_arg = required_argument, .val = 'y' },
        { .name = "order", .has_arg = required_argument, .val = 'o' },
        { 0 },
    };
    const char *tcp = NULL, *rtu = NULL;
    int baud = 19200, data_bits = 8, stop_bits = 1, unit = 1, timeout_ms = 1000, repeat = 1;
    char parity = 'N';
    dtype_t type;
    worder_t order = WO_ABCD;
    bool typed = false;
    regtype_t table;
    modbus_t *m = NULL;
    int c, failed = 0;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't': tcp = optarg; break;
        case 'r': rtu = optarg; break;
        case 'B': baud = atoi(optarg); break;
        case 'P': parity = optarg[0]; break;
        case 'D': data_bits = atoi(optarg); break;
        case 'S': stop_bits = atoi(optarg); break;
        case 'u': unit = atoi(optarg); break;
        case 'T': timeout_ms = atoi(optarg); break;
        case 'n': repeat = atoi(optarg); break;
        case 'y':
            if (regcodec_parse_type(optarg, &type) < 0) {
                fprintf(stderr, "mbclient: unknown type \"%s\"\n", optarg);
                return 2;
            }
            typed = true;
            break;
        case 'o':
            if (regcodec_parse_order(optarg, &order) < 0) {
                fprintf(stderr, "mbclient: unknown word order \"%s\"\n", optarg);
                return 2;
            }
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!tcp == !rtu || argc - optind < 2 || argc - optind > 3 ||
        regcodec_parse_regtype(argv[optind], &table) < 0 || timeout_ms < 1 || repeat < 1) {
        usage();
        return 2;
    }
    int addr = atoi(argv[optind + 1]);
    int count = typed ? regcodec_words(type) : argc - optind == 3 ? atoi(argv[optind + 2]) : 1;
    if (count < 1 || count > (regcodec_fits(table, DT_BOOL) ? MODBUS_MAX_READ_BITS
                                                            : MODBUS_MAX_READ_REGISTERS) ||
        (typed && !regcodec_fits(table, type))) {
        fprintf(stderr, "mbclient: bad count or type for table %s\n", argv[optind]);
        return 2;
    }

    if (tcp) {
        char host[256];
        const char *colon = strrchr(tcp, ':');
        if (!colon || (size_t)(colon - tcp) >= sizeof host) {
            usage();
            return 2;
        }
        memcpy(host, tcp, (size_t)(colon - tcp));
        host[colon - tcp] = '\0';
        m = modbus_new_tcp(host, atoi(colon + 1));
    } else {
        m = modbus_new_rtu(rtu, baud, parity, data_bits, stop_bits);
    }
    if (!m || modbus_set_slave(m, unit) < 0) {
        fprintf(stderr, "mbclient: %s\n", modbus_strerror(errno));
        modbus_free(m);
        return 2;
    }
    modbus_set_response_timeout(m, (uint32_t)(timeout_ms / 1000),
                                (uint32_t)(timeout_ms % 1000) * 1000);
    if (modbus_connect(m) < 0) {
        printf("error 0.0 connect: %s\n", modbus_strerror(errno));
        modbus_free(m);
        return 1;
    }
    for (int i = 0; i < repeat; i++) {
        if (read_once(m, table, addr, count, typed ? &type : NULL, order) < 0) {
            failed++;
            /* A timed-out RTU answer may still arrive: don't read it as the
             * next answer. */
            modbus_flush(m);
        }
    }
    modbus_close(m);
    modbus_free(m);
    return failed ? 1 : 0;
}
