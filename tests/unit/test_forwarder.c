/* test_forwarder.c — store/forwarder.c against a real spool and a fake
 * pgsink (this file defines pgsink's functions, so the linker never takes
 * store/pgsink.o): the drain over two connections, whose paths a real
 * PostgreSQL reaches only by chance — a group that fails with another
 * in flight behind it, a replayed group with a one-batch group behind it,
 * a second connection that is refused or breaks — and the order of the
 * commits, checked on every scenario.
 *
 * The fake keeps a ledger (the seqs it committed), refuses the batches
 * listed in `refuse`, writes a group in `write_ms` (longer for groups
 * starting at an odd seq, so that a group behind would overtake the one
 * before if nothing held it back) and counts what happened. */
#include "store/forwarder.h"
#include "store/pgsink.h"
#include "store/spool.h"
#include "t.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "store/pgcopy.h"

#define MAXSEQ 256

/* ---- the fake pgsink ------------------------------------------------------- */

struct pgsink {
    int id;                    /* 0: the forwarder's, 1: lane 1's */
    bool conn;
    bool (*commit_ok)(void *);
    void *commit_arg;
};

static struct {
    pthread_mutex_t lock;
    int sinks;                 /* made so far */
    int stored[MAXSEQ];        /* commits per seq */
    int64_t order[MAXSEQ * 4]; /* first seq of each committed group, in commit order */
    size_t norder;
    bool refuse[MAXSEQ];
    bool refuse_connect[2];    /* per sink id */
    int fail_writes[2];        /* per sink id: this many writes fail (RETRY) */
    int connects[2];
    int in_flight, max_in_flight;
    int writes, withdrawn;
    int write_ms;
} fk = { .lock = PTHREAD_MUTEX_INITIALIZER };

pgsink_t *pgsink_new(const char *conninfo, const char *recorder_id, int timeout_ms)
{
    (void)conninfo;
    (void)recorder_id;
    (void)timeout_ms;
    pgsink_t *s = calloc(1, sizeof *s);
    pthread_mutex_lock(&fk.lock);
    s->id = fk.sinks++ % 2;
    pthread_mutex_unlock(&fk.lock);
    return s;
}

void pgsink_free(pgsink_t *s)
{
    free(s);
}

void pgsink_set_cancel_fd(pgsink_t *s, int fd)
{
    (void)s;
    (void)fd;
}

int pgsink_connect(pgsink_t *s, char *err, size_t errlen)
{
    if (s->conn)
        return 0;
    pthread_mutex_lock(&fk.lock);
    fk.connects[s->id]++;
    bool refuse = fk.refuse_connect[s->id];
    pthread_mutex_unlock(&fk.lock);
    if (refuse) {
        snprintf(err, errlen, "FATAL: too many connections for role \"aldrecd\"");
        return -1;
    }
    s->conn = true;
    return 0;
}

bool pgsink_connected(const pgsink_t *s)
{
    return s->conn;
}

int pgsink_socket(const pgsink_t *s)
{
    (void)s;
    return -1;
}

int pgsink_check(pgsink_t *s, char *err, size_t errlen)
{
    (void)s;
    (void)err;
    (void)errlen;
    return 0;
}

void pgsink_disconnect(pgsink_t *s)
{
    s->conn = false;
}

void pgsink_set_busy_hook(pgsink_t *s, void (*fn)(void *), void *arg)
{
    (void)s;
    (void)fn;
    (void)arg;
}

void pgsink_set_commit_hook(pgsink_t *s, bool (*fn)(void *), void *arg)
{
    s->commit_ok = fn;
    s->commit_arg = arg;
}

void pgsink_prepare(pgsink_t *s, const batch_t *b, size_t n)
{
    (void)s;
    (void)b;
    (void)n;
}

pgsink_result_t pgsink_write(pgsink_t *s, const batch_t *b, size_t n, char *err, size_t errlen)
{
    err[0] = '\0';
    if (pgsink_connect(s, err, errlen) < 0)
        return PGSINK_RETRY;
    pthread_mutex_lock(&fk.lock);
    fk.writes++;
    if (++fk.in_flight > fk.max_in_flight)
        fk.max_in_flight = fk.in_flight;
    bool fail = fk.fail_writes[s->id] > 0;
    if (fail)
        fk.fail_writes[s->id]--;
    int ms = fk.write_ms * (b[0].seq % 2 ? 3 : 1);
    pthread_mutex_unlock(&fk.lock);
    usleep((useconds_t)ms * 1000);
    pgsink_result_t r = PGSINK_STORED;
    pthread_mutex_lock(&fk.lock);
    for (size_t i = 0; i < n && r == PGSINK_STORED; i++) {
        if (b[i].seq >= MAXSEQ)
            r = PGSINK_REJECTED;
        else if (fk.stored[b[i].seq])
            r = PGSINK_DUPLICATE;
        else if (fk.refuse[b[i].seq])
            r = PGSINK_REJECTED;
    }
    pthread_mutex_unlock(&fk.lock);
    if (fail) {
        snprintf(err, errlen, "COPY: server closed the connection unexpectedly");
        s->conn = false;
        r = PGSINK_RETRY;
    } else if (r == PGSINK_STORED && s->commit_ok && !s->commit_ok(s->commit_arg)) {
        r = PGSINK_WITHDRAWN;
    }
    pthread_mutex_lock(&fk.lock);
    fk.in_flight--;
    if (r == PGSINK_WITHDRAWN)
        fk.withdrawn++;
    if (r == PGSINK_STORED) {
        for (size_t i = 0; i < n; i++)
            fk.stored[b[i].seq]++;
        if (fk.norder < sizeof fk.order / sizeof fk.order[0])
            fk.order[fk.norder++] = b[0].seq;
    }
    pthread_mutex_unlock(&fk.lock);
    if (r == PGSINK_REJECTED || r == PGSINK_DUPLICATE)
        snprintf(err, errlen, "COPY: ERROR: refused (fake)");
    return r;
}

const char *pgsink_copy_sql(enum batch_kind kind)
{
    (void)kind;
    return "COPY";
}

/* ---- the scenarios -------------------------------------------------------- */

static char dir[256];

static void reset(int write_ms)
{
    pthread_mutex_lock(&fk.lock);
    memset(fk.stored, 0, sizeof fk.stored);
    memset(fk.refuse, 0, sizeof fk.refuse);
    memset(fk.refuse_connect, 0, sizeof fk.refuse_connect);
    memset(fk.fail_writes, 0, sizeof fk.fail_writes);
    memset(fk.connects, 0, sizeof fk.connects);
    fk.norder = 0;
    fk.sinks = 0;
    fk.in_flight = fk.max_in_flight = fk.writes = fk.withdrawn = 0;
    fk.write_ms = write_ms;
    pthread_mutex_unlock(&fk.lock);
}

/* A spool with the batches of kinds[0..n) (seq i + 1), 4 rows each. */
static spool_t *spool_with(const char *name, const enum batch_kind *kinds, size_t n)
{
    char p[512], err[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    spool_opts_t o = { .path = p, .max_bytes = 1 << 30, .policy = SPOOL_DROP_OLDEST };
    spool_open_info_t info;
    spool_t *sp = spool_open(&o, &info, err, sizeof err);
    if (!sp) {
        printf("# spool_open: %s\n", err);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        pgcopy_t *c = pgcopy_new();
        for (int k = 1; k <= 4; k++) {
            sample_t s = { .parameter_id = k, .ts_us = 1000000LL * (int64_t)i, .value = k,
                           .has_value = true };
            pgcopy_add(c, 7, &s);
        }
        size_t len;
        uint8_t *d = pgcopy_take(c, &len);
        pgcopy_free(c);
        batch_t b = { .kind = kinds[i], .process_id = 7, .rows = 4,
                      .first_ts_us = 1000000LL * (int64_t)i,
                      .last_ts_us = 1000000LL * (int64_t)i, .data = d, .len = len };
        spool_append_result_t res;
        if (spool_append(sp, &b, &res, err, sizeof err) < 0)
            printf("# spool_append: %s\n", err);
        free(d);
    }
    return sp;
}

/* A spool of n POINTS batches. */
static spool_t *points_spool(const char *name, size_t n)
{
    enum batch_kind k[MAXSEQ];
    for (size_t i = 0; i < n && i < MAXSEQ; i++)
        k[i] = BATCH_POINTS;
    return spool_with(name, k, n < MAXSEQ ? n : MAXSEQ);
}

/* The queue is empty. */
static void check_drained(spool_t *sp)
{
    spool_stats_t ss;
    spool_get_stats(sp, &ss);
    T_EQ_INT(ss.batches, 0);
}

/* Runs a forwarder (2 batches a transaction, two connections) until the
 * queue is empty or 5 s passed; returns its stats. */
static forwarder_stats_t run(spool_t *sp, int drain_connections)
{
    char err[512];
    forwarder_opts_t o = { .conninfo = "fake", .recorder_id = "r", .timeout_ms = 1000,
                           .drain_batches = 2, .drain_rows = 1000,
                           .drain_connections = drain_connections };
    forwarder_stats_t st = { 0 };
    forwarder_t *f = forwarder_start(&o, sp, err, sizeof err);
    T_CHECK(f != NULL);
    if (!f)
        return st;
    int64_t until = clock_mono_ms() + 5000;
    spool_stats_t ss;
    do {
        usleep(10000);
        spool_get_stats(sp, &ss);
    } while (ss.batches > 0 && clock_mono_ms() < until);
    forwarder_get_stats(f, &st);
    forwarder_stop(f, 500);
    return st;
}

/* Every seq of [1, n] but `except` committed exactly once, groups
 * committed in increasing seq order. */
static void check_once_in_order(int n, int except)
{
    pthread_mutex_lock(&fk.lock);
    int once = 0, twice = 0;
    for (int s = 1; s <= n; s++) {
        if (s == except)
            continue;
        once += fk.stored[s] == 1;
        twice += fk.stored[s] > 1;
    }
    int out_of_order = 0;
    for (size_t i = 1; i < fk.norder; i++)
        out_of_order += fk.order[i] < fk.order[i - 1];
    pthread_mutex_unlock(&fk.lock);
    T_EQ_INT(once, n - (except ? 1 : 0));
    T_EQ_INT(twice, 0);
    T_EQ_INT(out_of_order, 0);
}

/* 16 batches, two connections: the groups overlap, commit in order. */
static void test_overlap(void)
{
    reset(20);
    spool_t *sp = points_spool("overlap.db", 16);
    if (!sp)
        return;
    forwarder_stats_t st = run(sp, 2);
    check_drained(sp);
    check_once_in_order(16, 0);
    T_EQ_INT(fk.max_in_flight, 2);
    T_CHECK(st.overlapped >= 4);
    T_EQ_INT(fk.withdrawn, 0);
    spool_close(sp);

    /* drain_connections = 1: one at a time */
    reset(5);
    sp = points_spool("one.db", 16);
    if (!sp)
        return;
    st = run(sp, 1);
    check_once_in_order(16, 0);
    T_EQ_INT(fk.max_in_flight, 1);
    T_EQ_INT(st.overlapped, 0);
    T_EQ_INT(fk.connects[1], 0);
    spool_close(sp);
}

/* A replayed group (1-2 committed before a crash) with a one-batch group
 * of another kind behind it: the replay is found one by one, the batch
 * behind is withdrawn and sent after it, and the drain ends. */
static void test_replay_then_single(void)
{
    enum batch_kind k[] = { BATCH_POINTS, BATCH_POINTS, BATCH_EVENTS, BATCH_POINTS,
                            BATCH_POINTS, BATCH_POINTS, BATCH_POINTS };
    reset(2);
    fk.stored[1] = fk.stored[2] = 1;
    spool_t *sp = spool_with("replay.db", k, 7);
    if (!sp)
        return;
    forwarder_stats_t st = run(sp, 2);
    check_drained(sp);
    T_EQ_INT(st.duplicate_batches, 2);
    check_once_in_order(7, 0);
    T_CHECK(fk.writes <= 12);   /* 7 batches: not claimed again and again */
    spool_close(sp);
}

/* A refused batch in the first group, a group in flight behind it: the
 * one behind is withdrawn (never committed ahead), the culprit goes to
 * quarantine, everything else is stored once and in order. */
static void test_refused_ahead(void)
{
    reset(10);
    fk.refuse[2] = true;
    spool_t *sp = points_spool("refused.db", 12);
    if (!sp)
        return;
    forwarder_stats_t st = run(sp, 2);
    check_drained(sp);
    spool_stats_t ss;
    spool_get_stats(sp, &ss);
    T_EQ_INT(ss.q_batches, 1);
    T_EQ_INT(st.quarantined_batches, 1);
    T_CHECK(fk.withdrawn >= 1);
    check_once_in_order(12, 2);
    spool_close(sp);
}

/* The second connection refused: the drain goes over one, with one
 * attempt at it (not one a transaction), and the link stays up. */
static void test_second_refused(void)
{
    reset(5);
    fk.refuse_connect[1] = true;
    spool_t *sp = points_spool("refused2.db", 16);
    if (!sp)
        return;
    forwarder_stats_t st = run(sp, 2);
    check_drained(sp);
    check_once_in_order(16, 0);
    T_EQ_INT(fk.connects[1], 1);
    T_EQ_INT(st.overlapped, 0);
    T_CHECK(st.link == LINK_UP);
    spool_close(sp);
}

/* The second connection breaks mid-drain while the first is fine: its
 * group is sent again, nothing is lost or doubled, and it is not taken
 * for an outage (the link never shows spooling, the drain goes on over
 * one connection). */
static void test_second_breaks(void)
{
    reset(5);
    fk.fail_writes[1] = 1;
    spool_t *sp = points_spool("breaks.db", 16);
    if (!sp)
        return;
    forwarder_stats_t st = run(sp, 2);
    check_drained(sp);
    check_once_in_order(16, 0);
    T_EQ_INT(fk.connects[1], 1);   /* not again within LANE_RETRY_MS */
    T_CHECK(st.link == LINK_UP);
    spool_close(sp);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/aldrec-test-forwarder.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_overlap();
    test_replay_then_single();
    test_refused_ahead();
    test_second_refused();
    test_second_breaks();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return t_done("test_forwarder");
}
