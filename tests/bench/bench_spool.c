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
 *       -> "rows_per_s N", "seconds S", "transactions T", "overlapped O"
 *          (O: written while the one before was, over a second connection)
 *   bench_spool catchup DSN SPOOL RECORDER_ID PROCESS_ID AFTER_S
 *       a recorder back on the network with a backlog in SPOOL: the
 *       forwarder drains it while live batches keep arriving, one a second
 *       of the reference load (4 x 100 parameters at 10 Hz, stamped with
 *       the wall clock), appended behind the backlog as aldrecd's main loop
 *       does; AFTER_S seconds of live load go on once the backlog is gone.
 *       Each live batch's lag is its first sample -> its COMMIT (seen to
 *       within 10 ms: the forwarder stores in seq order, so batch s is
 *       committed once s batches are)
 *       The backlog is drained when as many batches as it held are
 *       stored; the recorder has caught up when the live batches that
 *       queued behind it meanwhile are stored too (2 or fewer queued), and
 *       AFTER_S counts from then; lag_ms_max_draining is the largest lag of
 *       a live batch recorded before that, lag_ms_p99_after of those after
 *       -> "backlog_rows N", "drain_s S", "drain_rows_per_s N", "catchup_s S",
 *          "live_batches N", "lag_ms_max_draining L", "lag_ms_p99_after L",
 *          "after_batches N" */
#include <pthread.h>
#include <stdbool.h>
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

/* BENCH_DRAIN_CONNECTIONS=1 drains over one connection (aldrecd's
 * [spool] drain_connections); unset: aldrecd's default. */
static int drain_connections(void)
{
    const char *v = getenv("BENCH_DRAIN_CONNECTIONS");
    return v ? atoi(v) : 0;
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
                            .drain_batches = nb, .drain_rows = nr,
                            .drain_connections = drain_connections() };
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
    printf("rows_per_s %.0f\nseconds %.3f\ntransactions %llu\noverlapped %llu\n"
           "quarantined %llu\n",
           (double)rows / took, took, (unsigned long long)fs.transactions,
           (unsigned long long)fs.overlapped, (unsigned long long)fs.quarantined_batches);
    spool_close(sp);
    return fs.quarantined_batches ? 1 : 0;
}

#define LIVE_PARAMS 400
#define LIVE_POLLS 10          /* one second at 10 Hz */
#define LIVE_MAX 100000        /* live batches remembered */

struct live {
    spool_t *sp;
    forwarder_t *f;
    long long proc;
    pthread_mutex_t lock;
    bool stop;
    size_t n;
    int64_t seq[LIVE_MAX], first_us[LIVE_MAX], commit_us[LIVE_MAX];
};

/* aldrecd's main loop for one tool: a batch of the last second's polls,
 * every second. */
static void *live_main(void *arg)
{
    struct live *L = arg;
    pgcopy_t *p = pgcopy_new();
    char err[512];
    int64_t next = clock_mono_ns();
    for (;;) {
        next += 1000000000LL;
        int64_t now = clock_mono_ns();
        if (next > now) {
            struct timespec ts = { (time_t)((next - now) / 1000000000LL),
                                   (long)((next - now) % 1000000000LL) };
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&L->lock);
        bool stop = L->stop;
        pthread_mutex_unlock(&L->lock);
        if (stop || !p)
            break;
        int64_t t0 = clock_real_us() - 1000000LL;
        for (int k = 0; k < LIVE_POLLS; k++)
            for (int i = 0; i < LIVE_PARAMS; i++) {
                sample_t s = { .parameter_id = 1 + i, .ts_us = t0 + k * 100000LL,
                               .value = (double)(k + i), .has_value = true };
                pgcopy_add(p, L->proc, &s);
            }
        size_t len;
        uint8_t *d = pgcopy_take(p, &len);
        batch_t b = { .kind = BATCH_POINTS, .process_id = L->proc,
                      .rows = LIVE_POLLS * LIVE_PARAMS, .first_ts_us = t0,
                      .last_ts_us = t0 + (LIVE_POLLS - 1) * 100000LL, .data = d, .len = len };
        spool_append_result_t res;
        int rc = spool_append(L->sp, &b, &res, err, sizeof err);
        free(d);
        if (rc < 0 || !res.stored) {
            fprintf(stderr, "bench_spool: live append: %s\n", rc < 0 ? err : "dropped");
            break;
        }
        forwarder_wake(L->f);
        pthread_mutex_lock(&L->lock);
        if (L->n < LIVE_MAX) {
            L->seq[L->n] = b.seq;
            L->first_us[L->n] = t0;
            L->commit_us[L->n] = 0;
            L->n++;
        }
        pthread_mutex_unlock(&L->lock);
    }
    pgcopy_free(p);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int bench_catchup(const char *dsn, const char *path, const char *rid, long long proc,
                         int after_s)
{
    static struct live L;
    char err[512];
    spool_t *sp = open_spool(path);
    if (!sp)
        return 1;
    spool_stats_t st;
    spool_get_stats(sp, &st);
    uint64_t backlog = st.batches, backlog_rows = st.rows;
    int64_t base = 0;   /* seqs start after what the spool held */
    {
        batch_t *b;
        size_t n;
        if (spool_peek(sp, 0, 1, 1, &b, &n, err, sizeof err) < 0 || n != 1) {
            fprintf(stderr, "bench_spool: no backlog in %s\n", path);
            return 1;
        }
        base = b[0].seq - 1;
        spool_batches_free(b, n);
    }
    L.sp = sp;
    L.proc = proc;
    pthread_mutex_init(&L.lock, NULL);
    forwarder_opts_t fo = { .conninfo = dsn, .recorder_id = rid, .timeout_ms = 60000,
                            .drain_batches = 32, .drain_rows = 100000,
                            .drain_connections = drain_connections() };
    double t0 = (double)clock_mono_ns() / 1e9, drained_at = 0, caught_at = 0;
    forwarder_t *f = forwarder_start(&fo, sp, err, sizeof err);
    pthread_t th;
    L.f = f;
    if (!f || pthread_create(&th, NULL, live_main, &L) != 0) {
        fprintf(stderr, "bench_spool: %s\n", f ? "cannot start the live thread" : err);
        return 1;
    }
    for (;;) {
        forwarder_stats_t fs;
        forwarder_get_stats(f, &fs);
        if (fs.quarantined_batches) {
            fprintf(stderr, "bench_spool: %s quarantined a batch: %s\n", rid, fs.last_error);
            return 1;
        }
        int64_t now = clock_real_us();
        int64_t done_seq = base + (int64_t)fs.stored_batches;
        pthread_mutex_lock(&L.lock);
        for (size_t i = 0; i < L.n; i++)
            if (L.commit_us[i] == 0 && L.seq[i] <= done_seq)
                L.commit_us[i] = now;
        pthread_mutex_unlock(&L.lock);
        double t = (double)clock_mono_ns() / 1e9;
        if (drained_at == 0 && fs.stored_batches >= backlog)
            drained_at = t;
        /* Caught up: the live batches that queued behind the backlog
         * are stored too (at most the one being written and the next). */
        spool_get_stats(sp, &st);
        if (drained_at > 0 && caught_at == 0 && st.batches <= 2)
            caught_at = t;
        if (caught_at > 0 && t - caught_at >= after_s)
            break;
        usleep(10000);
    }
    pthread_mutex_lock(&L.lock);
    L.stop = true;
    pthread_mutex_unlock(&L.lock);
    pthread_join(th, NULL);
    forwarder_stop(f, 5000);
    /* Live batches: those recorded before the recorder caught up, and after. */
    int64_t caught_us = clock_real_us() - (int64_t)(((double)clock_mono_ns() / 1e9 - caught_at) * 1e6);
    int64_t max_draining = 0, *after = calloc(L.n + 1, sizeof *after);
    size_t na = 0, committed = 0;
    for (size_t i = 0; i < L.n; i++) {
        if (L.commit_us[i] == 0)
            continue;
        committed++;
        int64_t lag = L.commit_us[i] - L.first_us[i];
        if (L.first_us[i] < caught_us) {
            if (lag > max_draining)
                max_draining = lag;
        } else {
            after[na++] = lag;
        }
    }
    qsort(after, na, sizeof *after, cmp_i64);
    double drain_s = drained_at - t0;
    printf("backlog_rows %llu\nbacklog_batches %llu\ndrain_s %.1f\ndrain_rows_per_s %.0f\n"
           "catchup_s %.1f\nlive_batches %zu\nlive_committed %zu\nlag_ms_max_draining %.0f\n"
           "lag_ms_p99_after %.0f\nafter_batches %zu\n",
           (unsigned long long)backlog_rows, (unsigned long long)backlog, drain_s,
           (double)backlog_rows / drain_s, caught_at - t0, L.n, committed,
           (double)max_draining / 1000.0,
           na ? (double)after[(na * 99) / 100 < na ? (na * 99) / 100 : na - 1] / 1000.0 : 0.0,
           na);
    free(after);
    spool_close(sp);
    return 0;
}

int main(int argc, char **argv)
{
    log_init("bench_spool", LL_WARN);
    if (argc == 6 && strcmp(argv[1], "write") == 0)
        return bench_write(argv[2], atol(argv[3]), atol(argv[4]), atoll(argv[5]));
    if ((argc == 4 || argc == 6) && strcmp(argv[1], "drain") == 0)
        return bench_drain(argv[2], argv[3], argc == 6 ? (size_t)atol(argv[4]) : 32,
                           argc == 6 ? (size_t)atol(argv[5]) : 100000);
    if (argc == 7 && strcmp(argv[1], "catchup") == 0)
        return bench_catchup(argv[2], argv[3], argv[4], atoll(argv[5]), atoi(argv[6]));
    fprintf(stderr, "usage: bench_spool write SPOOL ROWS BATCH_ROWS PROCESS_ID\n"
                    "       bench_spool drain DSN SPOOL [DRAIN_BATCHES DRAIN_ROWS]\n"
                    "       bench_spool catchup DSN SPOOL RECORDER_ID PROCESS_ID AFTER_S\n");
    return 2;
}
