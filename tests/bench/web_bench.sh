#!/bin/bash
# web_bench.sh — aldrec web on a 10-hour run at 10 Hz with 4 parameters
# (1.44 M samples, made in SQL), called by tests/bench/run.sh: time from
# navigation to the first complete chart in headless Chromium, a drag-zoom
# re-fetch, bytes transferred, the server's peak RSS — also for a 10-minute
# run, to show it does not grow with the run — beside `aldrec plot` of the
# same four parameters of the same run.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap ald_cleanup EXIT

ald_workdir bench-web
PG_EXTRA_OPTS="-c shared_buffers=256MB -c synchronous_commit=off" pg_start
CFG=$WORK/bench.conf
aldrecd_config "$CFG"
pg_migrate "$CFG"
demo_machine_load 1502 100
A="$BIN/aldrec --config $CFG"
PARAMS=heater1.temperature,chamber.pressure,mfc_tma.flow,heater2.temperature
mk_run() {   # seconds → process id
    psql -XAtq -v ON_ERROR_STOP=1 -v secs="$1" -v params="$PARAMS" "$ADMIN_DSN" <<'SQL' | tail -1
WITH p AS (INSERT INTO processes (machine_id, recipe, recorder_id, started_at, ended_at, status)
           SELECT id, 'bench-web', 'bench', '2026-01-10 00:00Z', '2026-01-10 00:00Z'::timestamptz + :secs * interval '1 s',
                  'completed' FROM machines WHERE name = 'ald-demo' RETURNING id)
INSERT INTO process_steps SELECT p.id, s, 'step ' || s, '2026-01-10 00:00Z'::timestamptz + (s - 1) * :secs / 5 * interval '1 s'
FROM p, generate_series(1, 5) s;
INSERT INTO process_data_points
SELECT (SELECT max(id) FROM processes), n.parameter_id, '2026-01-10 00:00Z'::timestamptz + i * interval '100 ms',
       100 + n.parameter_id + 10 * sin(i / 5000.0) + random(), 0
FROM parameter_names n, generate_series(0, :secs * 10 - 1) i
WHERE n.full_name = ANY (string_to_array(:'params', ','));
-- made in SQL, not by aldrecd: its rollup rows (0013_rollup.sql) from the points
SELECT aldrec_rollup_rebuild((SELECT max(id) FROM processes));
SELECT max(id) FROM processes;
SQL
}
echo "== web: fabricating a 10-hour run at 10 Hz x 4 parameters and a 10-minute one"
LONG=$(mk_run 36000)
SHORT=$(mk_run 600)
psql -XAtq "$ADMIN_DSN" -c "VACUUM ANALYZE process_data_points" >/dev/null
page() {   # run → JSON line, and the server's peak RSS (kB) after it
    web_start "$CFG" >/dev/null
    local out
    out=$(cd "$ALD_ROOT" && WEB_URL=$WEB_URL RUN=$1 PARAMS=$PARAMS node tests/bench/web_bench.mjs)
    echo "$out $(awk '/VmHWM/ {print $2}' "/proc/$WEB_PID/status")"
    ald_stop_pid "$WEB_PID" "aldrec web"
}
read -r long_json long_rss <<<"$(page "$LONG")"
read -r short_json short_rss <<<"$(page "$SHORT")"
t0=$(date +%s.%N)
$A plot --process "$LONG" --param "$PARAMS" -o "$WORK/long.svg"
t1=$(date +%s.%N)
python3 - "$long_json" "$short_json" "$long_rss" "$short_rss" "$t0" "$t1" <<'PY'
import json, sys
l, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
lr, sr, t0, t1 = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
plot_ms = (t1 - t0) * 1000
print(f"   10-hour run, 4 parameters (1.44 M samples): first complete chart {l['first_ms']} ms, "
      f"drag-zoom re-fetch {l['zoom_ms']} ms, {l['bytes'] / 1024:.0f} KiB transferred")
print(f"   aldrec plot of the same (SVG): {plot_ms:.0f} ms; RATIO first chart / plot = {l['first_ms'] / plot_ms:.2f}")
print(f"   10-minute run: first chart {s['first_ms']} ms, re-fetch {s['zoom_ms']} ms")
print(f"   server peak RSS: {lr / 1024:.1f} MiB after the 10-hour run, {sr / 1024:.1f} MiB after the 10-minute one"
      f" (RATIO {lr / sr:.2f})")
PY
