#!/bin/bash
# demo.sh — `make demo`: record one simulated ALD run end to end.
#
# Starts a private PostgreSQL cluster and Redis on loopback (under build/run/
# demo, touching no system service), aldsim (the simulated reactor) and
# aldrecd; runs a short recipe of four steps through `aldrec process start/
# stop`; reads the run back with `aldrec runs`, a per-parameter table
# (rows, min/mean/max) straight from PostgreSQL and `aldrec summary`, writes
# build/demo-run.svg (`aldrec plot`) and build/demo-run.csv (`aldrec export
# --every 1s`); stops everything it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap ald_cleanup EXIT

RECORD_S=${DEMO_SECONDS:-20}

ald_workdir demo
ald_log "starting PostgreSQL 15 and Redis on loopback (in $WORK)"
pg_start
redis_start
aldsim_start reactor --seed 42
ald_log "aldsim (simulated ALD reactor) on 127.0.0.1:$SIM_PORT_reactor"

CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.id=demo-recorder recorder.batch_rows=500 recorder.flush_interval_ms=500
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_reactor" 100
ald_log "schema migrated; demo machine 'ald-demo' loaded (32 parameters at 10 Hz)"

aldrecd_start "$CFG"
ald_log "aldrecd running (pid $ALDRECD_PID); recipe: start, 4 steps over ${RECORD_S}s, stop"

ALDREC="$BIN/aldrec --config $CFG"
PROC=$($ALDREC process start --recipe demo-al2o3 --lot DEMO-LOT-1)
ald_log "process $PROC started"
STEP_S=$(awk -v s="$RECORD_S" 'BEGIN {printf "%.2f", s / 4}')
# What each step sets, as a real recipe would: through aldrecd (the one
# Modbus master), every set written between two poll requests, read back
# and recorded as a set-point event of the run.
step_setpoints() {
    case $1 in
    1) echo "ald.enable=off valve_tma.open=off valve_h2o.open=off mfc_carrier.setpoint=50" ;;
    2) echo "heater1.setpoint=250 heater2.setpoint=240 mfc_carrier.setpoint=100" ;;
    3) echo "mfc_tma.setpoint=20 mfc_h2o.setpoint=30 ald.enable=on" ;;
    4) echo "ald.enable=off valve_tma.open=off valve_h2o.open=off mfc_tma.setpoint=0 mfc_h2o.setpoint=0 mfc_carrier.setpoint=200" ;;
    esac
}
for step in "1:pump-down" "2:heat-up" "3:ALD cycles" "4:purge"; do
    no=${step%%:*}
    record_step "$CFG" "$PROC" "$no" "${step#*:}"
    # shellcheck disable=SC2046  # one P=V word each
    $ALDREC set $(step_setpoints "$no") --by "demo recipe step $no" | sed 's/^/    set /' >&2
    ald_log "step $no ${step#*:}"
    sleep "$STEP_S"
done
$ALDREC process stop >&2
echo
$ALDREC status | sed 's/^/  /'

PARAMS=heater1.temperature,heater2.temperature,chamber.pressure,mfc_carrier.flow,mfc_tma.flow,mfc_h2o.flow
SVG=$ALD_ROOT/${BUILD:-build}/demo-run.svg
echo
echo "Recent runs (aldrec runs, as the read-only engineer role):"
echo
$ALDREC runs | sed 's/^/  /'
echo
echo "Every parameter of run $PROC, read back from PostgreSQL (psql as the engineer role):"
echo
psql -X -v ON_ERROR_STOP=1 "$READER_DSN" -P footer=off -c "
  SELECT n.full_name AS parameter, n.units, count(*) AS rows,
         count(*) FILTER (WHERE d.quality <> 0) AS not_good,
         round(min(d.value)::numeric, 4) AS min, round(avg(d.value)::numeric, 4) AS mean,
         round(max(d.value)::numeric, 4) AS max
    FROM process_data_points d JOIN parameter_names n ON n.parameter_id = d.parameter_id
   WHERE d.process_id = $PROC
   GROUP BY n.full_name, n.units ORDER BY n.full_name" | sed 's/^/  /'
echo
echo "The recipe's set points in run $PROC (setpoint_events, as the engineer role):"
echo
psql -X -v ON_ERROR_STOP=1 "$READER_DSN" -P footer=off -c "
  SELECT to_char(e.ts AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') AS at, n.full_name AS parameter,
         e.requested, e.readback, e.requested_by
    FROM setpoint_events e JOIN parameter_names n ON n.parameter_id = e.parameter_id
   WHERE e.process_id = $PROC ORDER BY e.ts" | sed 's/^/  /'
echo
echo "What happened in run $PROC, per step (aldrec summary --process $PROC --param ...):"
echo
$ALDREC summary --process "$PROC" --param "$PARAMS" | sed 's/^/  /'
$ALDREC plot --process "$PROC" --param "$PARAMS" -o "$SVG"
$ALDREC export --process "$PROC" --param "$PARAMS" --every 1s -o "${SVG%.svg}.csv"
echo
echo "Plot of the run: $SVG (open it in a browser)"
echo "Per-second min/mean/max: ${SVG%.svg}.csv"
ald_log "demo finished; stopping everything it started"
