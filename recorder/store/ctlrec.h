/* ctlrec.h — the records that reach the spool through aldrecd's control
 * socket instead of its poll loop: set-point events (`aldrec set`) and
 * recipe step markers (`aldrec process step`). One place for their request
 * line, its validation and their binary COPY row, so that the CLI writing
 * a line and the daemon reading it cannot disagree.
 *
 * Request lines (one per connection, ctl.h); numbers in the C locale,
 * doubles as %.17g so that they travel exactly; the last field is the rest
 * of the line:
 *   EVENT PARAM_ID TS_US REQUESTED READBACK|- QUALITY REQUESTED_BY
 *   STEP NUMBER NAME
 *
 * COPY rows (the columns of docs/ARCH.md "Record kinds", records.h; pgsink.c
 * sends them):
 *   setpoint_events (process_id int8 NULL, parameter_id int4, ts timestamptz,
 *                    requested float8, readback float8 NULL, quality int2,
 *                    requested_by text)                  migration 0005
 *   process_steps   (process_id int8, step_no int4, name text,
 *                    started_at timestamptz)             migration 0006
 * Everything PostgreSQL would refuse for good (a NULL where NOT NULL, a
 * negative quality or step number, an empty name, text that is not UTF-8)
 * is refused here first, so a record that was answered "OK" never ends up
 * in quarantine for its content. */
#ifndef ALDREC_CTLREC_H
#define ALDREC_CTLREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pgcopy.h"

/* Longest REQUESTED_BY and step NAME, in bytes. */
#define CTLREC_TEXT_MAX 200

typedef struct ctlrec_event {
    int32_t parameter_id;       /* component_parameters.id, > 0 */
    int64_t ts_us;              /* when the device took the write, Unix-epoch µs */
    double requested;           /* engineering value asked for */
    double readback;            /* engineering value read back, when has_readback */
    bool has_readback;          /* false: the read-back failed (quality says how) */
    int16_t quality;            /* of the read-back (sample.h), >= 0 */
    char requested_by[CTLREC_TEXT_MAX + 1];
} ctlrec_event_t;

typedef struct ctlrec_step {
    int32_t step_no;            /* >= 0 */
    char name[CTLREC_TEXT_MAX + 1];
} ctlrec_step_t;

/* Checks free text (REQUESTED_BY, a step NAME): 1..CTLREC_TEXT_MAX bytes of
 * UTF-8 without control characters, not beginning or ending with a space.
 * Returns 0, or -1 with err saying what is wrong, naming it `what`. */
int ctlrec_check_text(const char *what, const char *s, char *err, size_t errlen);

/* The request line for ev / st ("EVENT ...", "STEP ..."), NUL-terminated,
 * without newline. Returns 0, or -1 with errno EINVAL when a field would be
 * refused by the parser (err says which) or ENOSPC when cap is too small. */
int ctlrec_event_line(const ctlrec_event_t *ev, char *buf, size_t cap, char *err,
                      size_t errlen);
int ctlrec_step_line(const ctlrec_step_t *st, char *buf, size_t cap, char *err, size_t errlen);

/* Parses and validates the arguments of a request line (what follows
 * "EVENT " / "STEP "; NULL for none). Returns 0 with *out, or -1 with err
 * naming the first bad field ("QUALITY must be ..., got \"x\""). */
int ctlrec_event_parse(const char *args, ctlrec_event_t *out, char *err, size_t errlen);
int ctlrec_step_parse(const char *args, ctlrec_step_t *out, char *err, size_t errlen);

/* Appends ev as one setpoint_events row of process process_id (0: none,
 * stored as NULL) to p. Returns 0, or -1 with errno ENOMEM. */
int ctlrec_event_row(pgcopy_t *p, int64_t process_id, const ctlrec_event_t *ev);

/* Appends st as one process_steps row of process process_id (> 0), the
 * step starting at started_us (Unix-epoch µs). Returns 0, or -1 with errno
 * ENOMEM. */
int ctlrec_step_row(pgcopy_t *p, int64_t process_id, const ctlrec_step_t *st,
                    int64_t started_us);

#endif
