#!/bin/bash
# acq_rtu.sh — Modbus RTU over a pseudo-terminal pair (socat), aldsim at the
# other end serving unit 1 at 19200 8E1. Two components on the line: "rtu"
# (unit 1, the demo's 32 parameters) and "ghost" (unit 2, nobody answers).
# Values recorded must equal what aldsim serves and, for raw words of every
# data type × word order written by hand over the line (tests/lib/vectors.sh),
# their decimal constants; the read counter must be contiguous, and the
# silent unit must cost only its own values.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/vectors.sh"
trap ald_cleanup EXIT

ald_workdir it-acq-rtu
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.machine=acqr recorder.batch_rows=500 \
    recorder.flush_interval_ms=300 modbus.response_timeout_ms=200 modbus.reconnect_max_ms=2000
pg_migrate "$CFG"
A="$BIN/aldrec --config $CFG"

aldsim_start_rtu r --baud 19200 --parity E --seed 3
TTY=$SIM_TTY_r
LINE="transport = 'rtu', serial_port = '$TTY', baud = 19200, parity = 'E', data_bits = 8, stop_bits = 1"
acq_component acqr rtu 100 "$LINE, unit_id = 1"
acq_component acqr ghost 100 "$LINE, unit_id = 2"
q "DELETE FROM component_parameters WHERE name NOT IN ('system_read_counter', 'test_u16')
     AND component_id = (SELECT mc.id FROM machine_components mc JOIN machines m ON m.id = mc.machine_id
                          WHERE m.name = 'acqr' AND mc.name = 'ghost')" >/dev/null
# The fixed vectors on unit 1's holding registers 10-42, written over the
# line before aldrecd opens it; and aldsim's test pattern read back raw.
RTU_ID="(SELECT mc.id FROM machine_components mc JOIN machines m ON m.id = mc.machine_id WHERE m.name = 'acqr' AND mc.name = 'rtu')"
q "$(vectors_sql "$RTU_ID" 100)" >/dev/null
check "the vectors' raw words are written over RTU to holding registers $VEC_FIRST-42 (FC16)" \
    quiet "$BIN/mbwrite" --rtu "$TTY" --baud 19200 --parity E holding "$VEC_FIRST" $(vectors_words)
check_eq "aldsim serves the test pattern (input 30-44) over RTU as REGISTERS.md spells it" \
    "$(raw_words "$("$BIN/mbclient" --rtu "$TTY" --baud 19200 --parity E input 30 15)")" "$TEST_PATTERN_WORDS"
NRTU=$((32 + ${#VECTORS[@]}))

if ! aldrecd_start "$CFG"; then not_ok "aldrecd starts"; check_done acq_rtu; exit 1; fi
PROC=$($A process start --recipe it-rtu)
sleep 4
STATUS=$($A status)
$A process stop >/dev/null
echo "$STATUS" | grep '^device' | sed 's/^/# /'
check_match "status: one device for the line, named with its framing" "$STATUS" \
    "device $TTY \(rtu 19200 8E1\): up; $((NRTU + 2)) params in 2 groups"

param() { q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id JOIN machines m ON m.id = mc.machine_id AND m.name = 'acqr' WHERE mc.name = '$1' AND cp.name = '$2'"; }
in_comp() { echo "parameter_id IN (SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name = '$1')"; }
RC=$(param rtu system_read_counter)
N=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC")
check_ge "unit 1 polled over RTU ($N polls in 4 s at 10 Hz)" "$N" 25
check_eq "unit 1: every value good, every parameter complete" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND $(in_comp rtu) AND quality = 0 AND value IS NOT NULL")" $((N * NRTU))
check_eq "unit 1: read counter contiguous (4 requests per cycle, none lost or repeated)" \
    "$(q "SELECT count(*) FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC) x WHERE d <> 4")" 0

expect_const() {   # param expected tolerance
    local id n bad
    id=$(param rtu "$1")
    n=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $id")
    bad=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $id AND NOT (abs(value - ($2)::float8) <= $3)")
    if [ "$bad" = 0 ] && [ "$n" -gt 0 ]; then ok "RTU $1 = $2 in all $n rows"; else not_ok "RTU $1: $bad of $n rows differ from $2"; fi
}
expect_const test_u16 54321 0
expect_const test_i16 -12345 0
expect_const test_u32 3000000000 0
expect_const test_i32 -123456789 0
expect_const test_f32_badc 3.1415927410125732 1e-12
expect_const test_f32_dcba -0.0024999999441206455 1e-15
expect_const test_f64_cdab 1234.5678901234 1e-12
expect_const test_scaled -37.66 1e-9
expect_const heater1_setpoint 200 0
expect_const mfc_tma_setpoint 20 1e-9
expect_const ald_enable 1 0
vectors_expect "$PROC" "param rtu"
check_eq "coils and discrete inputs (FC1/FC2) read over RTU" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id IN ($(param rtu heater1_at_setpoint), $(param rtu valve_tma_open)) AND quality = 0")" $((N * 2))

# --- the silent unit 2 ---------------------------------------------------------------
check_ge "unit 2 (no such slave): stored as timeout (3)" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND $(in_comp ghost) AND quality = 3 AND value IS NULL")" 1
check_eq "unit 2: never a value, only codes 2 and 3" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND $(in_comp ghost) AND (value IS NOT NULL OR quality NOT IN (2, 3))")" 0
check_eq "unit 2: the silence is logged once" \
    "$(grep -c "device $TTY (rtu 19200 8E1) unit 2: no answer within 200 ms" "$WORK/aldrecd.log")" 1
MAXGAP=$(q "SELECT round(max(d) * 1000) FROM (SELECT extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC) x")
check_ge "unit 1: its cycles wait at most one timeout of unit 2 (max gap $MAXGAP ms)" 400 "$MAXGAP"

check_done acq_rtu
