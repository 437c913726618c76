/* spool.h — the durable queue between aldrecd's main loop and PostgreSQL:
 * one SQLite file on the controller.
 *
 * Every flushed batch is appended here — one transaction per batch, made
 * durable (WAL, synchronous=FULL: fsync of the log) before spool_append()
 * returns — and the forwarder thread sends batches to PostgreSQL oldest
 * first, deleting each only once PostgreSQL has it.
 *
 * File layout (format 1). All timestamps are Unix-epoch µs; `data` is the
 * batch's binary COPY stream (pgcopy.h), header and trailer included.
 *
 *   meta(key TEXT PRIMARY KEY, value)            WITHOUT ROWID
 *     'format'      1
 *     'spool_id'    random 63-bit id (> 0), made with the file, never changed
 *     'created_us'  when the file was made
 *     'process_id'  the process being recorded (0: none); absent until the
 *                   first START/STOP (or PATH.process, below), so a fresh
 *                   file says "unknown"
 *   batches(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind, process_id, rows,
 *           first_ts, last_ts, spooled_us, crc, data BLOB, sent)
 *     the queue; seq is the batch's ingest_ledger.batch_seq; crc is the
 *     64-bit FNV-1a hash of data, checked before the batch is sent; sent
 *     is 0 for a batch never handed to PostgreSQL, 1 while the forwarder
 *     has it claimed, 2 when a send of it died after COMMIT went out (in
 *     doubt: it may be stored); only sent = 0 may ever be dropped
 *   quarantine(seq INTEGER PRIMARY KEY, kind, process_id, rows, first_ts,
 *              last_ts, spooled_us, crc, data BLOB, quarantined_us,
 *              error TEXT)
 *     batches PostgreSQL refused for good, with the refusal text
 *   gap_open(process_id, cause, first_ts, last_ts, points, batches,
 *            params BLOB, detail TEXT, started_us, first_seq, last_seq,
 *            PRIMARY KEY (process_id, cause))
 *     the hole being made right now (one row per process and cause);
 *     params is the sorted set of parameter ids as native int32s;
 *     first_seq/last_seq the first and last batch dropped into it
 *   processes(process_id INTEGER PRIMARY KEY, rows, dropped_points,
 *             dropped_batches)
 *     per process: POINTS rows spooled, and rows/batches dropped
 *   steps_marked(process_id, step_no, PRIMARY KEY (process_id, step_no))
 *                WITHOUT ROWID
 *     the step numbers used by the process being recorded, noted with the
 *     STEPS batch that marks each (so a restarted aldrecd still refuses a
 *     number used twice, which PostgreSQL would refuse for good); rows of
 *     other processes go with every spool_set_process(). Added to format 1
 *     later: opening a file for writing creates it when missing.
 *
 * Beside the file: PATH.process, one line "process_id N", rewritten
 * atomically by every spool_set_process(). When spool_open() has to make
 * a fresh file (first start, or a damaged file moved aside), meta
 * 'process_id' is restored from it, so recording goes on without asking
 * PostgreSQL. PATH.lock holds the flock of the writer.
 *
 * Invariants (kept by spool.c; each statement is one SQLite transaction):
 *  1. A batch leaves `batches` only (a) after PostgreSQL committed its COPY
 *     together with its ledger row, or a replay found that ledger row
 *     (spool_remove); (b) into `quarantine`, with PostgreSQL's error text,
 *     when PostgreSQL refused its data or its crc does not match
 *     (spool_quarantine, spool_claim); or (c) when the spool is full, in the
 *     same transaction that adds its points to gap_open and processes
 *     (spool_append). Nothing else deletes a batch.
 *  2. seq strictly increases within a file and is never reused
 *     (AUTOINCREMENT); a quarantined batch keeps its seq, also when it is
 *     retried, so (recorder_id, spool_id, seq) identifies it for ever.
 *  3. Only POINTS batches are ever dropped: never gap records, never a
 *     batch claimed by the forwarder or marked sent (it may be stored:
 *     dropping it would count points as lost that are not).
 *  4. An open gap becomes a GAPS batch (one data_gaps row) in the same
 *     transaction that removes it from gap_open. A gap holds one unbroken
 *     hole: when a batch of the process between the last dropped one and
 *     the next is still spooled or went to PostgreSQL, the gap is closed
 *     and a new one opened, so a gap's time range never covers stored
 *     data. Gaps still open at start-up are closed.
 *  5. The cap: sum(length(data)) over batches and quarantine stays at or
 *     below max_bytes, except for GAPS, EVENTS and STEPS batches (one small
 *     row each; never refused, never dropped: aldrecd answers a set-point
 *     event or a step marker "OK" only once it is here).
 *
 * Threads: one spool_t is shared by the main loop (appends, meta,
 * quarantine commands, stats) and the forwarder (claim, remove, quarantine,
 * checkpoint). One SQLite connection serves both under a mutex: every
 * operation is short (the longest is the append's fsync); the forwarder
 * never holds the mutex while it waits on the network. Checkpoints run on a
 * second connection of their own so that copying the log into the file
 * never holds up an append. */
#ifndef ALDREC_SPOOL_H
#define ALDREC_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/batch.h"

typedef struct spool spool_t;

enum spool_policy {
    SPOOL_DROP_OLDEST,  /* make room by dropping the oldest POINTS batches */
    SPOOL_DROP_NEWEST,  /* keep what is queued; drop the batch that does not fit */
};

typedef struct spool_opts {
    const char *path;
    int64_t max_bytes;         /* cap on queued + quarantined payload bytes */
    enum spool_policy policy;
} spool_opts_t;

/* What spool_open() found; aldrecd logs it. */
typedef struct spool_open_info {
    bool created;              /* a new file (new spool_id) */
    bool replaced;             /* a bad file was moved aside first */
    char moved_to[4200];       /* where it went (with its -wal/-shm) */
    char reason[512];          /* why it was bad */
    bool process_restored;     /* fresh file: process_id taken from PATH.process */
    int64_t process_id;        /* ... this one (0: none was being recorded) */
    char process_file_error[4300]; /* PATH.process there but unreadable: why */
} spool_open_info_t;

/* Opens (or creates) the spool at o->path for reading and writing. A file
 * that is not a sound spool — bad header, not a database, fails
 * PRAGMA quick_check, foreign schema — is renamed to
 * "PATH.corrupt-YYYYmmddTHHMMSSZ" (with its -wal and -shm) and a fresh
 * one is made; info says so. The file stays locked (PATH.lock, flock)
 * until spool_close(): a second spool_open() of it fails. Returns NULL
 * with err on other failures (in use, permissions, disk). */
spool_t *spool_open(const spool_opts_t *o, spool_open_info_t *info, char *err, size_t errlen);

/* Opens an existing spool read-only, for listing while aldrecd is down.
 * Returns NULL with err (also when there is no file). */
spool_t *spool_open_readonly(const char *path, char *err, size_t errlen);

/* Checkpoints, closes, frees; NULL is fine. */
void spool_close(spool_t *sp);

/* The file's identity (ingest_ledger.spool_id). */
int64_t spool_id(spool_t *sp);

/* The process being recorded as last stored with spool_set_process():
 * *known is false for a file that never had one set. Returns 0, or -1. */
int spool_get_process(spool_t *sp, int64_t *process_id, bool *known, char *err, size_t errlen);

/* Stores the process being recorded (0: none), durably, in the file and in
 * PATH.process, and forgets the marked steps of every other process.
 * Returns 0, or -1 with err. */
int spool_set_process(spool_t *sp, int64_t process_id, char *err, size_t errlen);

/* The step numbers noted for process_id (batches with marks_step), sorted,
 * in *steps (caller frees; NULL when *n == 0). Returns 0, or -1 with err. */
int spool_get_steps(spool_t *sp, int64_t process_id, int32_t **steps, size_t *n, char *err,
                    size_t errlen);

/* What one spool_append() did besides storing the batch. */
typedef struct spool_append_result {
    bool stored;               /* false: this batch itself was dropped */
    uint32_t dropped_batches;  /* batches dropped (including this one) */
    uint64_t dropped_points;
    uint32_t gaps_closed;      /* gap records queued because there was room again */
} spool_append_result_t;

/* Appends b (kind, process_id, rows, first/last ts, data/len; data is
 * copied), durably, in one transaction. Sets b->spool_id and b->seq. When
 * a POINTS batch would exceed the cap the full policy applies (see res);
 * other kinds are always stored (invariant 5). Returns 0, or -1 with err
 * when b's kind is not a record kind (records.h) or the file could not be
 * written: a POINTS batch's points are then
 * counted as dropped and a gap record is queued with the next append that
 * succeeds; other kinds are not counted (the caller reports the failure). */
int spool_append(spool_t *sp, batch_t *b, spool_append_result_t *res, char *err, size_t errlen);

/* Turns open gaps into GAPS batches: those of process_id (or of every
 * process when process_id < 0); with only_if_room, only when a batch as
 * large as the last one appended would fit. Sets *closed (may be NULL).
 * Returns 0, or -1. */
int spool_close_gaps(spool_t *sp, int64_t process_id, bool only_if_room, uint32_t *closed,
                     char *err, size_t errlen);

/* Forwarder side ---------------------------------------------------------- */

/* Claims in flight at once, at most: a drain writes two groups over two
 * connections (forwarder.h). */
#define SPOOL_MAX_CLAIMS 2

/* Claims the oldest queued batch not claimed yet (the one right behind
 * the claim in flight, if there is one) and up to max_batches - 1
 * batches right behind it of the same kind, while their rows add up to
 * at most max_rows (the first is taken whatever its size), and marks them
 * sent: from now on they may be in PostgreSQL, so they are never dropped
 * until they leave the spool or spool_unclaim() says the send failed for
 * sure. *out is an array of *n batches with copies of their data, owned
 * by the caller (spool_batches_free()); *n == 0 when there is nothing to
 * claim, or already SPOOL_MAX_CLAIMS claims in flight. A batch whose data
 * no longer matches its crc is moved to quarantine instead and counted in
 * *bad (may be NULL). Returns 0, or -1 with err. */
int spool_claim(spool_t *sp, size_t max_batches, size_t max_rows, batch_t **out, size_t *n,
                uint32_t *bad, char *err, size_t errlen);

/* Reads ahead, without claiming: the group a spool_claim() would take if
 * every batch up to after_seq had left the spool (a damaged batch ends it
 * early; spool_claim() deals with it). For the forwarder, while
 * PostgreSQL is busy with the claim before. Returns 0, or -1 with err. */
int spool_peek(spool_t *sp, int64_t after_seq, size_t max_batches, size_t max_rows,
               batch_t **out, size_t *n, char *err, size_t errlen);

/* Claims b[0..n) from spool_peek() if they are exactly the batches a
 * spool_claim() would take now (1): the queue starts with them, or they
 * are right behind the claim in flight. 0: they are not (the claim before
 * them did not leave, batches were dropped or put back, no claim is
 * free): free them and call spool_claim(). -1 with err. */
int spool_claim_peeked(spool_t *sp, const batch_t *b, size_t n, char *err, size_t errlen);

/* Frees what spool_claim() or spool_peek() returned; NULL is fine. */
void spool_batches_free(batch_t *b, size_t n);

/* Ends a claim, after any outcome: the one b[0..n) came from, or with
 * n == 0 (its batches left the spool) the oldest in flight. Claims in
 * flight end oldest first. in_doubt: the connection broke after
 * COMMIT was sent, so the batches (those still here) may be stored: they
 * are marked in doubt (sent = 2) until a later send settles them;
 * otherwise the claim mark is cleared, but batches that were in doubt
 * before this claim stay in doubt. Returns 0, or -1 with err. */
int spool_unclaim(spool_t *sp, const batch_t *b, size_t n, bool in_doubt, char *err,
                  size_t errlen);

/* Deletes batches PostgreSQL has committed (or found in its ledger).
 * Batches of an earlier spool file (another spool_id) are ignored.
 * Returns 0, or -1 with err. */
int spool_remove(spool_t *sp, const batch_t *b, size_t n, char *err, size_t errlen);

/* Moves b to quarantine with why (PostgreSQL's error text). Returns 0, or
 * -1 with err. */
int spool_quarantine(spool_t *sp, const batch_t *b, const char *why, char *err, size_t errlen);

/* Copies the write-ahead log into the database file when it has grown past
 * a quarter of max_bytes (4 MiB at most), on a connection of its own. May
 * wait for the disk: call it from the forwarder, never from the main loop.
 * Returns 0, or -1. */
int spool_checkpoint(spool_t *sp);

/* Quarantine commands ------------------------------------------------------ */

typedef struct spool_qentry {
    int64_t seq;
    enum batch_kind kind;
    int64_t process_id;
    uint32_t rows;
    int64_t first_ts_us, last_ts_us;
    int64_t quarantined_us;
    char error[512];
} spool_qentry_t;

/* Calls fn for every quarantined batch, oldest first. Returns the number
 * listed, or -1 with err. */
long spool_quarantine_list(spool_t *sp, void (*fn)(void *arg, const spool_qentry_t *e),
                           void *arg, char *err, size_t errlen);

/* Moves quarantined batch seq (every one when seq == 0) back into the
 * queue, with its seq. Returns how many moved (0: no such batch), or -1. */
long spool_quarantine_retry(spool_t *sp, int64_t seq, char *err, size_t errlen);

/* Deletes quarantined batch seq (every one when seq == 0); each dropped
 * POINTS batch gets a gap record saying why. Returns how many were
 * dropped, or -1 with err. */
long spool_quarantine_drop(spool_t *sp, int64_t seq, char *err, size_t errlen);

/* Numbers ------------------------------------------------------------------ */

typedef struct spool_stats {
    int64_t spool_id;
    int64_t max_bytes;
    uint64_t batches, rows, bytes;          /* queued (rows: of every kind) */
    int64_t oldest_spooled_us;              /* wall clock; 0 when empty */
    uint64_t q_batches, q_rows, q_bytes;    /* quarantined */
    uint64_t dropped_batches, dropped_points;   /* since the file was made */
    bool dropping;                          /* a gap is open */
    uint64_t appended_batches, appended_rows;   /* by this process */
    int64_t wal_pages;                      /* in the log, not yet checkpointed */
} spool_stats_t;

/* Snapshot of the numbers (one indexed query for the oldest). */
void spool_get_stats(spool_t *sp, spool_stats_t *out);

typedef struct spool_process_info {
    uint64_t rows;                          /* POINTS rows ever spooled */
    uint64_t queued_batches, queued_rows;   /* still waiting (batches: any kind) */
    uint64_t quarantined_batches, quarantined_rows;
    uint64_t dropped_batches, dropped_points;
    bool gap_open;
} spool_process_info_t;

/* What the spool holds of one process. Returns 0, or -1 with err. */
int spool_process_info(spool_t *sp, int64_t process_id, spool_process_info_t *out,
                       char *err, size_t errlen);

/* "drop_oldest" / "drop_newest" (the [spool] full_policy names). */
const char *spool_policy_name(enum spool_policy p);

#endif
