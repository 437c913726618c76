#!/bin/bash
# param_python.sh — contrib/python/aldrec.py (standard library only) under
# /usr/bin/python3 against a real aldrecd, aldsim and PostgreSQL: the
# example recipe (start, three steps, ten set points in three multi-sets,
# gets, stop) runs on one session; the run reads back complete (all stored,
# three steps, ten set-point events with the recipe's --by text, the values
# aldsim holds afterwards); bad input raises InputError with nothing
# written; one connection serves many requests.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-param-python
pg_start
aldsim_start a --seed 9
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.flush_interval_ms=200
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
A="$BIN/aldrec --config $CFG"
aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done param_python; exit 1; }
SOCK=$WORK/aldrecd.sock
export PYTHONPATH=$ALD_ROOT/contrib/python PATH=$BIN:$PATH

out=$(/usr/bin/python3 "$ALD_ROOT/contrib/python/example_recipe.py" "$SOCK" "$CFG" 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check_eq "the example recipe runs to the end (exit 0)" "$rc" 0
PROC=$(sed -n 's/^run \([0-9]*\)$/\1/p' <<<"$out")
check_match "... its stop says every row is stored" "$out" "stopped process $PROC: [0-9]+ rows recorded, all stored"
check_eq "the run is completed in PostgreSQL" "$(q "SELECT status FROM processes WHERE id = ${PROC:-0}")" completed
check_eq "... with its three steps" "$(q "SELECT string_agg(step_no || ' ' || name, ', ' ORDER BY step_no) FROM process_steps WHERE process_id = ${PROC:-0}")" \
    "1 heat-up, 2 ALD cycles, 3 purge"
check_eq "... ten set-point events, each read back equal, with the recipe's text" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE readback = requested AND requested_by LIKE 'example_recipe %') FROM setpoint_events WHERE process_id = ${PROC:-0}")" "10|10"
check_ge "... and its data points" "$(q "SELECT count(*) FROM process_data_points WHERE process_id = ${PROC:-0}")" 320
check_eq "aldsim holds what the purge step set (fresh reads through aldrecd)" \
    "$($A get --fresh ald.enable mfc_tma.setpoint 2>&1)" "ald.enable = 0 (quality 0 good)
mfc_tma.setpoint = 0 sccm (quality 0 good)"

# --- errors and one connection for many requests ---------------------------------
out=$(/usr/bin/python3 - "$SOCK" <<'PY' 2>&1
import sys, aldrec
r = aldrec.Recorder(sys.argv[1])
try:
    r.set({"heater1.setpoint": 100, "mfc_tma.setpoint": 99})
    print("no error")
except aldrec.InputError as e:
    print("InputError:", e)
print(r.get("heater1.setpoint", fresh=True).value)
for i in range(50):
    r.set("heater2.setpoint", 100 + i, by="python loop")
print(r.get("heater2.setpoint").value)
print(len(r.status()) > 5)
try:
    r.get("nope.nothing")
except aldrec.InputError as e:
    print("InputError:", e)
r.close()
PY
)
check_eq "InputError naming the bad value, nothing written (heater1.setpoint still 220); 50 sets on one connection; get; status" "$out" \
"InputError: set mfc_tma.setpoint: 99 is outside the limits [0, 50] sccm; nothing written
220.0
149.0
True
InputError: get: unknown parameter \"nope.nothing\": no component \"nope\" on machine ald-demo (components: ald, chamber, heater1, heater2, mfc_carrier, mfc_h2o, mfc_tma, system, test, valve_h2o, valve_tma)"
check_eq "the 50 sets of one session are recorded (no process: process_id NULL)" \
    "$(wait_until 10 events bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c \"SELECT count(*) FROM setpoint_events WHERE requested_by = 'python loop'\") -ge 50 ]"; q "SELECT count(*) FROM setpoint_events WHERE requested_by = 'python loop'")" 50

check_done param_python
