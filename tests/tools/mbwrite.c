/* mbwrite.c — write holding registers or coils of a Modbus TCP device, for
 * tests that change what a device serves while the recorder polls it.
 *
 *   mbwrite HOST:PORT [--unit N] holding|coil ADDR VALUE...
 *
 * holding: FC16 with the raw 16-bit words given (0..65535); coil: FC15 with
 * 0/1. Prints "ok" and exits 0, or prints the error and exits 1; 2 on bad
 * usage. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

static int usage(void)
{
    fprintf(stderr, "usage: mbwrite HOST:PORT [--unit N] holding|coil ADDR VALUE...\n");
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
    int a = 1, unit = 1;
    long addr, v;
    uint16_t regs[123];
    uint8_t bits[1968];

    if (argc < 5)
        return usage();
    char host[256];
    snprintf(host, sizeof host, "%s", argv[a++]);
    char *colon = strrchr(host, ':');
    if (!colon)
        return usage();
    *colon = '\0';
    if (strcmp(argv[a], "--unit") == 0) {
        if (a + 1 >= argc || parse(argv[a + 1], 0, 255, &v) < 0)
            return usage();
        unit = (int)v;
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
    modbus_t *ctx = modbus_new_tcp_pi(host, colon + 1);
    if (!ctx || modbus_set_slave(ctx, unit) < 0 || modbus_connect(ctx) < 0) {
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
