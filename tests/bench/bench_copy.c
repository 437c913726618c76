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
 *       each aldrecd of a fleet is; tests/bench/fleet.sh runs several), and
 *       per batch, p50/p99 in ms: write_ms (ledger + COPY + COMMIT),
 *       commit_ms (batch ready -> COMMIT done) and lag_ms (first sample
 *       polled -> COMMIT done). With BENCH_COPY_PACE_MS=P in the
 *       environment it writes like a recorder that flushes every P ms: batch
 *       k is ready P ms after batch k-1 (k * P after the start), its first
 *       sample was polled P ms before that; a writer that falls behind
 *       shows it in commit_ms and lag_ms. Without it, as fast as it can:
 *       each batch is ready when the one before it is stored.
 *   bench_copy --file-only ROWS OUT.bin PROCESS_ID      -> writes OUT.bin only
 *   bench_copy --text-only ROWS OUT.txt PROCESS_ID      -> the rows as text COPY
 *       (columns process_id, parameter_id, ts, value, quality; no pgcopy) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Prints "NAME_p50 X" and "NAME_p99 Y" in ms (nearest rank); sorts v. */
static void print_quantiles(const char *name, int64_t *v, size_t n)
{
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i50 = (n * 50 + 99) / 100, i99 = (n * 99 + 99) / 100;
    printf("%s_p50 %.3f\n%s_p99 %.3f\n", name, (double)v[i50 ? i50 - 1 : 0] / 1000.0, name,
           (double)v[i99 ? i99 - 1 : 0] / 1000.0);
}

static void sleep_until_us(int64_t t_us)
{
    struct timespec ts = { .tv_sec = (time_t)(t_us / 1000000),
                           .tv_nsec = (long)(t_us % 1000000) * 1000 };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
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

    const char *pace_env = getenv("BENCH_COPY_PACE_MS");
    int64_t pace_us = pace_env ? atoll(pace_env) * 1000 : 0;
    size_t nb = (size_t)((rows + batch - 1) / batch), k = 0;
    int64_t *write_us = calloc(nb + 1, sizeof *write_us);
    int64_t *commit_us = calloc(nb + 1, sizeof *commit_us);
    int64_t *lag_us = calloc(nb + 1, sizeof *lag_us);
    if (!write_us || !commit_us || !lag_us) {
        fprintf(stderr, "bench_copy: out of memory\n");
        return 1;
    }
    int64_t start_us = clock_mono_us();
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
        int64_t ready = clock_mono_us(), polled = ready;
        if (pace_us > 0) {
            ready = start_us + (int64_t)(k + 1) * pace_us;
            polled = ready - pace_us;
            if (clock_mono_us() < ready)
                sleep_until_us(ready);
        }
        int64_t w0 = clock_mono_us();
        pgsink_result_t r = pgsink_write(sink, &b, 1, err, sizeof err);
        int64_t done = clock_mono_us();
        write_us[k] = done - w0;
        commit_us[k] = done - ready;
        lag_us[k++] = done - polled;
        free(d);
        if (r != PGSINK_STORED) {
            fprintf(stderr, "bench_copy: batch %lld: %s\n", (long long)seq, err);
            return 1;
        }
    }
    double took = ((double)clock_mono_ns() / 1e9) - t0;
    printf("rows_per_s %.0f\nseconds %.3f\nbatches %lld\n", (double)rows / took, took, (long long)seq);
    print_quantiles("write_ms", write_us, k);
    print_quantiles("commit_ms", commit_us, k);
    print_quantiles("lag_ms", lag_us, k);
    free(write_us);
    free(commit_us);
    free(lag_us);
    pgsink_free(sink);
    pgcopy_free(p);
    return write_file(rows, argv[4], proc);
}
