#!/bin/bash
# bench_param.sh — set points and live reads through aldrecd (make bench,
# from run.sh; also on its own). One private PostgreSQL, one aldsim with the
# demo map, aldrecd recording it at 10 Hz. Prints, in one run:
#   - `aldrec set` end to end (process start to exit; p50/p99 of N runs)
#     through aldrecd, and `aldrec set --direct` (its own Modbus connection,
#     unrecorded; measured with aldrecd stopped, as --direct needs) as the
#     reference; `aldrec get` the same way;
#   - the same set through the Python client (contrib/python: one session);
#   - the CLI's process floor: `aldrec --help`, `aldrec status` (the front
#     program, no package library) against `aldrec-full --help` (libpq and
#     the rest loaded: the floor every command paid before the split);
#   - poll lateness: p99 of |step - 100 ms| between consecutive recorded
#     system.read_counter samples, without sets and with 20 sets/s.
# Timings come from a /usr/bin/python3 harness (time.perf_counter around
# subprocess.run; the same harness for every row, so ratios are fair).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

N=${BENCH_PARAM_RUNS:-300}
SECS=${BENCH_PARAM_SECS:-20}
ald_workdir bench-param
pg_start
aldsim_start a --seed 11
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.flush_interval_ms=200 recorder.log_level=warn
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
aldrecd_start "$CFG" >/dev/null || ald_die "aldrecd does not start"
export PYTHONPATH=$ALD_ROOT/contrib/python

# times N CMD... — p50/p99 (ms) of N runs of CMD, values cycling 200..299
# where CMD has {v}.
times() {
    /usr/bin/python3 - "$@" <<'PY'
import subprocess, sys, time
n = int(sys.argv[1]); cmd = sys.argv[2:]
t = []
for i in range(n):
    c = [a.replace("{v}", str(200 + i % 100)) for a in cmd]
    t0 = time.perf_counter()
    r = subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t.append((time.perf_counter() - t0) * 1000)
    if r.returncode != 0:
        sys.exit("failed: %s" % " ".join(c))
t.sort()
print("%.2f %.2f" % (t[len(t) // 2], t[min(len(t) - 1, int(len(t) * 0.99))]))
PY
}
A="$BIN/aldrec --config $CFG"
row() { printf '   %-58s p50 %7.2f ms  p99 %7.2f ms\n' "$1" $2; }

echo "== set points through aldrecd (demo map at 10 Hz, aldsim on loopback; $N runs each)"
FLOOR_HELP=$(times "$N" $BIN/aldrec --help)
FLOOR_FULL=$(times "$N" $BIN/aldrec-full --help)
FLOOR_STATUS=$(times "$N" $A status)
SET_D=$(times "$N" $A set heater1.setpoint "{v}")
SET_M=$(times "$((N / 3))" $A set heater1.setpoint={v} heater2.setpoint={v} mfc_carrier.setpoint={v})
GET_D=$(times "$N" $A get heater1.setpoint)
GETF_D=$(times "$N" $A get --fresh heater1.setpoint)
PY=$(/usr/bin/python3 - "$WORK/aldrecd.sock" "$((N * 3))" <<'PY'
import sys, time, aldrec
r = aldrec.Recorder(sys.argv[1]); n = int(sys.argv[2])
def q(f):
    t = []
    for i in range(n):
        t0 = time.perf_counter(); f(i); t.append((time.perf_counter() - t0) * 1000)
    t.sort(); return "%.3f %.3f" % (t[len(t) // 2], t[min(n - 1, int(n * 0.99))])
print(q(lambda i: r.set("heater1.setpoint", 200 + i % 100)))
print(q(lambda i: r.get("heater1.setpoint")))
PY
)

# poll lateness: a run without sets, one with 20 sets/s from one session
lateness() {   # process -> p99 of |step - 100 ms| in ms
    psql -XAtq "$ADMIN_DSN" -c "SELECT round((percentile_cont(0.99) WITHIN GROUP (ORDER BY abs(d - 100)))::numeric, 2) FROM (SELECT extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) * 1000 AS d FROM process_data_points WHERE process_id = $1 AND parameter_id = (SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name = 'system' AND cp.name = 'read_counter')) x WHERE d IS NOT NULL"
}
P0=$($A process start --recipe bench-idle); sleep "$SECS"; $A process stop >/dev/null
P1=$($A process start --recipe bench-sets)
/usr/bin/python3 - "$WORK/aldrecd.sock" "$SECS" <<'PY'
import sys, time, aldrec
r = aldrec.Recorder(sys.argv[1]); end = time.monotonic() + float(sys.argv[2]); i = 0
nxt = time.monotonic()
while time.monotonic() < end:
    r.set("heater1.setpoint", 200 + i % 100); i += 1
    nxt += 0.05
    time.sleep(max(0, nxt - time.monotonic()))
PY
$A process stop >/dev/null
L0=$(lateness "$P0"); L1=$(lateness "$P1")
ald_stop_pid "$ALDRECD_PID" aldrecd
SET_X=$(times "$N" $A set --direct heater1.setpoint "{v}")
GET_X=$(times "$N" $A get --direct heater1.setpoint)

row "aldrec --help (CLI process floor: the front, no libpq)" "$FLOOR_HELP"
row "aldrec-full --help (the floor with libpq & co. loaded)" "$FLOOR_FULL"
row "aldrec status (floor + one socket request)" "$FLOOR_STATUS"
row "aldrec set P V through aldrecd (written, read back, durable)" "$SET_D"
row "aldrec set P=V P=V P=V through aldrecd" "$SET_M"
row "aldrec set --direct P V (reference: own connection, unrecorded)" "$SET_X"
row "aldrec get P through aldrecd (latest)" "$GET_D"
row "aldrec get --fresh P through aldrecd" "$GETF_D"
row "aldrec get --direct P (reference)" "$GET_X"
row "python client: set (one session)" "$(sed -n 1p <<<"$PY")"
row "python client: get (one session)" "$(sed -n 2p <<<"$PY")"
awk -v d="$SET_D" -v x="$SET_X" 'BEGIN {split(d, a, " "); split(x, b, " ");
    printf "   RATIO aldrec set p50: through aldrecd / --direct = %.2f / %.2f = %.2fx\n", a[1], b[1], a[1] / b[1]}'
echo "   poll lateness p99 (|step - 100 ms| of recorded read-counter samples, $SECS s each):" \
     "no sets $L0 ms, 20 sets/s $L1 ms"
