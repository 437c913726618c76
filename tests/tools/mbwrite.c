/* mbwrite.c — write holding registers or coils of a Modbus device, for
 * tests that change what a device serves while the recorder polls it, or
 * put raw words into its registers that no codec of ours produced.
 *
 *   mbwrite HOST:PORT [--unit N] holding|coil ADDR VALUE...
 *   mbwrite --rtu DEVICE [--baud N] [--parity N|E|O] [--unit N] holding|coil ADDR VALUE...
 *
 * holding: FC16 with the raw 16-bit words given (0..65535); coil: FC15 with
 * 0/1. RTU framing is 8 data bits, 1 stop bit (19200 N by default). Prints
 * "ok" and exits 0, or prints the error and exits 1; 2 on bad usage. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

static int usage(void)
{
    fprintf(stderr, "usage: mbwrite (HOST:PORT | --rtu DEVICE [--baud N] [--parity N|E|O])\n"
                    "               [--unit N] holding|coil ADDR VALUE...\n");
    return 2;
}

static int parse(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    int a = 1, unit = 1, baud = 19200;
    char parity = 'N';
    long addr, v;
    uint16_t regs[123];
    uint8_t bits[1968];
    const char *rtu = NULL;
    char host[256] = "";
    char *colon = NULL;

    if (argc < 5)
        return usage();
    if (strcmp(argv[a], "--rtu") == 0) {
        rtu = argv[a + 1];
        a += 2;
    } else {
        snprintf(host, sizeof host, "%s", argv[a++]);
        colon = strrchr(host, ':');
        if (!colon)
            return usage();
        *colon = '\0';
    }
    while (a + 1 < argc && strncmp(argv[a], "--", 2) == 0) {
        const char *opt = argv[a], *arg = argv[a + 1];
        if (strcmp(opt, "--unit") == 0 && parse(arg, 0, 255, &v) == 0)
            unit = (int)v;
        else if (rtu && strcmp(opt, "--baud") == 0 && parse(arg, 300, 921600, &v) == 0)
            baud = (int)v;
        else if (rtu && strcmp(opt, "--parity") == 0 && strlen(arg) == 1 && strchr("NEO", arg[0]))
            parity = arg[0];
        else
            return usage();
        a += 2;
    }
    if (argc - a < 3)
        return usage();
    const char *table = argv[a++];
    bool coil = strcmp(table, "coil") == 0;
    if (!coil && strcmp(table, "holding") != 0)
        return usage();
    if (parse(argv[a++], 0, 65535, &addr) < 0)
        return usage();
    int n = argc - a;
    if (n > (coil ? 1968 : 123))
        return usage();
    for (int i = 0; i < n; i++) {
        if (parse(argv[a + i], 0, coil ? 1 : 65535, &v) < 0)
            return usage();
        if (coil)
            bits[i] = (uint8_t)v;
        else
            regs[i] = (uint16_t)v;
    }
    modbus_t *ctx = rtu ? modbus_new_rtu(rtu, baud, parity, 8, 1)
                        : modbus_new_tcp_pi(host, colon + 1);
    if (!ctx || modbus_set_slave(ctx, unit) < 0 || modbus_connect(ctx) < 0) {
        if (rtu)
            printf("error opening %s: %s\n", rtu, modbus_strerror(errno));
        else
            printf("error connecting to %s:%s: %s\n", host, colon + 1, modbus_strerror(errno));
        modbus_free(ctx);
        return 1;
    }
    int rc = coil ? modbus_write_bits(ctx, (int)addr, n, bits)
                  : modbus_write_registers(ctx, (int)addr, n, regs);
    if (rc != n)
        printf("error writing %s %ld: %s\n", table, addr, modbus_strerror(errno));
    else
        printf("ok\n");
    modbus_close(ctx);
    modbus_free(ctx);
    return rc == n ? 0 : 1;
}
