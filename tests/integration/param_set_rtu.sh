#!/bin/bash
# param_set_rtu.sh — recipe set points on an RS-485 (RTU) line, which
# carries one master: aldrecd records the line (a socat pty pair) at 10 Hz
# while 100 single and 20 three-parameter sets go through it. Every set
# succeeds (before aldrecd was the master, each failed: the line was
# taken); aldsim's per-register write counters equal the accepted writes;
# 160 setpoint_events rows; the read counter's steps beyond the poller's
# own requests are exactly the sets' reads (no poll lost); no sample has a
# communication error or timeout.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/param_sets.sh"
trap ald_cleanup EXIT

ald_workdir it-param-set-rtu
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.machine=rtus recorder.flush_interval_ms=200 \
    modbus.response_timeout_ms=300
pg_migrate "$CFG"
A="$BIN/aldrec --config $CFG"
aldsim_start_rtu r --baud 19200 --parity E --seed 4
acq_component rtus line 100 "transport = 'rtu', serial_port = '$SIM_TTY_r', unit_id = 1"
aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done param_set_rtu; exit 1; }
PROC=$($A process start --recipe param-set-rtu)
RC_ID=$(q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name = 'line' AND cp.name = 'system_read_counter' AND mc.machine_id = (SELECT id FROM machines WHERE name = 'rtus')")
rows() { q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID"; }
more_rows() { [ "$(rows)" -ge "$1" ]; }
wait_until 20 "first read-counter rows" more_rows 3 || not_ok "recording runs"

ps_run_sets line.heater1_setpoint line.heater2_setpoint line.mfc_carrier_setpoint line.mfc_tma_setpoint
check_eq "120 sets on the RTU line through aldrecd, all exit 0" "$PS_FAILED" 0
check_match "a single set keeps its message" "$($A set line.heater1_setpoint 250 2>&1)" \
    '^line.heater1_setpoint: 300 degC -> 250 degC, read back 250 degC$'
check_match "get (latest) through aldrecd" "$($A get line.heater1_setpoint 2>&1)" \
    '^line.heater1_setpoint = 250 degC \(quality 0 good, [0-9]+ ms old\)$'
check_eq "get --fresh equals what aldsim serves" "$($A get --fresh line.test_u16 2>&1)" \
    "line.test_u16 = 54321 (quality 0 good)"

n=$(rows)
wait_until 10 "3 more read-counter rows" more_rows $((n + 3))
$A process stop >/dev/null
ald_stop_pid "$SIM_PID_r" aldsim-r
ald_stop_pid "$ALDRECD_PID" aldrecd
check_eq "aldsim: writes to heater1.setpoint (holding 0 and 1) = accepted sets" \
    "$(ps_writes r holding 0) $(ps_writes r holding 1)" "101 101"
check_eq "aldsim: heater2.setpoint (holding 2), mfc_carrier (4), mfc_tma (6): 20 each" \
    "$(ps_writes r holding 2) $(ps_writes r holding 4) $(ps_writes r holding 6)" "20 20 20"
check_eq "aldsim: nothing else written" \
    "$(grep '^aldsim: writes per register: ' "$WORK/aldsim-r.log" | tr ',' '\n' | wc -l)" 7
check_eq "setpoint_events: 101 + 60 rows, each read back equal" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE readback = requested) FROM setpoint_events WHERE process_id = $PROC")" "161|161"
REQ=$(q "SELECT min(d) FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID) x")
echo "# read requests per poll cycle: $REQ"
check_eq "read counter: the steps beyond the poller's requests are the sets' two reads and one get --fresh (none lost)" \
    "$(ps_read_counter_extra "$RC_ID" "$REQ")" $((2 * 161 + 1))
check_eq "no sample with a communication error or timeout" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND quality IN (2, 3)")" 0

check_done param_set_rtu
