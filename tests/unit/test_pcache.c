/* test_pcache.c — the metadata cache against a real PostgreSQL
 * (ALDREC_TEST_DSN admin, ALDREC_TEST_REC_DSN recorder role; migrated) and
 * a real Redis (REDIS_PORT); tests/run.sh starts both.
 *
 *   - a bulk refresh is ONE statement on the server (pg_stat_statements),
 *     for the demo machine (11 components) and for 100 components × 10
 *     parameters; the one-query-per-component reference counts K + 1;
 *   - TTL and stale-while-revalidate with an injected clock;
 *   - a NOTIFY-driven change reaches the running refresher within 1 s
 *     (callback, change fd, L1, L2 and its live key all updated);
 *   - deactivated parameters leave the map, new ones enter it;
 *   - a corrupted L2 blob is a miss, not a crash; a black-holed Redis or
 *     PostgreSQL costs at most its timeout; PostgreSQL down → stale entries
 *     served while lookups stay fast; nothing reachable → the snapshot. */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "../bench/nplus1.h"
#include "cache/l2redis.h"
#include "common/log.h"
#include "cache/pcache.h"
#include "common/pgconn.h"
#include "t.h"
#include "tpg.h"

static PGconn *admin;
static const char *rec_dsn;
static int redis_port;
static char snapshot[256];

static int64_t fake_now = 1800000000000000LL;   /* µs */

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static void sleep_ms(int ms)
{
    poll(NULL, 0, ms);
}

static long long q_int(const char *sql) { return tpg_int(admin, sql); }

static int exec_ok(const char *sql)
{
    PGresult *r = PQexec(admin, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        printf("# statement failed: %.80s: %s", sql, PQerrorMessage(admin));
    PQclear(r);
    return ok;
}

/* SELECTs that read component_parameters since the last reset (the
 * test's own UPDATEs of the table are not loads). */
static long long param_queries(void)
{
    return q_int("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
                 " WHERE query ILIKE 'SELECT%component_parameters%'"
                 "   AND query NOT ILIKE '%pg_stat_statements%'");
}

static void reset_statements(void)
{
    exec_ok("SELECT pg_stat_statements_reset()");
}

static pcache_opts_t base_opts(const char *machine)
{
    return (pcache_opts_t){
        .conninfo = rec_dsn, .machine = machine, .app_name = "test_pcache",
        .pg_timeout_ms = 3000, .ttl_s = 300, .refresh_s = 60,
        .redis_host = "127.0.0.1", .redis_port = redis_port, .redis_timeout_ms = 300,
        .snapshot_path = snapshot, .write_snapshot = true,
        .clock = fake_clock,
    };
}

/* Polls cond() every 5 ms for up to ms. */
static int wait_for(int (*cond)(void *), void *arg, int ms)
{
    int64_t end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end) {
        if (cond(arg))
            return 1;
        sleep_ms(5);
    }
    return cond(arg);
}

static int pg_loads_above(void *arg)
{
    void **a = arg;
    pcache_stats_t st;
    pcache_get_stats(a[0], &st);
    return st.pg_loads > *(uint64_t *)a[1];
}

static void setup_machines(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "psql -XqA -v ON_ERROR_STOP=1 -v sim_host=127.0.0.1 -v sim_port=1502 -v poll_ms=100"
             " \"$ALDREC_TEST_DSN\" -f %s/demo/demo_machine.sql >/dev/null", ALDREC_SRC_SQLDIR);
    T_EQ_INT(system(cmd), 0);
    T_CHECK(exec_ok("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"));
    T_CHECK(exec_ok(
        "INSERT INTO machines (name) VALUES ('bulk100') ON CONFLICT DO NOTHING;"
        "INSERT INTO machine_components (machine_id, name, host, port)"
        " SELECT m.id, 'c' || lpad(g::text, 3, '0'), '127.0.0.1', 1502"
        "   FROM machines m, generate_series(1, 100) g WHERE m.name = 'bulk100'"
        " ON CONFLICT DO NOTHING;"
        "INSERT INTO component_parameters (component_id, name, register_type, address, data_type)"
        " SELECT mc.id, 'p' || k, 'holding', k, 'u16'"
        "   FROM machine_components mc JOIN machines m ON m.id = mc.machine_id AND m.name = 'bulk100',"
        "        generate_series(0, 9) k"
        " ON CONFLICT DO NOTHING"));
}

/* ---- one query per bulk refresh ---------------------------------------- */

static void one_query_for(const char *machine, int components, int params)
{
    char err[512];
    pcache_opts_t o = base_opts(machine);
    o.redis_port = 0;
    o.write_snapshot = false;
    pcache_t *c = pcache_new(&o);

    reset_statements();
    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_POSTGRES);
    pcache_stats_t st;
    pcache_get_stats(c, &st);
    T_EQ_INT(st.params, params);
    T_EQ_INT(param_queries(), 1);

    /* The refresher refreshes once it LISTENs (changes may have been
     * missed before): one more statement for that refresh. */
    T_CHECK(pcache_start(c, err, sizeof err) == 0);
    uint64_t before = st.pg_loads;
    void *arg[2] = { c, &before };
    T_CHECK(wait_for(pg_loads_above, arg, 10000));
    sleep_ms(100);
    pcache_get_stats(c, &st);
    T_EQ_INT(st.pg_loads, 2);
    T_EQ_INT(param_queries(), (long long)st.pg_loads);
    pcache_free(c);

    /* The reference pattern, counted the same way: K + 1 statements. */
    PGconn *conn = PQconnectdb(rec_dsn);
    size_t n = 0;
    reset_statements();
    long issued = nplus1_load(conn, machine, &n);
    T_EQ_INT(issued, components + 1);
    T_EQ_INT(n, params);
    T_EQ_INT(param_queries(), components);   /* the component list does not read parameters */
    PQfinish(conn);
    printf("# %s: bulk refresh 1 statement, per-component pattern %ld statements\n", machine, issued);
}

/* ---- TTL and stale-while-revalidate ------------------------------------ */

static void test_ttl(void)
{
    char err[512];
    param_meta_t p;
    pcache_opts_t o = base_opts("ald-demo");
    o.redis_port = 0;
    o.write_snapshot = false;
    pcache_t *c = pcache_new(&o);

    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_MISS);   /* nothing loaded */
    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_POSTGRES);
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_HIT);
    T_EQ_DBL(p.max, 400, 0);
    T_EQ_INT(pcache_get_id(c, p.id, &p), PCACHE_HIT);
    T_EQ_STR(p.qualified, "heater1.setpoint");
    fake_now += 299 * 1000000LL;
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_HIT);
    fake_now += 2 * 1000000LL;   /* 301 s: expired */
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_STALE);
    T_EQ_DBL(p.max, 400, 0);     /* still served */
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_STALE);
    pcache_stats_t st;
    pcache_get_stats(c, &st);
    T_EQ_INT(st.stale_serves, 2);
    T_EQ_INT(st.l1_hits, 3);
    T_EQ_INT(st.pg_loads, 1);    /* no refresher: nothing reloaded behind our back */

    /* The refresher refreshes once connected; then entries are fresh
     * again (loaded at the injected "now"). */
    T_CHECK(pcache_start(c, err, sizeof err) == 0);
    uint64_t before = st.pg_loads;
    void *arg[2] = { c, &before };
    T_CHECK(wait_for(pg_loads_above, arg, 10000));
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_HIT);
    /* Expired again: the stale lookup itself asks for the refresh (the
     * periodic one is 60 s away) and does not wait for it. */
    pcache_get_stats(c, &st);
    before = st.pg_loads;
    fake_now += 301 * 1000000LL;
    int64_t t0 = clock_mono_ms();
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_STALE);
    T_CHECK(clock_mono_ms() - t0 < 50);
    T_CHECK(wait_for(pg_loads_above, arg, 10000));
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_HIT);
    pcache_get_stats(c, &st);
    T_EQ_INT(st.stale_serves, 3);
    T_EQ_INT(st.pg_loads, before + 1);
    T_CHECK(st.age_s < 1);
    T_EQ_INT(st.changes, 0);     /* same version: not a change */
    pcache_free(c);
}

/* ---- NOTIFY → refresher within 1 s -------------------------------------- */

static atomic_llong changed_version = -1;
static atomic_llong changed_at_ms;

static void on_change(void *arg, pmap_t *m)
{
    (void)arg;
    atomic_store(&changed_at_ms, clock_mono_ms());
    atomic_store(&changed_version, pmap_version(m));
    pmap_free(m);
}

static int version_changed(void *arg)
{
    return atomic_load(&changed_version) > *(long long *)arg;
}

static int listening(void *arg)
{
    pcache_stats_t st;
    pcache_get_stats(arg, &st);
    return st.listening;
}

static void test_notify(void)
{
    char err[512];
    param_meta_t p;
    pcache_opts_t o = base_opts("ald-demo");
    o.clock = NULL;          /* real time: L2 blob ages are real */
    o.on_change = on_change;
    pcache_t *c = pcache_new(&o);

    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_POSTGRES);
    pcache_stats_t st;
    pcache_get_stats(c, &st);
    uint64_t loads0 = st.pg_loads;
    T_CHECK(pcache_start(c, err, sizeof err) == 0);
    T_CHECK(wait_for(listening, c, 10000));
    /* The refresher's own refresh once it LISTENs (one_query_for) must be
     * over before the statements are counted below: on a slow build (ASan)
     * it could otherwise land after the reset and count as ours. */
    void *arg0[2] = { c, &loads0 };
    T_CHECK(wait_for(pg_loads_above, arg0, 10000));
    pcache_get_stats(c, &st);
    long long v0 = st.version;

    /* A change to another machine is not ours. Its NOTIFY is sent before
     * the two of ours below, and one listening connection receives them in
     * commit order: once the refresher has counted our second one it has
     * seen this one too, so the count of exactly 2 there proves it was
     * left out (no waiting for something not to happen). */
    T_CHECK(exec_ok("UPDATE component_parameters SET max_value = 60000 WHERE name = 'p1'"
                    " AND component_id IN (SELECT id FROM machine_components WHERE name = 'c001')"));

    reset_statements();
    int64_t t0 = clock_mono_ms();
    T_CHECK(exec_ok("UPDATE component_parameters SET max_value = 450 WHERE name = 'setpoint'"
                    " AND component_id = (SELECT mc.id FROM machine_components mc JOIN machines m"
                    " ON m.id = mc.machine_id WHERE m.name = 'ald-demo' AND mc.name = 'heater1')"));
    T_CHECK(wait_for(version_changed, &v0, 5000));
    long long latency = atomic_load(&changed_at_ms) - t0;
    printf("# NOTIFY to new map in the callback: %lld ms\n", latency);
    T_CHECK(latency <= 1000);
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_HIT);
    T_EQ_DBL(p.max, 450, 0);
    T_EQ_INT(param_queries(), 1);   /* the notified refresh is one statement too */

    /* The change fd says so, and hands over the same map. */
    struct pollfd pfd = { .fd = pcache_change_fd(c), .events = POLLIN };
    T_EQ_INT(poll(&pfd, 1, 0), 1);
    pmap_t *m = pcache_take_change(c);
    T_CHECK(m && pmap_version(m) == atomic_load(&changed_version));
    T_EQ_DBL(m ? pmap_find(m, "heater1.setpoint")->max : 0, 450, 0);
    pmap_free(m);
    T_CHECK(pcache_take_change(c) == NULL);
    T_EQ_INT(poll(&pfd, 1, 0), 0);

    /* Another process sees it through Redis, vouched for by the live key:
     * no PostgreSQL statement. */
    pcache_opts_t co = base_opts("ald-demo");
    co.conninfo = "host=127.0.0.1 port=1 connect_timeout=1";   /* must not be needed */
    co.write_snapshot = false;
    co.clock = NULL;
    pcache_t *cli = pcache_new(&co);
    int64_t v_new = atomic_load(&changed_version);
    int64_t live = -1;
    /* The live key follows the L2 write within a renewal period. */
    for (int i = 0; i < 100 && live != v_new; i++) {
        l2redis_opts_t lo = { .host = "127.0.0.1", .port = redis_port, .timeout_ms = 300 };
        l2redis_t *l2 = l2redis_new(&lo);
        uint8_t *b = NULL;
        size_t bl;
        l2redis_get(l2, "ald-demo", &b, &bl, &live, err, sizeof err);
        free(b);
        l2redis_free(l2);
        if (live != v_new)
            sleep_ms(20);
    }
    T_EQ_INT(live, v_new);
    T_EQ_INT(pcache_fetch(cli, "heater1.setpoint", &p, err, sizeof err), PCACHE_HIT);
    T_EQ_DBL(p.max, 450, 0);
    pcache_get_stats(cli, &st);
    T_EQ_INT(st.source, PCACHE_SRC_REDIS);
    T_EQ_INT(st.l2_hits, 1);
    T_EQ_INT(st.pg_loads, 0);
    pcache_free(cli);

    /* Deactivate one parameter and add one: the next map follows. */
    long long v1 = atomic_load(&changed_version);
    T_CHECK(exec_ok("UPDATE component_parameters SET is_active = false WHERE name = 'power';"
                    "INSERT INTO component_parameters (component_id, name, register_type, address, data_type)"
                    " SELECT mc.id, 'spare', 'holding', 50, 'u16' FROM machine_components mc"
                    " JOIN machines m ON m.id = mc.machine_id WHERE m.name = 'ald-demo' AND mc.name = 'test'"));
    T_CHECK(wait_for(version_changed, &v1, 5000));
    T_EQ_INT(pcache_get(c, "heater1.power", &p), PCACHE_MISS);
    T_EQ_INT(pcache_get(c, "test.spare", &p), PCACHE_HIT);
    pcache_get_stats(c, &st);
    T_EQ_INT(st.params, 32);
    /* Ours: the max_value change and this one (a transaction's identical
     * notifications fold into one); the other machine's is not counted.
     * Only a notification starts a refresh here (the periodic one is 60 s
     * away), so this map's refresh came after the refresher took this
     * change's NOTIFY, and with it every earlier one. */
    T_EQ_INT(st.notifications, 2);
    T_EQ_INT(st.changes, 2);
    T_CHECK(exec_ok("UPDATE component_parameters SET is_active = true WHERE name = 'power';"
                    "DELETE FROM component_parameters WHERE name = 'spare';"
                    "UPDATE component_parameters SET max_value = 400 WHERE name = 'setpoint'"
                    " AND component_id IN (SELECT id FROM machine_components WHERE name = 'heater1')"));
    pcache_free(c);

    /* A stopped refresher vouches for nothing: the live key is gone. */
    l2redis_opts_t lo = { .host = "127.0.0.1", .port = redis_port, .timeout_ms = 300 };
    l2redis_t *l2 = l2redis_new(&lo);
    uint8_t *b = NULL;
    size_t bl;
    T_EQ_INT(l2redis_get(l2, "ald-demo", &b, &bl, &live, err, sizeof err), 0);
    T_EQ_INT(live, -1);
    free(b);
    l2redis_free(l2);
}

/* A daemon that found no map at start-up gets the refresher's first one
 * as a change (callback and change fd). */
static void test_start_without_map(void)
{
    char err[512];
    pcache_opts_t o = base_opts("ald-demo");
    o.redis_port = 0;
    o.write_snapshot = false;
    o.on_change = on_change;
    pcache_t *c = pcache_new(&o);
    long long none = -1;
    atomic_store(&changed_version, -1);
    T_CHECK(pcache_map(c) == NULL);
    T_CHECK(pcache_start(c, err, sizeof err) == 0);
    T_CHECK(wait_for(version_changed, &none, 10000));
    pmap_t *m = pcache_take_change(c);
    T_CHECK(m && pmap_count(m) == 32);
    pmap_free(m);
    param_meta_t p;
    T_EQ_INT(pcache_get(c, "heater1.setpoint", &p), PCACHE_HIT);
    pcache_free(c);
}

/* ---- bad L2 content, dead servers, snapshot ----------------------------- */

/* A TCP port that accepts connections (the kernel completes the handshake)
 * but never answers: a black hole on loopback. */
static int black_hole(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_corrupt_l2(void)
{
    char err[512];
    param_meta_t p;
    redisContext *rc = redisConnect("127.0.0.1", redis_port);
    T_CHECK(rc && !rc->err);
    /* Garbage vouched for by a live key: still a miss (with a warning). */
    freeReplyObject(redisCommand(rc, "SET aldrec:ald-demo:pmap %s", "ALDPMAP-not-really"));
    freeReplyObject(redisCommand(rc, "SET aldrec:ald-demo:live 1"));
    pcache_opts_t o = base_opts("ald-demo");
    o.write_snapshot = false;
    pcache_t *c = pcache_new(&o);
    T_EQ_INT(pcache_fetch(c, "heater2.setpoint", &p, err, sizeof err), PCACHE_HIT);
    pcache_stats_t st;
    pcache_get_stats(c, &st);
    T_EQ_INT(st.source, PCACHE_SRC_POSTGRES);
    T_EQ_INT(st.l2_hits, 0);
    T_EQ_INT(st.l2_misses, 1);
    T_EQ_INT(st.l2_writes, 1);   /* and L2 is repaired */
    pcache_free(c);
    redisReply *r = redisCommand(rc, "GET aldrec:ald-demo:pmap");
    char derr[256];
    pmap_t *m = r && r->type == REDIS_REPLY_STRING
                    ? pmap_decode((const uint8_t *)r->str, r->len, derr, sizeof derr) : NULL;
    T_CHECK(m && pmap_find(m, "heater2.setpoint") != NULL);
    pmap_free(m);
    freeReplyObject(r);
    freeReplyObject(redisCommand(rc, "DEL aldrec:ald-demo:live"));
    redisFree(rc);
}

static void test_black_holes(void)
{
    char err[512];
    int port;
    int fd = black_hole(&port);
    T_CHECK(fd >= 0);

    l2redis_opts_t lo = { .host = "127.0.0.1", .port = port, .timeout_ms = 200 };
    l2redis_t *l2 = l2redis_new(&lo);
    uint8_t *b = NULL;
    size_t bl;
    int64_t live;
    int64_t t0 = clock_mono_ms();
    T_EQ_INT(l2redis_get(l2, "ald-demo", &b, &bl, &live, err, sizeof err), -1);
    int64_t took = clock_mono_ms() - t0;
    printf("# black-holed Redis: failed after %lld ms (%s)\n", (long long)took, err);
    T_CHECK(took >= 150 && took < 2000);
    t0 = clock_mono_ms();
    T_EQ_INT(l2redis_get(l2, "ald-demo", &b, &bl, &live, err, sizeof err), -1);
    T_CHECK(clock_mono_ms() - t0 < 50);   /* backing off: fails at once */
    l2redis_free(l2);

    char dsn[128];
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d dbname=x user=x", port);
    t0 = clock_mono_ms();
    PGconn *conn = pgconn_connect(dsn, "t", 300, -1, err, sizeof err);
    took = clock_mono_ms() - t0;
    printf("# black-holed PostgreSQL: connect failed after %lld ms (%s)\n", (long long)took, err);
    T_CHECK(conn == NULL && errno == ETIMEDOUT);
    T_CHECK(took >= 250 && took < 2000);
    close(fd);
}

static void test_offline(void)
{
    char err[1024];
    param_meta_t p;
    int port;
    int fd = black_hole(&port);
    char dead_pg[128];
    snprintf(dead_pg, sizeof dead_pg, "host=127.0.0.1 port=%d dbname=x user=x", port);

    /* A daemon-mode load from PostgreSQL writes the snapshot. */
    unlink(snapshot);
    pcache_opts_t o = base_opts("ald-demo");
    pcache_t *c = pcache_new(&o);
    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_POSTGRES);
    pcache_stats_t st;
    pcache_get_stats(c, &st);
    T_EQ_INT(st.snapshot_saves, 1);
    pcache_free(c);

    /* PostgreSQL black-holed, Redis up: the map from Redis. */
    o.conninfo = dead_pg;
    o.pg_timeout_ms = 300;
    c = pcache_new(&o);
    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_REDIS);
    T_EQ_INT(pcache_get(c, "mfc_tma.setpoint", &p), PCACHE_HIT);
    T_EQ_DBL(p.scale, 0.1, 1e-12);
    pcache_free(c);

    /* Both unreachable (Redis: a closed port): the snapshot. */
    o.redis_port = 1;
    c = pcache_new(&o);
    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_SNAPSHOT);
    T_EQ_INT(pcache_get(c, "heater2.setpoint", &p), PCACHE_HIT);
    T_EQ_INT(p.order, WO_CDAB);
    pcache_get_stats(c, &st);
    T_EQ_INT(st.snapshot_loads, 1);

    /* PostgreSQL still down with the refresher running: once the TTL has
     * passed, entries are served stale, quickly, while refreshes fail. */
    T_CHECK(pcache_start(c, err, sizeof err) == 0);
    fake_now += 400 * 1000000LL;
    int64_t worst = 0;
    int stale = 0;
    for (int i = 0; i < 40; i++) {
        int64_t t0 = clock_mono_ms();
        stale += pcache_get(c, "heater2.setpoint", &p) == PCACHE_STALE;
        int64_t d = clock_mono_ms() - t0;
        worst = d > worst ? d : worst;
        sleep_ms(25);
    }
    T_EQ_INT(stale, 40);
    T_CHECK(worst < 50);
    T_EQ_DBL(p.max, 400, 0);
    pcache_get_stats(c, &st);
    printf("# PostgreSQL down: %llu stale serves, %llu failed refreshes, worst lookup %lld ms\n",
           (unsigned long long)st.stale_serves, (unsigned long long)st.pg_errors, (long long)worst);
    T_CHECK(st.pg_errors >= 1);
    T_CHECK(!st.listening);
    pcache_free(c);

    /* Nothing at all: a clear error, no map. */
    unlink(snapshot);
    c = pcache_new(&o);
    errno = 0;
    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_NONE);
    T_EQ_INT(errno, EAGAIN);
    T_CHECK(strstr(err, "no parameter map") != NULL);
    pcache_free(c);

    /* Unknown machine: PostgreSQL's answer is final. */
    o = base_opts("no-such-machine");
    c = pcache_new(&o);
    errno = 0;
    T_EQ_INT(pcache_load(c, PCACHE_PG_FIRST, err, sizeof err), PCACHE_SRC_NONE);
    T_EQ_INT(errno, ENOENT);
    pcache_free(c);
    close(fd);
}

int main(void)
{
    const char *dsn = getenv("ALDREC_TEST_DSN");
    const char *rp = getenv("REDIS_PORT");
    rec_dsn = getenv("ALDREC_TEST_REC_DSN");
    if (!dsn || !rec_dsn || !rp) {
        printf("not ok - ALDREC_TEST_DSN, ALDREC_TEST_REC_DSN and REDIS_PORT are needed"
               " (tests/run.sh sets them)\n");
        t_failed++;
        return t_done("test_pcache");
    }
    redis_port = atoi(rp);
    snprintf(snapshot, sizeof snapshot, "/tmp/test_pcache.%d.snapshot", (int)getpid());
    log_init("test_pcache", LL_INFO);
    admin = PQconnectdb(dsn);
    if (PQstatus(admin) != CONNECTION_OK) {
        printf("not ok - connect: %s", PQerrorMessage(admin));
        t_failed++;
        return t_done("test_pcache");
    }
    setup_machines();
    one_query_for("ald-demo", 11, 32);
    one_query_for("bulk100", 100, 1000);
    test_ttl();
    test_notify();
    test_start_without_map();
    test_corrupt_l2();
    test_black_holes();
    test_offline();
    unlink(snapshot);
    PQfinish(admin);
    return t_done("test_pcache");
}
