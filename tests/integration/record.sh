#!/bin/bash
# record.sh — end to end with real parts: aldsim (libmodbus) → aldrecd →
# binary COPY → PostgreSQL 15. Records a few seconds and checks that
#   rows = polls × parameters; the read counter is contiguous (no poll lost,
#   none stored twice); values agree with what aldsim serves, and raw words
#   of every data type × word order, written by hand (tests/lib/vectors.sh),
#   are stored as their decimal constants; the ledger
#   accounts for every row; stop/exit behave; bad input gets clear errors.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/vectors.sh"
trap ald_cleanup EXIT

ald_workdir it-record
pg_start
aldsim_start a --seed 7
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.batch_rows=100 recorder.flush_interval_ms=300
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
A="$BIN/aldrec --config $CFG"
# The fixed vectors: read-only parameters of component "test" on holding
# registers 10-42, their raw words written to aldsim before aldrecd starts.
q "$(vectors_sql "(SELECT id FROM machine_components WHERE name = 'test')" 100)" >/dev/null
check "the vectors' raw words are written to holding registers $VEC_FIRST-42 (FC16)" \
    quiet "$BIN/mbwrite" "127.0.0.1:$SIM_PORT_a" holding "$VEC_FIRST" $(vectors_words)
# The other way: what aldsim serves as its test pattern, word for word,
# against REGISTERS.md — not decoded by anything of ours.
check_eq "aldsim serves the test pattern (input 30-44) as REGISTERS.md spells it" \
    "$(raw_words "$("$BIN/mbclient" --tcp "127.0.0.1:$SIM_PORT_a" input 30 15)")" "$TEST_PATTERN_WORDS"

check "migrate is idempotent" bash -c "$A db migrate | grep -q 'up to date'"
if ! aldrecd_start "$CFG"; then not_ok "aldrecd starts"; check_done record; exit 1; fi
ok "aldrecd starts and answers on its control socket"

PROC=$($A process start --recipe it-recipe --lot L1)
check_match "process start prints the new process id" "$PROC" '^[0-9]+$'
out=$($A process start --recipe again 2>&1); rc=$?
check_eq "a second process start is refused" "$rc" 1
check_match "... naming the running process" "$out" "process $PROC is being recorded"
sleep 3
T_STOP=$(date +%s.%N)
STOP_OUT=$($A process stop)
check_match "process stop returns once everything is stored" "$STOP_OUT" "all stored"
REQ=$(st requests_per_cycle requests)
check_eq "demo map and vectors are read in 4 requests per cycle (32 + ${#VECTORS[@]} parameters)" "$REQ" 4

vector_id() { param_id "test.$1"; }
param_id() { q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name || '.' || cp.name = '$1'"; }
RC_ID=$(param_id system.read_counter)
NPARAM=$(q "SELECT count(*) FROM component_parameters WHERE is_active")
POLLS=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID")
ROWS=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC")
check_ge "at least 20 polls in 3 s at 10 Hz" "$POLLS" 20
check_eq "rows = polls × parameters ($POLLS × $NPARAM)" "$ROWS" $((POLLS * NPARAM))
check_eq "every parameter has exactly one row per poll" \
    "$(q "SELECT count(*) FROM (SELECT parameter_id FROM process_data_points WHERE process_id = $PROC GROUP BY 1 HAVING count(*) <> $POLLS) x")" 0
check_eq "every value has good quality" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND (quality <> 0 OR value IS NULL)")" 0

# --- read-counter contiguity -------------------------------------------------
# aldsim adds 1 per read request; the daemon sends REQ requests per cycle, so
# consecutive recorded values differ by exactly REQ. A lost poll shows as a
# step of 2×REQ, a poll stored twice as a step of 0.
contiguity_violations() {   # psql statements preparing temp table rc → count
    psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" <<SQL | tail -1
CREATE TEMP TABLE rc AS
  SELECT ts, value FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID;
$1
SELECT count(*) FROM (SELECT value - lag(value) OVER (ORDER BY ts, value) AS d FROM rc) x
 WHERE d IS NOT NULL AND d <> $REQ;
SQL
}
check_eq "read counter is contiguous: no poll lost, none stored twice" "$(contiguity_violations '')" 0
# ... and it covers the whole run: contiguity cannot see polls lost at
# either end. The first poll comes within one period (100 ms) of the start,
# the last within one period of the stop (the cycle in flight at STOP still
# belongs to the run); 250 ms leaves room for scheduling on a busy machine
# and still catches a lost first or last batch (3 polls). The daemon's own
# count of rows sampled for the run must be what PostgreSQL holds.
read -r HEAD TAIL <<<"$(q "SELECT round(extract(epoch FROM min(d.ts) - p.started_at)::numeric, 3) || ' ' ||
      round(($T_STOP - extract(epoch FROM max(d.ts)))::numeric, 3)
    FROM process_data_points d JOIN processes p ON p.id = d.process_id
   WHERE d.process_id = $PROC AND d.parameter_id = $RC_ID GROUP BY p.started_at")"
echo "# first poll ${HEAD}s after the start, last poll ${TAIL}s before the stop"
check "no poll lost at the start (first poll ${HEAD}s after it, < 0.25)" awk -v d="$HEAD" 'BEGIN { exit !(d >= 0 && d < 0.25) }'
# T_STOP is read before aldrec starts: the polls until aldrecd handles STOP
# belong to the run, and on a loaded box starting aldrec and connecting may
# take longer than a period, hence a last poll up to 250 ms "after" T_STOP.
check "no poll lost at the stop (last poll ${TAIL}s before it, -0.25 .. 0.25)" awk -v d="$TAIL" 'BEGIN { exit !(d > -0.25 && d < 0.25) }'
SAMPLED=$(sed -n "s/.*process $PROC stopped: \([0-9]*\) rows sampled by this aldrecd.*/\1/p" "$WORK/aldrecd.log")
check_eq "rows stored = rows aldrecd sampled for the run" "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC")" "$SAMPLED"
check_ge "the contiguity check detects a dropped poll (self-test)" \
    "$(contiguity_violations 'DELETE FROM rc WHERE ts = (SELECT ts FROM rc ORDER BY ts OFFSET 5 LIMIT 1);')" 1
check_ge "the contiguity check detects a poll stored twice (self-test)" \
    "$(contiguity_violations "INSERT INTO rc SELECT ts + interval '1 microsecond', value FROM rc ORDER BY ts OFFSET 7 LIMIT 1;")" 1

# --- values agree with aldsim ------------------------------------------------
expect_const() {   # param expected tolerance
    local id; id=$(param_id "$1")
    local bad
    bad=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $id AND NOT (abs(value - ($2)::float8) <= $3)")
    local n; n=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $id")
    if [ "$bad" = 0 ] && [ "$n" -gt 0 ]; then ok "$1 = $2 in all $n rows"; else not_ok "$1: $bad of $n rows differ from $2 ($(q "SELECT value FROM process_data_points WHERE process_id = $PROC AND parameter_id = $id LIMIT 1"))"; fi
}
expect_const test.u16 54321 0
expect_const test.i16 -12345 0
expect_const test.u32 3000000000 0
expect_const test.i32 -123456789 0
expect_const test.f32_badc 3.1415927410125732 1e-12
expect_const test.f32_dcba -0.0024999999441206455 1e-15
expect_const test.f64_cdab 1234.5678901234 1e-12
expect_const test.scaled -37.66 1e-9
expect_const heater1.setpoint 200 0
expect_const heater2.setpoint 150 0
expect_const mfc_carrier.setpoint 100 0
expect_const mfc_tma.setpoint 20 1e-9
expect_const mfc_h2o.setpoint 30 1e-9
expect_const ald.pulse_ms 50 0
expect_const ald.purge_ms 200 0
expect_const ald.enable 1 0
vectors_expect "$PROC" vector_id
UP_ID=$(param_id system.uptime)
check_eq "system.uptime strictly increases from row to row" \
    "$(q "SELECT count(*) FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $UP_ID) x WHERE d <= 0")" 0
CYC_ID=$(param_id ald.cycles)
check_ge "ald.cycles advanced during the run (ALD sequencer running)" \
    "$(q "SELECT max(value) - min(value) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $CYC_ID")" 3
T1_ID=$(param_id heater1.temperature)
check_eq "heater1.temperature is plausible (20..210 degC) and rising towards 200" \
    "$(q "SELECT bool_and(value BETWEEN 20 AND 210) AND max(value) > min(value) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $T1_ID")" t

# --- ledger and process row --------------------------------------------------
check_eq "ledger rows of the process add up to the stored rows" \
    "$(q "SELECT sum(rows) FROM ingest_ledger WHERE process_id = $PROC")" "$ROWS"
check_eq "ledger batch numbers are contiguous from 1" \
    "$(q "SELECT count(*) = max(batch_seq) AND min(batch_seq) = 1 FROM ingest_ledger WHERE recorder_id = 'rec-test'")" t
check_eq "the process is closed as completed" \
    "$(q "SELECT status || ',' || (ended_at IS NOT NULL) FROM processes WHERE id = $PROC")" "completed,true"

# --- daemon lifecycle and errors ---------------------------------------------
LAST_RC=$(q "SELECT max(value)::bigint FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID")
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"; rc=$?
check_eq "aldrecd exits 0 on SIGTERM" "$rc" 0
out=$($A status 2>&1); rc=$?
check_eq "aldrec status without a daemon exits 1" "$rc" 1
check_match "... and says the daemon is not running" "$out" "aldrecd is not running"
before=$(q "SELECT count(*) FROM processes")
out=$($A process start --recipe nodaemon 2>&1); rc=$?
check_eq "process start without a daemon exits 1" "$rc" 1
check_eq "... and creates no process row" "$(q "SELECT count(*) FROM processes")" "$before"
kill -TERM "$SIM_PID_a"; wait "$SIM_PID_a"
SERVED=$(sed -n 's/.*served \([0-9]*\) read requests.*/\1/p' "$WORK/aldsim-a.log")
check_ge "aldsim served at least as many reads as the last recorded counter" "${SERVED:-0}" "$LAST_RC"

printf '[database]\nconninfo = %s\n[recorder]\nmachine = ald-demo\nid = x\nbatch_rows = 12x\n' "$REC_DSN" > "$WORK/bad.conf"
out=$("$BIN/aldrecd" --config "$WORK/bad.conf" 2>&1); rc=$?
check_eq "malformed config: aldrecd exits 2" "$rc" 2
check_match "... naming file:line and the key" "$out" "bad.conf:6: batch_rows: expected an integer"
printf '[recorder]\nmachine ald-demo\n' > "$WORK/bad2.conf"
out=$($A --config "$WORK/bad2.conf" status 2>&1); rc=$?
check_eq "malformed config: aldrec exits 2" "$rc" 2
check_match "... naming file:line" "$out" "bad2.conf:2: expected \"key = value\""
out=$($A process start 2>&1); rc=$?
check_eq "process start without --recipe exits 2" "$rc" 2

# --- invalid parameter definitions are skipped, the rest keeps recording -----
aldsim_start b --seed 8
demo_machine_load "$SIM_PORT_b" 100
q "INSERT INTO component_parameters (component_id, name, register_type, address, data_type)
   SELECT id, 'bogus', 'input', 46, 'f128' FROM machine_components WHERE name = 'test';
   INSERT INTO component_parameters (component_id, name, register_type, address, data_type)
   SELECT id, 'far', 'input', 99, 'u32' FROM machine_components WHERE name = 'test'" >/dev/null
: > "$WORK/aldrecd.log"
if aldrecd_start "$CFG"; then
    PROC2=$($A process start --recipe it-bad-params)
    sleep 2
    $A process stop >/dev/null
    log=$(cat "$WORK/aldrecd.log")
    check_match "unknown data type is skipped with a warning naming it" "$log" 'parameter test.bogus \(id [0-9]+\) skipped: unknown data type \\?"f128\\?"'
    check_match "address past the device is skipped with a warning naming it" "$log" "parameter test.far \(id [0-9]+\) skipped: .*illegal data address"
    P2=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC2 AND parameter_id = $RC_ID")
    check_ge "recording continues for the others" "$P2" 10
    check_eq "... every valid parameter complete, good quality" \
        "$(q "SELECT count(*) FROM process_data_points d JOIN component_parameters cp ON cp.id = d.parameter_id WHERE d.process_id = $PROC2 AND cp.name NOT IN ('bogus', 'far') AND d.quality = 0")" \
        $((P2 * NPARAM))
else
    not_ok "aldrecd starts with invalid parameters in the map"
fi

check_done record
