/* test_poller.c — poller_new / poller_drain / poller_update against two
 * real aldsim processes and a parameter map loaded from the private
 * PostgreSQL of tests/run.sh (ALDREC_TEST_DSN):
 *   - samples of both devices reach the drain, each parameter once a cycle;
 *   - an update that leaves device A alone keeps it polling (its cycle
 *     counter goes on) while changed device B restarts;
 *   - a removed device stops and none of its samples arrive after that;
 *   - an update with an identical map changes nothing. */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "acq/pmap.h"
#include "cache/pmapdb.h"
#include "acq/poller.h"
#include "t.h"
#include "tsim.h"

#define MACHINE "t_poller"

struct sim {
    pid_t pid;
    int port;
};

/* Starts aldsim (next to this program) on a free port. */
static int sim_start(const char *self, struct sim *s)
{
    s->port = tsim_start(self, &s->pid);
    return s->port > 0 ? 0 : -1;
}

static void sim_stop(struct sim *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "SQL failed: %s: %s", sql, PQerrorMessage(c));
    T_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

struct counts {
    int32_t id_a, id_b, id_b2;
    size_t a, b, b2, other;
};

static void count(void *arg, const sample_t *s)
{
    struct counts *c = arg;
    if (s->parameter_id == c->id_a)
        c->a += s->quality == Q_GOOD;
    else if (s->parameter_id == c->id_b)
        c->b += s->quality == Q_GOOD;
    else if (s->parameter_id == c->id_b2)
        c->b2 += s->quality == Q_GOOD;
    else
        c->other++;
}

/* Drains for ms milliseconds. */
static void run_for(poller_t *p, int ms, struct counts *c)
{
    int64_t end = clock_mono_ns() + (int64_t)ms * 1000000;
    for (int64_t now; (now = clock_mono_ns()) < end;) {
        struct pollfd pfd = { .fd = poller_notify_fd(p), .events = POLLIN };
        poll(&pfd, 1, (int)((end - now) / 1000000) + 1);
        poller_drain(p, count, c);
    }
}

/* Cycles of the device whose status line mentions port. */
static long cycles_of(poller_t *p, int port)
{
    char buf[4096], key[64];
    poller_format_devices(p, buf, sizeof buf);
    snprintf(key, sizeof key, ":%d unit 1:", port);
    char *l = strstr(buf, key);
    char *c = l ? strstr(l, " cycles ") : NULL;
    return c ? strtol(c + 8, NULL, 10) : -1;
}

static pmap_t *load(PGconn *c)
{
    char err[256];
    pmap_t *m = pmapdb_load(c, MACHINE, err, sizeof err);
    if (!m)
        fprintf(stderr, "pmapdb_load: %s\n", err);
    return m;
}

static int32_t param_id(PGconn *c, const char *comp, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT cp.id FROM component_parameters cp JOIN machine_components mc"
             " ON mc.id = cp.component_id JOIN machines m ON m.id = mc.machine_id AND m.name = '"
             MACHINE "' WHERE mc.name = '%s' AND cp.name = '%s'", comp, name);
    PGresult *r = PQexec(c, sql);
    int32_t id = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return id;
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *dsn = getenv("ALDREC_TEST_DSN");
    struct sim a = { 0 }, b = { 0 };
    char sql[2048];

    log_init("test_poller", LL_WARN);
    if (!dsn) {
        printf("not ok - ALDREC_TEST_DSN not set (run through tests/run.sh)\n");
        t_failed++;
        return t_done("test_poller");
    }
    PGconn *c = PQconnectdb(dsn);
    T_CHECK(PQstatus(c) == CONNECTION_OK);
    if (sim_start(argv[0], &a) < 0 || sim_start(argv[0], &b) < 0) {
        printf("not ok - cannot start aldsim next to %s\n", argv[0]);
        sim_stop(&a);
        sim_stop(&b);
        t_failed++;
        return t_done("test_poller");
    }
    /* The same database serves the plain and the sanitized run of this
     * test: start from no t_poller machine at all. */
    exec_ok(c, "DELETE FROM component_parameters WHERE component_id IN"
               " (SELECT mc.id FROM machine_components mc JOIN machines m ON m.id = mc.machine_id"
               "  WHERE m.name = '" MACHINE "');"
               "DELETE FROM machine_components WHERE machine_id IN"
               " (SELECT id FROM machines WHERE name = '" MACHINE "');"
               "DELETE FROM machines WHERE name = '" MACHINE "'");
    snprintf(sql, sizeof sql,
             "INSERT INTO machines (name) VALUES ('" MACHINE "');"
             "INSERT INTO machine_components (machine_id, name, host, port)"
             "  SELECT id, 'a', '127.0.0.1', %d FROM machines WHERE name = '" MACHINE "';"
             "INSERT INTO machine_components (machine_id, name, host, port)"
             "  SELECT id, 'b', '127.0.0.1', %d FROM machines WHERE name = '" MACHINE "';"
             "INSERT INTO component_parameters (component_id, name, register_type, address,"
             "  data_type, poll_interval_ms)"
             "  SELECT mc.id, 'rc', 'input', 20, 'u32', 50 FROM machine_components mc"
             "  JOIN machines m ON m.id = mc.machine_id AND m.name = '" MACHINE "'",
             a.port, b.port);
    exec_ok(c, sql);
    struct counts n = { .id_a = param_id(c, "a", "rc"), .id_b = param_id(c, "b", "rc") };

    pmap_t *m = load(c);
    poller_opts_t o = { .modbus = { .response_timeout_ms = 500, .baud = 19200, .parity = 'E',
                                    .data_bits = 8, .stop_bits = 1 },
                        .limits = { .max_registers = 125, .max_bits = 2000, .max_gap = 8 },
                        .reconnect_min_ms = 100, .reconnect_max_ms = 1000 };
    poller_t *p = m ? poller_new(m, &o) : NULL;
    T_CHECK(p != NULL);
    if (!p)
        goto out;
    run_for(p, 1000, &n);
    T_CHECK(n.a >= 10 && n.a <= 21);   /* 20 Hz for 1 s, generous for a loaded machine */
    T_CHECK(n.b >= 10 && n.b <= 21);
    T_EQ_INT(n.other, 0);
    poller_stats_t st;
    poller_get_stats(p, &st);
    T_EQ_INT(st.devices, 2);
    T_EQ_INT(st.params, 2);

    /* same map again: nothing restarts */
    long ca = cycles_of(p, a.port), cb = cycles_of(p, b.port);
    T_EQ_INT(poller_update(p, m), 0);
    T_CHECK(cycles_of(p, a.port) >= ca);
    T_CHECK(cycles_of(p, b.port) >= cb);

    /* b gets a second parameter, in a 200 ms poll group of its own: b
     * restarts, a keeps running */
    exec_ok(c, "INSERT INTO component_parameters (component_id, name, register_type, address,"
               "  data_type, poll_interval_ms)"
               "  SELECT mc.id, 'u16', 'input', 30, 'u16', 200 FROM machine_components mc"
               "  JOIN machines m ON m.id = mc.machine_id AND m.name = '" MACHINE "'"
               "  WHERE mc.name = 'b'");
    n.id_b2 = param_id(c, "b", "u16");
    pmap_free(m);
    m = load(c);
    ca = cycles_of(p, a.port);
    T_EQ_INT(poller_update(p, m), 0);
    T_CHECK(cycles_of(p, a.port) >= ca);           /* a: same thread, counter goes on */
    long cb2 = cycles_of(p, b.port);               /* b: a new device (-1: missing) */
    T_CHECK(cb2 >= 0 && cb2 <= 2);
    n.a = n.b = n.b2 = 0;
    run_for(p, 1000, &n);
    T_CHECK(n.a >= 10);
    /* 50 ms group: 20 a second; 200 ms group: 5 (+1 or 2 at the edges) */
    T_CHECK(n.b >= 10 && n.b <= 23);
    T_CHECK(n.b2 >= 3 && n.b2 <= 7);
    /* 4 times as often; "3 times, less 3 polls" leaves room for a stall
     * of the shared thread (150 ms costs the 50 ms group 3 polls, the
     * 200 ms group at most 1), and one rate for both (b == b2) fails */
    T_CHECK(n.b + 3 >= 3 * n.b2);
    T_CHECK(cycles_of(p, a.port) > ca + 10);

    /* a is deactivated: it stops, nothing of it arrives afterwards */
    exec_ok(c, "UPDATE machine_components SET is_activated = false WHERE name = 'a'"
               "  AND machine_id = (SELECT id FROM machines WHERE name = '" MACHINE "')");
    pmap_free(m);
    m = load(c);
    T_EQ_INT(poller_update(p, m), 0);
    poller_get_stats(p, &st);
    T_EQ_INT(st.devices, 1);
    T_EQ_INT(cycles_of(p, a.port), -1);
    n.a = n.b = 0;
    poller_drain(p, count, &n);      /* what a delivered before the update */
    n.a = 0;
    run_for(p, 500, &n);
    T_EQ_INT(n.a, 0);
    T_CHECK(n.b >= 5);
    poller_free(p);
out:
    pmap_free(m);
    PQfinish(c);
    sim_stop(&a);
    sim_stop(&b);
    return t_done("test_poller");
}
