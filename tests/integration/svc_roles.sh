#!/bin/bash
# svc_roles.sh — least privilege in PostgreSQL (migration 0007): the
# schema belongs to the aldrec_owner group (the admin login a member); the
# recorder role can append what it records and read the machine
# description — nothing else: no SELECT, UPDATE, DELETE or TRUNCATE of
# recorded data, no DDL, no temporary tables; engineers read only.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-svc-roles
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG"
pg_migrate "$CFG"
demo_machine_load 1502 100
A="$BIN/aldrec --config $CFG"

# as ROLE: runs SQL, prints "ok" or the first line of the error
as() {
    local dsn=$1; shift
    local out
    if out=$(psql -XAtq -v ON_ERROR_STOP=1 "$dsn" -c "$1" 2>&1); then echo ok; else
        sed -n 's/^ERROR: *//p' <<<"$out" | head -1; fi
}
denied() {   # DESCRIPTION DSN SQL
    local r
    r=$(as "$2" "$3")
    check_match "$1" "$r" "permission denied|must be owner"
}

check_eq "tables belong to the aldrec_owner group" \
    "$(q "SELECT count(*) >= 9 FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'aldrec_owner'")" t
check_eq "... every one of them" \
    "$(q "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'aldrec_owner'")" 0
check_eq "... views and functions too" \
    "$(q "SELECT (SELECT count(*) FROM pg_views WHERE schemaname = 'public' AND viewowner <> 'aldrec_owner')
               + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' AND p.proowner <> 'aldrec_owner'::regrole)")" 0
check_eq "the admin login is a member of aldrec_owner" \
    "$(q "SELECT pg_has_role('aldrec_admin', 'aldrec_owner', 'MEMBER')")" t
check_eq "the recorder login is not" "$(q "SELECT pg_has_role('aldrecd', 'aldrec_owner', 'MEMBER')")" f

MID=$(q "SELECT id FROM machines WHERE name = 'ald-demo'")
PARAM=$(q "SELECT min(id) FROM component_parameters")

# What the recorder needs works.
PROC=$(psql -XAtq -v ON_ERROR_STOP=1 "$REC_DSN" -c \
    "INSERT INTO processes (machine_id, recipe, recorder_id) VALUES ($MID, 'roles', 'rec-roles') RETURNING id" | head -1)
check_match "recorder: INSERT INTO processes ... RETURNING id" "$PROC" '^[0-9]+$'
check_eq "recorder: reads the parameter map (pmap's query)" \
    "$(as "$REC_DSN" "SELECT count(*) FROM machines m JOIN machine_components mc ON mc.machine_id = m.id JOIN component_parameters cp ON cp.component_id = mc.id LEFT JOIN machine_metadata mm ON mm.machine_id = m.id")" ok
check_eq "recorder: appends points" \
    "$(as "$REC_DSN" "INSERT INTO process_data_points VALUES ($PROC, $PARAM, now(), 1.5, 0)")" ok
check_eq "recorder: appends set-point events (identity column)" \
    "$(as "$REC_DSN" "INSERT INTO setpoint_events (process_id, parameter_id, ts, requested, quality, requested_by) VALUES ($PROC, $PARAM, now(), 2, 0, 't')")" ok
check_eq "recorder: appends step markers" \
    "$(as "$REC_DSN" "INSERT INTO process_steps (process_id, step_no, name, started_at) VALUES ($PROC, 1, 's', now())")" ok
check_eq "recorder: appends gap records" \
    "$(as "$REC_DSN" "INSERT INTO data_gaps (process_id, first_ts, last_ts, points, batches, parameter_ids, reason) VALUES ($PROC, now(), now(), 1, 1, '{1}', 't')")" ok
check_eq "recorder: appends ledger rows" \
    "$(as "$REC_DSN" "INSERT INTO ingest_ledger (recorder_id, spool_id, batch_seq, kind, rows, process_id) VALUES ('rec-roles', 1, 1, 1, 1, $PROC)")" ok
check_match "recorder: a replayed ledger row fails on the primary key (how pgsink sees a duplicate)" \
    "$(as "$REC_DSN" "INSERT INTO ingest_ledger (recorder_id, spool_id, batch_seq, kind, rows, process_id) VALUES ('rec-roles', 1, 1, 1, 1, $PROC)")" \
    'duplicate key value violates unique constraint "ingest_ledger_pkey"'
check_eq "recorder: closes its process" \
    "$(as "$REC_DSN" "UPDATE processes SET status = 'completed', ended_at = now() WHERE id = $PROC AND status = 'running'")" ok

# What it must not do.
denied "recorder: DELETE FROM process_data_points is denied" "$REC_DSN" "DELETE FROM process_data_points"
denied "recorder: UPDATE process_data_points is denied" "$REC_DSN" "UPDATE process_data_points SET value = 0"
denied "recorder: SELECT from process_data_points is denied" "$REC_DSN" "SELECT count(*) FROM process_data_points"
denied "recorder: TRUNCATE process_data_points is denied" "$REC_DSN" "TRUNCATE process_data_points"
denied "recorder: DELETE on a partition directly is denied" "$REC_DSN" "DELETE FROM process_data_points_default"
denied "recorder: SELECT from ingest_ledger is denied" "$REC_DSN" "SELECT count(*) FROM ingest_ledger"
denied "recorder: DELETE FROM ingest_ledger is denied" "$REC_DSN" "DELETE FROM ingest_ledger"
denied "recorder: UPDATE of set-point events is denied" "$REC_DSN" "UPDATE setpoint_events SET requested = 0"
denied "recorder: DELETE FROM processes is denied" "$REC_DSN" "DELETE FROM processes"
denied "recorder: UPDATE of a process's recipe is denied" "$REC_DSN" "UPDATE processes SET recipe = 'x'"
denied "recorder: changing the machine description is denied" "$REC_DSN" "UPDATE component_parameters SET max_value = 1"
denied "recorder: CREATE TABLE is denied" "$REC_DSN" "CREATE TABLE evil (x int)"
denied "recorder: CREATE TEMP TABLE is denied" "$REC_DSN" "CREATE TEMP TABLE evil (x int)"
denied "recorder: ALTER TABLE is denied" "$REC_DSN" "ALTER TABLE process_data_points ADD COLUMN evil int"
denied "recorder: DROP TABLE is denied" "$REC_DSN" "DROP TABLE data_gaps"
denied "recorder: calling the metadata bump is denied" "$REC_DSN" "SELECT aldrec_metadata_bump(ARRAY[$MID])"
denied "recorder: partition maintenance is denied" "$REC_DSN" "SELECT * FROM aldrec_maintain('day', 1)"
denied "recorder: SELECT from the rollup is denied (it only adds rows)" "$REC_DSN" "SELECT count(*) FROM process_data_rollup"
denied "recorder: DELETE FROM the rollup is denied" "$REC_DSN" "DELETE FROM process_data_rollup"
denied "recorder: rebuilding a run's rollup is denied" "$REC_DSN" "SELECT aldrec_rollup_rebuild($PROC)"

# Engineers read, nothing else.
check_eq "reader: SELECT works" "$(as "$READER_DSN" "SELECT count(*) FROM process_data_points")" ok
denied "reader: INSERT is denied" "$READER_DSN" "INSERT INTO process_steps (process_id, step_no, name, started_at) VALUES (1, 1, 'x', now())"
denied "reader: DELETE is denied" "$READER_DSN" "DELETE FROM process_data_points"
check_eq "reader: SELECT from the rollup works" "$(as "$READER_DSN" "SELECT count(*) FROM process_data_rollup")" ok
denied "reader: rebuilding a run's rollup is denied" "$READER_DSN" "SELECT aldrec_rollup_rebuild($PROC)"

# The owner group keeps working through the admin login.
out=$($A db maintain 2>&1); rc=$?
check_eq "db maintain works as a member of aldrec_owner" "$rc" 0
check_eq "partitions it creates belong to aldrec_owner" \
    "$(q "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'process_data_points'::regclass AND pg_get_userbyid(c.relowner) <> 'aldrec_owner'")" 0
check_eq "... and the reader can read them (default privileges)" \
    "$(as "$READER_DSN" "SELECT count(*) FROM data_partitions")" ok
check "migrate is idempotent after 0007" bash -c "$A db migrate | grep -q 'up to date'"

check_done svc_roles
