/* spool.c — the SQLite store-and-forward queue; the file layout and its
 * invariants are in spool.h. */
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

#define SPOOL_FORMAT 1
/* The log is copied into the file once it holds this many pages: 4 MiB,
 * or a quarter of max_bytes for a small spool, so that file and log
 * together stay near max_bytes. */
#define CHECKPOINT_PAGES_MAX 1024
#define CHECKPOINT_PAGES_MIN 16
#define MAX_LOST 4                     /* processes with failed writes pending */

/* Why points were dropped (gap_open.cause). */
enum cause { CAUSE_FULL = 1, CAUSE_WRITE_FAILED = 2 };

static const char schema_sql[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE batches ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL,"
    "  process_id INTEGER NOT NULL, rows INTEGER NOT NULL,"
    "  first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,"
    "  spooled_us INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL,"
    "  sent INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX batches_process ON batches (process_id, kind, rows);"
    "CREATE TABLE quarantine ("
    "  seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
    "  process_id INTEGER NOT NULL, rows INTEGER NOT NULL,"
    "  first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,"
    "  spooled_us INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL,"
    "  quarantined_us INTEGER NOT NULL, error TEXT NOT NULL);"
    "CREATE TABLE gap_open ("
    "  process_id INTEGER NOT NULL, cause INTEGER NOT NULL,"
    "  first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,"
    "  points INTEGER NOT NULL, batches INTEGER NOT NULL, params BLOB NOT NULL,"
    "  detail TEXT NOT NULL, started_us INTEGER NOT NULL,"
    "  first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,"
    "  PRIMARY KEY (process_id, cause)) WITHOUT ROWID;"
    "CREATE TABLE processes ("
    "  process_id INTEGER PRIMARY KEY, rows INTEGER NOT NULL DEFAULT 0,"
    "  dropped_points INTEGER NOT NULL DEFAULT 0,"
    "  dropped_batches INTEGER NOT NULL DEFAULT 0);";

static const char steps_sql[] =
    "CREATE TABLE IF NOT EXISTS steps_marked ("
    "  process_id INTEGER NOT NULL, step_no INTEGER NOT NULL,"
    "  PRIMARY KEY (process_id, step_no)) WITHOUT ROWID;";

/* Every statement the spool runs, prepared once at open: a file whose
 * tables do not have these columns is not one of ours. */
enum st {
    ST_INSERT, ST_DELETE, ST_CLAIM, ST_DROP, ST_VICTIMS, ST_TO_QUARANTINE, ST_MARK_SENT,
    ST_BETWEEN, ST_MAX_SEQ,
    ST_GAP_GET, ST_GAP_PUT, ST_GAP_LIST, ST_GAP_DEL, ST_PROC_ROWS, ST_PROC_DROPS,
    ST_META_GET, ST_META_PUT, ST_OLDEST, ST_INFO_QUEUED, ST_INFO_QUAR, ST_INFO_PROC,
    ST_INFO_GAP, ST_Q_LIST, ST_Q_RETRY, ST_Q_SELECT, ST_Q_DELETE, ST_COUNT
};

/* "kind = 1" below is BATCH_POINTS (records.h). */
_Static_assert(BATCH_POINTS == 1, "the spool's statements select POINTS batches as kind = 1");

static const char *const st_sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT INTO batches (kind, process_id, rows, first_ts, last_ts,"
                  " spooled_us, crc, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_DELETE] = "DELETE FROM batches WHERE seq = ? RETURNING rows, length(data)",
    [ST_CLAIM] = "SELECT seq, kind, process_id, rows, first_ts, last_ts, crc, data"
                 " FROM batches ORDER BY seq LIMIT ?",
    [ST_DROP] = "DELETE FROM batches WHERE seq = ?"
                " RETURNING process_id, rows, first_ts, last_ts, data",
    [ST_VICTIMS] = "SELECT seq, length(data) FROM batches WHERE kind = 1 AND sent = 0"
                   " AND seq > ? ORDER BY seq",
    /* sent: 0 never handed to PostgreSQL; 1 claimed by the forwarder now;
     * 2 in doubt (a send died after COMMIT went out). ?4 < 0: any state. */
    [ST_MARK_SENT] = "UPDATE batches SET sent = ?3 WHERE seq BETWEEN ?1 AND ?2"
                     " AND (?4 < 0 OR sent = ?4)",
    [ST_BETWEEN] = "SELECT 1 FROM batches WHERE process_id = ? AND kind = 1"
                   " AND seq > ? AND seq < ? LIMIT 1",
    [ST_MAX_SEQ] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'batches'), 0)",
    [ST_TO_QUARANTINE] = "INSERT INTO quarantine SELECT seq, kind, process_id, rows,"
                         " first_ts, last_ts, spooled_us, crc, data, ?, ?"
                         " FROM batches WHERE seq = ?",
    [ST_GAP_GET] = "SELECT first_ts, last_ts, points, batches, params, first_seq, last_seq"
                   " FROM gap_open WHERE process_id = ? AND cause = ?",
    [ST_GAP_PUT] = "INSERT OR REPLACE INTO gap_open (process_id, cause, first_ts, last_ts,"
                   " points, batches, params, detail, started_us, first_seq, last_seq)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, coalesce((SELECT detail FROM gap_open"
                   " WHERE process_id = ?1 AND cause = ?2), ?), coalesce((SELECT started_us"
                   " FROM gap_open WHERE process_id = ?1 AND cause = ?2), ?), ?, ?)",
    [ST_GAP_LIST] = "SELECT process_id, cause, first_ts, last_ts, points, batches, params,"
                    " detail FROM gap_open WHERE (?1 < 0 OR process_id = ?1)"
                    " AND (?2 = 0 OR cause = ?2)",
    [ST_GAP_DEL] = "DELETE FROM gap_open WHERE process_id = ? AND cause = ?",
    [ST_PROC_ROWS] = "INSERT INTO processes (process_id, rows) VALUES (?, ?)"
                     " ON CONFLICT (process_id) DO UPDATE SET rows = rows + excluded.rows",
    [ST_PROC_DROPS] = "INSERT INTO processes (process_id, dropped_points, dropped_batches)"
                      " VALUES (?, ?, ?) ON CONFLICT (process_id) DO UPDATE SET"
                      " dropped_points = dropped_points + excluded.dropped_points,"
                      " dropped_batches = dropped_batches + excluded.dropped_batches",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?",
    [ST_META_PUT] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
    [ST_OLDEST] = "SELECT spooled_us FROM batches ORDER BY seq LIMIT 1",
    [ST_INFO_QUEUED] = "SELECT count(*), coalesce(sum(CASE WHEN kind = 1 THEN rows END), 0)"
                       " FROM batches WHERE process_id = ?",
    [ST_INFO_QUAR] = "SELECT count(*), coalesce(sum(rows), 0) FROM quarantine"
                     " WHERE process_id = ? AND kind = 1",
    [ST_INFO_PROC] = "SELECT rows, dropped_points, dropped_batches FROM processes"
                     " WHERE process_id = ?",
    [ST_INFO_GAP] = "SELECT count(*) FROM gap_open WHERE process_id = ?",
    [ST_Q_LIST] = "SELECT seq, kind, process_id, rows, first_ts, last_ts, quarantined_us,"
                  " error FROM quarantine ORDER BY seq",
    [ST_Q_RETRY] = "INSERT INTO batches (seq, kind, process_id, rows, first_ts, last_ts,"
                   " spooled_us, crc, data) SELECT seq, kind, process_id, rows, first_ts,"
                   " last_ts, spooled_us, crc, data FROM quarantine WHERE ?1 = 0 OR seq = ?1",
    [ST_Q_SELECT] = "SELECT seq, kind, process_id, rows, first_ts, last_ts, data, error"
                    " FROM quarantine WHERE ?1 = 0 OR seq = ?1 ORDER BY seq",
    [ST_Q_DELETE] = "DELETE FROM quarantine WHERE ?1 = 0 OR seq = ?1",
};

/* Points lost because the file could not be written; they become a gap
 * record with the next append that succeeds. */
struct lost {
    int64_t process_id, first_ts, last_ts;
    uint64_t points;
    uint32_t batches;
    char detail[256];
};

struct spool {
    pthread_mutex_t lock;       /* guards everything below but ckpt */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    bool readonly;
    bool sync_full;             /* current PRAGMA synchronous */
    char *path;
    int64_t id;
    int64_t max_bytes;
    enum spool_policy policy;
    /* mirrors of the file's contents */
    uint64_t batches, rows, bytes;
    uint64_t q_batches, q_rows, q_bytes;
    uint64_t dropped_batches, dropped_points;
    uint64_t gaps_open;
    /* this process */
    uint64_t appended_batches, appended_rows;
    int64_t claim_hi;           /* highest seq claimed by the forwarder; 0: none */
    int64_t removed_hi;         /* highest seq that left for PostgreSQL since open */
    size_t last_len;            /* size of the last POINTS batch appended */
    int wal_pages;
    int ckpt_pages;             /* checkpoint threshold */
    struct lost lost[MAX_LOST];
    size_t nlost;
    /* checkpoints: forwarder thread only */
    pthread_mutex_t ckpt_lock;
    sqlite3 *ckpt;
    int lock_fd;                /* flock: one aldrecd per spool file */
};

/* ---- small helpers ------------------------------------------------------ */

/* 64-bit FNV-1a: cheap, and enough to notice a payload changed on disk. */
static uint64_t payload_hash(const uint8_t *p, size_t n)
{
    return fnv1a64(FNV1A64_INIT, p, n);
}

static int db_fail(spool_t *sp, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "spool %s: %s: %s", sp->path, what, sqlite3_errmsg(sp->db));
    return -1;
}

static int exec(spool_t *sp, const char *sql, char *err, size_t errlen)
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
static sqlite3_stmt *stmt(spool_t *sp, enum st i)
{
    sqlite3_stmt *s = sp->st[i];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Runs a statement that returns no rows (or whose rows are not needed). */
static int step_done(spool_t *sp, sqlite3_stmt *s, const char *what, char *err, size_t errlen)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE) {
        db_fail(sp, what, err, errlen);
        sqlite3_reset(s);
        return -1;
    }
    sqlite3_reset(s);
    return 0;
}

static int set_sync(spool_t *sp, bool full, char *err, size_t errlen)
{
    if (sp->sync_full == full)
        return 0;
    if (exec(sp, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
             err, errlen) < 0)
        return -1;
    sp->sync_full = full;
    return 0;
}

static int begin(spool_t *sp, char *err, size_t errlen)
{
    return exec(sp, "BEGIN IMMEDIATE", err, errlen);
}

/* A write transaction whose COMMIT is on disk when it returns
 * (synchronous = FULL). */
static int begin_durable(spool_t *sp, char *err, size_t errlen)
{
    if (set_sync(sp, true, err, errlen) < 0)
        return -1;
    return begin(sp, err, errlen);
}

/* Refuses writes to a spool opened with spool_open_readonly(). */
static int check_writable(const spool_t *sp, char *err, size_t errlen)
{
    if (!sp->readonly)
        return 0;
    snprintf(err, errlen, "spool %s: opened read-only", sp->path);
    return -1;
}

/* Recomputes the mirrors from the file (after a rollback, at open). */
static int reload_counters(spool_t *sp, char *err, size_t errlen)
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
        db_fail(sp, "counting", err, errlen);
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

static void rollback(spool_t *sp)
{
    char ignore[256];
    sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
    reload_counters(sp, ignore, sizeof ignore);
}

static int commit(spool_t *sp, char *err, size_t errlen)
{
    if (exec(sp, "COMMIT", err, errlen) < 0) {
        rollback(sp);
        return -1;
    }
    return 0;
}

static int meta_get(spool_t *sp, const char *key, int64_t *v, bool *found, char *err,
                    size_t errlen)
{
    sqlite3_stmt *s = stmt(sp, ST_META_GET);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(sp, "reading meta", err, errlen);
    return 0;
}

static int meta_put(spool_t *sp, const char *key, int64_t v, char *err, size_t errlen)
{
    sqlite3_stmt *s = stmt(sp, ST_META_PUT);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    return step_done(sp, s, "writing meta", err, errlen);
}

/* ---- the process file ----------------------------------------------------- */

/* PATH.process mirrors meta 'process_id' outside the database, so that a
 * spool file found damaged (or deleted) does not take the knowledge of
 * which run is being recorded with it. One line, "process_id N\n",
 * replaced atomically (write, fsync, rename, fsync of the directory). */
static void process_file_path(const char *spool_path, char *out, size_t cap)
{
    snprintf(out, cap, "%s.process", spool_path);
}

static int process_file_write(const char *spool_path, int64_t process_id, char *err,
                              size_t errlen)
{
    char path[4200], tmp[4210], line[64];
    process_file_path(spool_path, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(line, sizeof line, "process_id %lld\n", (long long)process_id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e ? e : EIO;
        goto fail;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        goto fail;
    }
    /* The rename is durable once the directory is. */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    snprintf(err, errlen, "spool %s: writing %s: %s", spool_path, path, strerror(errno));
    return -1;
}

/* 1 with *process_id from a sound PATH.process, 0 when there is none or it
 * is unreadable (reason in why, empty when there is no file). */
static int process_file_read(const char *spool_path, int64_t *process_id, char *why,
                             size_t whylen)
{
    char path[4200], line[64] = "";
    process_file_path(spool_path, path, sizeof path);
    why[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno != ENOENT)
            snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return 0;
    }
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    long long v = -1;
    char end = 0;
    if (!got || sscanf(line, "process_id %lld%c", &v, &end) != 2 || end != '\n' || v < 0) {
        snprintf(why, whylen, "%s: not a process file (expected \"process_id N\")", path);
        return 0;
    }
    *process_id = v;
    return 1;
}

/* ---- parameter sets (sorted, unique int32 arrays) ------------------------ */

struct idset {
    int32_t *v;
    size_t n, cap;
    bool oom;
};

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
static void idset_add_points(struct idset *s, const uint8_t *data, size_t len)
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

static int insert_batch(spool_t *sp, enum batch_kind kind, int64_t process_id, uint32_t rows,
                        int64_t first, int64_t last, const uint8_t *data, size_t len,
                        int64_t *seq, char *err, size_t errlen)
{
    if (len > INT32_MAX) {
        snprintf(err, errlen, "spool: batch of %zu bytes is too large", len);
        return -1;
    }
    sqlite3_stmt *s = stmt(sp, ST_INSERT);
    sqlite3_bind_int(s, 1, kind);
    sqlite3_bind_int64(s, 2, process_id);
    sqlite3_bind_int64(s, 3, rows);
    sqlite3_bind_int64(s, 4, first);
    sqlite3_bind_int64(s, 5, last);
    sqlite3_bind_int64(s, 6, clock_real_us());
    sqlite3_bind_int64(s, 7, (int64_t)payload_hash(data, len));
    sqlite3_bind_blob(s, 8, data, (int)len, SQLITE_STATIC);
    if (step_done(sp, s, "appending a batch", err, errlen) < 0)
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
static int close_gaps(spool_t *sp, int64_t process_id, int cause, uint32_t *closed, char *err,
                      size_t errlen)
{
    struct gap *v = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    sqlite3_stmt *s = stmt(sp, ST_GAP_LIST);
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
        db_fail(sp, "listing open gaps", err, errlen);
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
        int ins = insert_batch(sp, BATCH_GAPS, g->pid, 1, g->first, g->last, data, len, &seq,
                               err, errlen);
        free(data);
        if (ins < 0)
            goto out;
        s = stmt(sp, ST_GAP_DEL);
        sqlite3_bind_int64(s, 1, g->pid);
        sqlite3_bind_int(s, 2, g->cause);
        if (step_done(sp, s, "closing a gap", err, errlen) < 0)
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
    sqlite3_stmt *s = stmt(sp, ST_BETWEEN);
    sqlite3_bind_int64(s, 1, pid);
    sqlite3_bind_int64(s, 2, last_seq);
    sqlite3_bind_int64(s, 3, seq);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 1 : rc == SQLITE_ROW ? 0 : -1;
}

/* Points dropped from one process for one cause. */
struct drop {
    int64_t process_id;
    int cause;
    int64_t seq;               /* the dropped batch's; INT64_MAX: it had none */
    int64_t first_ts, last_ts;
    uint64_t points;
    uint32_t batches;
    struct idset params;       /* its parameter ids */
    const char *detail;
};

/* Adds d to its open gap (or opens one) and to the process's drop
 * counters. A hole that does not continue the open one closes it first. */
static int gap_add(spool_t *sp, struct drop *d, char *err, size_t errlen)
{
    sqlite3_stmt *s = stmt(sp, ST_GAP_GET);
    sqlite3_bind_int64(s, 1, d->process_id);
    sqlite3_bind_int(s, 2, d->cause);
    int rc = sqlite3_step(s);
    bool existed = rc == SQLITE_ROW;
    int64_t first_seq = existed ? sqlite3_column_int64(s, 5) : 0;
    int64_t last_seq = existed ? sqlite3_column_int64(s, 6) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(sp, "reading an open gap", err, errlen);
    if (existed && d->cause == CAUSE_FULL) {
        int cont = gap_continues(sp, d->process_id, first_seq, last_seq, d->seq);
        if (cont < 0)
            return db_fail(sp, "reading the queue", err, errlen);
        if (!cont) {
            if (close_gaps(sp, d->process_id, d->cause, NULL, err, errlen) < 0)
                return -1;
            existed = false;
        }
    }
    struct gap g = { .first = d->first_ts, .last = d->last_ts, .points = d->points,
                     .batches = d->batches };
    if (existed) {
        s = stmt(sp, ST_GAP_GET);
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
        s = stmt(sp, ST_MAX_SEQ);
        seq = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
    }
    s = stmt(sp, ST_GAP_PUT);
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
    if (step_done(sp, s, "recording a gap", err, errlen) < 0)
        return -1;
    s = stmt(sp, ST_PROC_DROPS);
    sqlite3_bind_int64(s, 1, d->process_id);
    sqlite3_bind_int64(s, 2, (int64_t)d->points);
    sqlite3_bind_int64(s, 3, d->batches);
    if (step_done(sp, s, "counting dropped points", err, errlen) < 0)
        return -1;
    if (!existed)
        sp->gaps_open++;
    sp->dropped_points += d->points;
    sp->dropped_batches += d->batches;
    return 0;
}

/* Points of batches that could not be written go into gap_open now. */
static int flush_lost(spool_t *sp, char *err, size_t errlen)
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
        int rc = gap_add(sp, &d, err, errlen);
        free(d.params.v);
        if (rc < 0)
            return -1;
        /* Sampled rows, too, so that "recorded" counts them. */
        sqlite3_stmt *s = stmt(sp, ST_PROC_ROWS);
        sqlite3_bind_int64(s, 1, l->process_id);
        sqlite3_bind_int64(s, 2, (int64_t)l->points);
        if (step_done(sp, s, "counting rows", err, errlen) < 0)
            return -1;
    }
    return 0;
}

static void note_lost(spool_t *sp, const batch_t *b, const char *why)
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
static int make_room(spool_t *sp, size_t need, const char *detail, spool_append_result_t *res,
                     char *err, size_t errlen)
{
    int64_t over = (int64_t)(sp->bytes + sp->q_bytes + need) - sp->max_bytes;
    int64_t *victims = NULL;
    size_t nv = 0, cap = 0;
    int rc = -1;

    sqlite3_stmt *s = stmt(sp, ST_VICTIMS);
    sqlite3_bind_int64(s, 1, sp->claim_hi);
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
        s = stmt(sp, ST_DROP);
        sqlite3_bind_int64(s, 1, victims[i]);
        if (sqlite3_step(s) != SQLITE_ROW) {
            db_fail(sp, "dropping a batch", err, errlen);
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
        idset_add_points(&d.params, sqlite3_column_blob(s, 4), blen);
        sqlite3_reset(s);
        sp->batches--;
        sp->rows -= d.points;
        sp->bytes -= blen;
        int grc = gap_add(sp, &d, err, errlen);
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

/* ---- opening ------------------------------------------------------------ */

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    ((spool_t *)arg)->wal_pages = pages;
    return SQLITE_OK;
}

static bool is_corruption(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

/* Header sanity before SQLite sees the file: the magic string, a valid page
 * size, and a length that is a whole number of pages. Returns 0 when sound
 * (or absent/empty), 1 with why when not, -1 with err when unreadable. */
static int check_header(const char *path, char *why, size_t whylen, char *err, size_t errlen)
{
    static const char magic[16] = "SQLite format 3";
    uint8_t h[100];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    ssize_t n = st.st_size > 0 ? read(fd, h, sizeof h) : 0;
    close(fd);
    if (st.st_size == 0)
        return 0;
    if (n < (ssize_t)sizeof h || memcmp(h, magic, sizeof magic) != 0) {
        snprintf(why, whylen, "not an SQLite database (bad header)");
        return 1;
    }
    unsigned page = (unsigned)h[16] << 8 | h[17];
    if (page == 1)
        page = 65536;
    if (page < 512 || (page & (page - 1)) != 0) {
        snprintf(why, whylen, "bad page size %u in the header", page);
        return 1;
    }
    if (st.st_size % page != 0) {
        snprintf(why, whylen, "truncated: %lld bytes is not a whole number of %u-byte pages",
                 (long long)st.st_size, page);
        return 1;
    }
    return 0;
}

static void close_db(spool_t *sp)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(sp->st[i]);
        sp->st[i] = NULL;
    }
    sqlite3_close(sp->db);
    sp->db = NULL;
}

/* Classifies a failed SQLite call during open: 1 (bad file, why set) or -1
 * (hard failure, err set). */
static int open_failure(spool_t *sp, int rc, const char *what, char *why, size_t whylen,
                        char *err, size_t errlen)
{
    const char *msg = sp->db ? sqlite3_errmsg(sp->db) : sqlite3_errstr(rc);
    if (is_corruption(rc)) {
        snprintf(why, whylen, "%s: %s", what, msg);
        return 1;
    }
    snprintf(err, errlen, "spool %s: %s: %s", sp->path, what, msg);
    return -1;
}

/* After a failed step of opening (err says what): damage that quick_check
 * did not see still makes the file bad (1, why set); anything else is a
 * failure (-1). */
static int damaged_or_failed(spool_t *sp, char *why, size_t whylen, const char *err)
{
    if (!is_corruption(sqlite3_extended_errcode(sp->db)))
        return -1;
    snprintf(why, whylen, "%s", err);
    return 1;
}

static int create_schema(spool_t *sp, char *err, size_t errlen)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id) {
        snprintf(err, errlen, "spool: getrandom: %s", strerror(errno));
        return -1;
    }
    id &= INT64_MAX;
    if (id == 0)
        id = 1;
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO meta VALUES ('format', %d), ('spool_id', %lld), ('created_us', %lld);",
             SPOOL_FORMAT, (long long)id, (long long)clock_real_us());
    if (begin(sp, err, errlen) < 0)
        return -1;
    if (exec(sp, schema_sql, err, errlen) < 0 || exec(sp, sql, err, errlen) < 0) {
        sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return exec(sp, "COMMIT", err, errlen);
}

/* Opens sp->path: 0 ok, 1 bad file (why), -1 failure (err). */
static int try_open(spool_t *sp, bool readonly, bool *created, char *why, size_t whylen,
                    char *err, size_t errlen)
{
    int rc = check_header(sp->path, why, whylen, err, errlen);
    if (rc != 0)
        return rc;
    if (readonly && access(sp->path, F_OK) != 0) {
        snprintf(err, errlen, "spool %s: %s", sp->path, strerror(errno));
        return -1;
    }
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    rc = sqlite3_open_v2(sp->path, &sp->db, flags, NULL);
    if (rc != SQLITE_OK)
        return open_failure(sp, rc, "opening", why, whylen, err, errlen);
    sqlite3_extended_result_codes(sp->db, 1);
    sqlite3_busy_timeout(sp->db, 5000);
    /* Until the file is known to be sound, closing must not checkpoint
     * into it or delete its log: a bad file is moved aside as found. */
    sqlite3_db_config(sp->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);

    if (!readonly) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(sp->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        bool wal = rc == SQLITE_ROW &&
                   strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
        sqlite3_finalize(s);
        if (rc != SQLITE_ROW)
            return open_failure(sp, sqlite3_errcode(sp->db), "switching to WAL", why, whylen,
                                err, errlen);
        if (!wal) {
            snprintf(err, errlen, "spool %s: cannot use WAL mode", sp->path);
            return -1;
        }
    }
    /* quick_check: page structure, record formats and indexes, without
     * the full cross-check of integrity_check (O(N) instead of O(N log N)). */
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(sp->db, "PRAGMA quick_check", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
        /* The first rows say enough ("*** in database main ***", then
         * what is wrong where). */
        size_t n = (size_t)snprintf(why, whylen, "failed PRAGMA quick_check:");
        for (int i = 0; i < 3 && rc == SQLITE_ROW && n < whylen; i++) {
            n += (size_t)snprintf(why + n, whylen - n, " %s",
                                  (const char *)sqlite3_column_text(s, 0));
            rc = sqlite3_step(s);
        }
        sqlite3_finalize(s);
        /* One line, the first three findings. */
        int lines = 0;
        for (char *c = why; *c; c++) {
            if (*c == '\n' && ++lines == 4) {
                snprintf(c, whylen - (size_t)(c - why), " ...");
                break;
            }
            if (*c == '\n')
                *c = ' ';
        }
        return 1;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW)
        return open_failure(sp, sqlite3_errcode(sp->db), "PRAGMA quick_check", why, whylen,
                            err, errlen);

    s = NULL;
    rc = sqlite3_prepare_v2(sp->db, "SELECT count(*) FROM sqlite_master", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    int64_t objects = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    if (objects < 0)
        return open_failure(sp, sqlite3_errcode(sp->db), "reading the schema", why, whylen,
                            err, errlen);
    if (objects == 0) {
        if (readonly) {
            snprintf(err, errlen, "spool %s: empty file", sp->path);
            return -1;
        }
        if (create_schema(sp, err, errlen) < 0)
            return -1;
        *created = true;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(sp->db, st_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &sp->st[i],
                                NULL);
        if (rc != SQLITE_OK) {
            if (is_corruption(rc))
                return open_failure(sp, rc, "reading the schema", why, whylen, err, errlen);
            snprintf(why, whylen, "not an aldrec spool (format %d): %s", SPOOL_FORMAT,
                     sqlite3_errmsg(sp->db));
            return 1;
        }
    }
    int64_t format = 0;
    bool found_format, found_id;
    if (meta_get(sp, "format", &format, &found_format, err, errlen) < 0 ||
        meta_get(sp, "spool_id", &sp->id, &found_id, err, errlen) < 0)
        return damaged_or_failed(sp, why, whylen, err);
    if (!found_format || format != SPOOL_FORMAT || !found_id || sp->id <= 0) {
        snprintf(why, whylen, "not an aldrec spool of format %d (format %lld, id %lld)",
                 SPOOL_FORMAT, (long long)format, (long long)sp->id);
        return 1;
    }
    if (!readonly) {
        if (exec(sp, "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;", err,
                 errlen) < 0)
            return -1;
        /* Added to format 1 after its first release: older files gain it. */
        if (exec(sp, steps_sql, err, errlen) < 0)
            return damaged_or_failed(sp, why, whylen, err);
        int64_t pages = sp->max_bytes / 4 / 4096;
        sp->ckpt_pages = pages > CHECKPOINT_PAGES_MAX ? CHECKPOINT_PAGES_MAX
                         : pages < CHECKPOINT_PAGES_MIN ? CHECKPOINT_PAGES_MIN : (int)pages;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %d", sp->ckpt_pages * 4096);
        if (exec(sp, sql, err, errlen) < 0)
            return -1;
        sp->sync_full = true;
        sqlite3_wal_hook(sp->db, wal_hook, sp);
        sqlite3_db_config(sp->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    }
    if (reload_counters(sp, err, errlen) < 0)
        return damaged_or_failed(sp, why, whylen, err);
    if (!readonly && sp->gaps_open > 0) {
        /* What was dropped before this start is one record: whether later
         * drops continue it cannot be told after a restart. */
        if (begin(sp, err, errlen) < 0)
            return -1;
        if (close_gaps(sp, -1, 0, NULL, err, errlen) < 0) {
            rollback(sp);
            return -1;
        }
        if (commit(sp, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Renames path and its -wal/-shm to path.corrupt-STAMP[-N]. */
static int move_aside(const char *path, char *to, size_t tolen, char *err, size_t errlen)
{
    char stamp[UTC_LEN];
    utc_format(clock_real_us(), UTC_COMPACT, stamp, sizeof stamp);
    for (int n = 0; n < 100; n++) {
        if (n == 0)
            snprintf(to, tolen, "%s.corrupt-%s", path, stamp);
        else
            snprintf(to, tolen, "%s.corrupt-%s-%d", path, stamp, n);
        if (access(to, F_OK) == 0)
            continue;
        if (rename(path, to) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "spool %s: cannot move it aside to %s: %s", path, to,
                     strerror(errno));
            return -1;
        }
        static const char *const suffix[] = { "-wal", "-shm" };
        for (int i = 0; i < 2; i++) {
            char a[4200], b[4300];
            snprintf(a, sizeof a, "%s%s", path, suffix[i]);
            snprintf(b, sizeof b, "%s%s", to, suffix[i]);
            if (rename(a, b) < 0 && errno != ENOENT) {
                snprintf(err, errlen, "spool %s: cannot move %s aside: %s", path, a,
                         strerror(errno));
                return -1;
            }
        }
        return 0;
    }
    snprintf(err, errlen, "spool %s: too many files moved aside this second", path);
    return -1;
}

static spool_t *spool_alloc(const char *path)
{
    spool_t *sp = calloc(1, sizeof *sp);
    if (!sp)
        return NULL;
    sp->path = strdup(path);
    if (!sp->path) {
        free(sp);
        return NULL;
    }
    pthread_mutex_init(&sp->lock, NULL);
    pthread_mutex_init(&sp->ckpt_lock, NULL);
    sp->lock_fd = -1;
    return sp;
}

static void spool_dealloc(spool_t *sp)
{
    close_db(sp);
    if (sp->lock_fd >= 0)
        close(sp->lock_fd);
    pthread_mutex_destroy(&sp->lock);
    pthread_mutex_destroy(&sp->ckpt_lock);
    free(sp->path);
    free(sp);
}

/* A fresh file knows nothing of the run being recorded: the process file
 * (written with every spool_set_process) does, unless it is missing too. */
static int restore_process(spool_t *sp, spool_open_info_t *info, char *err, size_t errlen)
{
    int64_t pid = 0;
    if (!process_file_read(sp->path, &pid, info->process_file_error,
                           sizeof info->process_file_error))
        return 0;
    if (meta_put(sp, "process_id", pid, err, errlen) < 0)
        return -1;
    info->process_restored = true;
    info->process_id = pid;
    return 0;
}

spool_t *spool_open(const spool_opts_t *o, spool_open_info_t *info, char *err, size_t errlen)
{
    spool_t *sp = spool_alloc(o->path);
    *info = (spool_open_info_t){ 0 };
    if (!sp) {
        snprintf(err, errlen, "spool: out of memory");
        return NULL;
    }
    sp->max_bytes = o->max_bytes;
    sp->policy = o->policy;
    /* Two writers would break every invariant: the first one to open a
     * spool file keeps it (an flock on a file of its own, which survives
     * the spool being moved aside). */
    char lockpath[4200];
    snprintf(lockpath, sizeof lockpath, "%s.lock", o->path);
    sp->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (sp->lock_fd < 0 || flock(sp->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "spool %s: %s", o->path,
                 sp->lock_fd >= 0 && errno == EWOULDBLOCK
                     ? "in use by another process (another aldrecd with the same [spool] path?)"
                     : strerror(errno));
        spool_dealloc(sp);
        return NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        char why[512] = "";
        int rc = try_open(sp, false, &info->created, why, sizeof why, err, errlen);
        if (rc == 0) {
            if (info->created && restore_process(sp, info, err, errlen) < 0)
                break;
            return sp;
        }
        close_db(sp);
        if (rc < 0)
            break;
        if (attempt == 1) {
            snprintf(err, errlen, "spool %s: a fresh file is bad too: %s", o->path, why);
            break;
        }
        if (move_aside(o->path, info->moved_to, sizeof info->moved_to, err, errlen) < 0)
            break;
        info->replaced = true;
        snprintf(info->reason, sizeof info->reason, "%s", why);
    }
    spool_dealloc(sp);
    return NULL;
}

spool_t *spool_open_readonly(const char *path, char *err, size_t errlen)
{
    spool_t *sp = spool_alloc(path);
    char why[512] = "";
    bool created = false;
    if (!sp) {
        snprintf(err, errlen, "spool: out of memory");
        return NULL;
    }
    sp->readonly = true;
    int rc = try_open(sp, true, &created, why, sizeof why, err, errlen);
    if (rc == 0)
        return sp;
    if (rc > 0)
        snprintf(err, errlen, "spool %s: %s", path, why);
    spool_dealloc(sp);
    return NULL;
}

void spool_close(spool_t *sp)
{
    if (!sp)
        return;
    pthread_mutex_lock(&sp->ckpt_lock);
    sqlite3_close(sp->ckpt);
    sp->ckpt = NULL;
    pthread_mutex_unlock(&sp->ckpt_lock);
    if (sp->db && !sp->readonly)
        sqlite3_wal_checkpoint_v2(sp->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    spool_dealloc(sp);
}

int64_t spool_id(spool_t *sp)
{
    return sp->id;
}

const char *spool_policy_name(enum spool_policy p)
{
    switch (p) {
    case SPOOL_DROP_OLDEST:
        return "drop_oldest";
    case SPOOL_DROP_NEWEST:
        return "drop_newest";
    }
    return "?";
}

int spool_policy_parse(const char *s, enum spool_policy *out)
{
    if (strcmp(s, "drop_oldest") == 0)
        *out = SPOOL_DROP_OLDEST;
    else if (strcmp(s, "drop_newest") == 0)
        *out = SPOOL_DROP_NEWEST;
    else
        return -1;
    return 0;
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
    int rc = step_done(sp, s, what, err, errlen);
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
    int rc = meta_get(sp, "process_id", process_id, known, err, errlen);
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

int spool_set_process(spool_t *sp, int64_t process_id, char *err, size_t errlen)
{
    pthread_mutex_lock(&sp->lock);
    int rc = begin_durable(sp, err, errlen);
    if (rc == 0) {
        rc = meta_put(sp, "process_id", process_id, err, errlen);
        if (rc == 0)
            rc = steps_forget_others(sp, process_id, err, errlen);
        if (rc == 0)
            rc = commit(sp, err, errlen);
        else
            rollback(sp);
    }
    if (rc == 0)
        rc = process_file_write(sp->path, process_id, err, errlen);
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
    /* Only POINTS batches count against the cap: the others are one small
     * row each (a gap record, a set-point event, a step marker) whose
     * caller was told, or will be told, that it is recorded. */
    bool fits = b->kind != BATCH_POINTS ||
                (int64_t)(sp->bytes + sp->q_bytes + b->len) <= sp->max_bytes;
    int64_t seq = 0;

    if (check_writable(sp, err, errlen) < 0)
        goto fail;
    if (!records_known((int)b->kind)) {   /* no table would ever take it */
        snprintf(err, errlen, "spool %s: %d is not a record kind", sp->path, (int)b->kind);
        goto fail;
    }
    if (begin_durable(sp, err, errlen) < 0)
        goto fail;
    if (sp->nlost && flush_lost(sp, err, errlen) < 0)
        goto fail_rollback;
    res->stored = true;
    if (!fits) {
        int room = 1;
        if (sp->policy == SPOOL_DROP_OLDEST) {
            room = make_room(sp, b->len, detail, res, err, errlen);
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
            idset_add_points(&d.params, b->data, b->len);
            int mrc = gap_add(sp, &d, err, errlen);
            free(d.params.v);
            if (mrc < 0)
                goto fail_rollback;
            res->stored = false;
            res->dropped_batches++;
            res->dropped_points += b->rows;
        }
    } else if (sp->gaps_open > 0 && b->kind == BATCH_POINTS) {
        /* It fitted without dropping anything: the hole has an end. */
        if (close_gaps(sp, -1, 0, &res->gaps_closed, err, errlen) < 0)
            goto fail_rollback;
    }
    if (res->stored) {
        if (insert_batch(sp, b->kind, b->process_id, b->rows, b->first_ts_us, b->last_ts_us,
                         b->data, b->len, &seq, err, errlen) < 0)
            goto fail_rollback;
        if (b->kind == BATCH_STEPS && b->marks_step &&
            step_note(sp, b->process_id, b->step_no, err, errlen) < 0)
            goto fail_rollback;
        if (b->kind == BATCH_POINTS) {
            sqlite3_stmt *s = stmt(sp, ST_PROC_ROWS);
            sqlite3_bind_int64(s, 1, b->process_id);
            sqlite3_bind_int64(s, 2, b->rows);
            if (step_done(sp, s, "counting rows", err, errlen) < 0)
                goto fail_rollback;
        }
    }
    if (commit(sp, err, errlen) < 0)
        goto fail;
    sp->nlost = 0;
    if (res->stored) {
        b->spool_id = sp->id;
        b->seq = seq;
        sp->appended_batches++;
        sp->appended_rows += b->rows;
        if (b->kind == BATCH_POINTS)
            sp->last_len = b->len;
    }
    pthread_mutex_unlock(&sp->lock);
    return 0;

fail_rollback:
    rollback(sp);
fail:
    /* Lost points become a gap record; an event or step marker that could
     * not be written is reported to whoever sent it, not counted here. */
    *res = (spool_append_result_t){ 0 };
    if (b->kind == BATCH_POINTS) {
        *res = (spool_append_result_t){ .dropped_batches = 1, .dropped_points = b->rows };
        if (!sp->readonly)
            note_lost(sp, b, err);
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
    bool room = (int64_t)(sp->bytes + sp->q_bytes + sp->last_len) <= sp->max_bytes;
    if (sp->gaps_open > 0 && (room || !only_if_room)) {
        rc = begin_durable(sp, err, errlen);
        if (rc == 0) {
            rc = close_gaps(sp, process_id, 0, &n, err, errlen);
            if (rc == 0)
                rc = commit(sp, err, errlen);
            else
                rollback(sp);
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
    if (begin_durable(sp, err, errlen) < 0)
        return -1;
    sqlite3_stmt *s = stmt(sp, ST_TO_QUARANTINE);
    sqlite3_bind_int64(s, 1, clock_real_us());
    sqlite3_bind_text(s, 2, why, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, seq);
    if (step_done(sp, s, "quarantining a batch", err, errlen) < 0)
        goto fail;
    if (sqlite3_changes(sp->db) == 0) {   /* already gone */
        sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
        return 0;
    }
    s = stmt(sp, ST_DELETE);
    sqlite3_bind_int64(s, 1, seq);
    if (sqlite3_step(s) != SQLITE_ROW) {
        db_fail(sp, "quarantining a batch", err, errlen);
        sqlite3_reset(s);
        goto fail;
    }
    uint64_t rows = (uint64_t)sqlite3_column_int64(s, 0);
    uint64_t len = (uint64_t)sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    if (commit(sp, err, errlen) < 0)
        return -1;
    if (seq > sp->removed_hi)
        sp->removed_hi = seq;
    sp->batches--;
    sp->rows -= rows;
    sp->bytes -= len;
    sp->q_batches++;
    sp->q_rows += rows;
    sp->q_bytes += len;
    return 0;
fail:
    rollback(sp);
    return -1;
}

int spool_claim(spool_t *sp, size_t max_batches, size_t max_rows, batch_t **out, size_t *n,
                uint32_t *bad, char *err, size_t errlen)
{
    batch_t *v = NULL;
    size_t k = 0;
    uint64_t rows = 0;
    int rc = -1;

    *out = NULL;
    *n = 0;
    if (bad)
        *bad = 0;
    if (max_batches == 0)
        max_batches = 1;
    v = calloc(max_batches, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "spool: out of memory");
        return -1;
    }
    pthread_mutex_lock(&sp->lock);
again:;
    int64_t bad_seq = 0;
    sqlite3_stmt *s = stmt(sp, ST_CLAIM);
    sqlite3_bind_int64(s, 1, (int64_t)max_batches);
    int step;
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
        if (k > 0 && (b.kind != v[0].kind || rows + b.rows > max_rows))
            break;
        const uint8_t *data = sqlite3_column_blob(s, 7);
        size_t len = (size_t)sqlite3_column_bytes(s, 7);
        if ((uint64_t)sqlite3_column_int64(s, 6) != payload_hash(data, len)) {
            if (k == 0)
                bad_seq = b.seq;
            break;   /* a batch behind the bad one waits for the next claim */
        }
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy) {
            snprintf(err, errlen, "spool: out of memory");
            sqlite3_reset(s);
            goto out;
        }
        memcpy(copy, data, len);
        b.data = copy;
        b.len = len;
        v[k++] = b;
        rows += b.rows;
    }
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        db_fail(sp, "reading the queue", err, errlen);
        goto out;
    }
    if (bad_seq) {
        if (quarantine_locked(sp, bad_seq, "spool: payload does not match its checksum"
                              " (the spool file was damaged)", err, errlen) < 0)
            goto out;
        if (bad)
            (*bad)++;
        goto again;
    }
    if (k > 0) {
        /* From now on these batches may reach PostgreSQL, and whether they
         * did is known only when a send succeeds or fails before COMMIT:
         * until then they must not be dropped (their points might be
         * counted as lost while stored). The mark needs no fsync: it only
         * has to outlive a crash of aldrecd, not of the machine. */
        if (set_sync(sp, false, err, errlen) < 0 || begin(sp, err, errlen) < 0)
            goto out;
        s = stmt(sp, ST_MARK_SENT);
        sqlite3_bind_int64(s, 1, v[0].seq);
        sqlite3_bind_int64(s, 2, v[k - 1].seq);
        sqlite3_bind_int(s, 3, 1);
        sqlite3_bind_int(s, 4, 0);   /* batches in doubt stay in doubt */
        if (step_done(sp, s, "marking batches sent", err, errlen) < 0) {
            rollback(sp);
            goto out;
        }
        if (commit(sp, err, errlen) < 0)
            goto out;
        sp->claim_hi = v[k - 1].seq;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&sp->lock);
    if (rc < 0 || k == 0) {
        spool_batches_free(v, k);
        v = NULL;
        k = 0;
    }
    *out = v;
    *n = k;
    return rc;
}

int spool_unclaim(spool_t *sp, const batch_t *b, size_t n, bool in_doubt, char *err,
                  size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&sp->lock);
    sp->claim_hi = 0;
    /* Certainly not stored: back to droppable, except batches that were
     * already in doubt before this claim (a group that failed because one
     * of them turned out stored must not make that one droppable). Maybe
     * stored: all of them in doubt until a later send settles it. */
    if (n > 0 && b[0].spool_id == sp->id) {
        rc = set_sync(sp, false, err, errlen);
        if (rc == 0)
            rc = begin(sp, err, errlen);
        if (rc == 0) {
            sqlite3_stmt *s = stmt(sp, ST_MARK_SENT);
            sqlite3_bind_int64(s, 1, b[0].seq);
            sqlite3_bind_int64(s, 2, b[n - 1].seq);
            sqlite3_bind_int(s, 3, in_doubt ? 2 : 0);
            sqlite3_bind_int(s, 4, in_doubt ? -1 : 1);
            rc = step_done(sp, s, "unmarking batches", err, errlen);
            if (rc == 0)
                rc = commit(sp, err, errlen);
            else
                rollback(sp);
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
    int rc = set_sync(sp, false, err, errlen);
    if (rc == 0)
        rc = begin(sp, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (b[i].spool_id != sp->id)
            continue;
        sqlite3_stmt *s = stmt(sp, ST_DELETE);
        sqlite3_bind_int64(s, 1, b[i].seq);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW) {
            if (b[i].seq > sp->removed_hi)
                sp->removed_hi = b[i].seq;
            sp->batches--;
            sp->rows -= (uint64_t)sqlite3_column_int64(s, 0);
            sp->bytes -= (uint64_t)sqlite3_column_int64(s, 1);
            step = sqlite3_step(s);
        }
        sqlite3_reset(s);
        if (step != SQLITE_DONE) {
            rc = db_fail(sp, "removing a stored batch", err, errlen);
            rollback(sp);
        }
    }
    if (rc == 0)
        rc = commit(sp, err, errlen);
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

/* ---- quarantine commands --------------------------------------------------- */

long spool_quarantine_list(spool_t *sp, void (*fn)(void *arg, const spool_qentry_t *e),
                           void *arg, char *err, size_t errlen)
{
    long n = 0;
    pthread_mutex_lock(&sp->lock);
    sqlite3_stmt *s = stmt(sp, ST_Q_LIST);
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
        n = db_fail(sp, "listing the quarantine", err, errlen);
    pthread_mutex_unlock(&sp->lock);
    return n;
}

/* Ends a change of the quarantine, inside its transaction (lock held):
 * empties seq's rows (ST_Q_DELETE), commits and recomputes the counters.
 * Returns the rows emptied, or -1 with err (rolled back). */
static long quarantine_finish(spool_t *sp, int64_t seq, char *err, size_t errlen)
{
    sqlite3_stmt *s = stmt(sp, ST_Q_DELETE);
    sqlite3_bind_int64(s, 1, seq);
    if (step_done(sp, s, "emptying the quarantine", err, errlen) < 0) {
        rollback(sp);
        return -1;
    }
    long n = sqlite3_changes(sp->db);
    if (commit(sp, err, errlen) < 0 || reload_counters(sp, err, errlen) < 0)
        return -1;
    return n;
}

long spool_quarantine_retry(spool_t *sp, int64_t seq, char *err, size_t errlen)
{
    long n = -1;
    pthread_mutex_lock(&sp->lock);
    if (check_writable(sp, err, errlen) < 0 || begin_durable(sp, err, errlen) < 0)
        goto out;
    sqlite3_stmt *s = stmt(sp, ST_Q_RETRY);
    sqlite3_bind_int64(s, 1, seq);
    if (step_done(sp, s, "moving batches back to the queue", err, errlen) < 0) {
        rollback(sp);
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
    if (check_writable(sp, err, errlen) < 0 || begin_durable(sp, err, errlen) < 0)
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
    sqlite3_stmt *s = stmt(sp, ST_Q_SELECT);
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
        if (q->kind == BATCH_POINTS)
            idset_add_points(&q->params, sqlite3_column_blob(s, 6),
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
        rc = db_fail(sp, "reading the quarantine", err, errlen);
    for (size_t i = 0; rc == 0 && i < nv; i++) {
        struct qd *q = &v[i];
        if (q->kind != BATCH_POINTS)
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
        rc = insert_batch(sp, BATCH_GAPS, q->pid, 1, q->first, q->last, data, len, &gseq,
                          err, errlen);
        free(data);
        if (rc == 0) {
            s = stmt(sp, ST_PROC_DROPS);
            sqlite3_bind_int64(s, 1, q->pid);
            sqlite3_bind_int64(s, 2, q->rows);
            sqlite3_bind_int64(s, 3, 1);
            rc = step_done(sp, s, "counting dropped points", err, errlen);
        }
    }
    for (size_t i = 0; i < nv; i++)
        free(v[i].params.v);
    free(v);
    if (rc < 0) {
        rollback(sp);
        goto out;
    }
    n = quarantine_finish(sp, seq, err, errlen);
out:
    pthread_mutex_unlock(&sp->lock);
    return n;
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
    sqlite3_stmt *s = stmt(sp, ST_OLDEST);
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
        sqlite3_stmt *s = stmt(sp, q[i]);
        sqlite3_bind_int64(s, 1, process_id);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(s) && c < 3; c++)
                v[i][c] = sqlite3_column_int64(s, c);
        else if (step != SQLITE_DONE)
            rc = db_fail(sp, "reading what the spool holds of a process", err, errlen);
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
