/* spool_loss.c — what leaves the spool without reaching PostgreSQL:
 * batches dropped to make room or lost to a failed write become gap
 * records; the quarantine commands list, retry and drop quarantined
 * batches (layout and invariants: spool.h). */
#include "store/spool.h"


#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fnv.h"
#include "common/utc.h"
#include "store/pgcopy.h"
#include "store/records.h"

#include "store/spool_impl.h"

/* ---- parameter sets (sorted, unique int32 arrays) ------------------------ */

static void idset_add(void *arg, int32_t id)
{
    struct idset *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        int32_t *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv) {
            s->oom = true;
            return;
        }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = id;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void idset_normalise(struct idset *s)
{
    if (s->n == 0)
        return;
    qsort(s->v, s->n, sizeof *s->v, cmp_i32);
    size_t k = 1;
    for (size_t i = 1; i < s->n; i++)
        if (s->v[i] != s->v[k - 1])
            s->v[k++] = s->v[i];
    s->n = k;
}

/* Adds the parameter ids of a POINTS payload. */
void sp_idset_add_points(struct idset *s, const uint8_t *data, size_t len)
{
    pgcopy_points_scan(data, len, idset_add, s);
    /* Keep the set small while victims accumulate. */
    if (s->n > 4096)
        idset_normalise(s);
}

static void idset_add_blob(struct idset *s, const void *blob, int bytes)
{
    for (int i = 0; i + 4 <= bytes; i += 4) {
        int32_t id;
        memcpy(&id, (const uint8_t *)blob + i, 4);
        idset_add(s, id);
    }
}

/* ---- gaps --------------------------------------------------------------- */

/* The one-row data_gaps COPY stream (columns: records.h, BATCH_GAPS). */
static uint8_t *gap_payload(int64_t process_id, int64_t first, int64_t last, uint64_t points,
                            uint32_t batches, const int32_t *params, size_t nparams,
                            const char *reason, size_t *len)
{
    pgcopy_t *p = pgcopy_new();
    uint8_t *out = NULL;
    if (!p)
        return NULL;
    int rc = pgcopy_row(p, records_ncolumns(BATCH_GAPS));
    rc |= process_id ? pgcopy_put_int8(p, process_id) : pgcopy_put_null(p);
    rc |= pgcopy_put_ts(p, first);
    rc |= pgcopy_put_ts(p, last);
    rc |= pgcopy_put_int8(p, (int64_t)points);
    rc |= pgcopy_put_int4(p, (int32_t)batches);
    rc |= pgcopy_put_int4_array(p, params, nparams);
    rc |= pgcopy_put_text(p, reason, strlen(reason));
    if (rc == 0)
        out = pgcopy_take(p, len);
    pgcopy_free(p);
    return out;
}

int sp_insert_batch(spool_t *sp, enum batch_kind kind, int64_t process_id, uint32_t rows,
                        int64_t first, int64_t last, const uint8_t *data, size_t len,
                        int64_t *seq, char *err, size_t errlen)
{
    if (len > INT32_MAX) {
        snprintf(err, errlen, "spool: batch of %zu bytes is too large", len);
        return -1;
    }
    sqlite3_stmt *s = sp_stmt(sp, ST_INSERT);
    sqlite3_bind_int(s, 1, kind);
    sqlite3_bind_int64(s, 2, process_id);
    sqlite3_bind_int64(s, 3, rows);
    sqlite3_bind_int64(s, 4, first);
    sqlite3_bind_int64(s, 5, last);
    sqlite3_bind_int64(s, 6, clock_real_us());
    sqlite3_bind_int64(s, 7, (int64_t)fnv1a64(FNV1A64_INIT, data, len));
    sqlite3_bind_blob(s, 8, data, (int)len, SQLITE_STATIC);
    if (sp_step_done(sp, s, "appending a batch", err, errlen) < 0)
        return -1;
    *seq = sqlite3_last_insert_rowid(sp->db);
    sp->batches++;
    sp->rows += rows;
    sp->bytes += len;
    return 0;
}

static const char *cause_reason(int cause)
{
    switch (cause) {
    case CAUSE_FULL:
        return "spool full";
    case CAUSE_WRITE_FAILED:
        return "spool write failed";
    default:
        return "dropped";
    }
}

/* One open gap as read from gap_open. */
struct gap {
    int64_t pid, first, last, last_seq;
    int cause;
    uint64_t points;
    uint32_t batches;
    struct idset params;
    char reason[512];
};

/* Queues a GAPS batch for every open gap of process_id (< 0: all) and
 * cause (0: all), and removes them from gap_open. */
int sp_close_gaps(spool_t *sp, int64_t process_id, int cause, uint32_t *closed, char *err,
                      size_t errlen)
{
    struct gap *v = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    sqlite3_stmt *s = sp_stmt(sp, ST_GAP_LIST);
    sqlite3_bind_int64(s, 1, process_id);
    sqlite3_bind_int(s, 2, cause);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            struct gap *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                snprintf(err, errlen, "spool: out of memory");
                sqlite3_reset(s);
                goto out;
            }
            v = nv;
        }
        struct gap *g = &v[n++];
        *g = (struct gap){
            .pid = sqlite3_column_int64(s, 0),
            .cause = sqlite3_column_int(s, 1),
            .first = sqlite3_column_int64(s, 2),
            .last = sqlite3_column_int64(s, 3),
            .points = (uint64_t)sqlite3_column_int64(s, 4),
            .batches = (uint32_t)sqlite3_column_int(s, 5),
        };
        idset_add_blob(&g->params, sqlite3_column_blob(s, 6), sqlite3_column_bytes(s, 6));
        snprintf(g->reason, sizeof g->reason, "%s: %s", cause_reason(g->cause),
                 (const char *)sqlite3_column_text(s, 7));
    }
    sqlite3_reset(s);
    if (step != SQLITE_DONE) {
        sp_db_fail(sp, "listing open gaps", err, errlen);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct gap *g = &v[i];
        size_t len;
        int64_t seq;
        uint8_t *data = g->params.oom ? NULL
                        : gap_payload(g->pid, g->first, g->last, g->points, g->batches,
                                      g->params.v, g->params.n, g->reason, &len);
        if (!data) {
            snprintf(err, errlen, "spool: out of memory building a gap record");
            goto out;
        }
        int ins = sp_insert_batch(sp, BATCH_GAPS, g->pid, 1, g->first, g->last, data, len, &seq,
                               err, errlen);
        free(data);
        if (ins < 0)
            goto out;
        s = sp_stmt(sp, ST_GAP_DEL);
        sqlite3_bind_int64(s, 1, g->pid);
        sqlite3_bind_int(s, 2, g->cause);
        if (sp_step_done(sp, s, "closing a gap", err, errlen) < 0)
            goto out;
        sp->gaps_open--;
        if (closed)
            (*closed)++;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(v[i].params.v);
    free(v);
    return rc;
}

/* Whether a batch dropped now (seq; INT64_MAX for a new batch that never
 * got one) continues the hole of batches first_seq..last_seq: it comes
 * after it and no batch of the process between them is still spooled or
 * has gone to PostgreSQL. If not, the data has a piece in the middle and
 * the hole gets two records, so that a record's time range never covers
 * stored data. (A batch before the hole — one released by the forwarder
 * after a failed send — always starts a new record.) */
static int gap_continues(spool_t *sp, int64_t pid, int64_t first_seq, int64_t last_seq,
                         int64_t seq)
{
    if (seq < first_seq || sp->removed_hi > last_seq)
        return 0;
    sqlite3_stmt *s = sp_stmt(sp, ST_BETWEEN);
    sqlite3_bind_int64(s, 1, pid);
    sqlite3_bind_int64(s, 2, last_seq);
    sqlite3_bind_int64(s, 3, seq);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 1 : rc == SQLITE_ROW ? 0 : -1;
}

/* Points dropped from one process for one cause. */
/* Adds d to its open gap (or opens one) and to the process's drop
 * counters. A hole that does not continue the open one closes it first. */
int sp_gap_add(spool_t *sp, struct drop *d, char *err, size_t errlen)
{
    sqlite3_stmt *s = sp_stmt(sp, ST_GAP_GET);
    sqlite3_bind_int64(s, 1, d->process_id);
    sqlite3_bind_int(s, 2, d->cause);
    int rc = sqlite3_step(s);
    bool existed = rc == SQLITE_ROW;
    int64_t first_seq = existed ? sqlite3_column_int64(s, 5) : 0;
    int64_t last_seq = existed ? sqlite3_column_int64(s, 6) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sp_db_fail(sp, "reading an open gap", err, errlen);
    if (existed && d->cause == CAUSE_FULL) {
        int cont = gap_continues(sp, d->process_id, first_seq, last_seq, d->seq);
        if (cont < 0)
            return sp_db_fail(sp, "reading the queue", err, errlen);
        if (!cont) {
            if (sp_close_gaps(sp, d->process_id, d->cause, NULL, err, errlen) < 0)
                return -1;
            existed = false;
        }
    }
    struct gap g = { .first = d->first_ts, .last = d->last_ts, .points = d->points,
                     .batches = d->batches };
    if (existed) {
        s = sp_stmt(sp, ST_GAP_GET);
        sqlite3_bind_int64(s, 1, d->process_id);
        sqlite3_bind_int(s, 2, d->cause);
        if (sqlite3_step(s) == SQLITE_ROW) {
            int64_t f = sqlite3_column_int64(s, 0), l = sqlite3_column_int64(s, 1);
            g.first = f < g.first ? f : g.first;
            g.last = l > g.last ? l : g.last;
            g.points += (uint64_t)sqlite3_column_int64(s, 2);
            g.batches += (uint32_t)sqlite3_column_int(s, 3);
            idset_add_blob(&d->params, sqlite3_column_blob(s, 4), sqlite3_column_bytes(s, 4));
        }
        sqlite3_reset(s);
    }
    if (d->params.oom) {
        snprintf(err, errlen, "spool: out of memory collecting parameter ids");
        return -1;
    }
    idset_normalise(&d->params);
    int64_t seq = d->seq;
    if (seq == INT64_MAX) {
        /* A batch that never got a number: mark the hole as ending after
         * the newest batch so far. */
        s = sp_stmt(sp, ST_MAX_SEQ);
        seq = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
    }
    s = sp_stmt(sp, ST_GAP_PUT);
    sqlite3_bind_int64(s, 1, d->process_id);
    sqlite3_bind_int(s, 2, d->cause);
    sqlite3_bind_int64(s, 3, g.first);
    sqlite3_bind_int64(s, 4, g.last);
    sqlite3_bind_int64(s, 5, (int64_t)g.points);
    sqlite3_bind_int64(s, 6, g.batches);
    sqlite3_bind_blob(s, 7, d->params.v ? (const void *)d->params.v : "",
                      (int)(d->params.n * sizeof(int32_t)), SQLITE_STATIC);
    sqlite3_bind_text(s, 8, d->detail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, clock_real_us());
    sqlite3_bind_int64(s, 10, existed ? first_seq : seq);
    sqlite3_bind_int64(s, 11, seq);
    if (sp_step_done(sp, s, "recording a gap", err, errlen) < 0)
        return -1;
    s = sp_stmt(sp, ST_PROC_DROPS);
    sqlite3_bind_int64(s, 1, d->process_id);
    sqlite3_bind_int64(s, 2, (int64_t)d->points);
    sqlite3_bind_int64(s, 3, d->batches);
    if (sp_step_done(sp, s, "counting dropped points", err, errlen) < 0)
        return -1;
    if (!existed)
        sp->gaps_open++;
    sp->dropped_points += d->points;
    sp->dropped_batches += d->batches;
    return 0;
}

/* Points of batches that could not be written go into gap_open now. */
int sp_flush_lost(spool_t *sp, char *err, size_t errlen)
{
    for (size_t i = 0; i < sp->nlost; i++) {
        struct lost *l = &sp->lost[i];
        /* The ids were not kept (memory); the record names no parameter.
         * Counters were raised when the points were lost. */
        struct drop d = { .process_id = l->process_id, .cause = CAUSE_WRITE_FAILED,
                          .seq = INT64_MAX, .first_ts = l->first_ts, .last_ts = l->last_ts,
                          .points = l->points, .batches = l->batches, .detail = l->detail };
        sp->dropped_points -= l->points;
        sp->dropped_batches -= l->batches;
        int rc = sp_gap_add(sp, &d, err, errlen);
        free(d.params.v);
        if (rc < 0)
            return -1;
        /* Sampled rows, too, so that "recorded" counts them. */
        sqlite3_stmt *s = sp_stmt(sp, ST_PROC_ROWS);
        sqlite3_bind_int64(s, 1, l->process_id);
        sqlite3_bind_int64(s, 2, (int64_t)l->points);
        if (sp_step_done(sp, s, "counting rows", err, errlen) < 0)
            return -1;
    }
    return 0;
}

void sp_note_lost(spool_t *sp, const batch_t *b, const char *why)
{
    struct lost *l = NULL;
    for (size_t i = 0; i < sp->nlost; i++)
        if (sp->lost[i].process_id == b->process_id)
            l = &sp->lost[i];
    if (!l && sp->nlost < MAX_LOST) {
        l = &sp->lost[sp->nlost++];
        *l = (struct lost){ .process_id = b->process_id, .first_ts = b->first_ts_us,
                            .last_ts = b->last_ts_us };
        snprintf(l->detail, sizeof l->detail, "%s", why);
    }
    if (!l)
        l = &sp->lost[MAX_LOST - 1];   /* many processes failing at once: lump them */
    if (b->first_ts_us < l->first_ts)
        l->first_ts = b->first_ts_us;
    if (b->last_ts_us > l->last_ts)
        l->last_ts = b->last_ts_us;
    l->points += b->rows;
    l->batches++;
    sp->dropped_points += b->rows;
    sp->dropped_batches++;
}

/* Drops the oldest POINTS batches that may be dropped — not claimed by the
 * forwarder, not possibly in PostgreSQL already (sent) — until `need` more
 * bytes fit under the cap. Returns 1 when that is impossible (nothing
 * dropped), 0 when done, -1 on error. */
int sp_make_room(spool_t *sp, size_t need, const char *detail, spool_append_result_t *res,
                     char *err, size_t errlen)
{
    int64_t over = sp_used(sp) + (int64_t)need - sp->max_bytes;
    int64_t *victims = NULL;
    size_t nv = 0, cap = 0;
    int rc = -1;

    sqlite3_stmt *s = sp_stmt(sp, ST_VICTIMS);
    sqlite3_bind_int64(s, 1, sp_claim_hi(sp));
    while (over > 0 && sqlite3_step(s) == SQLITE_ROW) {
        if (nv == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nvict = realloc(victims, cap * sizeof *nvict);
            if (!nvict) {
                sqlite3_reset(s);
                snprintf(err, errlen, "spool: out of memory");
                goto out;
            }
            victims = nvict;
        }
        victims[nv++] = sqlite3_column_int64(s, 0);
        over -= sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (over > 0) {
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < nv; i++) {
        s = sp_stmt(sp, ST_DROP);
        sqlite3_bind_int64(s, 1, victims[i]);
        if (sqlite3_step(s) != SQLITE_ROW) {
            sp_db_fail(sp, "dropping a batch", err, errlen);
            sqlite3_reset(s);
            goto out;
        }
        struct drop d = {
            .process_id = sqlite3_column_int64(s, 0),
            .cause = CAUSE_FULL,
            .seq = victims[i],
            .points = (uint64_t)sqlite3_column_int64(s, 1),
            .batches = 1,
            .first_ts = sqlite3_column_int64(s, 2),
            .last_ts = sqlite3_column_int64(s, 3),
            .detail = detail,
        };
        size_t blen = (size_t)sqlite3_column_bytes(s, 4);
        sp_idset_add_points(&d.params, sqlite3_column_blob(s, 4), blen);
        sqlite3_reset(s);
        sp->batches--;
        sp->rows -= d.points;
        sp->bytes -= blen;
        int grc = sp_gap_add(sp, &d, err, errlen);
        free(d.params.v);
        if (grc < 0)
            goto out;
        res->dropped_batches++;
        res->dropped_points += d.points;
    }
    rc = 0;
out:
    free(victims);
    return rc;
}


/* ---- quarantine commands --------------------------------------------------- */

long spool_quarantine_list(spool_t *sp, void (*fn)(void *arg, const spool_qentry_t *e),
                           void *arg, char *err, size_t errlen)
{
    long n = 0;
    pthread_mutex_lock(&sp->lock);
    sqlite3_stmt *s = sp_stmt(sp, ST_Q_LIST);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        spool_qentry_t e = {
            .seq = sqlite3_column_int64(s, 0),
            .kind = (enum batch_kind)sqlite3_column_int(s, 1),
            .process_id = sqlite3_column_int64(s, 2),
            .rows = (uint32_t)sqlite3_column_int64(s, 3),
            .first_ts_us = sqlite3_column_int64(s, 4),
            .last_ts_us = sqlite3_column_int64(s, 5),
            .quarantined_us = sqlite3_column_int64(s, 6),
        };
        snprintf(e.error, sizeof e.error, "%s", (const char *)sqlite3_column_text(s, 7));
        fn(arg, &e);
        n++;
    }
    sqlite3_reset(s);
    if (step != SQLITE_DONE)
        n = sp_db_fail(sp, "listing the quarantine", err, errlen);
    pthread_mutex_unlock(&sp->lock);
    return n;
}

/* Ends a change of the quarantine, inside its transaction (lock held):
 * empties seq's rows (ST_Q_DELETE), commits and recomputes the counters.
 * Returns the rows emptied, or -1 with err (rolled back). */
static long quarantine_finish(spool_t *sp, int64_t seq, char *err, size_t errlen)
{
    sqlite3_stmt *s = sp_stmt(sp, ST_Q_DELETE);
    sqlite3_bind_int64(s, 1, seq);
    if (sp_step_done(sp, s, "emptying the quarantine", err, errlen) < 0) {
        sp_rollback(sp);
        return -1;
    }
    long n = sqlite3_changes(sp->db);
    if (sp_commit(sp, err, errlen) < 0 || sp_reload_counters(sp, err, errlen) < 0)
        return -1;
    return n;
}

long spool_quarantine_retry(spool_t *sp, int64_t seq, char *err, size_t errlen)
{
    long n = -1;
    pthread_mutex_lock(&sp->lock);
    if (sp_check_writable(sp, err, errlen) < 0 || sp_begin_durable(sp, err, errlen) < 0)
        goto out;
    sqlite3_stmt *s = sp_stmt(sp, ST_Q_RETRY);
    sqlite3_bind_int64(s, 1, seq);
    if (sp_step_done(sp, s, "moving batches back to the queue", err, errlen) < 0) {
        sp_rollback(sp);
        goto out;
    }
    long moved = sqlite3_changes(sp->db);
    if (quarantine_finish(sp, seq, err, errlen) >= 0)
        n = moved;
out:
    pthread_mutex_unlock(&sp->lock);
    return n;
}

long spool_quarantine_drop(spool_t *sp, int64_t seq, char *err, size_t errlen)
{
    long n = -1;
    pthread_mutex_lock(&sp->lock);
    if (sp_check_writable(sp, err, errlen) < 0 || sp_begin_durable(sp, err, errlen) < 0)
        goto out;
    /* Gather first, then write: no statement runs while the cursor is open. */
    struct qd {
        int64_t seq, pid, first, last;
        int kind;
        uint32_t rows;
        struct idset params;
        char reason[700];
    } *v = NULL;
    size_t nv = 0, cap = 0;
    sqlite3_stmt *s = sp_stmt(sp, ST_Q_SELECT);
    sqlite3_bind_int64(s, 1, seq);
    int step;
    bool oom = false;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (nv == cap) {
            cap = cap ? cap * 2 : 8;
            struct qd *nq = realloc(v, cap * sizeof *nq);
            if (!nq) {
                oom = true;
                break;
            }
            v = nq;
        }
        struct qd *q = &v[nv++];
        *q = (struct qd){
            .seq = sqlite3_column_int64(s, 0),
            .kind = sqlite3_column_int(s, 1),
            .pid = sqlite3_column_int64(s, 2),
            .rows = (uint32_t)sqlite3_column_int64(s, 3),
            .first = sqlite3_column_int64(s, 4),
            .last = sqlite3_column_int64(s, 5),
        };
        if (records_samples(q->kind))
            sp_idset_add_points(&q->params, sqlite3_column_blob(s, 6),
                             (size_t)sqlite3_column_bytes(s, 6));
        idset_normalise(&q->params);
        oom |= q->params.oom;
        snprintf(q->reason, sizeof q->reason,
                 "quarantined batch %lld dropped by the operator; PostgreSQL had refused it: %s",
                 (long long)q->seq, (const char *)sqlite3_column_text(s, 7));
    }
    sqlite3_reset(s);
    int rc = 0;
    if (oom) {
        snprintf(err, errlen, "spool: out of memory");
        rc = -1;
    } else if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sp_db_fail(sp, "reading the quarantine", err, errlen);
    for (size_t i = 0; rc == 0 && i < nv; i++) {
        struct qd *q = &v[i];
        if (!records_samples(q->kind))
            continue;
        size_t len;
        int64_t gseq;
        uint8_t *data = gap_payload(q->pid, q->first, q->last, q->rows, 1, q->params.v,
                                    q->params.n, q->reason, &len);
        if (!data) {
            snprintf(err, errlen, "spool: out of memory building a gap record");
            rc = -1;
            break;
        }
        rc = sp_insert_batch(sp, BATCH_GAPS, q->pid, 1, q->first, q->last, data, len, &gseq,
                          err, errlen);
        free(data);
        if (rc == 0) {
            s = sp_stmt(sp, ST_PROC_DROPS);
            sqlite3_bind_int64(s, 1, q->pid);
            sqlite3_bind_int64(s, 2, q->rows);
            sqlite3_bind_int64(s, 3, 1);
            rc = sp_step_done(sp, s, "counting dropped points", err, errlen);
        }
    }
    for (size_t i = 0; i < nv; i++)
        free(v[i].params.v);
    free(v);
    if (rc < 0) {
        sp_rollback(sp);
        goto out;
    }
    n = quarantine_finish(sp, seq, err, errlen);
out:
    pthread_mutex_unlock(&sp->lock);
    return n;
}

