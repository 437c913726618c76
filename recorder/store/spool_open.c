/* spool_open.c — creating, checking and recovering the spool file, and
 * the PATH.process file beside it (layout and invariants: spool.h). */
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

/* "kind = 1" below is BATCH_POINTS (records.h); "kind IN (1, 5)" the
 * batches of samples (records_samples(): POINTS and IDLE). */
_Static_assert(BATCH_POINTS == 1, "the spool's statements select POINTS batches as kind = 1");
_Static_assert(BATCH_IDLE == 5, "the spool's statements select IDLE batches as kind = 5");

static const char *const st_sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT INTO batches (kind, process_id, rows, first_ts, last_ts,"
                  " spooled_us, crc, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_DELETE] = "DELETE FROM batches WHERE seq = ? RETURNING rows, length(data)",
    [ST_PEEK] = "SELECT seq, kind, process_id, rows, first_ts, last_ts, crc, data"
                " FROM batches WHERE seq > ? ORDER BY seq LIMIT ?",
    [ST_HEAD] = "SELECT (SELECT min(seq) FROM batches WHERE seq > ?3),"
                " (SELECT count(*) FROM batches WHERE seq BETWEEN ?1 AND ?2)",
    [ST_DROP] = "DELETE FROM batches WHERE seq = ?"
                " RETURNING process_id, rows, first_ts, last_ts, data",
    [ST_VICTIMS] = "SELECT seq, length(data) FROM batches WHERE kind IN (1, 5) AND sent = 0"
                   " AND seq > ? ORDER BY seq",
    /* sent: 0 never handed to PostgreSQL; 1 claimed by the forwarder now;
     * 2 in doubt (a send died after COMMIT went out). ?4 < 0: any state. */
    [ST_MARK_SENT] = "UPDATE batches SET sent = ?3 WHERE seq BETWEEN ?1 AND ?2"
                     " AND (?4 < 0 OR sent = ?4)",
    [ST_BETWEEN] = "SELECT 1 FROM batches WHERE process_id = ? AND kind IN (1, 5)"
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

/* ---- the process file ----------------------------------------------------- */

/* PATH.process mirrors meta 'process_id' outside the database, so that a
 * spool file found damaged (or deleted) does not take the knowledge of
 * which run is being recorded with it. One line, "process_id N\n",
 * replaced atomically (write, fsync, rename, fsync of the directory). */
static void process_file_path(const char *spool_path, char *out, size_t cap)
{
    snprintf(out, cap, "%s.process", spool_path);
}

int sp_process_file_write(const char *spool_path, int64_t process_id, char *err,
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
    if (sp_begin(sp, err, errlen) < 0)
        return -1;
    if (sp_exec(sp, schema_sql, err, errlen) < 0 || sp_exec(sp, sql, err, errlen) < 0) {
        sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return sp_exec(sp, "COMMIT", err, errlen);
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
    if (sp_exec(sp, SPOOL_CONN_PRAGMAS, err, errlen) < 0)
        return damaged_or_failed(sp, why, whylen, err);
    int64_t format = 0;
    bool found_format, found_id;
    if (sp_meta_get(sp, "format", &format, &found_format, err, errlen) < 0 ||
        sp_meta_get(sp, "spool_id", &sp->id, &found_id, err, errlen) < 0)
        return damaged_or_failed(sp, why, whylen, err);
    if (!found_format || format != SPOOL_FORMAT || !found_id || sp->id <= 0) {
        snprintf(why, whylen, "not an aldrec spool of format %d (format %lld, id %lld)",
                 SPOOL_FORMAT, (long long)format, (long long)sp->id);
        return 1;
    }
    if (!readonly) {
        if (sp_exec(sp, "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;", err,
                 errlen) < 0)
            return -1;
        /* Added to format 1 after its first release: older files gain it. */
        if (sp_exec(sp, steps_sql, err, errlen) < 0)
            return damaged_or_failed(sp, why, whylen, err);
        int64_t pages = sp->max_bytes / 4 / 4096;
        sp->ckpt_pages = pages > CHECKPOINT_PAGES_MAX ? CHECKPOINT_PAGES_MAX
                         : pages < CHECKPOINT_PAGES_MIN ? CHECKPOINT_PAGES_MIN : (int)pages;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %d", sp->ckpt_pages * 4096);
        if (sp_exec(sp, sql, err, errlen) < 0)
            return -1;
        sp->sync_full = true;
        sqlite3_wal_hook(sp->db, wal_hook, sp);
        sqlite3_db_config(sp->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    }
    if (sp_reload_counters(sp, err, errlen) < 0)
        return damaged_or_failed(sp, why, whylen, err);
    if (!readonly && sp->gaps_open > 0) {
        /* What was dropped before this start is one record: whether later
         * drops continue it cannot be told after a restart. */
        if (sp_begin(sp, err, errlen) < 0)
            return -1;
        if (sp_close_gaps(sp, -1, 0, NULL, err, errlen) < 0) {
            sp_rollback(sp);
            return -1;
        }
        if (sp_commit(sp, err, errlen) < 0)
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
    if (sp_meta_put(sp, "process_id", pid, err, errlen) < 0)
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

