/* forwarder.c — in-order, exactly-once delivery of spooled batches through
 * pgsink, on a thread of its own. See forwarder.h. */
#include "store/forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "store/pgsink.h"
#include "common/clock.h"
#include "common/backoff.h"
#include "store/records.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define IDLE_WAKE_MS 1000      /* idle: checkpoints, rate samples */
#define RATE_SLOTS 11          /* one sample a second: a 10 s window */
#define LANES 2                /* groups in flight at most (SPOOL_MAX_CLAIMS) */
#define LANE_RETRY_MS 30000    /* after the second connection failed: drain over one */

_Static_assert(LANES <= SPOOL_MAX_CLAIMS, "every group in flight is a claim of its own");

/* A drain over two connections: a thread that writes one group at a time
 * on its own connection, handed to it by the forwarder thread. */
struct lane {
    forwarder_t *f;
    pthread_t thread;
    pgsink_t *sink;            /* lane 0: the forwarder's, lent; lane 1: its own */
    /* guarded by f->lock, signalled on f->lane_cond */
    batch_t *b;                /* the group being written; NULL: none */
    size_t n;
    bool done;                 /* written: r, us, err hold the outcome */
    int verdict;               /* may it COMMIT? 0: not known yet, 1 yes, -1 no */
    bool behind;               /* handed over while the group before was in flight */
    bool quit;
    pgsink_result_t r;
    int64_t us;
    char err[512];
};

struct forwarder {
    pthread_t thread;
    pthread_mutex_t lock;      /* guards st, rate, stopping, stop_deadline, exited */
    pthread_cond_t cond;       /* exited changed */
    pthread_cond_t lane_cond;  /* a lane's work, outcome or verdict changed */
    spool_t *sp;
    pgsink_t *sink;            /* forwarder thread only (lent to lane 0 in a drain) */
    size_t drain_batches, drain_rows;
    int drain_conns;
    struct lane lane[LANES];
    int wake[2];               /* main -> thread: appended, stop */
    int cancel[2];             /* main -> pgsink: give up waiting now */
    int notify[2];             /* thread -> main: batches left the spool */
    bool stopping;
    int64_t stop_deadline;     /* mono ms */
    bool exited;
    forwarder_stats_t st;
    int64_t link_since;        /* mono ms */
    struct { int64_t t; uint64_t rows; } rate[RATE_SLOTS];
    size_t rate_next;
    complain_t db_down;
    complain_t lane_down;      /* lane 1 failed: drains go over one ... */
    int64_t lane_retry_at;     /* ... until then (mono ms) */
    /* thread only */
    backoff_t backoff;         /* the wait after a failure */
    int64_t next_try;          /* mono ms: no connection attempt before */
    int64_t single_until;      /* write batches up to this seq one by one */
    int64_t drain_started, drain_rows_start;
    /* Read-ahead while draining: the next group, read from the spool
     * while PostgreSQL inserts the one before (the sink's busy hook), and
     * claimed only if it is still the queue's head when that one left. */
    int64_t ahead_after;       /* seq the group in flight ends with; 0: no read-ahead */
    batch_t *ahead;
    size_t ahead_n;
    long crash_after;          /* test hook, see forwarder.h; 0: off */
};

const char *forwarder_link_name(enum link_state s)
{
    switch (s) {
    case LINK_CONNECTING:
        return "connecting";
    case LINK_UP:
        return "up";
    case LINK_DRAINING:
        return "draining";
    case LINK_SPOOLING:
        return "spooling";
    }
    return "?";
}

static void poke(int fd)
{
    char c = 1;
    ssize_t w = write(fd, &c, 1);   /* a full pipe is already poked */
    (void)w;
}

static void drain_pipe(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* Called with the lock held. */
static void set_link(forwarder_t *f, enum link_state s)
{
    if (f->st.link == s)
        return;
    f->st.link = s;
    f->link_since = clock_mono_ms();
}

static void link_to(forwarder_t *f, enum link_state s)
{
    pthread_mutex_lock(&f->lock);
    set_link(f, s);
    pthread_mutex_unlock(&f->lock);
}

/* Whether to leave the loop: stop asked and the spool empty or time up. */
static bool should_exit(forwarder_t *f, bool queue_empty)
{
    pthread_mutex_lock(&f->lock);
    bool out = f->stopping && (queue_empty || clock_mono_ms() >= f->stop_deadline);
    pthread_mutex_unlock(&f->lock);
    return out;
}

/* Sleeps until `until` (mono ms), watching the wake pipe and, if sock >= 0,
 * the idle connection. Returns early on a stop request; on a wake only when
 * wake_ends is set. Returns true when sock became readable. */
static bool wait_until(forwarder_t *f, int64_t until, int sock, bool wake_ends)
{
    for (;;) {
        pthread_mutex_lock(&f->lock);
        bool stopping = f->stopping;
        if (stopping && f->stop_deadline < until)
            until = f->stop_deadline;
        pthread_mutex_unlock(&f->lock);
        int64_t left = until - clock_mono_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd[2] = {
            { .fd = f->wake[0], .events = POLLIN },
            { .fd = sock, .events = POLLIN },
        };
        int rc = poll(pfd, sock >= 0 ? 2 : 1, (int)left);
        if (rc < 0 && errno != EINTR)
            return false;
        if (rc <= 0)
            continue;
        if (sock >= 0 && pfd[1].revents)
            return true;
        if (pfd[0].revents) {
            drain_pipe(f->wake[0]);
            pthread_mutex_lock(&f->lock);
            stopping = f->stopping;
            pthread_mutex_unlock(&f->lock);
            if (wake_ends || stopping)
                return false;
        }
    }
}

static void sample_rate(forwarder_t *f, int64_t now)
{
    size_t last = (f->rate_next + RATE_SLOTS - 1) % RATE_SLOTS;
    if (f->rate[last].t != 0 && now - f->rate[last].t < 1000)
        return;
    f->rate[f->rate_next].t = now;
    f->rate[f->rate_next].rows = f->st.stored_rows;
    f->rate_next = (f->rate_next + 1) % RATE_SLOTS;
}

static void note_stored(forwarder_t *f, const batch_t *b, size_t n)
{
    pthread_mutex_lock(&f->lock);
    f->st.transactions++;
    for (size_t i = 0; i < n; i++) {
        f->st.stored_batches++;
        f->st.stored_rows += b[i].rows;
        if (records_known((int)b[i].kind))
            f->st.stored_rows_kind[b[i].kind] += b[i].rows;
    }
    pthread_mutex_unlock(&f->lock);
}

static void note_error(forwarder_t *f, const char *err)
{
    pthread_mutex_lock(&f->lock);
    snprintf(f->st.last_error, sizeof f->st.last_error, "%s", err);
    pthread_mutex_unlock(&f->lock);
}

/* The spool itself failed (disk): the batches stay; try again later. */
static void spool_trouble(forwarder_t *f, const char *what, const char *err)
{
    log_msg(LL_ERROR, "forwarder: %s: %s", what, err);
    note_error(f, err);
}

/* A claim moved `bad` batches whose data no longer matched their crc to
 * quarantine. */
static void log_damaged(uint32_t bad)
{
    if (bad)
        log_msg(LL_ERROR, "spool: %u batch(es) damaged on disk (checksum mismatch) moved to"
                " quarantine", bad);
}

/* What became of a claimed group. */
enum settled {
    SETTLED_GONE,      /* the batches left the spool (stored, duplicate, quarantined) */
    SETTLED_KEEP,      /* still queued, certainly not stored */
    SETTLED_DOUBT,     /* still queued, maybe stored */
};

/* Acts on pgsink's verdict r for the claimed group b[0..n). Sets *link_ok
 * to false when the link failed (the caller backs off). */
static enum settled handle_result(forwarder_t *f, pgsink_result_t r, batch_t *b, size_t n,
                                  const char *err, bool *link_ok)
{
    char serr[512] = "";
    *link_ok = true;
    switch (r) {
    case PGSINK_STORED:
        if (f->crash_after > 0 && --f->crash_after == 0)
            _exit(137);   /* committed, not yet deleted: the worst moment to die */
        if (spool_remove(f->sp, b, n, serr, sizeof serr) < 0)
            spool_trouble(f, "removing stored batches from the spool", serr);
        note_stored(f, b, n);
        return SETTLED_GONE;
    case PGSINK_DUPLICATE:
        if (n > 1)
            break;   /* find out which, one by one */
        log_msg(LL_INFO, "batch %lld (%u rows) was already stored (ledger); not storing it"
                " again", (long long)b[0].seq, b[0].rows);
        if (spool_remove(f->sp, b, 1, serr, sizeof serr) < 0)
            spool_trouble(f, "removing a stored batch from the spool", serr);
        pthread_mutex_lock(&f->lock);
        f->st.duplicate_batches++;
        pthread_mutex_unlock(&f->lock);
        return SETTLED_GONE;
    case PGSINK_REJECTED:
        if (n > 1)
            break;
        log_msg(LL_ERROR, "PostgreSQL refused batch %lld (%u rows, %s, process %lld): %s;"
                " moved to the spool's quarantine (aldrec spool quarantine list)",
                (long long)b[0].seq, b[0].rows, records_name(b[0].kind),
                (long long)b[0].process_id, err);
        if (spool_quarantine(f->sp, b, err, serr, sizeof serr) < 0) {
            spool_trouble(f, "quarantining a batch", serr);
            *link_ok = false;   /* not the link: but wait before trying again */
            return SETTLED_KEEP;
        }
        pthread_mutex_lock(&f->lock);
        f->st.quarantined_batches++;
        f->st.quarantined_rows += b[0].rows;
        snprintf(f->st.last_error, sizeof f->st.last_error, "%s", err);
        pthread_mutex_unlock(&f->lock);
        return SETTLED_GONE;
    case PGSINK_WITHDRAWN:
        return SETTLED_KEEP;   /* the group before it failed: it says why */
    case PGSINK_RETRY:
    case PGSINK_IN_DOUBT:
        note_error(f, err);
        if (n > 1)
            f->single_until = b[n - 1].seq;   /* maybe too big for the link */
        *link_ok = false;
        return r == PGSINK_IN_DOUBT ? SETTLED_DOUBT : SETTLED_KEEP;
    }
    /* n > 1 and one of them is a duplicate or refused: nothing stored. */
    f->single_until = b[n - 1].seq;
    log_msg(LL_INFO, "a transaction of %zu batches failed (%s); writing them one by one", n,
            err);
    return SETTLED_KEEP;
}

static void log_drain(forwarder_t *f, bool draining, uint64_t queued_rows)
{
    pthread_mutex_lock(&f->lock);
    uint64_t stored = f->st.stored_rows;
    pthread_mutex_unlock(&f->lock);
    int64_t now = clock_mono_ms();
    if (draining && f->drain_started == 0) {
        f->drain_started = now;
        f->drain_rows_start = (int64_t)stored;
        log_msg(LL_INFO, "draining a backlog of %llu rows from the spool, oldest first",
                (unsigned long long)queued_rows);
    } else if (!draining && f->drain_started != 0) {
        double s = (double)(now - f->drain_started) / 1000.0;
        uint64_t rows = stored - (uint64_t)f->drain_rows_start;
        log_msg(LL_INFO, "backlog drained: %llu rows in %.1f s (%.0f rows/s)",
                (unsigned long long)rows, s, s > 0 ? (double)rows / s : 0.0);
        f->drain_started = 0;
        /* The drain's transactions held up to drain_rows of COPY data at a
         * time; malloc keeps what they freed (in this thread's arena) as
         * its own free memory, and a recorder that runs for months would
         * carry the largest backlog it ever drained. Give it back. */
        malloc_trim(0);
    }
}

enum outcome { OUT_AGAIN, OUT_LINK_FAILED, OUT_EXIT };

static void read_ahead(void *arg);
static void lanes_stop(forwarder_t *f, int started);

/* PostgreSQL answered: the backoff starts over, and a failure being
 * complained about ends (ss: the spool as it was before this turn). */
static void link_recovered(forwarder_t *f, const spool_stats_t *ss)
{
    backoff_reset(&f->backoff);
    log_release(&f->db_down, LL_INFO, "PostgreSQL reachable again; %llu batches"
                " (%llu rows) waiting in the spool", (unsigned long long)ss->batches,
                (unsigned long long)ss->rows);
}

/* Acts on the outcome r of writing the claimed group b[0..n) (us: how
 * long it took; behind: it was written while the group before it was)
 * and frees it; ss: the spool before this turn. Returns false when the
 * link failed (err says why), *what is what became of the group. */
static bool settle(forwarder_t *f, pgsink_result_t r, int64_t us, bool behind, batch_t *b,
                   size_t n, const spool_stats_t *ss, const char *err, enum settled *what)
{
    if (r == PGSINK_STORED) {
        link_recovered(f, ss);
        int64_t wall = clock_real_us();
        pthread_mutex_lock(&f->lock);
        hist_add(&f->st.write_us, us > 0 ? (uint64_t)us : 0);
        if (behind)
            f->st.overlapped++;
        for (size_t i = 0; i < n; i++) {
            if (b[i].kind != BATCH_POINTS)
                continue;
            int64_t d = wall - b[i].last_ts_us, l = wall - b[i].first_ts_us;
            hist_add(&f->st.commit_delay_us, d > 0 ? (uint64_t)d : 0);
            hist_add(&f->st.commit_lag_us, l > 0 ? (uint64_t)l : 0);
        }
        pthread_mutex_unlock(&f->lock);
    }
    bool ok;
    *what = handle_result(f, r, b, n, err, &ok);
    /* One by one up to single_until: a withdrawn batch has not been
     * written, so it ends nothing (else a refused or replayed group with
     * one batch behind it would be claimed whole again, for ever). */
    if (r != PGSINK_WITHDRAWN && n == 1 && b[0].seq >= f->single_until)
        f->single_until = 0;
    char serr[512];
    /* Gone: n == 0 ends the oldest claim, which this group's is (groups
     * settle in their order) and leaves its batches' marks alone (a
     * stored batch that failed to leave must stay undroppable). */
    if (spool_unclaim(f->sp, b, *what == SETTLED_GONE ? 0 : n, *what == SETTLED_DOUBT, serr,
                      sizeof serr) < 0)
        spool_trouble(f, "releasing batches", serr);
    spool_batches_free(b, n);
    poke(f->notify[1]);
    return ok;
}

/* ---- a drain over two connections (forwarder.h) --------------------------- */

/* Lane's commit hook: COMMIT only once the group before it is stored. */
static bool lane_commit_ok(void *arg)
{
    struct lane *l = arg;
    forwarder_t *f = l->f;
    pthread_mutex_lock(&f->lock);
    while (l->verdict == 0)
        pthread_cond_wait(&f->lane_cond, &f->lock);
    bool ok = l->verdict > 0;
    pthread_mutex_unlock(&f->lock);
    return ok;
}

static void *lane_main(void *arg)
{
    struct lane *l = arg;
    forwarder_t *f = l->f;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!l->quit && (!l->b || l->done))
            pthread_cond_wait(&f->lane_cond, &f->lock);
        if (l->quit)
            break;
        const batch_t *b = l->b;
        size_t n = l->n;
        pthread_mutex_unlock(&f->lock);
        char err[512];
        int64_t t0 = clock_mono_us();
        pgsink_result_t r = pgsink_write(l->sink, b, n, err, sizeof err);
        int64_t us = clock_mono_us() - t0;
        pthread_mutex_lock(&f->lock);
        l->r = r;
        l->us = us;
        snprintf(l->err, sizeof l->err, "%s", err);
        l->done = true;
        pthread_cond_broadcast(&f->lane_cond);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* The second connection failed (what: how): drains go over one for
 * LANE_RETRY_MS, not a connection attempt per group. */
static void lane_failed(forwarder_t *f, const char *what, const char *err)
{
    log_complain(&f->lane_down, LL_WARN, "draining over one connection: %s: %s", what, err);
    f->lane_retry_at = clock_mono_ms() + LANE_RETRY_MS;
}

/* Starts both lanes: lane 0 borrows the forwarder's connection, lane 1
 * connects its own. Returns 0, or -1 (logged): drain over one. */
static int lanes_start(forwarder_t *f)
{
    char err[512];
    if (clock_mono_ms() < f->lane_retry_at)
        return -1;
    if (pgsink_connect(f->lane[1].sink, err, sizeof err) < 0) {
        lane_failed(f, "a second one failed", err);
        return -1;
    }
    log_release(&f->lane_down, LL_INFO, "a second connection for draining works again");
    f->lane[0].sink = f->sink;
    pgsink_set_busy_hook(f->sink, NULL, NULL);
    int started = 0;
    for (; started < LANES; started++) {
        struct lane *l = &f->lane[started];
        l->f = f;
        l->b = NULL;
        l->done = l->quit = false;
        pgsink_set_commit_hook(l->sink, lane_commit_ok, l);
        if (pthread_create(&l->thread, NULL, lane_main, l) != 0)
            break;
    }
    if (started == LANES)
        return 0;
    log_msg(LL_WARN, "draining over one connection: cannot start a thread for the second");
    lanes_stop(f, started);
    return -1;
}

/* Stops the first `started` lanes (idle: every group settled) and takes
 * the forwarder's connection back; lane 1's is closed. */
static void lanes_stop(forwarder_t *f, int started)
{
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < started; i++)
        f->lane[i].quit = true;
    pthread_cond_broadcast(&f->lane_cond);
    pthread_mutex_unlock(&f->lock);
    for (int i = 0; i < started; i++)
        pthread_join(f->lane[i].thread, NULL);
    for (int i = 0; i < LANES; i++)
        pgsink_set_commit_hook(f->lane[i].sink, NULL, NULL);
    pgsink_set_busy_hook(f->sink, read_ahead, f);
    pgsink_disconnect(f->lane[1].sink);
}

/* Hands b[0..n) to lane l; behind: a group before it is in flight, so it
 * may not COMMIT until that one is stored. */
static void lane_give(forwarder_t *f, struct lane *l, batch_t *b, size_t n, bool behind)
{
    pthread_mutex_lock(&f->lock);
    l->b = b;
    l->n = n;
    l->done = false;
    l->behind = behind;
    l->verdict = behind ? 0 : 1;
    pthread_cond_broadcast(&f->lane_cond);
    pthread_mutex_unlock(&f->lock);
}

static void lane_verdict(forwarder_t *f, struct lane *l, bool commit)
{
    pthread_mutex_lock(&f->lock);
    l->verdict = commit ? 1 : -1;
    pthread_cond_broadcast(&f->lane_cond);
    pthread_mutex_unlock(&f->lock);
}

/* Drains with both lanes (started), from the claimed group b[0..n), until
 * nothing is left to claim or a group fails; then stops them. */
static enum outcome drain_two(forwarder_t *f, batch_t *b, size_t n, const spool_stats_t *ss,
                              char *err, size_t errlen)
{
    struct lane *q[LANES];     /* in flight, oldest first */
    size_t nq = 0, next = 1;
    bool more = true, ok = true;

    lane_give(f, &f->lane[0], b, n, false);
    q[nq++] = &f->lane[0];
    while (nq > 0) {
        while (more && nq < LANES) {
            batch_t *nb = NULL;
            size_t nn = 0;
            uint32_t bad = 0;
            char cerr[512];
            if (should_exit(f, false) ||   /* stopping, time up: claim nothing more */
                spool_claim(f->sp, f->drain_batches, f->drain_rows, &nb, &nn, &bad, cerr,
                            sizeof cerr) < 0) {
                more = false;   /* a spool failure: the next turn tells */
                break;
            }
            log_damaged(bad);
            if (nn == 0) {
                more = false;
                break;
            }
            struct lane *l = &f->lane[next];
            next = (next + 1) % LANES;
            lane_give(f, l, nb, nn, true);
            q[nq++] = l;
        }
        struct lane *h = q[0];
        pthread_mutex_lock(&f->lock);
        while (!h->done)
            pthread_cond_wait(&f->lane_cond, &f->lock);
        pgsink_result_t r = h->r;
        int64_t us = h->us;
        bool behind = h->behind;
        char lerr[512];
        snprintf(lerr, sizeof lerr, "%s", h->err);
        batch_t *hb = h->b;
        size_t hn = h->n;
        h->b = NULL;
        sample_rate(f, clock_mono_ms());
        pthread_mutex_unlock(&f->lock);

        enum settled what;
        if (!settle(f, r, us, behind, hb, hn, ss, lerr, &what)) {
            if (h->sink != f->sink) {
                /* The second connection failed: not the link (if the
                 * server is gone, the first one's next write says so;
                 * lane 0 may be writing on it now: not to be touched). */
                lane_failed(f, "the second one failed", lerr);
            } else {
                ok = false;
                snprintf(err, errlen, "%s", lerr);
            }
            more = false;
        }
        if (f->single_until)
            more = false;
        memmove(q, q + 1, (nq - 1) * sizeof q[0]);
        nq--;
        if (nq > 0)   /* the next one commits only behind a group that left */
            lane_verdict(f, q[0], what == SETTLED_GONE);
        spool_checkpoint(f->sp);
    }
    lanes_stop(f, LANES);
    return ok ? OUT_AGAIN : OUT_LINK_FAILED;
}

/* One turn of the loop: connect if needed, claim, write, settle. */
static enum outcome run_once(forwarder_t *f, char *err, size_t errlen)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&f->lock);
    sample_rate(f, now);
    pthread_mutex_unlock(&f->lock);
    spool_checkpoint(f->sp);

    spool_stats_t ss;
    spool_get_stats(f->sp, &ss);
    if (should_exit(f, ss.batches == 0))
        return OUT_EXIT;

    if (!pgsink_connected(f->sink)) {
        /* Connect even with nothing to send: the link state then says
         * whether PostgreSQL is reachable (health, metrics), and the first
         * batch of a run finds the connection made. */
        if (now < f->next_try) {
            /* An append ends the wait (not the backoff): the next turn
             * checkpoints the log it grew, so that while PostgreSQL is
             * down the log stays near its threshold too. */
            wait_until(f, f->next_try, -1, true);
            return OUT_AGAIN;
        }
        link_to(f, LINK_CONNECTING);
        if (pgsink_connect(f->sink, err, errlen) < 0)
            return OUT_LINK_FAILED;
        link_to(f, LINK_UP);
        /* Through a pooler (pgbouncer) a connection proves nothing about
         * PostgreSQL behind it: with batches waiting, only a stored one
         * ends the failure and its backoff. */
        if (ss.batches == 0)
            link_recovered(f, &ss);
    }

    batch_t *b = NULL;
    size_t n = 0;
    uint32_t bad = 0;
    size_t maxb = f->single_until ? 1 : f->drain_batches;
    if (f->ahead_n > 0) {
        int c = f->single_until ? 0 : spool_claim_peeked(f->sp, f->ahead, f->ahead_n, err, errlen);
        if (c == 1) {
            b = f->ahead;
            n = f->ahead_n;
        } else {
            spool_batches_free(f->ahead, f->ahead_n);
        }
        f->ahead = NULL;
        f->ahead_n = 0;
        if (c < 0) {
            spool_trouble(f, "reading the spool", err);
            wait_until(f, clock_mono_ms() + IDLE_WAKE_MS, -1, false);
            return OUT_AGAIN;
        }
    }
    if (n == 0 && spool_claim(f->sp, maxb, f->drain_rows, &b, &n, &bad, err, errlen) < 0) {
        spool_trouble(f, "reading the spool", err);
        wait_until(f, clock_mono_ms() + IDLE_WAKE_MS, -1, false);
        return OUT_AGAIN;
    }
    log_damaged(bad);
    if (n == 0) {
        link_to(f, LINK_UP);
        log_drain(f, false, 0);
        f->single_until = 0;
        /* Idle: watch the connection, so that a server that goes away is
         * noticed (and shown) before the next batch needs it. */
        if (wait_until(f, clock_mono_ms() + IDLE_WAKE_MS, pgsink_socket(f->sink), true) &&
            pgsink_check(f->sink, err, errlen) < 0)
            return OUT_LINK_FAILED;
        return OUT_AGAIN;
    }
    bool draining = n > 1 || ss.batches > n + 1;
    link_to(f, draining ? LINK_DRAINING : LINK_UP);
    log_drain(f, draining, ss.rows);

    /* Two connections for a backlog of two full groups or more: not for
     * the few batches a slow COMMIT leaves queued under load, which
     * would open and close a connection every few seconds. */
    bool big = ss.rows >= 2 * (uint64_t)f->drain_rows ||
               ss.batches >= 2 * (uint64_t)f->drain_batches;
    if (draining && big && !f->single_until && f->drain_conns > 1 && lanes_start(f) == 0)
        return drain_two(f, b, n, &ss, err, errlen);

    f->ahead_after = draining && !f->single_until ? b[n - 1].seq : 0;
    int64_t t0 = clock_mono_us();
    pgsink_result_t r = pgsink_write(f->sink, b, n, err, errlen);
    f->ahead_after = 0;
    enum settled what;
    bool ok = settle(f, r, clock_mono_us() - t0, false, b, n, &ss, err, &what);
    return ok ? OUT_AGAIN : OUT_LINK_FAILED;
}

/* The sink's busy hook: PostgreSQL is inserting the group in flight. */
static void read_ahead(void *arg)
{
    forwarder_t *f = arg;
    char err[512];
    if (f->ahead_after == 0 || f->ahead_n > 0)
        return;
    if (spool_peek(f->sp, f->ahead_after, f->drain_batches, f->drain_rows, &f->ahead,
                   &f->ahead_n, err, sizeof err) < 0)
        log_msg(LL_DEBUG, "reading ahead in the spool: %s", err);   /* the claim will tell */
    else
        pgsink_prepare(f->sink, f->ahead, f->ahead_n);
}

static void *forwarder_main(void *arg)
{
    forwarder_t *f = arg;
    char err[512];
    enum outcome o;

    /* +-25 % jitter so that many recorders do not reconnect in step. */
    backoff_init(&f->backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS, BACKOFF_JITTER_QUARTER,
                 (unsigned)time(NULL) ^ (unsigned)getpid());
    while ((o = run_once(f, err, sizeof err)) != OUT_EXIT) {
        switch (o) {
        case OUT_AGAIN:
            break;
        case OUT_LINK_FAILED: {
            pthread_mutex_lock(&f->lock);
            set_link(f, LINK_SPOOLING);
            snprintf(f->st.last_error, sizeof f->st.last_error, "%s", err);
            pthread_mutex_unlock(&f->lock);
            log_complain(&f->db_down, LL_WARN, "cannot store batches: %s; spooling, retrying"
                         " with backoff", err);
            f->next_try = clock_mono_ms() + backoff_next(&f->backoff);
            break;
        }
        case OUT_EXIT:
            break;
        }
    }
    pthread_mutex_lock(&f->lock);
    f->exited = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

static void close_pipe(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

forwarder_t *forwarder_start(const forwarder_opts_t *o, spool_t *sp, char *err, size_t errlen)
{
    forwarder_t *f = calloc(1, sizeof *f);
    pthread_condattr_t ca;

    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->wake[0] = f->wake[1] = f->cancel[0] = f->cancel[1] = f->notify[0] = f->notify[1] = -1;
    f->sp = sp;
    f->drain_batches = o->drain_batches ? o->drain_batches : 1;
    f->drain_rows = o->drain_rows ? o->drain_rows : 1;
    f->drain_conns = o->drain_connections == 1 ? 1 : LANES;
    f->st.link = LINK_SPOOLING;
    f->link_since = clock_mono_ms();
    const char *crash = getenv("ALDREC_TEST_CRASH_AFTER_COMMIT");
    f->crash_after = crash ? atol(crash) : 0;
    if (pipe2(f->wake, O_NONBLOCK | O_CLOEXEC) < 0 ||
        pipe2(f->cancel, O_NONBLOCK | O_CLOEXEC) < 0 ||
        pipe2(f->notify, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    f->sink = pgsink_new(o->conninfo, o->recorder_id, o->timeout_ms);
    if (!f->sink) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    pgsink_set_cancel_fd(f->sink, f->cancel[0]);
    pgsink_set_busy_hook(f->sink, read_ahead, f);
    if (f->drain_conns > 1) {
        f->lane[1].sink = pgsink_new(o->conninfo, o->recorder_id, o->timeout_ms);
        if (!f->lane[1].sink) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        pgsink_set_cancel_fd(f->lane[1].sink, f->cancel[0]);
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&f->lane_cond, NULL);
    if (pthread_create(&f->thread, NULL, forwarder_main, f) != 0) {
        snprintf(err, errlen, "cannot start the forwarder thread");
        pthread_cond_destroy(&f->lane_cond);
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        goto fail;
    }
    return f;
fail:
    close_pipe(f->wake);
    close_pipe(f->cancel);
    close_pipe(f->notify);
    pgsink_free(f->sink);
    pgsink_free(f->lane[1].sink);
    free(f);
    return NULL;
}

void forwarder_wake(forwarder_t *f)
{
    poke(f->wake[1]);
}

int forwarder_notify_fd(const forwarder_t *f)
{
    return f->notify[0];
}

void forwarder_drain_notify(forwarder_t *f)
{
    drain_pipe(f->notify[0]);
}

void forwarder_get_stats(forwarder_t *f, forwarder_stats_t *out)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&f->lock);
    *out = f->st;
    out->link_for_s = (double)(now - f->link_since) / 1000.0;
    /* Rate between the oldest sample of the last 10 s and now. */
    out->rows_per_s = 0;
    int64_t oldest = 0;
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        int64_t age = now - f->rate[i].t;
        if (f->rate[i].t == 0 || age > 10500 || age < 500 || age <= oldest)
            continue;
        oldest = age;
        out->rows_per_s = (double)(f->st.stored_rows - f->rate[i].rows) * 1000.0 / (double)age;
    }
    pthread_mutex_unlock(&f->lock);
}

void forwarder_stop(forwarder_t *f, int drain_ms)
{
    if (!f)
        return;
    struct timespec ts;
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    f->stop_deadline = clock_mono_ms() + drain_ms;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += drain_ms / 1000;
    ts.tv_nsec += (long)(drain_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_unlock(&f->lock);
    poke(f->wake[1]);
    pthread_mutex_lock(&f->lock);
    while (!f->exited && pthread_cond_timedwait(&f->cond, &f->lock, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&f->lock);
    /* Time is up: whatever pgsink waits for, it stops waiting now. */
    poke(f->cancel[1]);
    pthread_join(f->thread, NULL);
    spool_batches_free(f->ahead, f->ahead_n);
    pgsink_free(f->sink);
    pgsink_free(f->lane[1].sink);
    close_pipe(f->wake);
    close_pipe(f->cancel);
    close_pipe(f->notify);
    pthread_cond_destroy(&f->lane_cond);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
