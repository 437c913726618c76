/* fuzz_modbus_response.c — libFuzzer target: Modbus responses as they
 * arrive on the wire, through the libmodbus client the recorder uses, then
 * decoded with regcodec for every data type × word order.
 *
 * A libmodbus client context (TCP or RTU framing) sits on one end of a
 * socketpair; the other end holds the fuzz bytes as the "response" to one
 * FC1/FC2/FC3/FC4 read request and is then shut, so a short answer ends at
 * once instead of waiting for a timeout. Garbage must only ever give an
 * error (-1), never a crash, a hang or a successful read of the wrong
 * length; a successful read must not write past the caller's buffer and
 * must decode to values that encode back to the same registers.
 *
 * Input layout (the first 4 bytes steer, the rest is the wire):
 *   [0] bits 0-1 function (FC1 + n), bit 2 RTU framing instead of TCP,
 *       bit 3 "fix the frame": put the right transaction id, protocol id
 *       and length (TCP) or unit id and CRC (RTU) around the bytes, so that
 *       the fuzzer gets past the framing into the PDU quickly
 *   [1..2] quantity requested, big-endian, folded into the valid range
 *   [3] unit id, folded into 1..247
 *
 * libmodbus itself is not instrumented (it is Debian's shared library), so
 * coverage guidance comes from this harness and regcodec; the fix-up bit
 * is what lets random bytes reach libmodbus' PDU checks. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "acq/regcodec.h"

#define GUARD      16        /* items after the caller's buffer, checked untouched */
#define GUARD_BYTE 0xA5
#define MAX_WIRE   1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), sent
 * low byte first. */
static uint16_t crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

/* Wire bytes for the response: the fuzz payload, framed when fix is set. */
static size_t frame(uint8_t *out, const uint8_t *pay, size_t n, int rtu, int fix, int unit)
{
    size_t len = 0;

    if (!fix) {
        memcpy(out, pay, n);
        return n;
    }
    if (rtu) {
        out[len++] = (uint8_t)unit;
        memcpy(out + len, pay, n);
        len += n;
        uint16_t crc = crc16(out, len);
        out[len++] = (uint8_t)(crc & 0xFF);
        out[len++] = (uint8_t)(crc >> 8);
        return len;
    }
    /* MBAP: transaction 1 (the first request of a fresh context), protocol
     * 0, length of unit id + PDU, unit id. */
    out[0] = 0;
    out[1] = 1;
    out[2] = 0;
    out[3] = 0;
    out[4] = (uint8_t)((n + 1) >> 8);
    out[5] = (uint8_t)(n + 1);
    out[6] = (uint8_t)unit;
    memcpy(out + 7, pay, n);
    return n + 7;
}

/* Every type × word order at every offset that fits: decoding must give a
 * value of the type's range that encodes back to the same words. */
static void decode_all(const uint16_t *regs, int n)
{
    static const dtype_t types[] = { DT_U16, DT_I16, DT_U32, DT_I32, DT_F32, DT_F64 };
    static const worder_t orders[] = { WO_ABCD, WO_CDAB, WO_BADC, WO_DCBA };

    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int w = regcodec_words(types[t]);
        for (int off = 0; off + w <= n; off++) {
            for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++) {
                uint16_t back[4];
                double v = regcodec_decode(regs + off, types[t], orders[o]);
                if (isnan(v))
                    continue;   /* NaN payloads need not survive a round trip */
                regcodec_encode(v, types[t], orders[o], back);
                if (memcmp(back, regs + off, (size_t)w * sizeof back[0]) != 0) {
                    fprintf(stderr, "fuzz: regcodec round trip: %s %s at %d gave %.17g\n",
                            regcodec_type_name(types[t]), regcodec_order_name(orders[o]),
                            off, v);
                    abort();
                }
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t wire[MAX_WIRE + 16];
    int sv[2];

    if (size < 4 || size - 4 > MAX_WIRE)
        return 0;
    int fc = MODBUS_FC_READ_COILS + (data[0] & 3);
    int rtu = (data[0] >> 2) & 1, fix = (data[0] >> 3) & 1;
    int bits = fc == MODBUS_FC_READ_COILS || fc == MODBUS_FC_READ_DISCRETE_INPUTS;
    int max = bits ? MODBUS_MAX_READ_BITS : MODBUS_MAX_READ_REGISTERS;
    int count = 1 + ((data[1] << 8) | data[2]) % max;
    int unit = 1 + data[3] % 247;
    int addr = 7;
    size_t wlen = frame(wire, data + 4, size - 4, rtu, fix, unit);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    modbus_t *m = rtu ? modbus_new_rtu("/dev/null", 19200, 'N', 8, 1)
                      : modbus_new_tcp("127.0.0.1", 502);
    if (!m || modbus_set_slave(m, unit) < 0)
        abort();
    modbus_set_socket(m, sv[0]);
    modbus_set_response_timeout(m, 0, 50000);
    modbus_set_byte_timeout(m, 0, 50000);
    if (write(sv[1], wire, wlen) != (ssize_t)wlen)
        abort();
    shutdown(sv[1], SHUT_WR);

    /* The caller's buffer plus a guard that must stay untouched. */
    size_t item = bits ? sizeof(uint8_t) : sizeof(uint16_t);
    uint8_t *buf = malloc(((size_t)count + GUARD) * item);
    if (!buf)
        abort();
    memset(buf, GUARD_BYTE, ((size_t)count + GUARD) * item);
    int rc = -1;
    switch (fc) {
    case MODBUS_FC_READ_COILS:
        rc = modbus_read_bits(m, addr, count, buf);
        break;
    case MODBUS_FC_READ_DISCRETE_INPUTS:
        rc = modbus_read_input_bits(m, addr, count, buf);
        break;
    case MODBUS_FC_READ_HOLDING_REGISTERS:
        rc = modbus_read_registers(m, addr, count, (uint16_t *)(void *)buf);
        break;
    case MODBUS_FC_READ_INPUT_REGISTERS:
        rc = modbus_read_input_registers(m, addr, count, (uint16_t *)(void *)buf);
        break;
    }
    for (size_t i = (size_t)count * item; i < ((size_t)count + GUARD) * item; i++) {
        if (buf[i] != GUARD_BYTE) {
            fprintf(stderr, "fuzz: FC%d: libmodbus wrote past %d items\n", fc, count);
            abort();
        }
    }
    if (rc != -1 && rc != count) {
        fprintf(stderr, "fuzz: FC%d: read of %d returned %d\n", fc, count, rc);
        abort();
    }
    if (rc == count && bits) {
        for (int i = 0; i < count; i++) {
            uint16_t w = buf[i];
            if (buf[i] > 1 || regcodec_decode(&w, DT_BOOL, WO_ABCD) != buf[i]) {
                fprintf(stderr, "fuzz: FC%d: bit %d reads %d\n", fc, i, buf[i]);
                abort();
            }
        }
    } else if (rc == count) {
        decode_all((const uint16_t *)(const void *)buf, count);
    }

    free(buf);
    modbus_free(m);   /* does not close the socket */
    close(sv[0]);
    close(sv[1]);
    return 0;
}
