#!/bin/bash
# cache_daemon.sh — aldrecd on the parameter metadata cache, with real
# parts: aldsim, PostgreSQL 15, Redis, the SQLite snapshot and spool.
#   - map changes at run time (NOTIFY → refresher → poller_update), checked
#     on the recorded rows' timestamps: a deactivated parameter stops being
#     recorded within 1 s, a new one starts within 1 s, a narrowed limit
#     marks samples out of range within 1 s and the old limit is not used;
#   - aldrec set with aldrecd as the refresher: a value valid only under a
#     widened limit succeeds within 1 s; each successful set leaves exactly
#     one setpoint_events row (process, requested, readback, requested_by);
#   - steps through aldrec process step → spool → process_steps;
#   - Redis stopped: lookups correct, recording goes on, said once;
#   - PostgreSQL stopped: status degraded, recording goes on into the spool,
#     a set and a step during the outage are recorded once it is back;
#   - both stopped and aldrecd restarted: it records from the snapshot,
#     says so once, and the rows arrive when PostgreSQL returns.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT

ald_workdir it-cache-daemon
pg_start
redis_start
aldsim_start a --seed 5
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=200 \
    database.connect_timeout_s=2 cache.redis_timeout_ms=200
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
A="$BIN/aldrec --config $CFG"
LOG=$WORK/aldrecd.log
aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done cache_daemon; exit 1; }
check_eq "start-up map from PostgreSQL, said once" \
    "$(grep -c 'parameter map of machine ald-demo: 32 parameters, version [0-9]*, from PostgreSQL' "$LOG")" 1
check_eq "status: cache ok" "$(st cache_state)" ok
PROC=$($A process start --recipe cache-daemon)

# sql_at SQL — runs SQL, prints the transaction's start (Unix seconds): no
# later than the commit that sends the NOTIFY, so delays measured from it
# are never too short.
sql_at() { q "$1; SELECT extract(epoch FROM now())"; }
# after PARAM_ID T [COND] — rows of PARAM_ID in PROC later than T (+COND).
after() { q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $1 AND ts > to_timestamp($2) ${3:-}"; }
# secs SQL-EXPR T — the expression (a timestamptz) minus T, in seconds.
secs() { q "SELECT round((extract(epoch FROM ($1)) - $2)::numeric, 3)"; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a <= b) }'; }
RC_ID=$(param_id system.read_counter)
UPTIME=$(param_id system.uptime)
H1=$(param_id heater1.setpoint)
H2=$(param_id heater2.setpoint)
# flowing T — read-counter rows stored 2 s after T: the pipeline is past T.
flowing() { [ "$(after "$RC_ID" "$1 + 2")" -gt 0 ]; }

# --- map changes while recording ------------------------------------------------
wait_until 20 "first rows" flowing "$(date +%s) - 2" || not_ok "recording runs"
check_ge "heater1.setpoint recorded with good quality before the change" \
    "$(after "$H1" 0 "AND quality = 0")" 1

T=$(sql_at "UPDATE component_parameters SET is_active = false WHERE id = $UPTIME")
wait_until 20 "rows 2 s after deactivating system.uptime" flowing "$T" || not_ok "recording goes on"
last=$(secs "(SELECT max(ts) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $UPTIME)" "$T")
check "deactivated parameter no longer recorded 1 s after the change (last sample at +${last} s)" le "$last" 1.0
check_eq "... none since" "$(after "$UPTIME" "$T + 1")" 0
check_ge "... the others go on" "$(after "$RC_ID" "$T + 1")" 5

T=$(sql_at "INSERT INTO component_parameters (component_id, name, register_type, address, data_type,
             poll_interval_ms) SELECT id, 'added_u16', 'input', 30, 'u16', 100 FROM machine_components
             WHERE name = 'test' AND machine_id = (SELECT id FROM machines WHERE name = 'ald-demo')")
ADDED=$(param_id test.added_u16)
wait_until 20 "rows 2 s after adding test.added_u16" flowing "$T" || not_ok "recording goes on"
first=$(secs "(SELECT min(ts) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $ADDED)" "$T")
check "a new parameter is recorded within 1 s (first sample at +${first} s)" le "$first" 1.0
check_ge "... and goes on being recorded" "$(after "$ADDED" "$T + 1")" 5

T=$(sql_at "UPDATE component_parameters SET max_value = 150 WHERE id = $H1")
wait_until 20 "rows 2 s after narrowing heater1.setpoint's limit" flowing "$T" || not_ok "recording goes on"
first=$(secs "(SELECT min(ts) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $H1 AND ts > to_timestamp($T) AND quality = 1)" "$T")
check "narrowed limit (max 400 → 150): 200 degC marked out of range within 1 s (+${first} s)" le "$first" 1.0
check_eq "... the old limit is not applied afterwards (no good sample after +1 s)" \
    "$(after "$H1" "$T + 1" "AND quality = 0")" 0
check_ge "... samples of it go on (quality 1, value kept)" \
    "$(after "$H1" "$T + 1" "AND quality = 1 AND value = 200")" 5
check_eq "the log names each applied map once (3 changes)" \
    "$(grep -c 'parameter map of machine ald-demo changed' "$LOG")" 3

# --- aldrec set with aldrecd as the refresher; set-point events ------------------
q "UPDATE component_parameters SET max_value = 300 WHERE id = $H1" >/dev/null
limits_are() { local o; o=$($A get -v heater1.setpoint 2>&1); grep -q "limits \[0, $1\] degC" <<<"$o"; }
wait_until 10 "tools seeing max 300" limits_are 300 || not_ok "tools see the new limit"
OUT=$($A set heater1.setpoint 350 2>&1); rc=$?
check_eq "350 refused under max 300 (exit 2)" "$rc" 2
check_match "... naming the limit" "$OUT" 'outside the limits \[0, 300\] degC; nothing written'
t0=$(date +%s%3N)
q "UPDATE component_parameters SET max_value = 400 WHERE id = $H1" >/dev/null
ms=99999
while :; do
    ts=$(date +%s%3N)
    OUT=$($A set heater1.setpoint 350 2>&1); rc=$?
    if [ "$rc" = 0 ]; then ms=$((ts - t0)); break; fi
    [ "$rc" = 2 ] || { not_ok "set during the limit change: exit $rc, $OUT"; break; }
    [ $((ts - t0)) -gt 5000 ] && break
    sleep 0.02
done
check "a value valid only under the widened limit (350 ≤ 400) is accepted within 1 s (${ms} ms)" \
    [ "$ms" -le 1000 ]
check_match "... written and read back" "$OUT" 'heater1.setpoint: 200 degC -> 350 degC, read back 350 degC'
event_rows() { q "SELECT count(*) FROM setpoint_events WHERE parameter_id = $1"; }
wait_until 10 "the event in setpoint_events" bash -c "[ \"\$(psql -XAtq '$ADMIN_DSN' -c 'SELECT count(*) FROM setpoint_events')\" -ge 1 ]"
check_eq "exactly one set-point event for it: process, requested, readback, quality, who" \
    "$(q "SELECT count(*) || '|' || string_agg(process_id || ' ' || requested || ' ' || readback || ' ' || quality || ' ' || requested_by, ',')
          FROM setpoint_events WHERE parameter_id = $H1")" \
    "1|$PROC 350 350 0 $(id -un)@$(hostname) via aldrec set"
OUT=$($A set --by "recipe cache-daemon step 2" heater2.setpoint 160.25 2>&1); rc=$?
check_eq "set with --by exits 0 (event recorded)" "$rc" 0
wait_until 10 "the second event" bash -c "[ \"\$(psql -XAtq '$ADMIN_DSN' -c 'SELECT count(*) FROM setpoint_events WHERE parameter_id = $H2')\" = 1 ]"
check_eq "... its row: requested_by as given, readback as read" \
    "$(q "SELECT process_id || ' ' || requested || ' ' || readback || ' ' || requested_by FROM setpoint_events WHERE parameter_id = $H2")" \
    "$PROC 160.25 160.25 recipe cache-daemon step 2"
OUT=$($A set --by " padded" heater2.setpoint 170 2>&1); rc=$?
check_eq "--by with a leading space: usage error before anything is written" "$rc" 2

# EVENT checks on the control socket itself: a clear ERR naming the field.
ctl() { socat - UNIX-CONNECT:"$WORK/aldrecd.sock" <<<"$1"; }
check_match "EVENT with a bad QUALITY: ERR naming it" "$(ctl "EVENT $H1 1763800000000000 1 1 -3 me")" '^ERR EVENT: QUALITY must be'
check_match "EVENT with an unknown parameter: ERR" "$(ctl "EVENT 999999 1763800000000000 1 - 0 me")" '^ERR EVENT: PARAM_ID 999999 is not a parameter of machine ald-demo'
check_match "EVENT without REQUESTED_BY: ERR" "$(ctl "EVENT $H1 1763800000000000 1 - 0")" '^ERR EVENT: REQUESTED_BY missing'
check_match "STEP with a bad number: ERR" "$(ctl "STEP x heat")" '^ERR STEP: NUMBER must be'

# --- steps ---------------------------------------------------------------------
OUT=$($A process step 1 "heat up"); rc=$?
check_eq "process step exits 0" "$rc" 0
check_match "... answering with the process and the time" "$OUT" "^process $PROC: step 1 \"heat up\" from [0-9-]{10}T[0-9:.]{15}Z$"
wait_until 10 "step 1 in process_steps" step_stored "$PROC" 1 || not_ok "step 1 stored"
OUT=$($A process step 1 "again" 2>&1); rc=$?
check_eq "a step number used twice in a run is refused (exit 1)" "$rc" 1
check_match "... saying why" "$OUT" "step 1 of process $PROC is already marked"

# --- Redis stopped ---------------------------------------------------------------
redis_stop
T=$(date +%s.%N)
wait_until 10 "status showing Redis down" st_match cache_state 'Redis unreachable' \
    && ok "Redis stopped: status says degraded (Redis unreachable)" || not_ok "status shows Redis down"
check_eq "... get --fresh still correct" "$($A get --fresh heater1.setpoint 2>/dev/null)" "heater1.setpoint = 350 degC (quality 0 good)"
wait_until 20 "rows 2 s after Redis stopped" flowing "$T" && ok "... recording goes on" || not_ok "recording goes on without Redis"
check_eq "... the daemon says it once" "$(grep -c 'running on L1 + PostgreSQL' "$LOG")" 1
redis_restart
wait_until 10 "Redis back in the log" grep -q 'Redis reachable again' "$LOG" \
    && ok "... and once when Redis is back" || not_ok "Redis back logged"

# --- PostgreSQL stopped ----------------------------------------------------------
pg_crash
T_DOWN=$(date +%s.%N)
wait_until 15 "status showing PostgreSQL down" st_match cache_state 'PostgreSQL unreachable' \
    && ok "PostgreSQL stopped: cache_state degraded (PostgreSQL unreachable)" || not_ok "status shows PostgreSQL down"
wait_link 15 spooling && ok "... database_link spooling" || not_ok "link spooling"
OUT=$($A set heater2.setpoint 170 2>&1); rc=$?
check_eq "aldrec set during the outage exits 0 (event durable in the spool)" "$rc" 0
OUT=$($A process step 2 "during outage"); rc=$?
check_eq "aldrec process step during the outage exits 0" "$rc" 0
wait_queue 15 -ge 10 && ok "batches wait in the spool (a 3 s outage at least)" || not_ok "batches spooled"
check_match "status: the cache lines" "$($A status)" \
    'cache_map: +version [0-9]+, 32 parameters, from PostgreSQL'
check_eq "the cache says once that PostgreSQL is gone" \
    "$(grep -Ec 'PostgreSQL (connection lost|unreachable).*serving' "$LOG")" 1
pg_restart
T_UP=$(date +%s.%N)
wait_queue 30 -eq 0 && ok "backlog forwarded after PostgreSQL returned" || not_ok "backlog forwarded"
check_eq "the set during the outage is in setpoint_events, once" \
    "$(q "SELECT count(*) || ' ' || min(process_id) || ' ' || min(requested) FROM setpoint_events WHERE parameter_id = $H2 AND requested = 170")" "1 $PROC 170"
check_eq "the step during the outage is in process_steps" \
    "$(q "SELECT name FROM process_steps WHERE process_id = $PROC AND step_no = 2")" "during outage"
check_ge "points polled during the outage are stored (read counter, ~10 per second)" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID AND ts BETWEEN to_timestamp($T_DOWN) AND to_timestamp($T_UP)")" \
    "$(awk -v a="$T_DOWN" -v b="$T_UP" 'BEGIN { printf "%d", (b - a) * 5 }')"
wait_until 15 "cache refreshed" grep -q 'PostgreSQL reachable again: parameter map refreshed' "$LOG" \
    && ok "the cache refreshes when PostgreSQL is back, and says so" || not_ok "cache refreshed"
check_eq "... status ok again" "$(st cache_state)" ok

# --- both stopped, aldrecd restarted: offline start from the snapshot ---------------
redis_stop
pg_crash
ald_stop_pid "$ALDRECD_PID" aldrecd
LOG2=$WORK/aldrecd-2.log
T_START=$(date +%s.%N)
aldrecd_start "$CFG" "$LOG2" || not_ok "aldrecd starts with PostgreSQL and Redis down"
check_eq "offline start: map from the snapshot, said once" \
    "$(grep -c 'PostgreSQL and Redis unreachable: parameter map of machine ald-demo from the snapshot' "$LOG2")" 1
check_match "... status says so" "$(st cache_state)" '^degraded: .*map from the snapshot'
check_eq "... resumes the process (from the spool)" "$(st process)" "$PROC"
wait_until 15 "3 s of rows in the spool" st_ge process_rows rows 960 \
    && ok "... and records" || not_ok "records from the snapshot"
T_BACK=$(date +%s.%N)
pg_restart
wait_queue 30 -eq 0 && ok "rows recorded from the snapshot forwarded when PostgreSQL returned" || not_ok "snapshot rows forwarded"
check_ge "... stored (read counter rows polled while offline)" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID AND ts BETWEEN to_timestamp($T_START) AND to_timestamp($T_BACK)")" 25
wait_until 15 "map confirmed by PostgreSQL" st_is cache_map source PostgreSQL \
    && ok "... and the map is confirmed by PostgreSQL" || not_ok "map from PostgreSQL after the outage"
check_eq "offline start logged the snapshot once in all" "$(grep -c 'from the snapshot' "$LOG2")" 1
redis_restart
STOP=$($A process stop); rc=$?
check_eq "process stop: all stored" "$rc" 0
check_match "... says so" "$STOP" 'all stored'
check_eq "no gaps, nothing quarantined" \
    "$(q "SELECT count(*) FROM data_gaps") $(st quarantined)" "0 0 batches, 0 rows"
check_done cache_daemon
