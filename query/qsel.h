/* qsel.h — what a query is about, from the command line to ids: a process,
 * some parameters of its machine, and a time window (the whole run, one
 * step, --from/--to). Shared by export, summary and plot, so that bad input
 * is refused the same way everywhere, naming the culprit. */
#ifndef ALDREC_QSEL_H
#define ALDREC_QSEL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qparam {
    int id;
    char name[160];          /* component.parameter */
    char units[32];
    bool has_min, has_max;   /* limits from component_parameters */
    double min_limit, max_limit;
    int expected_ms;         /* interval at which samples are expected */
} qparam_t;

typedef struct qstep {
    int no;
    char name[128];
    int64_t start_us, end_us;  /* end_us = INT64_MAX while open */
} qstep_t;

/* Command-line text; NULL = not given. */
typedef struct qsel_args {
    const char *process;     /* --process ID */
    const char *params;      /* --param A,B (names or ids); NULL = all */
    const char *step;        /* --step N */
    const char *from, *to;   /* absolute time, or +DURATION from the
                                process start (from the step start with
                                --step) */
    const char *machine;     /* --machine NAME instead of --process: a
                                window of the machine's history, runs or
                                not; needs absolute --from and --to */
    const char *before;      /* --before DURATION with --process: the window
                                starts that long before the process start,
                                and holds the machine's idle history too */
} qsel_args_t;

typedef struct qsel {
    int64_t process_id;            /* 0 with --machine */
    int machine_id;
    /* true with --machine or --before: the rows are the machine's
     * (machine_points: runs and idle history, 0010_idle.sql), not only
     * the process' */
    bool machine_window;
    char machine[64], recipe[128], lot[128], status[16];
    int64_t started_us, ended_us;  /* ended_us = 0 while running */
    qstep_t *steps;                /* every step of the process, in time order */
    size_t nsteps;
    const qstep_t *step;           /* the one chosen with --step, or NULL */
    qparam_t *params;              /* chosen parameters, in the order given */
    size_t nparams;
    int64_t from_us, to_us;        /* window [from, to); INT64_MIN/INT64_MAX = open */
    /* Where the rows are looked for: the window when one was given, else
     * the process' time on record — from an hour before its first stored
     * batch (ingest ledger) or its start, to an hour after its last batch
     * or its end — so that queries touch only the partitions that can
     * hold the run. Open when the ledger has nothing for the process
     * (rows that did not come through the recorder). */
    int64_t scan_from_us, scan_to_us;
} qsel_t;

typedef enum qsel_status {
    QSEL_OK,
    QSEL_BAD_INPUT,   /* err names the culprit: exit 2 */
    QSEL_FAILED,      /* database error: exit 1 */
} qsel_status_t;

/* Resolves a against the database. On QSEL_OK *s is filled (free it with
 * qsel_clear()); otherwise err says why and *s is empty. */
qsel_status_t qsel_resolve(PGconn *conn, const qsel_args_t *a, qsel_t *s,
                           char *err, size_t errlen);

/* Frees what qsel_resolve() allocated; s may be zeroed or resolved. */
void qsel_clear(qsel_t *s);

/* The scan window's bounds as SQL timestamptz text ("-infinity"/"infinity"
 * when open, else ISO 8601 UTC with µs). */
void qsel_from_text(const qsel_t *s, char *buf, size_t len);
void qsel_to_text(const qsel_t *s, char *buf, size_t len);

/* The chosen parameter ids as an SQL int[] literal "{3,7}". Returns buf. */
char *qsel_ids_text(const qsel_t *s, char *buf, size_t len);

/* Where s's samples are: "<table> WHERE <$1 matches> AND parameter_id =
 * ANY ($2::int[])" — process_data_points and $1 the process id, or for a
 * machine window (--machine, --before) machine_points, the machine's rows,
 * runs and idle history alike (0010_idle.sql), and $1 its name; the
 * bucketed function of the same rows (series_bucketed or
 * machine_series_bucketed); and $1's text. */
const char *qsel_rows_sql(const qsel_t *s);
const char *qsel_bucketed_fn(const qsel_t *s);
const char *qsel_key_text(const qsel_t *s, char *buf, size_t len);

/* Index of parameter id in s->params, or -1. */
int qsel_param_index(const qsel_t *s, int id);

#endif
