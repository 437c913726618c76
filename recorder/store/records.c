/* records.c — the record-kind table; see records.h. */
#include "store/records.h"

#include <stddef.h>
#include <string.h>

static const record_kind_t kinds[BATCH_KIND_MAX + 1] = {
    [BATCH_POINTS] = {
        .kind = BATCH_POINTS, .name = "points", .table = "process_data_points",
        .columns = "process_id, parameter_id, ts, value, quality", .ncolumns = 5,
        .encoder = "pgcopy_add (store/pgcopy.h)",
    },
    [BATCH_EVENTS] = {
        .kind = BATCH_EVENTS, .name = "events", .table = "setpoint_events",
        .columns = "process_id, parameter_id, ts, requested, readback, quality, requested_by",
        .ncolumns = 7, .encoder = "ctlrec_event_row (store/ctlrec.h)",
    },
    [BATCH_STEPS] = {
        .kind = BATCH_STEPS, .name = "steps", .table = "process_steps",
        .columns = "process_id, step_no, name, started_at", .ncolumns = 4,
        .encoder = "ctlrec_step_row (store/ctlrec.h)",
    },
    [BATCH_GAPS] = {
        .kind = BATCH_GAPS, .name = "gaps", .table = "data_gaps",
        .columns = "process_id, first_ts, last_ts, points, batches, parameter_ids, reason",
        .ncolumns = 7, .encoder = "gap_payload (store/spool.c)",
    },
    [BATCH_IDLE] = {
        .kind = BATCH_IDLE, .name = "idle", .table = "machine_history",
        .columns = "parameter_id, ts, value, quality", .ncolumns = 4,
        .encoder = "pgcopy_add_idle (store/pgcopy.h)",
    },
};

const record_kind_t *records_kind(int kind)
{
    if (kind < BATCH_KIND_MIN || kind > BATCH_KIND_MAX)
        return NULL;
    return &kinds[kind];
}

bool records_known(int kind)
{
    return records_kind(kind) != NULL;
}

const char *records_name(int kind)
{
    const record_kind_t *k = records_kind(kind);
    return k ? k->name : "?";
}

int records_by_name(const char *name)
{
    for (int k = BATCH_KIND_MIN; k <= BATCH_KIND_MAX; k++)
        if (strcmp(kinds[k].name, name) == 0)
            return k;
    return 0;
}

int records_ncolumns(enum batch_kind kind)
{
    const record_kind_t *k = records_kind(kind);
    return k ? k->ncolumns : 0;
}

bool records_samples(int kind)
{
    return kind == BATCH_POINTS || kind == BATCH_IDLE;
}
