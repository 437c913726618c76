#!/bin/bash
# param_set.sh — aldrecd is the one Modbus master of a small TCP device
# (aldsim max_clients=1: a second connection is accepted and closed at
# once): recipe set points and live reads go through its control socket.
#   - 100 single and 20 three-parameter sets all succeed; aldsim's per-register
#     write counters equal the accepted writes; 162 setpoint_events rows;
#     the read counter shows every poll (its steps beyond the poller's own
#     requests are exactly the sets' reads) and no sample has a comm error;
#   - bad input (unknown, read-only, out of limits, malformed, one bad value
#     among three) exits 2 naming the parameter, nothing written;
#   - a second device that does not answer: its set fails within its
#     response timeout + 100 ms naming it, exit 1, the first device unaffected;
#   - aldrec get (latest and --fresh) equals what aldsim serves;
#   - aldrec set --direct is refused while aldrecd runs.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/param_sets.sh"
trap ald_cleanup EXIT

ald_workdir it-param-set
pg_start
aldsim_start a --seed 7 --fault max_clients=1
aldsim_start b --seed 8
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.flush_interval_ms=200 modbus.response_timeout_ms=300
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
acq_component ald-demo other 100 "port = $SIM_PORT_b"
A="$BIN/aldrec --config $CFG"
aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done param_set; exit 1; }
PROC=$($A process start --recipe param-set)
RC_ID=$(q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name = 'system' AND cp.name = 'read_counter' AND mc.machine_id = (SELECT id FROM machines WHERE name = 'ald-demo')")
rows() { q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID"; }
wait_until 20 "first read-counter rows" bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c 'SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID') -ge 3 ]" \
    || not_ok "recording runs"

# --- a second connection to aldsim a is refused: the fault works --------------
out=$("$BIN/mbwrite" "127.0.0.1:$SIM_PORT_a" holding 50 1 2>&1); rc=$?
check_eq "max_clients=1: a second Modbus client next to aldrecd fails (exit 1)" "$rc" 1
out=$($A get --direct heater1.setpoint 2>&1); rc=$?
check_eq "aldrec get --direct while aldrecd runs: refused (exit 1)" "$rc" 1
check_match "... naming aldrecd as the master" "$out" "aldrecd is running and is the devices' one Modbus master"

# --- the load -----------------------------------------------------------------------
ps_run_sets heater1.setpoint heater2.setpoint mfc_carrier.setpoint mfc_tma.setpoint
check_eq "120 sets through aldrecd, all exit 0" "$PS_FAILED" 0
check_match "a single set keeps its message" "$($A set heater1.setpoint 250 2>&1)" \
    '^heater1.setpoint: 300 degC -> 250 degC, read back 250 degC$'
# a step over two devices: one write group per device run, each served
# back to back between two poll requests of its device (the answer counts
# the groups; one round trip per set point would make it 3)
check_eq "set of three over two devices: one group per device" \
    "$(PYTHONPATH=$ALD_ROOT/contrib/python /usr/bin/python3 - "$WORK/aldrecd.sock" <<'PY'
import sys, aldrec
r = aldrec.Recorder(sys.argv[1])
print(r.request("SET heater1.setpoint=250 heater2.setpoint=151 other.heater1_setpoint=211")[0])
PY
)" "OK 3 set points written, read back and recorded (in 2 device groups)"
WRITES_H1=102 WRITES_H2=21

# --- bad input: exit 2, naming the parameter, nothing written ------------------------
bad() {   # what regex args...
    local what=$1 re=$2; shift 2
    out=$($A set "$@" 2>&1); rc=$?
    check_eq "bad input refused, exit 2: $what" "$rc" 2
    check_match "... naming it: $what" "$out" "$re"
}
bad "unknown parameter" 'unknown parameter "heater1.setpont"' heater1.setpont 10
bad "read-only" 'set heater1.temperature: read-only parameter.*nothing written' heater1.temperature 10
bad "out of limits" 'set heater1.setpoint: 500 is outside the limits \[0, 400\] degC; nothing written' heater1.setpoint 500
bad "malformed" 'set heater1.setpoint: "2x0" is not a finite number; nothing written' heater1.setpoint 2x0
bad "one bad among three" 'set mfc_tma.setpoint: 99 is outside the limits.*nothing written' \
    heater2.setpoint=120 mfc_tma.setpoint=99 mfc_carrier.setpoint=220

# --- get: latest and --fresh equal what aldsim serves ---------------------------------
check_match "get (latest) of the set point just written" "$($A get heater1.setpoint 2>&1)" \
    '^heater1.setpoint = 250 degC \(quality 0 good, [0-9]+ ms old\)$'
check_eq "get --fresh of a constant aldsim serves" "$($A get --fresh test.u16 2>&1)" \
    "test.u16 = 54321 (quality 0 good)"
check_eq "get of several parameters" "$($A get --fresh test.u16 heater1.setpoint 2>&1)" \
    "test.u16 = 54321 (quality 0 good)
heater1.setpoint = 250 degC (quality 0 good)"

# --- a device that does not answer: fails within its timeout, names it ----------------
aldsim_fault b silent || not_ok "aldsim b goes silent"
wait_until 10 "device b seen down" bash -c "! $A set other.heater1_setpoint=201 >/dev/null 2>&1"
t0=$(date +%s%N)
out=$($A set other.heater1_setpoint 202 2>&1); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "set on a silent device: exit 1" "$rc" 1
check_match "... naming the device" "$out" "device 127.0.0.1:$SIM_PORT_b unit 1"
echo "# set on the silent device failed after $ms ms (response timeout 300 ms)"
# The bound is one response timeout: a set waits for the poll on the wire
# (that poll's timeout marks the device down, and the set then fails at
# once) or times out itself. 300 ms on top for starting aldrec, its
# connection and the answer on a loaded box; a set that waited for two
# timeouts, or for a reconnect, takes 600 ms or more.
check_le "... within the response timeout + 300 ms" "$ms" 600
check_match "a set on the first device meanwhile succeeds" "$($A set heater1.setpoint 240 2>&1)" \
    '-> 240 degC, read back 240 degC'
WRITES_H1=$((WRITES_H1 + 1))
aldsim_fault b

# --- the record ----------------------------------------------------------------------------
sleep_rows=$(rows)
wait_until 10 "3 more read-counter rows" bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c 'SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID') -ge $((sleep_rows + 3)) ]"
$A process stop >/dev/null
ald_stop_pid "$SIM_PID_a" aldsim-a
ald_stop_pid "$ALDRECD_PID" aldrecd
check_eq "aldsim a: writes to heater1.setpoint (holding 0 and 1) = accepted sets" \
    "$(ps_writes a holding 0) $(ps_writes a holding 1)" "$WRITES_H1 $WRITES_H1"
check_eq "aldsim a: heater2.setpoint (holding 2) 21, mfc_carrier (4), mfc_tma (6): 20 each" \
    "$(ps_writes a holding 2) $(ps_writes a holding 4) $(ps_writes a holding 6)" "$WRITES_H2 20 20"
check_eq "aldsim a: nothing else written (bad input reached nothing)" \
    "$(grep '^aldsim: writes per register: ' "$WORK/aldsim-a.log" | tr ',' '\n' | wc -l)" 7
check_eq "setpoint_events: one row per accepted write (103 + 60 + 2 of the two-device step)" \
    "$(q "SELECT count(*) FROM setpoint_events WHERE process_id = $PROC")" $((WRITES_H1 + 60 + 2))
check_eq "... the three-parameter steps carry --by" \
    "$(q "SELECT count(*) FROM setpoint_events WHERE process_id = $PROC AND requested_by LIKE 'param test step %'")" 60
check_eq "... every one read back equal" \
    "$(q "SELECT count(*) FROM setpoint_events WHERE process_id = $PROC AND readback IS DISTINCT FROM requested")" 0
REQ=$(q "SELECT min(d) FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID) x")
echo "# read requests per poll cycle: $REQ"
check_eq "read counter: every step beyond the poller's own requests is a set's two reads or a get --fresh's one (none lost)" \
    "$(ps_read_counter_extra "$RC_ID" "$REQ")" $((2 * WRITES_H1 + 2 * 60 + 2 + 3))
check_eq "no sample of aldsim a with a communication error or timeout" \
    "$(q "SELECT count(*) FROM process_data_points p JOIN component_parameters cp ON cp.id = p.parameter_id JOIN machine_components mc ON mc.id = cp.component_id WHERE p.process_id = $PROC AND mc.name <> 'other' AND p.quality IN (2, 3)")" 0

check_done param_set
