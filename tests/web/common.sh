# common.sh — a recorded setting for the web tests (tests/integration/web_*.sh):
# aldsim → aldrecd → PostgreSQL, two runs of recipe web-recipe (two steps
# each, a set point in the first), a third run of it made in SQL for the
# envelope, and a fabricated 10-hour run with a one-sample spike. Sets
# CFG, A, PROC1, PROC2, PROC3, LONG, SPIKE_TS, HT_ID.
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.batch_rows=100 recorder.flush_interval_ms=200
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
A="$BIN/aldrec --config $CFG"
aldrecd_start "$CFG" || ald_die "aldrecd does not start"
RC_ID=$(q "SELECT parameter_id FROM parameter_names WHERE full_name = 'system.read_counter'")
HT_ID=$(q "SELECT parameter_id FROM parameter_names WHERE full_name = 'heater1.temperature'")
polls_in_step() {   # proc n
    [ "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $1 AND parameter_id = $RC_ID
             AND ts > (SELECT max(started_at) FROM process_steps WHERE process_id = $1)")" -ge "$2" ]
}
record_run() {   # lot [set-point]
    local p
    p=$($A process start --recipe web-recipe --lot "$1") || return 1
    record_step "$CFG" "$p" 1 "heat up" && wait_until 30 "polls in step 1" polls_in_step "$p" 20 || return 1
    if [ -n "${2:-}" ]; then $A set heater1.setpoint "$2" >/dev/null || return 1; fi
    record_step "$CFG" "$p" 2 "ald cycles" && wait_until 30 "polls in step 2" polls_in_step "$p" 20 || return 1
    $A process stop >/dev/null || return 1
    echo "$p"
}
PROC1=$(record_run W1 250) || ald_die "run 1 not recorded"
PROC2=$(record_run W2) || ald_die "run 2 not recorded"
# A third run of the recipe: run 2's rows shifted by an hour, values +1,
# so the envelope of three runs has a spread.
PROC3=$(q "INSERT INTO processes (machine_id, recipe, lot, recorder_id, started_at, ended_at, status)
           SELECT machine_id, recipe, 'W3', recorder_id, started_at + interval '1 hour',
                  ended_at + interval '1 hour', status FROM processes WHERE id = $PROC2 RETURNING id")
q "INSERT INTO process_steps SELECT $PROC3, step_no, name, started_at + interval '1 hour'
   FROM process_steps WHERE process_id = $PROC2;
   INSERT INTO process_data_points SELECT $PROC3, parameter_id, ts + interval '1 hour', value + 1, quality
   FROM process_data_points WHERE process_id = $PROC2" >/dev/null
# Ten hours at 10 Hz of one parameter with one spike sample, and 37 bad
# samples (quality 2: the device timed out) at its start.
LONG=$(q "INSERT INTO processes (machine_id, recipe, lot, recorder_id, started_at, ended_at, status)
          SELECT machine_id, 'web-long', 'L1', 'rec-test', '2026-01-05 00:00Z', '2026-01-05 10:00Z', 'completed'
          FROM processes WHERE id = $PROC1 RETURNING id")
q "INSERT INTO process_data_points
   SELECT $LONG, $HT_ID, '2026-01-05 00:00Z'::timestamptz + i * interval '100 ms',
          200 + 5 * sin(i / 3000.0), 0 FROM generate_series(0, 359999) i;
   UPDATE process_data_points SET value = 900 WHERE process_id = $LONG AND parameter_id = $HT_ID
      AND ts = '2026-01-05 06:12:34.5Z';
   UPDATE process_data_points SET quality = 2 WHERE process_id = $LONG AND ts < '2026-01-05 00:00:03.7Z';
   SELECT aldrec_rollup_rebuild($LONG)" >/dev/null   # made in SQL, not by aldrecd: no rollup rows yet
SPIKE_TS=1767593554.5
