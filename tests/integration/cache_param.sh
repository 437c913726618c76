#!/bin/bash
# cache_param.sh — aldrec get/set on the parameter metadata cache with real
# parts: aldsim (libmodbus), PostgreSQL 15, Redis, the SQLite snapshot, and
# the cache's refresher running inside aldrecd. Checks:
#   - get prints value, units and quality; set writes (FC5 coil, FC6 one
#     register, FC16 several; scale, word order), reads back, reports;
#   - rejected sets (out of range, malformed, unknown, read-only, not
#     representable, rounded outside the limits) exit 2 with a message naming
#     parameter and limits and write NOTHING: they run while aldrecd is up,
#     so that `aldrec set` would write if its checks let them through, and
#     aldsim's own write counter equals the number of accepted sets at the end;
#   - every accepted set leaves exactly one setpoint_events row, recorded
#     through aldrecd (no process running: process NULL); a read-back
#     mismatch exits 1 showing both values, and its event says so;
#   - without aldrecd every tool run loads from PostgreSQL (one statement);
#   - with aldrecd's refresher running, tools take the map from Redis (no
#     PostgreSQL statement); a limit changed in SQL is in force within 1 s,
#     the old one is not applied;
#   - Redis stopped → still correct (L1 + PostgreSQL), degraded mode logged
#     once when it starts and once when it ends; PostgreSQL stopped → the
#     map from Redis; both stopped → the snapshot.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/vectors.sh"
trap ald_cleanup EXIT

ald_workdir it-cache
pg_start
redis_start
aldsim_start a --seed 3
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" cache.redis_timeout_ms=200 modbus.response_timeout_ms=1000
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
A="$BIN/aldrec --config $CFG"
WRITES=0            # write requests that reached the device (sets, mbwrite)

# run_set ARGS... — runs aldrec set; sets OUT (stdout+stderr) and RC.
run_set() { OUT=$($A set "$@" 2>&1); RC=$?; }
GET_HOW=--direct    # --fresh once aldrecd runs: then it is the device's master
get_value() { $A get $GET_HOW "$1" 2>/dev/null | sed -n 's/^[^=]* = \([^ ]*\).*/\1/p'; }

# --- get ---------------------------------------------------------------------
out=$($A get --direct heater1.setpoint); rc=$?
check_eq "get exits 0" "$rc" 0
check_eq "get prints value, units and quality" "$out" "heater1.setpoint = 200 degC (quality 0 good)"
check_match "get decodes scale/offset (test.scaled = -37.66)" "$($A get --direct test.scaled)" '^test.scaled = -37.66 \(quality 0 good\)$'
check_match "get reads a coil" "$($A get --direct ald.enable)" '^ald.enable = 1 \(quality 0 good\)$'
check_match "get reads an f64 in CDAB order" "$($A get --direct test.f64_cdab)" '^test.f64_cdab = 1234.56789'
# ... which aldsim encoded with the same codec: also from raw words written
# by hand (tests/lib/vectors.sh) into holding registers 10-42.
q "$(vectors_sql "(SELECT id FROM machine_components WHERE name = 'test')" 100)" >/dev/null
check "the vectors' raw words are written to holding registers $VEC_FIRST-42" \
    quiet "$BIN/mbwrite" "127.0.0.1:$SIM_PORT_a" holding "$VEC_FIRST" $(vectors_words)
WRITES=$((WRITES + 1))
check_match "get decodes f64 CDAB from raw words 0EE6 84FD 4A45 4093" "$($A get --direct test.vec_f64_cdab)" \
    '^test.vec_f64_cdab = 1234.56789 \(quality 0 good\)$'
check_match "get decodes f64 DCBA from raw words E60E FD84 454A 9340" "$($A get --direct test.vec_f64_dcba)" \
    '^test.vec_f64_dcba = 1234.56789 \(quality 0 good\)$'
out=$($A get --direct heater1.nope 2>&1); rc=$?
check_eq "get of an unknown parameter exits 2" "$rc" 2
check_match "... naming it and the component's parameters" "$out" 'unknown parameter "heater1.nope" \(heater1 has: .*setpoint'

load_calls() { q "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE 'SELECT m.id, cp.id%'"; }
before=$(load_calls); $A get --direct heater1.setpoint >/dev/null; after=$(load_calls)
check_eq "without a refresher every tool run loads from PostgreSQL (1 statement)" "$((after - before))" 1

# --- accepted sets: written, and recorded as set-point events by aldrecd --------
EVENTS=0
run_set heater1.setpoint 250
check_eq "aldrecd not running: set exits 1" "$RC" 1
check_match "... writing nothing, saying why" "$OUT" \
    'set: .*; nothing sent \(without aldrecd, --direct uses a connection of its own, unrecorded\)'
check_eq "... and the device still holds 200" "$(get_value heater1.setpoint)" 200
run_set --unrecorded heater1.setpoint 210; WRITES=$((WRITES + 1))
check_eq "--unrecorded writes without aldrecd (exit 0)" "$RC" 0
check_match "... and says it is not recorded" "$OUT" 'heater1.setpoint: 200 degC -> 210 degC, read back 210 degC
.*not recorded as a set-point event \(--direct\)'
run_set --unrecorded heater1.setpoint 200; WRITES=$((WRITES + 1))
check "aldrecd starts" aldrecd_start "$CFG"
GET_HOW=--fresh

# --- rejected sets: exit 2, clear message, nothing written --------------------
# With aldrecd up, `aldrec set` has what it needs to write (the set-point
# event can be recorded): only its checks stand between each of these and
# the device, and aldsim's write counter (checked at the end) sees any that
# got through. Limits changed in SQL reach the tools through aldrecd's
# refresher; meta_shows waits until `aldrec get -v` describes the change.
meta_shows() { local o; o=$($A get -v "$1" 2>&1); grep -Eq -- "$2" <<<"$o"; }
expect_rejected() {   # description regex args...
    local what=$1 re=$2; shift 2
    run_set "$@"
    if [ "$RC" = 2 ] && grep -Eq -- "$re" <<<"$OUT"; then ok "$what"
    else not_ok "$what: exit $RC, '$OUT'"; fi
}
expect_rejected "out-of-range set: exit 2 naming parameter and limits" \
    'set heater1.setpoint: 450 is outside the limits \[0, 400\] degC; nothing written' heater1.setpoint 450
expect_rejected "below the minimum (negative value taken as a value)" \
    'heater2.setpoint: -5 is outside the limits \[0, 400\]' heater2.setpoint -5
expect_rejected "malformed value \"12x\"" '"12x" is not a finite number; nothing written' heater1.setpoint 12x
expect_rejected "malformed value \"nan\"" '"nan" is not a finite number' heater1.setpoint nan
expect_rejected "malformed value \"inf\"" '"inf" is not a finite number' heater1.setpoint inf
expect_rejected "malformed boolean" 'not a boolean' ald.enable maybe
expect_rejected "unknown parameter" 'unknown parameter "heater1.setpont"' heater1.setpont 100
expect_rejected "unknown component" 'no component "heatr1" on machine ald-demo' heatr1.setpoint 100
expect_rejected "read-only parameter (input register)" 'set heater1.temperature: read-only parameter' heater1.temperature 100
MFC_H2O_SP="component_id = (SELECT id FROM machine_components WHERE name = 'mfc_h2o') AND name = 'setpoint'"
q "UPDATE component_parameters SET is_writable = false WHERE $MFC_H2O_SP" >/dev/null
check "is_writable = false (holding register) reaches the tools" \
    wait_until 10 "mfc_h2o.setpoint read-only" meta_shows mfc_h2o.setpoint 'sccm, read-only;'
expect_rejected "read-only parameter (holding register, is_writable = false)" \
    'set mfc_h2o.setpoint: read-only parameter \(holding 7, is_writable = false\); nothing written' mfc_h2o.setpoint 25
q "UPDATE component_parameters SET is_writable = true WHERE $MFC_H2O_SP" >/dev/null
q "UPDATE component_parameters SET max_value = NULL WHERE name = 'purge_ms'" >/dev/null
check "purge_ms without a maximum reaches the tools" \
    wait_until 10 "purge_ms unlimited" meta_shows ald.purge_ms 'limits \[1, \+inf\] ms'
expect_rejected "a value the register cannot hold (u16: 70000) without limits in the database" \
    'ald.purge_ms: 70000 cannot be stored as u16' ald.purge_ms 70000
q "UPDATE component_parameters SET max_value = 60000 WHERE name = 'purge_ms'" >/dev/null
# 49.96 sccm at scale 0.1 in a u16 is written as 50.0: over a limit of 49.96.
MFC_TMA_SP="component_id = (SELECT id FROM machine_components WHERE name = 'mfc_tma') AND name = 'setpoint'"
q "UPDATE component_parameters SET max_value = 49.96 WHERE $MFC_TMA_SP" >/dev/null
check "mfc_tma.setpoint's maximum of 49.96 reaches the tools" \
    wait_until 10 "mfc_tma max 49.96" meta_shows mfc_tma.setpoint 'limits \[0, 49.96\] sccm'
expect_rejected "a value within the limits that the register rounds to one outside them" \
    'mfc_tma.setpoint: 49.96 sccm would be written as 50 sccm \(the nearest value the register holds\), outside the limits \[0, 49.96\] sccm; nothing written' \
    mfc_tma.setpoint 49.96
q "UPDATE component_parameters SET max_value = 50 WHERE $MFC_TMA_SP" >/dev/null
run_set heater1.setpoint; check_eq "missing VALUE is a usage error" "$RC" 2
restored() {
    meta_shows mfc_tma.setpoint 'limits \[0, 50\] sccm, writable' &&
        meta_shows ald.purge_ms 'limits \[1, 60000\] ms' && meta_shows mfc_h2o.setpoint 'sccm, writable'
}
check "the restored limits and is_writable reach the tools" wait_until 10 "limits restored" restored
check_eq "after the rejected sets heater1.setpoint is still 200" "$(get_value heater1.setpoint)" 200
check_eq "... and heater2.setpoint still 150" "$(get_value heater2.setpoint)" 150

expect_set() {   # description stdout-regex args...
    local what=$1 re=$2; shift 2
    run_set "$@"
    WRITES=$((WRITES + 1)); EVENTS=$((EVENTS + 1))
    if grep -Eq -- "$re" <<<"$OUT" && [ "$RC" = 0 ]; then
        ok "$what"
    else
        not_ok "$what: exit $RC, '$OUT'"
    fi
}
expect_set "set f32 (FC16, 2 registers): reported" 'heater1.setpoint: 200 degC -> 250 degC, read back 250 degC' heater1.setpoint 250
check_eq "aldsim now reports heater1.setpoint = 250" "$(get_value heater1.setpoint)" 250
expect_set "set f32 in CDAB order" 'heater2.setpoint: 150 degC -> 175.5 degC, read back 175.5 degC' heater2.setpoint 175.5
check_eq "aldsim reports heater2.setpoint = 175.5" "$(get_value heater2.setpoint)" 175.5
expect_set "set u16 with scale 0.1 (FC6), rounded to what the register holds" \
    'mfc_tma.setpoint: 20 sccm -> 12.3 sccm \(requested 12.34 sccm' mfc_tma.setpoint 12.34
check_eq "aldsim reports mfc_tma.setpoint = 12.3" "$(get_value mfc_tma.setpoint)" 12.3
expect_set "set a coil (FC5)" 'ald.enable: 1 -> 0, read back 0' ald.enable off
check_eq "aldsim reports ald.enable = 0" "$(get_value ald.enable)" 0
expect_set "set it back on" 'ald.enable: 0 -> 1' ald.enable true
expect_set "set with --by" 'ald.pulse_ms: 50 ms -> 75 ms' --by "recipe R7 step 3" ald.pulse_ms 75
check_eq "aldsim reports ald.pulse_ms = 75" "$(get_value ald.pulse_ms)" 75
events_stored() { [ "$(q "SELECT count(*) FROM setpoint_events")" -ge "$1" ]; }
wait_until 15 "$EVENTS set-point events stored" events_stored "$EVENTS"
check_eq "one setpoint_events row per recorded set ($EVENTS), none for the refused ones" \
    "$(q "SELECT count(*) FROM setpoint_events")" "$EVENTS"
check_eq "... with no process (none running), requested, read-back, quality" \
    "$(q "SELECT count(*) FROM setpoint_events WHERE process_id IS NULL AND requested IS NOT NULL AND readback IS NOT NULL AND quality = 0")" "$EVENTS"
check_eq "... the value asked for, and the one the register holds" \
    "$(q "SELECT requested || ' ' || round(readback::numeric, 6)::float8 FROM setpoint_events e JOIN component_parameters p ON p.id = e.parameter_id WHERE p.name = 'setpoint' AND requested = 12.34")" \
    "12.34 12.3"
check_eq "... who asked: --by as given" \
    "$(q "SELECT requested_by FROM setpoint_events WHERE requested = 75")" "recipe R7 step 3"

# A limit wider in the database than the device accepts: aldsim reverts the
# write, the read-back shows it.
q "UPDATE component_parameters SET max_value = 5000 WHERE name = 'setpoint' AND component_id = (SELECT id FROM machine_components WHERE name = 'heater1')" >/dev/null
sleep 1.5   # a limit changed in SQL is in force within 1 s (the claim above), not at once
run_set heater1.setpoint 450; WRITES=$((WRITES + 1)); EVENTS=$((EVENTS + 1))
check_eq "read-back mismatch exits 1" "$RC" 1
check_match "... showing both values" "$OUT" 'read-back mismatch: wrote 450 degC, device reports 250 degC'
wait_until 15 "the mismatch's event" events_stored "$EVENTS"
check_eq "... and its set-point event records both" \
    "$(q "SELECT requested || ' ' || readback FROM setpoint_events WHERE requested = 450")" "450 250"
q "UPDATE component_parameters SET max_value = 400 WHERE name = 'setpoint' AND component_id = (SELECT id FROM machine_components WHERE name = 'heater1')" >/dev/null

# --- aldrecd's refresher: tools read Redis; a changed limit applies within 1 s -
LOG=$WORK/aldrecd.log
# (Output is captured before grep: with pipefail, grep -q closing the pipe
# early would make the pipeline fail at random.)
from_redis() { local o; o=$($A get -v heater1.setpoint 2>&1); grep -q 'metadata from Redis' <<<"$o"; }
check "the refresher vouches for Redis: tools read the map from it" \
    wait_until 10 "tools reading the map from Redis" from_redis
before=$(load_calls)
for i in 1 2 3 4 5; do $A get heater1.setpoint >/dev/null; done
after=$(load_calls)
check_eq "with the refresher running, 5 tool runs issue no PostgreSQL load" "$((after - before))" 0
check_match "... the source is Redis" "$($A get -v heater1.setpoint 2>&1)" 'metadata from Redis \(version [0-9]+'

limits_are() { local o; o=$($A get -v heater1.setpoint 2>&1); grep -q "limits \[0, $1\] degC" <<<"$o"; }
# ms_until LIMIT — how long after the change a tool had to be started to
# see the new limit (start time of the first probe that saw it; 99999 if
# none within 5 s). Probes themselves take 50-300 ms on a loaded machine,
# so the start time, not the end, is what the cache is responsible for.
ms_until() {
    local t0 ts; t0=$(date +%s%3N)
    while :; do
        ts=$(date +%s%3N)
        limits_are "$1" && { echo $((ts - t0)); return; }
        [ $((ts - t0)) -gt 5000 ] && { echo 99999; return; }
        sleep 0.02
    done
}
q "UPDATE component_parameters SET max_value = 300 WHERE name = 'setpoint' AND component_id = (SELECT id FROM machine_components WHERE name = 'heater1')" >/dev/null
ms=$(ms_until 300)
check "narrowed limit (max 400 → 300) seen by tools within 1 s (${ms} ms)" [ "$ms" -le 1000 ]
expect_rejected "the old limit is not applied: 350 is refused" 'outside the limits \[0, 300\] degC' heater1.setpoint 350
q "UPDATE component_parameters SET max_value = 400 WHERE name = 'setpoint' AND component_id = (SELECT id FROM machine_components WHERE name = 'heater1')" >/dev/null
ms=$(ms_until 400)
check "widened limit (300 → 400) in force within 1 s (${ms} ms)" [ "$ms" -le 1000 ]
expect_set "a value valid only under the new limit succeeds" 'heater1.setpoint: 250 degC -> 350 degC' heater1.setpoint 350
check_match "the refresher applied the changes from NOTIFY" "$(cat "$LOG")" 'parameter map of machine ald-demo changed: version [0-9]+'

# --- degraded modes -------------------------------------------------------------
redis_stop
# (get -v: the tool's own metadata lookup; the value comes from aldrecd)
for i in 1 2 3; do out=$($A get -v heater1.setpoint 2>"$WORK/get.err"); done
check_match "Redis stopped: get still correct (L1 + PostgreSQL)" "$out" "^heater1.setpoint = 350 degC \(quality 0 good, [0-9]+ ms old\)$"
check_match "... saying once why" "$(cat "$WORK/get.err")" 'Redis 127.0.0.1:[0-9]+: connect: Connection refused: running on L1 \+ PostgreSQL"?$'
check_eq "... in one line" "$(grep -c Redis "$WORK/get.err")" 1
wait_until 10 "refresher noticing Redis is down" grep -q 'running on L1 + PostgreSQL' "$LOG"
sleep 2.5   # the refresher keeps trying (live key every second): still one line
check_eq "... the refresher logs the degraded mode once, not per attempt" \
    "$(grep -c 'running on L1 + PostgreSQL' "$LOG")" 1
redis_restart
wait_until 10 "refresher noticing Redis is back" grep -q 'Redis reachable again' "$LOG"
check_match "... and once when it ends, with the count of failed attempts" \
    "$(grep 'Redis reachable again' "$LOG")" 'after [0-9]+ failed attempt'
check "after the restart tools read the map from Redis again" \
    wait_until 10 "tools reading Redis again" from_redis

pg_stop
out=$($A get -v heater2.setpoint 2>&1); rc=$?
check_eq "PostgreSQL stopped: get still works" "$rc" 0
check_match "... with the value from the device" "$out" 'heater2.setpoint = 175.5 degC'
check_match "... and metadata from Redis" "$out" 'metadata from Redis'
wait_until 10 "refresher noticing PostgreSQL is down" grep -q 'PostgreSQL connection lost' "$LOG"
sleep 1.5   # reconnect attempts go on (every 0.5 s, doubling): still one line
check_eq "the refresher says once that it serves the cached map" \
    "$(grep -Ec 'PostgreSQL (connection lost|unreachable).*serving' "$LOG")" 1
run_set heater1.setpoint 450
check_eq "... and limits still hold (out of range refused, exit 2)" "$RC" 2

redis_stop
out=$($A get -v heater2.setpoint 2>&1); rc=$?
check_eq "PostgreSQL and Redis stopped: get still works" "$rc" 0
check_match "... with metadata from the snapshot, said once" "$out" 'from the snapshot .*pmap-snapshot.db'
check_match "... and the value from the device" "$out" 'heater2.setpoint = 175.5 degC'

stats=$($A status | grep '^cache_')
check_match "aldrec status: refreshes and swaps counted" "$stats" 'cache_changes: +[0-9]+ notifications, [1-9][0-9]* maps swapped in'
check_match "... the degraded modes named" "$stats" 'cache_state: +degraded: PostgreSQL unreachable, serving the cached map'
echo "$stats" | sed 's/^/# /'

# --- nothing written by the rejected sets: aldsim's own count ---------------
kill -TERM "$SIM_PID_a"; wait "$SIM_PID_a"
SIM_WRITES=$(sed -n 's/.*served [0-9]* read requests, \([0-9]*\) write requests.*/\1/p' "$WORK/aldsim-a.log")
check_eq "aldsim answered exactly one write per accepted set (and the vectors' one: $WRITES), none for the rejected ones" \
    "${SIM_WRITES:-?}" "$WRITES"
out=$($A get --fresh heater1.setpoint 2>&1); rc=$?
check_eq "device gone: get --fresh exits 1" "$rc" 1
check_match "... printing NULL with a communication-error quality" "$out" 'heater1.setpoint = NULL \(quality 2 communication error\)'

check_done cache_param
