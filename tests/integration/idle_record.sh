#!/bin/bash
# idle_record.sh — the machine's idle history (docs/store-and-forward.md
# "Idle history") with real parts: aldsim → aldrecd → spool → PostgreSQL 15.
# 10 s idle, a 10 s run, 10 s idle, at 10 Hz polling and the default idle
# interval of 1000 ms; then a PostgreSQL crash during idle time. Checks,
# with aldsim's read counter (+1 per answered read, REQ reads per poll):
#   - idle rows of the counter step by exactly 10 polls (idle rate), run
#     rows by exactly 1 poll (run rate): contiguous across all three phases;
#   - the edges: no counter value stored twice (idle and run together); the
#     first sample after START is the run's, the last before it idle
#     history at most one idle interval earlier; the first sample after
#     STOP is idle history, exactly one poll after the run's last;
#   - idle_interval_ms per parameter (2000: every 20th poll; 0: none) and
#     the deadband (a constant value behind a deadband: one row);
#   - STATUS's idle line and /metrics count what PostgreSQL holds, the
#     ledger (kind 5) accounts for every idle row;
#   - a PostgreSQL outage during idle time loses no idle sample.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT

ald_workdir it-idle-record
pg_start
aldsim_start a --seed 15
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.batch_rows=200 recorder.flush_interval_ms=300 \
    database.connect_timeout_s=2
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
A="$BIN/aldrec --config $CFG"
# per-parameter policy: heater2.setpoint every 2 s, mfc_tma.setpoint never,
# heater1.setpoint (constant 200) behind a deadband with no forced interval
check "the idle policy and a deadband are set per parameter" quiet q "UPDATE component_parameters cp SET idle_interval_ms = 2000 FROM machine_components mc
    WHERE mc.id = cp.component_id AND mc.name = 'heater2' AND cp.name = 'setpoint';
   UPDATE component_parameters cp SET idle_interval_ms = 0 FROM machine_components mc
    WHERE mc.id = cp.component_id AND mc.name = 'mfc_tma' AND cp.name = 'setpoint';
   UPDATE component_parameters cp SET deadband = 1, max_interval_ms = NULL FROM machine_components mc
    WHERE mc.id = cp.component_id AND mc.name = 'heater1' AND cp.name = 'setpoint'"
aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done idle_record; exit 1; }
spool_init_counts
H2_ID=$(param_id heater2.setpoint)
TMA_ID=$(param_id mfc_tma.setpoint)
H1_ID=$(param_id heater1.setpoint)
T1_ID=$(param_id heater1.temperature)
check_eq "STATUS: the idle policy keeps every parameter but mfc_tma.setpoint" \
    "$(st idle params)" $((NPARAM - 1))

T0=$(now_s)
sleep 10
T_START=$(now_s)
PROC=$($A process start --recipe it-idle)
check_match "process start prints the new process id" "$PROC" '^[0-9]+$'
sleep 10
T_STOP=$(now_s)
check_match "process stop: all stored" "$($A process stop)" "all stored"
sleep 10
T_END=$(now_s)
wait_until 20 "idle history stored" queue_is -eq 0

hist() { q "SELECT count(*) FROM machine_history WHERE parameter_id = $1 AND ts >= to_timestamp($2) AND ts < to_timestamp($3)"; }
# the counter over both tables, in time order: src 'i' idle, 'r' run
seq_sql="SELECT ts, value, 'i' AS src FROM machine_history WHERE parameter_id = $RC_ID
          UNION ALL
         SELECT ts, value, 'r' FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID"
steps() {   # [SQL condition on value] → "idle_ok idle_bad run_ok run_bad"
    q "WITH s AS (SELECT * FROM ($seq_sql) s0 WHERE ${1:-true}), d AS (
         SELECT src, lag(src) OVER w AS psrc, value - lag(value) OVER w AS d FROM s
         WINDOW w AS (ORDER BY ts, value))
       SELECT count(*) FILTER (WHERE src = 'i' AND psrc = 'i' AND d = 10 * $REQ) || ' ' ||
              count(*) FILTER (WHERE src = 'i' AND psrc = 'i' AND d <> 10 * $REQ) || ' ' ||
              count(*) FILTER (WHERE src = 'r' AND psrc = 'r' AND d = $REQ) || ' ' ||
              count(*) FILTER (WHERE src = 'r' AND psrc = 'r' AND d <> $REQ)
         FROM d"
}
read -r IOK IBAD ROK RBAD <<<"$(steps)"
echo "# idle steps ok $IOK bad $IBAD, run steps ok $ROK bad $RBAD; overruns $(st poll_cycles overruns)"
check_eq "idle rows of the read counter step by exactly 10 polls (1000 ms at 10 Hz)" "$IBAD" 0
check_ge "... in both idle phases (>= 2 x 8 steps)" "$IOK" 16
check_eq "run rows of the read counter step by exactly 1 poll" "$RBAD" 0
check_ge "... for the whole run (>= 90 steps)" "$ROK" 90
check_eq "no counter value stored twice, idle and run together" \
    "$(q "SELECT count(*) - count(DISTINCT value) FROM ($seq_sql) s")" 0
check_eq "no idle row inside the run" \
    "$(q "SELECT count(*) FROM machine_history h, (SELECT min(ts) a, max(ts) b FROM process_data_points WHERE process_id = $PROC) r WHERE h.ts BETWEEN r.a AND r.b")" 0
# the edges: transitions idle→run and run→idle in the ordered sequence
read -r EDGE_IN EDGE_OUT <<<"$(q "WITH s AS ($seq_sql), d AS (
      SELECT src, lag(src) OVER w AS psrc, value - lag(value) OVER w AS d FROM s
      WINDOW w AS (ORDER BY ts, value))
    SELECT (SELECT string_agg(d::text, ',') FROM d WHERE src = 'r' AND psrc = 'i') || ' ' ||
           (SELECT string_agg(d::text, ',') FROM d WHERE src = 'i' AND psrc = 'r')")"
echo "# counter step at START $EDGE_IN, at STOP $EDGE_OUT (REQ $REQ)"
check "START edge: the run's first sample follows the last idle one by 1..10 polls" \
    awk -v d="$EDGE_IN" -v r="$REQ" 'BEGIN { exit !(d ~ /^[0-9]+$/ && d % r == 0 && d >= r && d <= 10 * r) }'
check_eq "STOP edge: the first idle sample is the poll right after the run's last" "$EDGE_OUT" "$REQ"
check "the run's first sample is at or after its start (belongs to the run)" \
    awk -v a="$(q "SELECT extract(epoch FROM min(ts)) FROM process_data_points WHERE process_id = $PROC")" -v s="$T_START" 'BEGIN { exit !(a >= s) }'
check_ge "self-test: one idle counter row left out is a bad idle step" \
    "$(steps "value <> (SELECT value FROM machine_history WHERE parameter_id = $RC_ID ORDER BY ts OFFSET 3 LIMIT 1)" | cut -d' ' -f2)" 1
check_ge "self-test: one run counter row left out is a bad run step" \
    "$(steps "value <> (SELECT value FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID ORDER BY ts OFFSET 30 LIMIT 1)" | cut -d' ' -f4)" 1

# --- the policy per parameter and the deadband -------------------------------
check_ge "heater2.setpoint (2000 ms) in idle phase 1: 4..6 rows" "$(hist "$H2_ID" "$T0" "$T_START")" 4
check "... not more than 6" test "$(hist "$H2_ID" "$T0" "$T_START")" -le 6
check_eq "... consecutive idle rows at least 1900 ms apart (20 polls, jitter)" \
    "$(q "SELECT count(*) FROM (SELECT ts - lag(ts) OVER (ORDER BY ts) AS g FROM machine_history WHERE parameter_id = $H2_ID) x WHERE g < interval '1900 ms'")" 0
check_eq "every 1000 ms parameter: idle rows 900..1200 ms apart within a phase (10 polls, jitter)" \
    "$(q "SELECT count(*) FROM (SELECT parameter_id, ts - lag(ts) OVER (PARTITION BY parameter_id ORDER BY ts) AS g
                                 FROM machine_history WHERE parameter_id NOT IN ($H2_ID, $H1_ID)) x
          WHERE g < interval '900 ms' OR (g > interval '1200 ms' AND g < interval '5 s')")" 0
check_eq "mfc_tma.setpoint (idle_interval_ms 0): no idle row" "$(hist "$TMA_ID" 0 "$T_END")" 0
check_ge "... but recorded in the run" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $TMA_ID")" 90
check_eq "heater1.setpoint behind a deadband (constant): one idle row from the start to START" \
    "$(hist "$H1_ID" 0 "$T_START")" 1
check_ge "heater1.temperature without a deadband: >= 9 idle rows in phase 1" \
    "$(hist "$T1_ID" "$T0" "$T_START")" 9

# --- accounting --------------------------------------------------------------
# idle recording goes on: compare in one query, or against a time
check_eq "ledger rows of kind idle add up to machine_history (one snapshot)" \
    "$(q "SELECT (SELECT coalesce(sum(rows), 0) FROM ingest_ledger WHERE kind = 5) - (SELECT count(*) FROM machine_history)")" 0
check_eq "idle ledger rows carry no process" \
    "$(q "SELECT count(*) FROM ingest_ledger WHERE kind = 5 AND process_id IS NOT NULL")" 0
# A count R, read at T: every row counted is stored with ts <= T, and every
# row polled more than AGE_S before T was counted
sandwich() {   # NAME R T [AGE_S] — R counted at most AGE_S (1) seconds before T
    local age=${4:-1}
    wait_until 10 "$1: $2 idle rows stored" bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c \"SELECT count(*) FROM machine_history WHERE ts <= to_timestamp($3)\") -ge $2 ]"
    check_ge "$1 ($2) <= idle rows stored with ts up to then" \
        "$(q "SELECT count(*) FROM machine_history WHERE ts <= to_timestamp($3)")" "$2"
    check_ge "... and >= those stored with ts over $age s before" \
        "$2" "$(q "SELECT count(*) FROM machine_history WHERE ts < to_timestamp($3) - interval '$age s'")"
}
R=$(st idle rows); T_R=$(now_s)
sandwich "STATUS idle rows" "$R" "$T_R"
check "STATUS idle points/s is about NPARAM - 1 per s (between 20 and 40)" \
    awk -v r="$(st idle per_s)" 'BEGIN { exit !(r >= 20 && r <= 40) }'
MURL=$(st metrics url)
R=$(curl -fsS "$MURL" | sed -n 's/^aldrec_idle_points_total \([0-9]*\)$/\1/p'); T_R=$(now_s)
# /metrics is republished once a second, plus the main loop's wake-up
sandwich "/metrics aldrec_idle_points_total" "${R:-x}" "$T_R" 2

# --- a PostgreSQL outage during idle time loses nothing ----------------------
T_OUT=$(now_s)
pg_crash
wait_link 15 spooling
sleep 4
check_ge "idle batches wait in the spool during the outage" "$(st queue batches)" 1
pg_restart
wait_until 30 "spool drained" queue_is -eq 0
sleep 3
wait_until 10 "spool drained" queue_is -eq 0
read -r IOK2 IBAD2 ROK2 RBAD2 <<<"$(steps)"
echo "# after the outage: idle steps ok $IOK2 bad $IBAD2; overruns $(st poll_cycles overruns), samples $(st samples)"
[ "$IBAD2" = 0 ] || q "WITH s AS ($seq_sql), d AS (SELECT ts, src, lag(src) OVER w AS psrc, value - lag(value) OVER w AS d,
      ts - lag(ts) OVER w AS g FROM s WINDOW w AS (ORDER BY ts, value))
    SELECT '# bad step', ts, d, g FROM d WHERE src = 'i' AND psrc = 'i' AND d <> 10 * $REQ"
check_eq "after the outage: idle counter rows still step by exactly 10 polls" "$IBAD2" 0
check_ge "... across the outage (>= 8 more steps)" "$IOK2" $((IOK + 8))
check_eq "... the outage's window is covered (no gap over 1.2 s since it began)" \
    "$(q "SELECT count(*) FROM (SELECT ts - lag(ts) OVER (ORDER BY ts) AS g FROM machine_history WHERE parameter_id = $RC_ID AND ts >= to_timestamp($T_OUT) - interval '2 s') x WHERE g > interval '1200 ms'")" 0
# (one statement, one snapshot: aldrecd goes on storing idle batches
# between two separate queries)
check_eq "... ledger (idle) = machine_history after the replay" \
    "$(q "SELECT (SELECT coalesce(sum(rows), 0) FROM ingest_ledger WHERE kind = 5) - (SELECT count(*) FROM machine_history)")" 0
check_eq "... no gap record" "$(q "SELECT count(*) FROM data_gaps")" 0

# --- export --machine and --before against the raw rows ----------------------
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.%6NZ; }
PARAMS=system.read_counter,heater2.setpoint,mfc_tma.setpoint
IDS="$RC_ID,$H2_ID,$TMA_ID"
raw_rows() {   # FROM TO (timestamptz SQL) → ts,name,value,quality of both tables
    psql -XAtq -F, "$ADMIN_DSN" -c "SELECT to_char(d.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
        n.full_name, d.value, d.quality
        FROM (SELECT parameter_id, ts, value, quality FROM process_data_points
              UNION ALL SELECT parameter_id, ts, value, quality FROM machine_history) d
        JOIN parameter_names n USING (parameter_id)
        WHERE d.parameter_id IN ($IDS) AND d.ts >= $1 AND d.ts < $2"
}
cmp_long() {   # export-csv raw-csv → "same N" or the difference
    python3 - "$@" <<'PY'
import csv, sys
exp, raw = sys.argv[1:3]
want = [(t, n, float(v) if v else None, int(q)) for t, n, v, q in csv.reader(open(raw))]
rows = list(csv.reader(open(exp)))[1:]
got = [(r[0], r[1], float(r[3]) if r[3] else None, int(r[4])) for r in rows]
if sorted(got) == sorted(want):
    print('same', len(want))
else:
    print('differ: missing', sorted(set(want) - set(got))[:3], 'extra', sorted(set(got) - set(want))[:3],
          len(got), 'vs', len(want))
PY
}
F=$(iso "$T0"); TO=$(iso "$T_END")
$A export --machine ald-demo --from "$F" --to "$TO" --param "$PARAMS" --layout long > "$WORK/m.csv"; rc=$?
check_eq "export --machine exits 0" "$rc" 0
raw_rows "'$F'" "'$TO'" > "$WORK/m-raw.csv"
check_match "export --machine (idle, run, idle) = the raw rows of both tables" \
    "$(cmp_long "$WORK/m.csv" "$WORK/m-raw.csv")" "^same [0-9]{3,}"
check_ge "... holding the run's rows and idle rows" \
    "$(grep -c ',system.read_counter,' "$WORK/m.csv")" $((ROK + IOK))
$A export --process "$PROC" --before 5s --param "$PARAMS" --layout long > "$WORK/b.csv"; rc=$?
check_eq "export --process --before 5s exits 0" "$rc" 0
raw_rows "(SELECT started_at - interval '5 s' FROM processes WHERE id = $PROC)" \
         "(SELECT ended_at + interval '1 microsecond' FROM processes WHERE id = $PROC)" > "$WORK/b-raw.csv"
check_match "export --before 5s = the raw rows from 5 s before the start to the end" \
    "$(cmp_long "$WORK/b.csv" "$WORK/b-raw.csv")" "^same [0-9]{3,}"
check_ge "... with the 5 idle seconds before the start in it (>= 4 counter rows)" \
    "$(q "SELECT count(*) FROM machine_history WHERE parameter_id = $RC_ID AND ts >= (SELECT started_at - interval '5 s' FROM processes WHERE id = $PROC) AND ts < (SELECT started_at FROM processes WHERE id = $PROC)")" 4
$A export --machine ald-demo --from "$F" --to "$TO" --param system.read_counter --every 2s --layout long > "$WORK/e.csv"; rc=$?
check_eq "export --machine --every 2s exits 0" "$rc" 0
check_eq "... bucket sample counts and min/max = SQL date_bin on the raw rows" \
    "$(tail -n +2 "$WORK/e.csv" | cut -d, -f1,4,5,7 | sort | md5sum)" \
    "$(psql -XAtq -F, "$ADMIN_DSN" -c "SELECT to_char(date_bin('2 s', ts, '$F') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), count(*), min(value)::bigint, max(value)::bigint
        FROM (SELECT ts, value FROM process_data_points WHERE parameter_id = $RC_ID UNION ALL SELECT ts, value FROM machine_history WHERE parameter_id = $RC_ID) d
        WHERE ts >= '$F' AND ts < '$TO' GROUP BY 1" | sort | md5sum)"
check_eq "machine_series_bucketed counts the run's samples as in_run" \
    "$(q "SELECT sum(in_run) FROM machine_series_bucketed('ald-demo', ARRAY[$RC_ID], '1 minute', '$F', '$TO')")" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID")"
out=$($A export --machine nosuch --from "$F" --to "$TO" 2>&1); rc=$?
check_eq "export --machine of an unknown machine exits 2" "$rc" 2
check_match "... naming it" "$out" 'unknown machine "nosuch"'
out=$($A export --machine ald-demo --from "$F" 2>&1); rc=$?
check_eq "export --machine without --to exits 2" "$rc" 2
check_match "... saying what it needs" "$out" "needs --from and --to"
out=$($A export --process "$PROC" --before soon 2>&1); rc=$?
check_eq "export --before with a bad duration exits 2" "$rc" 2
check_match "... naming it" "$out" '--before: expected a duration such as 30m, got "soon"'

# --- plot --before and --machine against the raw rows ---------------------------
# plot_vs_raw SVG FROM TO (timestamptz SQL) → "same N" when the SVG's time
# axis is exactly [FROM, TO), each series counts the samples of both tables
# in it, and is drawn from its first good sample to its last (within one
# pixel column).
plot_vs_raw() {
    psql -XAtq -F' ' -v ON_ERROR_STOP=1 "$ADMIN_DSN" -c "SELECT n.full_name, count(*),
            (extract(epoch FROM min(d.ts) FILTER (WHERE d.quality = 0 AND d.value IS NOT NULL)) * 1000000)::int8,
            (extract(epoch FROM max(d.ts) FILTER (WHERE d.quality = 0 AND d.value IS NOT NULL)) * 1000000)::int8,
            (extract(epoch FROM $2) * 1000000)::int8, (extract(epoch FROM $3) * 1000000)::int8
        FROM (SELECT parameter_id, ts, value, quality FROM process_data_points
              UNION ALL SELECT parameter_id, ts, value, quality FROM machine_history) d
        JOIN parameter_names n USING (parameter_id)
        WHERE d.parameter_id IN ($IDS) AND d.ts >= $2 AND d.ts < $3 GROUP BY 1" > "$WORK/plot.raw"
    python3 - "$1" "$WORK/plot.raw" <<'PY'
import re, sys, xml.etree.ElementTree as ET
NS = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[1]).getroot()
t0, t1 = int(root.get('data-t0-us')), int(root.get('data-t1-us'))
cls = lambda e: (e.get('class') or '').split()
got = {}
for p in root.iter(NS + 'g'):
    if 'panel' not in cls(p):
        continue
    x, w = float(p.get('data-x')), float(p.get('data-width'))
    for s in p.iter(NS + 'g'):
        if 'series' not in cls(s):
            continue
        xs = [float(m) for m in re.findall(r'[ML]([-\d.]+) [-\d.]+', s.find(NS + 'path').get('d'))]
        xt = lambda px: t0 + (px - x) / w * (t1 - t0)
        got[s.get('data-param')] = (int(s.get('data-samples')), xt(min(xs)), xt(max(xs)), (t1 - t0) / w)
bad = []
rows = [l.split() for l in open(sys.argv[2]) if l.strip()]
for name, n, lo, hi, f, t in rows:
    if (t0, t1) != (int(f), int(t)):
        bad.append(('window', t0, t1, f, t))
    g = got.get(name)
    if not g or g[0] != int(n) or abs(g[1] - int(lo)) > g[3] or abs(g[2] - int(hi)) > g[3]:
        bad.append((name, g, n, lo, hi))
if sorted(got) != sorted(r[0] for r in rows):
    bad.append(('series', sorted(got), sorted(r[0] for r in rows)))
print('same %d' % sum(int(r[1]) for r in rows) if rows and not bad else 'differ %s' % bad)
PY
}
$A plot --process "$PROC" --before 5s --param "$PARAMS" -o "$WORK/b.svg"; rc=$?
check_eq "plot --process --before 5s exits 0" "$rc" 0
check_match "plot --before 5s: the window, the samples and the drawn span of each series = the raw rows of both tables" \
    "$(plot_vs_raw "$WORK/b.svg" "(SELECT started_at - interval '5 s' FROM processes WHERE id = $PROC)" \
                   "(SELECT ended_at + interval '1 microsecond' FROM processes WHERE id = $PROC)")" "^same [0-9]{3,}"
$A plot --machine ald-demo --from "$F" --to "$TO" --param "$PARAMS" -o "$WORK/m.svg"; rc=$?
check_eq "plot --machine exits 0" "$rc" 0
check_match "plot --machine (idle, run, idle) = the raw rows of both tables" \
    "$(plot_vs_raw "$WORK/m.svg" "'$F'::timestamptz" "'$TO'::timestamptz")" "^same [0-9]{3,}"
check_match "plot --machine says which machine" "$(grep -o '<title>[^<]*' "$WORK/m.svg")" "aldrec machine ald-demo"

check_done idle_record
