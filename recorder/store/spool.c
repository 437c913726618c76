/* spool.c — the SQLite store-and-forward queue: appending, forwarding,
 * counting. The file layout and its invariants are in spool.h; opening is
 * in spool_open.c, gaps and quarantine in spool_loss.c. */
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

/* ---- small helpers ------------------------------------------------------ */

int sp_db_fail(spool_t *sp, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "spool %s: %s: %s", sp->path, what, sqlite3_errmsg(sp->db));
    return -1;
}

int sp_exec(spool_t *sp, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(sp->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "spool %s: %s", sp->path, msg ? msg : sqlite3_errmsg(sp->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* The cached statement i, reset and ready for binding. */
sqlite3_stmt *sp_stmt(spool_t *sp, enum st i)
{
    sqlite3_stmt *s = sp->st[i];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Runs a statement that returns no rows (or whose rows are not needed). */
int sp_step_done(spool_t *sp, sqlite3_stmt *s, const char *what, char *err, size_t errlen)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE) {
        sp_db_fail(sp, what, err, errlen);
        sqlite3_reset(s);
        return -1;
    }
    sqlite3_reset(s);
    return 0;
}

int sp_set_sync(spool_t *sp, bool full, char *err, size_t errlen)
{
    if (sp->sync_full == full)
        return 0;
    if (sp_exec(sp, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
             err, errlen) < 0)
        return -1;
    sp->sync_full = full;
    return 0;
}

int sp_begin(spool_t *sp, char *err, size_t errlen)
{
    return sp_exec(sp, "BEGIN IMMEDIATE", err, errlen);
}

/* A write transaction whose COMMIT is on disk when it returns
 * (synchronous = FULL). */
int sp_begin_durable(spool_t *sp, char *err, size_t errlen)
{
    if (sp_set_sync(sp, true, err, errlen) < 0)
        return -1;
    return sp_begin(sp, err, errlen);
}

/* Refuses writes to a spool opened with spool_open_readonly(). */
int sp_check_writable(const spool_t *sp, char *err, size_t errlen)
{
    if (!sp->readonly)
        return 0;
    snprintf(err, errlen, "spool %s: opened read-only", sp->path);
    return -1;
}

/* Recomputes the mirrors from the file (after a rollback, at open). */
int sp_reload_counters(spool_t *sp, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM batches), (SELECT coalesce(sum(rows), 0) FROM batches),"
        " (SELECT coalesce(sum(length(data)), 0) FROM batches),"
        " (SELECT count(*) FROM quarantine), (SELECT coalesce(sum(rows), 0) FROM quarantine),"
        " (SELECT coalesce(sum(length(data)), 0) FROM quarantine),"
        " (SELECT coalesce(sum(dropped_batches), 0) FROM processes),"
        " (SELECT coalesce(sum(dropped_points), 0) FROM processes),"
        " (SELECT count(*) FROM gap_open)";
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(sp->db, sql, -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        sp_db_fail(sp, "counting", err, errlen);
        sqlite3_finalize(s);
        return -1;
    }
    uint64_t *dst[] = { &sp->batches, &sp->rows, &sp->bytes, &sp->q_batches, &sp->q_rows,
                        &sp->q_bytes, &sp->dropped_batches, &sp->dropped_points,
                        &sp->gaps_open };
    for (int i = 0; i < 9; i++)
        *dst[i] = (uint64_t)sqlite3_column_int64(s, i);
    sqlite3_finalize(s);
    for (size_t i = 0; i < sp->nlost; i++) {
        sp->dropped_batches += sp->lost[i].batches;
        sp->dropped_points += sp->lost[i].points;
    }
    return 0;
}

void sp_rollback(spool_t *sp)
{
    char ignore[256];
    sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
    sp_reload_counters(sp, ignore, sizeof ignore);
}

int sp_commit(spool_t *sp, char *err, size_t errlen)
{
    if (sp_exec(sp, "COMMIT", err, errlen) < 0) {
        sp_rollback(sp);
        return -1;
    }
    return 0;
}

int sp_meta_get(spool_t *sp, const char *key, int64_t *v, bool *found, char *err,
                    size_t errlen)
{
    sqlite3_stmt *s = sp_stmt(sp, ST_META_GET);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sp_db_fail(sp, "reading meta", err, errlen);
    return 0;
}

int sp_meta_put(spool_t *sp, const char *key, int64_t v, char *err, size_t errlen)
{
    sqlite3_stmt *s = sp_stmt(sp, ST_META_PUT);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    return sp_step_done(sp, s, "writing meta", err, errlen);
}


/* ---- meta ----------------------------------------------------------------- */

/* Runs sql (a statement with n int64 parameters, v) inside the caller's
 * transaction; what names it in err. Returns 0, or -1 with err. */
static int exec_ids(spool_t *sp, const char *sql, const int64_t *v, int n, const char *what,
                    char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(sp->db, sql, -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "spool %s: %s: %s", sp->path, what, sqlite3_errmsg(sp->db));
        return -1;
    }
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(s, i + 1, v[i]);
    int rc = sp_step_done(sp, s, what, err, errlen);
    sqlite3_finalize(s);
    return rc;
}

/* Step numbers belong to one run: those of other processes go when a
 * process starts or stops. */
static int steps_forget_others(spool_t *sp, int64_t process_id, char *err, size_t errlen)
{
    return exec_ids(sp, "DELETE FROM steps_marked WHERE process_id <> ?", &process_id, 1,
                    "forgetting steps", err, errlen);
}

/* Notes step_no of process_id as marked (inside the append's transaction). */
static int step_note(spool_t *sp, int64_t process_id, int32_t step_no, char *err,
                     size_t errlen)
{
    const int64_t v[2] = { process_id, step_no };
    return exec_ids(sp, "INSERT OR IGNORE INTO steps_marked VALUES (?, ?)", v, 2,
                    "noting a step", err, errlen);
}

int spool_get_process(spool_t *sp, int64_t *process_id, bool *known, char *err, size_t errlen)
{
    pthread_mutex_lock(&sp->lock);
    *process_id = 0;
    int rc = sp_meta_get(sp, "process_id", process_id, known, err, errlen);
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

int spool_set_process(spool_t *sp, int64_t process_id, char *err, size_t errlen)
{
    pthread_mutex_lock(&sp->lock);
    int rc = sp_begin_durable(sp, err, errlen);
    if (rc == 0) {
        rc = sp_meta_put(sp, "process_id", process_id, err, errlen);
        if (rc == 0)
            rc = steps_forget_others(sp, process_id, err, errlen);
        if (rc == 0)
            rc = sp_commit(sp, err, errlen);
        else
            sp_rollback(sp);
    }
    if (rc == 0)
        rc = sp_process_file_write(sp->path, process_id, err, errlen);
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

int spool_get_steps(spool_t *sp, int64_t process_id, int32_t **steps, size_t *n, char *err,
                    size_t errlen)
{
    *steps = NULL;
    *n = 0;
    pthread_mutex_lock(&sp->lock);
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(sp->db, "SELECT step_no FROM steps_marked WHERE process_id = ?"
                                " ORDER BY step_no", -1, &s, NULL);
    size_t cap = 0;
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, process_id);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 32;
                int32_t *grown = realloc(*steps, cap * sizeof *grown);
                if (!grown) {
                    rc = SQLITE_NOMEM;
                    break;
                }
                *steps = grown;
            }
            (*steps)[(*n)++] = (int32_t)sqlite3_column_int64(s, 0);
        }
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "spool %s: reading the marked steps: %s", sp->path,
                 rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(sp->db));
        free(*steps);
        *steps = NULL;
        *n = 0;
        rc = -1;
    } else {
        rc = 0;
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

/* ---- appending ------------------------------------------------------------ */

int spool_append(spool_t *sp, batch_t *b, spool_append_result_t *res, char *err, size_t errlen)
{
    *res = (spool_append_result_t){ 0 };
    pthread_mutex_lock(&sp->lock);
    char detail[160];
    snprintf(detail, sizeof detail, "max_bytes %lld reached, policy %s",
             (long long)sp->max_bytes, spool_policy_name(sp->policy));
    /* Only batches of samples (POINTS, IDLE) count against the cap: the
     * others are one small row each (a gap record, a set-point event, a
     * step marker) whose caller was told, or will be told, that it is
     * recorded. */
    bool fits = !records_samples((int)b->kind) ||
                sp_used(sp) + (int64_t)b->len <= sp->max_bytes;
    int64_t seq = 0;

    if (sp_check_writable(sp, err, errlen) < 0)
        goto fail;
    if (!records_known((int)b->kind)) {   /* no table would ever take it */
        snprintf(err, errlen, "spool %s: %d is not a record kind", sp->path, (int)b->kind);
        goto fail;
    }
    if (sp_begin_durable(sp, err, errlen) < 0)
        goto fail;
    if (sp->nlost && sp_flush_lost(sp, err, errlen) < 0)
        goto fail_rollback;
    res->stored = true;
    if (!fits) {
        int room = 1;
        if (sp->policy == SPOOL_DROP_OLDEST) {
            room = sp_make_room(sp, b->len, detail, res, err, errlen);
            if (room < 0)
                goto fail_rollback;
        }
        if (room > 0) {
            /* Drop this batch: the policy says so, or everything else is
             * in flight. */
            struct drop d = { .process_id = b->process_id, .cause = CAUSE_FULL,
                              .seq = INT64_MAX, .first_ts = b->first_ts_us,
                              .last_ts = b->last_ts_us, .points = b->rows, .batches = 1,
                              .detail = detail };
            sp_idset_add_points(&d.params, b->data, b->len);
            int mrc = sp_gap_add(sp, &d, err, errlen);
            free(d.params.v);
            if (mrc < 0)
                goto fail_rollback;
            res->stored = false;
            res->dropped_batches++;
            res->dropped_points += b->rows;
        }
    } else if (sp->gaps_open > 0 && records_samples((int)b->kind)) {
        /* It fitted without dropping anything: the hole has an end. */
        if (sp_close_gaps(sp, -1, 0, &res->gaps_closed, err, errlen) < 0)
            goto fail_rollback;
    }
    if (res->stored) {
        if (sp_insert_batch(sp, b->kind, b->process_id, b->rows, b->first_ts_us, b->last_ts_us,
                         b->data, b->len, &seq, err, errlen) < 0)
            goto fail_rollback;
        if (b->kind == BATCH_STEPS && b->marks_step &&
            step_note(sp, b->process_id, b->step_no, err, errlen) < 0)
            goto fail_rollback;
    }
    if (b->kind == BATCH_POINTS) {
        /* Recorded, stored or dropped: recorded = stored + dropped. */
        sqlite3_stmt *s = sp_stmt(sp, ST_PROC_ROWS);
        sqlite3_bind_int64(s, 1, b->process_id);
        sqlite3_bind_int64(s, 2, b->rows);
        if (sp_step_done(sp, s, "counting rows", err, errlen) < 0)
            goto fail_rollback;
    }
    if (sp_commit(sp, err, errlen) < 0)
        goto fail;
    sp->nlost = 0;
    if (res->stored) {
        b->spool_id = sp->id;
        b->seq = seq;
        sp->appended_batches++;
        sp->appended_rows += b->rows;
        if (records_samples((int)b->kind))
            sp->last_len = b->len;
    }
    pthread_mutex_unlock(&sp->lock);
    return 0;

fail_rollback:
    sp_rollback(sp);
fail:
    /* Lost points become a gap record; an event or step marker that could
     * not be written is reported to whoever sent it, not counted here. */
    *res = (spool_append_result_t){ 0 };
    if (records_samples((int)b->kind)) {
        *res = (spool_append_result_t){ .dropped_batches = 1, .dropped_points = b->rows };
        if (!sp->readonly)
            sp_note_lost(sp, b, err);
    }
    pthread_mutex_unlock(&sp->lock);
    return -1;
}

int spool_close_gaps(spool_t *sp, int64_t process_id, bool only_if_room, uint32_t *closed,
                     char *err, size_t errlen)
{
    uint32_t n = 0;
    int rc = 0;
    pthread_mutex_lock(&sp->lock);
    bool room = sp_used(sp) + (int64_t)sp->last_len <= sp->max_bytes;
    if (sp->gaps_open > 0 && (room || !only_if_room)) {
        rc = sp_begin_durable(sp, err, errlen);
        if (rc == 0) {
            rc = sp_close_gaps(sp, process_id, 0, &n, err, errlen);
            if (rc == 0)
                rc = sp_commit(sp, err, errlen);
            else
                sp_rollback(sp);
        }
    }
    pthread_mutex_unlock(&sp->lock);
    if (closed)
        *closed = rc == 0 ? n : 0;
    return rc;
}

/* ---- forwarding ----------------------------------------------------------- */

void spool_batches_free(batch_t *b, size_t n)
{
    if (!b)
        return;
    for (size_t i = 0; i < n; i++)
        free((void *)b[i].data);
    free(b);
}

/* Moves seq to quarantine; lock held, inside no transaction. */
static int quarantine_locked(spool_t *sp, int64_t seq, const char *why, char *err,
                             size_t errlen)
{
    if (sp_begin_durable(sp, err, errlen) < 0)
        return -1;
    sqlite3_stmt *s = sp_stmt(sp, ST_TO_QUARANTINE);
    sqlite3_bind_int64(s, 1, clock_real_us());
    sqlite3_bind_text(s, 2, why, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, seq);
    if (sp_step_done(sp, s, "quarantining a batch", err, errlen) < 0)
        goto fail;
    if (sqlite3_changes(sp->db) == 0) {   /* already gone */
        sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
        return 0;
    }
    s = sp_stmt(sp, ST_DELETE);
    sqlite3_bind_int64(s, 1, seq);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sp_db_fail(sp, "quarantining a batch", err, errlen);
        sqlite3_reset(s);
        goto fail;
    }
    uint64_t rows = (uint64_t)sqlite3_column_int64(s, 0);
    uint64_t len = (uint64_t)sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    if (sp_commit(sp, err, errlen) < 0)
        return -1;
    if (seq > sp->removed_hi)
        sp->removed_hi = seq;
    sp_claim_left(sp, seq, len);
    sp->batches--;
    sp->rows -= rows;
    sp->bytes -= len;
    sp->q_batches++;
    sp->q_rows += rows;
    sp->q_bytes += len;
    return 0;
fail:
    sp_rollback(sp);
    return -1;
}

/* Reads the group a claim would take from s (bound by the caller: its
 * last parameter is max_batches) into v[0..*k). Stops at a batch whose data
 * does not match its crc: *bad_seq is set to it when it would have been
 * the first. Returns 0, or -1 with err. */
static int read_group(spool_t *sp, sqlite3_stmt *s, size_t max_rows, batch_t *v, size_t *k,
                      int64_t *bad_seq, char *err, size_t errlen)
{
    uint64_t rows = 0;
    int step;
    *k = 0;
    *bad_seq = 0;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        batch_t b = {
            .spool_id = sp->id,
            .seq = sqlite3_column_int64(s, 0),
            .kind = (enum batch_kind)sqlite3_column_int(s, 1),
            .process_id = sqlite3_column_int64(s, 2),
            .rows = (uint32_t)sqlite3_column_int64(s, 3),
            .first_ts_us = sqlite3_column_int64(s, 4),
            .last_ts_us = sqlite3_column_int64(s, 5),
        };
        if (*k > 0 && (b.kind != v[0].kind || rows + b.rows > max_rows))
            break;
        const uint8_t *data = sqlite3_column_blob(s, 7);
        size_t len = (size_t)sqlite3_column_bytes(s, 7);
        if ((uint64_t)sqlite3_column_int64(s, 6) != fnv1a64(FNV1A64_INIT, data, len)) {
            if (*k == 0)
                *bad_seq = b.seq;
            break;   /* a batch behind the bad one waits for the next claim */
        }
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy) {
            snprintf(err, errlen, "spool: out of memory");
            sqlite3_reset(s);
            return -1;
        }
        memcpy(copy, data, len);
        b.data = copy;
        b.len = len;
        v[(*k)++] = b;
        rows += b.rows;
    }
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sp_db_fail(sp, "reading the queue", err, errlen);
    return 0;
}

/* A claim slot not in use, or NULL when SPOOL_MAX_CLAIMS are in flight. */
static struct claim *free_claim(spool_t *sp)
{
    for (int i = 0; i < SPOOL_MAX_CLAIMS; i++)
        if (sp->claim[i].hi == 0)
            return &sp->claim[i];
    return NULL;
}

/* Marks v[0..k) sent and makes them a claim in flight. From now on
 * these batches may reach PostgreSQL, and whether they did is known only
 * when a send succeeds or fails before COMMIT: until then they must not be
 * dropped (their points might be counted as lost while stored). The mark
 * needs no fsync: it only has to outlive a crash of aldrecd, not of the
 * machine. */
static int mark_claimed(spool_t *sp, const batch_t *v, size_t k, char *err, size_t errlen)
{
    struct claim *c = free_claim(sp);
    if (!c) {
        snprintf(err, errlen, "spool: %d claims in flight already", SPOOL_MAX_CLAIMS);
        return -1;
    }
    if (sp_set_sync(sp, false, err, errlen) < 0 || sp_begin(sp, err, errlen) < 0)
        return -1;
    sqlite3_stmt *s = sp_stmt(sp, ST_MARK_SENT);
    sqlite3_bind_int64(s, 1, v[0].seq);
    sqlite3_bind_int64(s, 2, v[k - 1].seq);
    sqlite3_bind_int(s, 3, 1);
    sqlite3_bind_int(s, 4, 0);   /* batches in doubt stay in doubt */
    if (sp_step_done(sp, s, "marking batches sent", err, errlen) < 0) {
        sp_rollback(sp);
        return -1;
    }
    if (sp_commit(sp, err, errlen) < 0)
        return -1;
    c->lo = v[0].seq;
    c->hi = v[k - 1].seq;
    c->bytes = 0;
    for (size_t i = 0; i < k; i++)
        c->bytes += v[i].len;
    return 0;
}

/* Room for a group of *max_batches (at least 1); *out and *n say "none"
 * until give_group(). NULL with err when out of memory. */
static batch_t *new_group(size_t *max_batches, batch_t **out, size_t *n, char *err,
                          size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (*max_batches == 0)
        *max_batches = 1;
    batch_t *v = calloc(*max_batches, sizeof *v);
    if (!v)
        snprintf(err, errlen, "spool: out of memory");
    return v;
}

static void give_group(int rc, batch_t *v, size_t k, batch_t **out, size_t *n)
{
    if (rc < 0 || k == 0) {
        spool_batches_free(v, k);
        v = NULL;
        k = 0;
    }
    *out = v;
    *n = k;
}

int spool_claim(spool_t *sp, size_t max_batches, size_t max_rows, batch_t **out, size_t *n,
                uint32_t *bad, char *err, size_t errlen)
{
    size_t k = 0;
    int rc = -1;

    if (bad)
        *bad = 0;
    batch_t *v = new_group(&max_batches, out, n, err, errlen);
    if (!v)
        return -1;
    pthread_mutex_lock(&sp->lock);
    for (;;) {
        int64_t bad_seq;
        if (!free_claim(sp))
            break;
        sqlite3_stmt *s = sp_stmt(sp, ST_PEEK);
        sqlite3_bind_int64(s, 1, sp_claim_hi(sp));
        sqlite3_bind_int64(s, 2, (int64_t)max_batches);
        if (read_group(sp, s, max_rows, v, &k, &bad_seq, err, errlen) < 0)
            goto out;
        if (!bad_seq)
            break;
        if (quarantine_locked(sp, bad_seq, "spool: payload does not match its checksum"
                              " (the spool file was damaged)", err, errlen) < 0)
            goto out;
        if (bad)
            (*bad)++;
    }
    if (k > 0 && mark_claimed(sp, v, k, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    pthread_mutex_unlock(&sp->lock);
    give_group(rc, v, k, out, n);
    return rc;
}

int spool_peek(spool_t *sp, int64_t after_seq, size_t max_batches, size_t max_rows,
               batch_t **out, size_t *n, char *err, size_t errlen)
{
    size_t k = 0;
    int64_t bad_seq;

    batch_t *v = new_group(&max_batches, out, n, err, errlen);
    if (!v)
        return -1;
    pthread_mutex_lock(&sp->lock);
    sqlite3_stmt *s = sp_stmt(sp, ST_PEEK);
    sqlite3_bind_int64(s, 1, after_seq);
    sqlite3_bind_int64(s, 2, (int64_t)max_batches);
    int rc = read_group(sp, s, max_rows, v, &k, &bad_seq, err, errlen);
    pthread_mutex_unlock(&sp->lock);
    give_group(rc, v, k, out, n);   /* a damaged batch is spool_claim()'s to handle */
    return rc;
}

int spool_claim_peeked(spool_t *sp, const batch_t *b, size_t n, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&sp->lock);
    /* The rows of a seq never change, and a seq is never reused: if the
     * queue (behind the claim in flight) starts at b[0] and holds exactly
     * n batches from b[0] to b[n - 1], these are they, and a claim would
     * have read the same. */
    if (!free_claim(sp))
        goto out;
    sqlite3_stmt *s = sp_stmt(sp, ST_HEAD);
    sqlite3_bind_int64(s, 1, b[0].seq);
    sqlite3_bind_int64(s, 2, b[n - 1].seq);
    sqlite3_bind_int64(s, 3, sp_claim_hi(sp));
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW) {
        sqlite3_reset(s);
        rc = sp_db_fail(sp, "reading the queue", err, errlen);
        goto out;
    }
    bool same = sqlite3_column_int64(s, 0) == b[0].seq &&
                sqlite3_column_int64(s, 1) == (int64_t)n;
    sqlite3_reset(s);
    if (same && b[0].spool_id == sp->id)
        rc = mark_claimed(sp, b, n, err, errlen) < 0 ? -1 : 1;
out:
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

/* Ends the claim holding seq, or the oldest with seq 0. */
static void end_claim(spool_t *sp, int64_t seq)
{
    struct claim *c = NULL;
    for (int i = 0; i < SPOOL_MAX_CLAIMS; i++) {
        struct claim *x = &sp->claim[i];
        if (x->hi == 0)
            continue;
        if (seq ? seq >= x->lo && seq <= x->hi : !c || x->lo < c->lo)
            c = x;
    }
    if (c)
        *c = (struct claim){ 0 };
}

int spool_unclaim(spool_t *sp, const batch_t *b, size_t n, bool in_doubt, char *err,
                  size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&sp->lock);
    end_claim(sp, n > 0 ? b[0].seq : 0);
    /* Certainly not stored: back to droppable, except batches that were
     * already in doubt before this claim (a group that failed because one
     * of them turned out stored must not make that one droppable). Maybe
     * stored: all of them in doubt until a later send settles it. */
    if (n > 0 && b[0].spool_id == sp->id) {
        rc = sp_set_sync(sp, false, err, errlen);
        if (rc == 0)
            rc = sp_begin(sp, err, errlen);
        if (rc == 0) {
            sqlite3_stmt *s = sp_stmt(sp, ST_MARK_SENT);
            sqlite3_bind_int64(s, 1, b[0].seq);
            sqlite3_bind_int64(s, 2, b[n - 1].seq);
            sqlite3_bind_int(s, 3, in_doubt ? 2 : 0);
            sqlite3_bind_int(s, 4, in_doubt ? -1 : 1);
            rc = sp_step_done(sp, s, "unmarking batches", err, errlen);
            if (rc == 0)
                rc = sp_commit(sp, err, errlen);
            else
                sp_rollback(sp);
        }
    }
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

int spool_remove(spool_t *sp, const batch_t *b, size_t n, char *err, size_t errlen)
{
    pthread_mutex_lock(&sp->lock);
    /* No fsync for deletes: if one is lost in a power cut the batch is sent
     * again and PostgreSQL's ledger turns that into a no-op. */
    int rc = sp_set_sync(sp, false, err, errlen);
    if (rc == 0)
        rc = sp_begin(sp, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (b[i].spool_id != sp->id)
            continue;
        sqlite3_stmt *s = sp_stmt(sp, ST_DELETE);
        sqlite3_bind_int64(s, 1, b[i].seq);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW) {
            if (b[i].seq > sp->removed_hi)
                sp->removed_hi = b[i].seq;
            uint64_t len = (uint64_t)sqlite3_column_int64(s, 1);
            sp_claim_left(sp, b[i].seq, len);
            sp->batches--;
            sp->rows -= (uint64_t)sqlite3_column_int64(s, 0);
            sp->bytes -= len;
            step = sqlite3_step(s);
        }
        sqlite3_reset(s);
        if (step != SQLITE_DONE) {
            rc = sp_db_fail(sp, "removing a stored batch", err, errlen);
            sp_rollback(sp);
        }
    }
    if (rc == 0)
        rc = sp_commit(sp, err, errlen);
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

int spool_quarantine(spool_t *sp, const batch_t *b, const char *why, char *err, size_t errlen)
{
    pthread_mutex_lock(&sp->lock);
    int rc = b->spool_id == sp->id ? quarantine_locked(sp, b->seq, why, err, errlen) : 0;
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

int spool_checkpoint(spool_t *sp)
{
    pthread_mutex_lock(&sp->lock);
    int pages = sp->wal_pages;
    bool ro = sp->readonly;
    pthread_mutex_unlock(&sp->lock);
    if (ro || pages < sp->ckpt_pages)
        return 0;

    int rc = 0;
    pthread_mutex_lock(&sp->ckpt_lock);
    if (!sp->ckpt) {
        /* The first read makes the connection see the file's WAL mode;
         * before it a checkpoint does nothing. */
        if (sqlite3_open_v2(sp->path, &sp->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK ||
            sqlite3_exec(sp->ckpt, SPOOL_CONN_PRAGMAS, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(sp->ckpt, "SELECT count(*) FROM meta", NULL, NULL, NULL) != SQLITE_OK) {
            sqlite3_close(sp->ckpt);
            sp->ckpt = NULL;
            rc = -1;
        }
    }
    if (sp->ckpt) {
        int log = 0, done = 0;
        /* PASSIVE: copies what it can without waiting for the writer. */
        if (sqlite3_wal_checkpoint_v2(sp->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done) !=
            SQLITE_OK)
            rc = -1;
    }
    pthread_mutex_unlock(&sp->ckpt_lock);
    return rc;
}


/* ---- numbers -------------------------------------------------------------- */

void spool_get_stats(spool_t *sp, spool_stats_t *out)
{
    pthread_mutex_lock(&sp->lock);
    *out = (spool_stats_t){
        .spool_id = sp->id,
        .max_bytes = sp->max_bytes,
        .batches = sp->batches, .rows = sp->rows, .bytes = sp->bytes,
        .q_batches = sp->q_batches, .q_rows = sp->q_rows, .q_bytes = sp->q_bytes,
        .dropped_batches = sp->dropped_batches, .dropped_points = sp->dropped_points,
        .dropping = sp->gaps_open > 0 || sp->nlost > 0,
        .appended_batches = sp->appended_batches, .appended_rows = sp->appended_rows,
        .wal_pages = sp->wal_pages,
    };
    sqlite3_stmt *s = sp_stmt(sp, ST_OLDEST);
    if (sqlite3_step(s) == SQLITE_ROW)
        out->oldest_spooled_us = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    pthread_mutex_unlock(&sp->lock);
}

int spool_process_info(spool_t *sp, int64_t process_id, spool_process_info_t *out,
                       char *err, size_t errlen)
{
    static const enum st q[] = { ST_INFO_QUEUED, ST_INFO_QUAR, ST_INFO_PROC, ST_INFO_GAP };
    int64_t v[4][3] = { { 0 } };
    int rc = 0;

    pthread_mutex_lock(&sp->lock);
    for (size_t i = 0; i < sizeof q / sizeof q[0] && rc == 0; i++) {
        sqlite3_stmt *s = sp_stmt(sp, q[i]);
        sqlite3_bind_int64(s, 1, process_id);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(s) && c < 3; c++)
                v[i][c] = sqlite3_column_int64(s, c);
        else if (step != SQLITE_DONE)
            rc = sp_db_fail(sp, "reading what the spool holds of a process", err, errlen);
        sqlite3_reset(s);
    }
    uint64_t lost_points = 0, lost_batches = 0;
    for (size_t i = 0; i < sp->nlost; i++)
        if (sp->lost[i].process_id == process_id) {
            lost_points += sp->lost[i].points;
            lost_batches += sp->lost[i].batches;
        }
    pthread_mutex_unlock(&sp->lock);
    *out = (spool_process_info_t){
        .queued_batches = (uint64_t)v[0][0], .queued_rows = (uint64_t)v[0][1],
        .quarantined_batches = (uint64_t)v[1][0], .quarantined_rows = (uint64_t)v[1][1],
        .rows = (uint64_t)v[2][0],
        .dropped_points = (uint64_t)v[2][1] + lost_points,
        .dropped_batches = (uint64_t)v[2][2] + lost_batches,
        .gap_open = v[3][0] > 0 || lost_batches > 0,
    };
    return rc;
}

