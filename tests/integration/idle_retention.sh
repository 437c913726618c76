#!/bin/bash
# idle_retention.sh — `aldrec db maintain` and the idle history's retention
# ([database] idle_retention_days, aldrec_idle_maintain(), 0010_idle.sql):
#   - idle rows no day partition covers wait in machine_history_default and
#     are moved into day partitions of their own, none lost;
#   - with idle_retention_days = 0 nothing is dropped;
#   - with 30, the days older than 30 days are dropped and the younger kept;
#   - runs are never touched: a run, its steps and set-point events older
#     than the idle retention stay whole (retention_days 0 keeps runs);
#   - a sample stored twice is refused by machine_history's unique key.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-idle-retention
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG"
pg_migrate "$CFG"
demo_machine_load 1 100
A="$BIN/aldrec --config $CFG"
P1=$(q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name = 'heater1' AND cp.name = 'temperature'")
P2=$(q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name = 'system' AND cp.name = 'read_counter'")

# idle history: one row a minute for P1 and P2 on days 45, 40, 31, 29, 10
# and 0 ago (from 00:00:30 UTC of that day on, 600 rows each: before 10:00)
q "INSERT INTO machine_history (parameter_id, ts, value, quality)
   SELECT p, (date_trunc('day', now() AT TIME ZONE 'UTC') - d * interval '1 day') AT TIME ZONE 'UTC'
             + interval '30 s' + g * interval '1 minute', g, 0
     FROM unnest(ARRAY[$P1, $P2]) p, unnest(ARRAY[45, 40, 31, 29, 10]) d, generate_series(0, 599) g" >/dev/null
q "INSERT INTO machine_history (parameter_id, ts, value, quality)
   SELECT p, now() - g * interval '1 s', g, 0 FROM unnest(ARRAY[$P1, $P2]) p, generate_series(1, 60) g" >/dev/null
# a run 50 days ago with points, a step and a set-point event
RUN=$(q "INSERT INTO processes (machine_id, recipe, recorder_id, started_at, ended_at, status)
         SELECT id, 'old-run', 'rec-test', now() - interval '50 days', now() - interval '50 days' + interval '1 hour', 'completed'
           FROM machines WHERE name = 'ald-demo' RETURNING id")
q "INSERT INTO process_data_points (process_id, parameter_id, ts, value, quality)
   SELECT $RUN, p, now() - interval '50 days' + g * interval '1 s', g, 0
     FROM unnest(ARRAY[$P1, $P2]) p, generate_series(0, 3599) g;
   INSERT INTO process_steps VALUES ($RUN, 1, 'dep', now() - interval '50 days');
   INSERT INTO setpoint_events (process_id, parameter_id, ts, requested, quality, requested_by)
   VALUES ($RUN, $P1, now() - interval '50 days', 200, 0, 'test')" >/dev/null
TOTAL=$(q "SELECT count(*) FROM machine_history")
RUNSUM=$(q "SELECT count(*) || '/' || sum(value) FROM process_data_points WHERE process_id = $RUN")
check_eq "idle rows of past days wait in the DEFAULT partition" \
    "$(q "SELECT count(*) FROM machine_history_default")" $((2 * 5 * 600))

out=$(printf '[database]\nidle_retention_days = 0\n' | cat "$CFG" - > "$WORK/keep.conf"; "$BIN/aldrec" --config "$WORK/keep.conf" db maintain 2>&1); rc=$?
check_eq "db maintain with idle_retention_days = 0 succeeds" "$rc" 0
check_match "... says it keeps everything" "$out" "idle history: [0-9]+ created, 0 dropped; retention: keep everything"
check_eq "... drops no idle row" "$(q "SELECT count(*) FROM machine_history")" "$TOTAL"
check_eq "... and the DEFAULT partition is empty: every row moved into its day" \
    "$(q "SELECT count(*) FROM machine_history_default")" 0
check_eq "... one partition per day holding rows (5 past days, today's existed)" \
    "$(q "SELECT count(*) FROM history_partitions h WHERE EXISTS (SELECT 1 FROM machine_history m WHERE m.ts >= h.lower_bound AND m.ts < h.upper_bound)")" 6
check_eq "... each row in the partition of its UTC day" \
    "$(q "SELECT count(*) FROM machine_history m JOIN pg_class c ON c.oid = m.tableoid WHERE c.relname <> 'machine_history_p' || to_char(m.ts AT TIME ZONE 'UTC', 'YYYYMMDD')")" 0

out=$(printf '[database]\nidle_retention_days = 30\n' | cat "$CFG" - > "$WORK/r30.conf"; "$BIN/aldrec" --config "$WORK/r30.conf" db maintain 2>&1); rc=$?
check_eq "db maintain with idle_retention_days = 30 succeeds" "$rc" 0
check_match "... names the dropped idle days" "$out" "dropped machine_history_p[0-9]{8} .*: 1200 rows older than 30 days"
check_match "... and counts them" "$out" "idle history: 0 created, 3 dropped; retention: 30 days"
check_eq "idle rows of days 45, 40, 31 are gone, 29, 10 and today's kept" \
    "$(q "SELECT count(*) FROM machine_history WHERE ts < now() - interval '30 days'") $(q "SELECT count(*) FROM machine_history")" \
    "0 $((TOTAL - 3 * 1200))"
check_eq "the run 50 days old is untouched (rows and sum)" \
    "$(q "SELECT count(*) || '/' || sum(value) FROM process_data_points WHERE process_id = $RUN")" "$RUNSUM"
check_eq "... its step and set-point event too" \
    "$(q "SELECT (SELECT count(*) FROM process_steps WHERE process_id = $RUN) || '/' || (SELECT count(*) FROM setpoint_events WHERE process_id = $RUN)")" 1/1
out=$("$BIN/aldrec" --config "$WORK/r30.conf" db maintain 2>&1)
check_match "a second db maintain has nothing to do" "$out" "idle history: 0 created, 0 dropped"
out=$(q "INSERT INTO machine_history SELECT parameter_id, ts, 1, 0 FROM machine_history LIMIT 1" 2>&1)
check_match "machine_history refuses a sample stored twice" "$out" "duplicate key value violates unique constraint"
out=$(printf '[database]\nidle_retention_days = -1\n' | cat "$CFG" - > "$WORK/bad.conf"; "$BIN/aldrec" --config "$WORK/bad.conf" db maintain 2>&1); rc=$?
check_eq "idle_retention_days = -1 is refused (exit 2)" "$rc" 2
check_match "... naming the key" "$out" "idle_retention_days"

check_done idle_retention
