/* bench_copy.c — our writer path (pgcopy encoding + pgsink: one transaction
 * with a ledger row per batch) on ROWS synthetic points; also writes the same
 * rows as one binary COPY file with our encoder, and as text COPY input, from
 * which tests/bench/run.sh has PostgreSQL make the reference binary file
 * (COPY FROM text, COPY OUT binary) that the psql \copy reference loads and
 * that our file must equal byte for byte.
 *
 *   bench_copy DSN ROWS BATCH_ROWS OUT.bin PROCESS_ID [RECORDER_ID]
 *                                                       -> prints "rows_per_s N"
 *       (RECORDER_ID, default "bench": a writer of its own in the ledger, as
 *       each aldrecd of a fleet is; tests/bench/fleet.sh runs several)
 *   bench_copy --file-only ROWS OUT.bin PROCESS_ID      -> writes OUT.bin only
 *   bench_copy --text-only ROWS OUT.txt PROCESS_ID      -> the rows as text COPY
 *       (columns process_id, parameter_id, ts, value, quality; no pgcopy) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_rows.h"
#include "store/pgcopy.h"
#include "store/pgsink.h"

static int write_file(long rows, const char *path, long long proc)
{
    pgcopy_t *p = pgcopy_new();
    for (long i = 0; i < rows; i++) {
        sample_t s = bench_row(i);
        pgcopy_add(p, proc, &s);
    }
    size_t len;
    uint8_t *d = pgcopy_take(p, &len);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    free(d);
    pgcopy_free(p);
    return 0;
}

/* The rows in COPY's text format, written without pgcopy: timestamps as
 * UTC text with microseconds, values as %.17g (read back exactly). */
static int write_text(long rows, const char *path, long long proc)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    for (long i = 0; i < rows; i++) {
        sample_t s = bench_row(i);
        time_t secs = (time_t)(s.ts_us / 1000000);
        long us = (long)(s.ts_us % 1000000);
        struct tm tm;
        char ts[32], value[32];
        gmtime_r(&secs, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
        if (s.has_value)
            snprintf(value, sizeof value, "%.17g", s.value);
        else
            snprintf(value, sizeof value, "\\N");
        fprintf(f, "%lld\t%d\t%s.%06ld+00\t%s\t%d\n", proc, s.parameter_id, ts, us, value,
                s.quality);
    }
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--file-only") == 0)
        return write_file(atol(argv[2]), argv[3], atoll(argv[4]));
    if (argc == 5 && strcmp(argv[1], "--text-only") == 0)
        return write_text(atol(argv[2]), argv[3], atoll(argv[4]));
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: bench_copy DSN ROWS BATCH_ROWS OUT.bin PROCESS_ID [RECORDER_ID]\n");
        return 2;
    }
    const char *dsn = argv[1];
    long rows = atol(argv[2]), batch = atol(argv[3]);
    long long proc = atoll(argv[5]);
    pgsink_t *sink = pgsink_new(dsn, argc > 6 ? argv[6] : "bench", 60000);
    pgcopy_t *p = pgcopy_new();
    char err[256];
    int64_t seq = 0;

    double t0 = ((double)clock_mono_ns() / 1e9);
    for (long i = 0; i < rows;) {
        long start = i, end = i + batch < rows ? i + batch : rows;
        sample_t first = bench_row(start), last = bench_row(end - 1);
        for (; i < end; i++) {
            sample_t s = bench_row(i);
            pgcopy_add(p, proc, &s);
        }
        size_t len;
        uint8_t *d = pgcopy_take(p, &len);
        batch_t b = { .kind = BATCH_POINTS, .spool_id = 1, .seq = ++seq, .process_id = proc,
                      .rows = (uint32_t)(end - start),
                      .first_ts_us = first.ts_us, .last_ts_us = last.ts_us,
                      .data = d, .len = len };
        pgsink_result_t r = pgsink_write(sink, &b, 1, err, sizeof err);
        free(d);
        if (r != PGSINK_STORED) {
            fprintf(stderr, "bench_copy: batch %lld: %s\n", (long long)seq, err);
            return 1;
        }
    }
    double took = ((double)clock_mono_ns() / 1e9) - t0;
    printf("rows_per_s %.0f\nseconds %.3f\nbatches %lld\n", (double)rows / took, took, (long long)seq);
    pgsink_free(sink);
    pgcopy_free(p);
    return write_file(rows, argv[4], proc);
}
