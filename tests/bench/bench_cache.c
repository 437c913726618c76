/* bench_cache.c — the metadata cache's figures for `make bench`:
 *
 *   lookup latency, medians:
 *     L1 hit       pcache_get on the loaded map (batches of 10,000 lookups
 *                  over every parameter name; median of the batch means)
 *     L2 hit       what a tool run pays: new cache, Redis connect + MGET of
 *                  the blob and the live key, decode, lookup (a refresher
 *                  in this process keeps the live key, as aldrecd will)
 *     PG miss      no live key: connect to PostgreSQL (SCRAM), the bulk
 *                  query, decode, L2 write, lookup
 *   bulk refresh vs one query per component, same connection, same
 *   parsing (tests/bench/nplus1.h), medians and their ratio, per machine.
 *
 *   bench_cache DSN REDIS_PORT ROUNDS MACHINE...
 * Prints "key value" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "nplus1.h"
#include "cache/pcache.h"
#include "cache/pmapdb.h"
#include "common/pgconn.h"

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return v[n / 2];
}

static pcache_opts_t opts(const char *dsn, const char *machine, int redis_port)
{
    return (pcache_opts_t){
        .conninfo = dsn, .machine = machine, .app_name = "bench_cache",
        .redis_port = redis_port, .redis_timeout_ms = 1000, .pg_timeout_ms = 10000,
    };
}

/* What a tool run pays: a new cache and one pcache_fetch, rounds times.
 * Returns the median in µs; *ok counts the runs served from `want`. */
static double time_fetches(const char *dsn, const char *machine, int redis_port,
                           char (*names)[128], size_t n, int rounds, pcache_source_t want,
                           int *ok)
{
    double *t = calloc((size_t)rounds, sizeof *t);
    char err[1024];
    param_meta_t p;
    pcache_stats_t st;
    *ok = 0;
    for (int r = 0; r < rounds; r++) {
        pcache_opts_t co = opts(dsn, machine, redis_port);
        pcache_t *c = pcache_new(&co);
        double t0 = ((double)clock_mono_ns());
        pcache_result_t res = pcache_fetch(c, names[(size_t)r % n], &p, err, sizeof err);
        t[r] = (((double)clock_mono_ns()) - t0) / 1e3;
        pcache_get_stats(c, &st);
        *ok += res == PCACHE_HIT && st.source == want;
        pcache_free(c);
    }
    double m = median(t, rounds);
    free(t);
    return m;
}

static void bench_lookups(const char *dsn, const char *machine, int redis_port, int rounds)
{
    char err[1024];
    param_meta_t p;

    /* A refresher, as in aldrecd: keeps the blob and the live key in Redis. */
    pcache_opts_t o = opts(dsn, machine, redis_port);
    pcache_t *d = pcache_new(&o);
    if (pcache_load(d, PCACHE_PG_FIRST, err, sizeof err) == PCACHE_SRC_NONE ||
        pcache_start(d, err, sizeof err) < 0) {
        fprintf(stderr, "bench_cache: %s\n", err);
        exit(1);
    }
    pmap_t *m = pcache_map(d);
    size_t n = pmap_count(m);
    char (*names)[128] = calloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++)
        snprintf(names[i], sizeof names[i], "%s", pmap_at(m, i)->qualified);
    pmap_free(m);

    enum { BATCH = 10000, BATCHES = 101 };
    double l1[BATCHES];
    size_t hits = 0;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = ((double)clock_mono_ns());
        for (int i = 0; i < BATCH; i++)
            hits += pcache_get(d, names[(size_t)(b * BATCH + i) % n], &p) == PCACHE_HIT;
        l1[b] = (((double)clock_mono_ns()) - t0) / BATCH;
    }
    printf("l1_hit_ns %.0f\n", median(l1, BATCHES));
    printf("l1_hits %zu of %d\n", hits, BATCH * BATCHES);

    /* Wait until the refresher vouches for the blob. */
    pcache_stats_t st;
    for (int i = 0; i < 500; i++) {
        pcache_get_stats(d, &st);
        if (st.listening && st.pg_loads >= 2)
            break;
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    int ok = 0;
    double l2 = time_fetches(dsn, machine, redis_port, names, n, rounds, PCACHE_SRC_REDIS, &ok);
    printf("l2_hit_us %.1f\n", l2);
    printf("l2_hit_from_redis %d of %d\n", ok, rounds);
    pcache_free(d);   /* the live key goes with the refresher */
    double pg = time_fetches(dsn, machine, redis_port, names, n, rounds, PCACHE_SRC_POSTGRES, &ok);
    printf("pg_miss_us %.1f\n", pg);
    printf("pg_miss_from_postgres %d of %d\n", ok, rounds);
    free(names);
}

static void bench_refresh(PGconn *conn, const char *machine, int rounds)
{
    double *bulk = calloc((size_t)rounds, sizeof *bulk);
    double *each = calloc((size_t)rounds, sizeof *each);
    char err[512];
    size_t params = 0, nparams = 0;
    long queries = 0;

    for (int r = 0; r < rounds; r++) {
        double t0 = ((double)clock_mono_ns());
        pmap_t *m = pmapdb_load(conn, machine, err, sizeof err);
        bulk[r] = (((double)clock_mono_ns()) - t0) / 1e6;
        if (!m) {
            fprintf(stderr, "bench_cache: %s\n", err);
            exit(1);
        }
        params = pmap_count(m);
        pmap_free(m);
        t0 = ((double)clock_mono_ns());
        queries = nplus1_load(conn, machine, &nparams);
        each[r] = (((double)clock_mono_ns()) - t0) / 1e6;
        if (queries < 0 || nparams != params) {
            fprintf(stderr, "bench_cache: per-component load failed\n");
            exit(1);
        }
    }
    double b = median(bulk, rounds), e = median(each, rounds);
    printf("refresh %s params %zu components %ld bulk_ms %.3f per_component_ms %.3f queries 1 vs %ld ratio %.1f\n",
           machine, params, queries - 1, b, e, queries, e / b);
    free(bulk);
    free(each);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_cache DSN REDIS_PORT ROUNDS MACHINE...\n");
        return 2;
    }
    const char *dsn = argv[1];
    int redis_port = atoi(argv[2]), rounds = atoi(argv[3]);
    log_init("bench_cache", LL_WARN);
    bench_lookups(dsn, argv[4], redis_port, rounds);
    PGconn *conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "bench_cache: %s", PQerrorMessage(conn));
        return 1;
    }
    for (int i = 4; i < argc; i++)
        bench_refresh(conn, argv[i], rounds);
    PQfinish(conn);
    return 0;
}
