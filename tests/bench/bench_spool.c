/* bench_spool.c — the store-and-forward path on the benchmark rows
 * (bench_rows.h), for tests/bench/run.sh to compare with psql \copy of the
 * same rows in the same run:
 *
 *   bench_spool write SPOOL ROWS BATCH_ROWS PROCESS_ID
 *       appends ROWS rows to the spool file SPOOL in batches, each one
 *       SQLite transaction made durable (fsync) as aldrecd does
 *       -> "rows_per_s N", "seconds S", "batches B"
 *   bench_spool drain DSN SPOOL [DRAIN_BATCHES DRAIN_ROWS]
 *       runs the forwarder thread on SPOOL until it is empty
 *       -> "rows_per_s N", "seconds S", "transactions T" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_rows.h"
#include "store/forwarder.h"
#include "common/log.h"
#include "store/pgcopy.h"
#include "store/spool.h"

static spool_t *open_spool(const char *path)
{
    spool_open_info_t info;
    char err[512];
    spool_opts_t o = { .path = path, .max_bytes = 1LL << 40, .policy = SPOOL_DROP_OLDEST };
    spool_t *sp = spool_open(&o, &info, err, sizeof err);
    if (!sp)
        fprintf(stderr, "bench_spool: %s\n", err);
    return sp;
}

static int bench_write(const char *path, long rows, long batch, long long proc)
{
    spool_t *sp = open_spool(path);
    pgcopy_t *p = pgcopy_new();
    char err[512];
    long batches = 0;
    if (!sp || !p)
        return 1;

    double t0 = ((double)clock_mono_ns() / 1e9);
    for (long i = 0; i < rows;) {
        long start = i, end = i + batch < rows ? i + batch : rows;
        for (; i < end; i++) {
            sample_t s = bench_row(i);
            pgcopy_add(p, proc, &s);
        }
        size_t len;
        uint8_t *d = pgcopy_take(p, &len);
        batch_t b = { .kind = BATCH_POINTS, .process_id = proc, .rows = (uint32_t)(end - start),
                      .first_ts_us = bench_row(start).ts_us,
                      .last_ts_us = bench_row(end - 1).ts_us, .data = d, .len = len };
        spool_append_result_t res;
        int rc = spool_append(sp, &b, &res, err, sizeof err);
        free(d);
        if (rc < 0 || !res.stored) {
            fprintf(stderr, "bench_spool: append: %s\n", rc < 0 ? err : "dropped");
            return 1;
        }
        batches++;
    }
    double took = ((double)clock_mono_ns() / 1e9) - t0;
    printf("rows_per_s %.0f\nseconds %.3f\nbatches %ld\n", (double)rows / took, took, batches);
    pgcopy_free(p);
    spool_close(sp);
    return 0;
}

static int bench_drain(const char *dsn, const char *path, size_t nb, size_t nr)
{
    spool_t *sp = open_spool(path);
    char err[512];
    if (!sp)
        return 1;
    spool_stats_t st;
    spool_get_stats(sp, &st);
    uint64_t rows = st.rows;
    forwarder_opts_t fo = { .conninfo = dsn, .recorder_id = "bench-drain", .timeout_ms = 60000,
                            .drain_batches = nb, .drain_rows = nr };
    double t0 = ((double)clock_mono_ns() / 1e9);
    forwarder_t *f = forwarder_start(&fo, sp, err, sizeof err);
    if (!f) {
        fprintf(stderr, "bench_spool: %s\n", err);
        return 1;
    }
    for (;;) {
        spool_get_stats(sp, &st);
        if (st.batches == 0)
            break;
        forwarder_stats_t fs;
        forwarder_get_stats(f, &fs);
        if (fs.link == LINK_SPOOLING && fs.last_error[0]) {
            fprintf(stderr, "bench_spool: %s\n", fs.last_error);
            return 1;
        }
        usleep(5000);
    }
    double took = ((double)clock_mono_ns() / 1e9) - t0;
    forwarder_stats_t fs;
    forwarder_get_stats(f, &fs);
    forwarder_stop(f, 1000);
    printf("rows_per_s %.0f\nseconds %.3f\ntransactions %llu\nquarantined %llu\n",
           (double)rows / took, took, (unsigned long long)fs.transactions,
           (unsigned long long)fs.quarantined_batches);
    spool_close(sp);
    return fs.quarantined_batches ? 1 : 0;
}

int main(int argc, char **argv)
{
    log_init("bench_spool", LL_WARN);
    if (argc == 6 && strcmp(argv[1], "write") == 0)
        return bench_write(argv[2], atol(argv[3]), atol(argv[4]), atoll(argv[5]));
    if ((argc == 4 || argc == 6) && strcmp(argv[1], "drain") == 0)
        return bench_drain(argv[2], argv[3], argc == 6 ? (size_t)atol(argv[4]) : 32,
                           argc == 6 ? (size_t)atol(argv[5]) : 100000);
    fprintf(stderr, "usage: bench_spool write SPOOL ROWS BATCH_ROWS PROCESS_ID\n"
                    "       bench_spool drain DSN SPOOL [DRAIN_BATCHES DRAIN_ROWS]\n");
    return 2;
}
