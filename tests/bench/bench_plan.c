/* bench_plan.c — Modbus requests per poll cycle for a machine's map, with
 * the planner (plan.h) vs one request per parameter, and the time a cycle
 * takes each way against the real device (aldsim over loopback).
 *
 *   bench_plan DSN MACHINE CYCLES */
#include <errno.h>
#include <libpq-fe.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "acq/plan.h"
#include "acq/pmap.h"
#include "cache/pmapdb.h"

static int read_req(modbus_t *ctx, regtype_t t, int addr, int n)
{
    uint16_t regs[128];
    uint8_t bits[2000];
    switch (t) {
    case REG_COIL: return modbus_read_bits(ctx, addr, n, bits);
    case REG_DISCRETE: return modbus_read_input_bits(ctx, addr, n, bits);
    case REG_HOLDING: return modbus_read_registers(ctx, addr, n, regs);
    case REG_INPUT: return modbus_read_input_registers(ctx, addr, n, regs);
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_plan DSN MACHINE CYCLES\n");
        return 2;
    }
    int cycles = atoi(argv[3]);
    char err[256];
    PGconn *conn = PQconnectdb(argv[1]);
    pmap_t *map = pmapdb_load(conn, argv[2], err, sizeof err);
    PQfinish(conn);
    if (!map) {
        fprintf(stderr, "bench_plan: %s\n", err);
        return 1;
    }
    size_t n = pmap_count(map);
    plan_item_t *items = calloc(n, sizeof *items);
    size_t *order = calloc(n, sizeof *order);
    plan_req_t *reqs = calloc(n, sizeof *reqs);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const param_meta_t *p = pmap_at(map, i);
        if (p->valid)
            items[k++] = (plan_item_t){ .table = p->table, .address = (uint16_t)p->address,
                                        .count = (uint16_t)regcodec_words(p->type) };
    }
    plan_limits_t lim = { .max_registers = 125, .max_bits = 2000, .max_gap = 8 };
    size_t nreq = plan_build(items, k, &lim, order, reqs);

    const param_meta_t *p0 = pmap_at(map, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", p0->port);
    modbus_t *ctx = modbus_new_tcp_pi(p0->host, port);
    modbus_set_slave(ctx, p0->unit_id);
    if (modbus_connect(ctx) < 0) {
        fprintf(stderr, "bench_plan: connect %s:%s: %s\n", p0->host, port, modbus_strerror(errno));
        return 1;
    }
    double t0 = ((double)clock_mono_ns() / 1e9);
    for (int c = 0; c < cycles; c++)
        for (size_t r = 0; r < nreq; r++)
            if (read_req(ctx, reqs[r].table, reqs[r].start, reqs[r].count) < 0)
                return 1;
    double planned = (((double)clock_mono_ns() / 1e9) - t0) / cycles;
    t0 = ((double)clock_mono_ns() / 1e9);
    for (int c = 0; c < cycles; c++)
        for (size_t i = 0; i < k; i++)
            if (read_req(ctx, items[i].table, items[i].address, items[i].count) < 0)
                return 1;
    double single = (((double)clock_mono_ns() / 1e9) - t0) / cycles;
    printf("parameters %zu\nrequests_planned %zu\nrequests_single %zu\n"
           "cycle_ms_planned %.3f\ncycle_ms_single %.3f\n",
           k, nreq, k, planned * 1e3, single * 1e3);
    modbus_close(ctx);
    modbus_free(ctx);
    free(items);
    free(order);
    free(reqs);
    pmap_free(map);
    return 0;
}
