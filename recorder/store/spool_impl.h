/* spool_impl.h — what the spool's three files share; nothing outside
 * recorder/store/spool*.c includes it. The file layout and the invariants
 * are in spool.h; spool_open.c creates, checks and recovers the file,
 * spool.c appends, forwards and counts, spool_loss.c records what leaves
 * the spool without reaching PostgreSQL (dropped batches as gap records,
 * the quarantine commands). */
#ifndef ALDREC_SPOOL_IMPL_H
#define ALDREC_SPOOL_IMPL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/spool.h"

#define SPOOL_FORMAT 1
/* The log is copied into the file once it holds this many pages: 4 MiB,
 * or a quarter of max_bytes for a small spool, so that file and log
 * together stay near max_bytes. */
#define CHECKPOINT_PAGES_MAX 1024
#define CHECKPOINT_PAGES_MIN 16
#define MAX_LOST 4                     /* processes with failed writes pending */
/* Run on every connection to a spool file. A queue touches its two ends
 * only, and the operating system caches the file anyway: SQLite's own
 * page cache is capped at 256 KiB (Debian's default, 2 MiB, fills slowly
 * as the file's pages go by and looks like a leak in a recorder that runs
 * for months). secure_delete: Debian builds SQLite with it on, which
 * writes every removed batch a second time as zeros (into the log, then
 * into the file); FAST zeroes only what costs no extra write. The spool
 * holds process data, and its file is the recorder's own (mode 0600). */
#define SPOOL_CONN_PRAGMAS "PRAGMA cache_size = -256; PRAGMA secure_delete = FAST;"

/* Why points were dropped (gap_open.cause). */
enum cause { CAUSE_FULL = 1, CAUSE_WRITE_FAILED = 2 };

/* Every statement the spool runs, prepared once at open: a file whose
 * tables do not have these columns is not one of ours. */
enum st {
    ST_INSERT, ST_DELETE, ST_PEEK, ST_HEAD, ST_DROP, ST_VICTIMS, ST_TO_QUARANTINE, ST_MARK_SENT,
    ST_BETWEEN, ST_MAX_SEQ,
    ST_GAP_GET, ST_GAP_PUT, ST_GAP_LIST, ST_GAP_DEL, ST_PROC_ROWS, ST_PROC_DROPS,
    ST_META_GET, ST_META_PUT, ST_OLDEST, ST_INFO_QUEUED, ST_INFO_QUAR, ST_INFO_PROC,
    ST_INFO_GAP, ST_Q_LIST, ST_Q_RETRY, ST_Q_SELECT, ST_Q_DELETE, ST_COUNT
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
    /* The forwarder's claims in flight, oldest first: each a run of
     * consecutive seqs, the second right behind the first (hi 0: none). */
    struct claim {
        int64_t lo, hi;
        uint64_t bytes;         /* of its batches not yet removed or given back */
    } claim[SPOOL_MAX_CLAIMS];
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

/* A set of parameter ids (sorted, unique after normalising). */
struct idset {
    int32_t *v;
    size_t n, cap;
    bool oom;
};

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

/* Bytes that count against max_bytes: queued and quarantined, less the
 * claims being sent — they are leaving, and counting them would drop the
 * newest batch (everything older is in flight) the moment PostgreSQL
 * comes back to a full spool. The file holds at most its claims in flight
 * more than max_bytes, and only while they are in flight. */
static inline int64_t sp_used(const spool_t *sp)
{
    uint64_t claimed = 0;
    for (int i = 0; i < SPOOL_MAX_CLAIMS; i++)
        claimed += sp->claim[i].bytes;
    return (int64_t)(sp->bytes - claimed + sp->q_bytes);
}

/* The highest seq claimed (0: none): nothing up to it may be dropped. */
static inline int64_t sp_claim_hi(const spool_t *sp)
{
    int64_t hi = 0;
    for (int i = 0; i < SPOOL_MAX_CLAIMS; i++)
        if (sp->claim[i].hi > hi)
            hi = sp->claim[i].hi;
    return hi;
}

/* A claim in flight lost a batch of len bytes (stored or quarantined). */
static inline void sp_claim_left(spool_t *sp, int64_t seq, uint64_t len)
{
    for (int i = 0; i < SPOOL_MAX_CLAIMS; i++) {
        struct claim *c = &sp->claim[i];
        if (c->hi != 0 && seq >= c->lo && seq <= c->hi)
            c->bytes = len < c->bytes ? c->bytes - len : 0;
    }
}

/* spool.c */
int sp_begin(spool_t *sp, char *err, size_t errlen);
int sp_begin_durable(spool_t *sp, char *err, size_t errlen);
int sp_check_writable(const spool_t *sp, char *err, size_t errlen);
int sp_commit(spool_t *sp, char *err, size_t errlen);
int sp_db_fail(spool_t *sp, const char *what, char *err, size_t errlen);
int sp_exec(spool_t *sp, const char *sql, char *err, size_t errlen);
int sp_meta_get(spool_t *sp, const char *key, int64_t *v, bool *found, char *err, size_t errlen);
int sp_meta_put(spool_t *sp, const char *key, int64_t v, char *err, size_t errlen);
int sp_reload_counters(spool_t *sp, char *err, size_t errlen);
int sp_set_sync(spool_t *sp, bool full, char *err, size_t errlen);
int sp_step_done(spool_t *sp, sqlite3_stmt *s, const char *what, char *err, size_t errlen);
sqlite3_stmt *sp_stmt(spool_t *sp, enum st i);
void sp_rollback(spool_t *sp);

/* spool_open.c */
int sp_process_file_write(const char *spool_path, int64_t process_id, char *err, size_t errlen);

/* spool_loss.c */
int sp_close_gaps(spool_t *sp, int64_t process_id, int cause, uint32_t *closed, char *err, size_t errlen);
int sp_flush_lost(spool_t *sp, char *err, size_t errlen);
int sp_gap_add(spool_t *sp, struct drop *d, char *err, size_t errlen);
int sp_insert_batch(spool_t *sp, enum batch_kind kind, int64_t process_id, uint32_t rows, int64_t first, int64_t last, const uint8_t *data, size_t len, int64_t *seq, char *err, size_t errlen);
int sp_make_room(spool_t *sp, size_t need, const char *detail, spool_append_result_t *res, char *err, size_t errlen);
void sp_idset_add_points(struct idset *s, const uint8_t *data, size_t len);
void sp_note_lost(spool_t *sp, const batch_t *b, const char *why);

#endif
