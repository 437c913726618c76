/* records.h — the record kinds (docs/ARCH.md "Record kinds"): for each
 * kind of row that reaches PostgreSQL, its number, its name, the table it
 * goes to, its binary COPY columns in order and the function that encodes
 * one row. This table is their one owner: pgsink builds its COPY
 * statements from it, the spool accepts only its kinds, `aldrec spool` and
 * the metrics name kinds by it. Changing a kind's columns is a migration
 * (sql/), its row here and its encoder (test_records checks that every
 * encoder writes as many fields as its row names). */
#ifndef ALDREC_RECORDS_H
#define ALDREC_RECORDS_H

#include <stdbool.h>

/* Stored in the spool and in ingest_ledger.kind: never renumber. */
enum batch_kind {
    BATCH_POINTS = 1,   /* process_data_points */
    BATCH_EVENTS = 2,   /* setpoint_events (migration 0005) */
    BATCH_STEPS = 3,    /* process_steps (migration 0006) */
    BATCH_GAPS = 4,     /* data_gaps (migration 0004) */
    BATCH_IDLE = 5,     /* machine_history: samples outside a process (0010) */
};
#define BATCH_KIND_MIN BATCH_POINTS
#define BATCH_KIND_MAX BATCH_IDLE

typedef struct record_kind {
    enum batch_kind kind;
    const char *name;        /* "points": spool listings, metrics labels */
    const char *table;       /* "process_data_points" */
    const char *columns;     /* COPY order: "process_id, parameter_id, ts, value, quality" */
    int ncolumns;            /* fields in each row */
    const char *encoder;     /* the function that encodes one row (for readers) */
} record_kind_t;

/* The row of kind, or NULL when kind is not a record kind (static storage). */
const record_kind_t *records_kind(int kind);

/* True when kind is a record kind. */
bool records_known(int kind);

/* The name of kind ("points", "events", "steps", "gaps", "idle"), or "?". */
const char *records_name(int kind);

/* The kind named name, or 0 when there is none. */
int records_by_name(const char *name);

/* The fields in each row of kind (a known kind). */
int records_ncolumns(enum batch_kind kind);

/* True for the kinds that carry samples (points of a run, idle history):
 * they count against the spool's cap, may be dropped when it is full, and
 * leave a gap record (data_gaps) when they are lost. */
bool records_samples(int kind);

#endif
