#!/bin/bash
# query_run.sh — the read side against a real recorded run: aldsim → aldrecd
# → PostgreSQL with recipe steps, then `aldrec runs|export|summary|plot`
# as the read-only engineer role. Every figure the commands print is
# compared with the same figure computed here, independently, in SQL over
# the raw rows of process_data_points. A fabricated run with a one-sample
# spike, a stretch of bad quality and a hole in the data checks that these
# stay visible (bucket max, summary, plot).
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-query-run
pg_start
aldsim_start a --seed 11
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.batch_rows=100 recorder.flush_interval_ms=200
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
A="$BIN/aldrec --config $CFG"
PARAMS=heater1.temperature,chamber.pressure,mfc_tma.flow

# --- roles ------------------------------------------------------------------
out=$(psql -XAtq "$REC_DSN" -c "SELECT count(*) FROM process_data_points" 2>&1)
check_match "the recorder role cannot read recorded data" "$out" "permission denied"
out=$(psql -XAtq "$READER_DSN" -c "INSERT INTO process_steps VALUES (1, 1, 'x', now())" 2>&1)
check_match "the engineer role cannot write" "$out" "permission denied"
# (count(*) >= 0 is true whatever the count: what fails is the SELECT itself
# if the role may not read the view, and then the error text is compared.)
check_eq "the engineer role reads through the views" \
    "$(psql -XAtq "$READER_DSN" -c "SELECT count(*) >= 0 FROM process_runs" 2>&1)" t

# --- record a run with three steps -------------------------------------------
if ! aldrecd_start "$CFG"; then not_ok "aldrecd starts"; check_done query_run; exit 1; fi
PROC=$($A process start --recipe q-recipe --lot Q1)
RC_ID=$(q "SELECT parameter_id FROM parameter_names WHERE full_name = 'system.read_counter'")
# Each step lasts until at least 8 polls of it are stored (not a fixed sleep).
samples_since_last_step() {
    [ "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID
             AND ts > (SELECT max(started_at) FROM process_steps WHERE process_id = $PROC)")" -ge 8 ]
}
steps_ok=0
for s in "1:pump down" "2:heat up" "3:ald cycles"; do
    record_step "$CFG" "$PROC" "${s%%:*}" "${s#*:}" &&
        wait_until 30 "samples in step ${s%%:*}" samples_since_last_step &&
        steps_ok=$((steps_ok + 1))
done
$A process stop >/dev/null
check_eq "recorded process $PROC: 3 steps stored through aldrecd, each with 8 polls or more" "$steps_ok" 3

# --- runs ---------------------------------------------------------------------
out=$($A runs --format csv)
POINTS=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC")
check_match "runs lists the process with recipe, lot, status, steps and points" "$out" \
    "^$PROC,ald-demo,q-recipe,Q1,[0-9T:Z-]+,[0-9.]+,completed,3,$POINTS\$"
check_eq "runs --recipe filters" "$($A runs --recipe other | tail -1)" "(no runs match)"
check_eq "runs --since 1h finds it" "$($A runs --since 1h --format csv | cut -d, -f1 | tail -1)" "$PROC"
out=$($A runs --format json | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["process"], r["steps"], r["points"])')
check_eq "runs --format json" "$out" "$PROC 3 $POINTS"

# --- export, raw, wide CSV vs the raw rows ----------------------------------------
ids_of() { q "SELECT string_agg(parameter_id::text, ',') FROM parameter_names WHERE full_name = ANY (string_to_array('$1', ','))"; }
IDS=$(ids_of "$PARAMS")
raw_rows() {   # process [extra SQL condition] → ts,name,value per line
    psql -XAtq -F, "$ADMIN_DSN" -c "SELECT to_char(d.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
        n.full_name, d.value, d.quality FROM process_data_points d JOIN parameter_names n USING (parameter_id)
        WHERE d.process_id = $1 AND d.parameter_id IN ($IDS) ${2:-}"
}
raw_rows "$PROC" > "$WORK/raw.csv"
$A export --process "$PROC" --param "$PARAMS" --format csv > "$WORK/wide.csv"; rc=$?
check_eq "export exits 0" "$rc" 0
cmp_export() {   # format layout export-file raw-file → "same N" or a difference
    python3 - "$@" <<'PY'
import csv, json, sys
fmt, layout, exp, raw = sys.argv[1:5]
want = set()
for ts, name, value, quality in csv.reader(open(raw)):
    want.add((ts, name, float(value) if value else None, int(quality)))
got = set(); nrows = 0
if fmt == 'csv':
    rows = list(csv.reader(open(exp)))
    head, body = rows[0], rows[1:]
else:
    doc = json.load(open(exp)); head, body = doc['columns'], doc['rows']
nrows = len(body)
if layout == 'wide':
    names = [h.split(' [')[0] for h in head[1:]]
    for r in body:
        for name, cell in zip(names, r[1:]):
            if cell not in ('', None):
                got.add((r[0], name, float(cell)))
    want = {(t, n, v) for t, n, v, q in want if v is not None}
    extra = nrows - len({t for t, n, v in want})
else:
    for r in body:
        got.add((r[0], r[1], None if r[3] in ('', None) else float(r[3]), int(r[4])))
    extra = nrows - len(want)
if got == want and extra == 0:
    print('same', len(want))
else:
    print('differ: missing', sorted(want - got)[:3], 'extra', sorted(got - want)[:3], 'row surplus', extra)
PY
}
check_match "wide CSV export = the raw rows (every value, one line per timestamp)" \
    "$(cmp_export csv wide "$WORK/wide.csv" "$WORK/raw.csv")" "^same [0-9]{2,}"
check_match "wide CSV header carries the units" "$(head -1 "$WORK/wide.csv")" \
    '^ts,heater1.temperature \[degC\],chamber.pressure \[Torr\],mfc_tma.flow \[sccm\]$'

# --- export of one step, long JSON ------------------------------------------------
STEP2="AND d.ts >= (SELECT started_at FROM process_steps WHERE process_id = $PROC AND step_no = 2)
       AND d.ts <  (SELECT started_at FROM process_steps WHERE process_id = $PROC AND step_no = 3)"
raw_rows "$PROC" "$STEP2" > "$WORK/raw2.csv"
$A export --process "$PROC" --param "$PARAMS" --step 2 --format json --layout long > "$WORK/long2.json"
check_match "long JSON export of step 2 = the raw rows of step 2 (with quality)" \
    "$(cmp_export json long "$WORK/long2.json" "$WORK/raw2.csv")" "^same [0-9]+"
check_eq "JSON export carries the units" \
    "$(python3 -c 'import json,sys; print([p["units"] for p in json.load(open(sys.argv[1]))["parameters"]])' "$WORK/long2.json")" \
    "['degC', 'Torr', 'sccm']"
$A export --process "$PROC" --param "$PARAMS" --from +1s --to +2500ms --layout long > "$WORK/win.csv"
raw_rows "$PROC" "AND d.ts >= (SELECT started_at + interval '1 s' FROM processes WHERE id = $PROC)
                  AND d.ts <  (SELECT started_at + interval '2.5 s' FROM processes WHERE id = $PROC)" > "$WORK/rawwin.csv"
check_match "--from +1s --to +2500ms exports exactly that window" \
    "$(cmp_export csv long "$WORK/win.csv" "$WORK/rawwin.csv")" "^same [0-9]+"

# --- bucketed export vs date_bin over the raw rows ---------------------------------
$A export --process "$PROC" --param "$PARAMS" --every 500ms > "$WORK/b.csv"
psql -XAtq -F, "$ADMIN_DSN" -c "SELECT to_char(date_bin('500 ms', d.ts, p.started_at) AT TIME ZONE 'UTC',
    'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), n.full_name, min(d.value), avg(d.value), max(d.value)
    FROM process_data_points d JOIN processes p ON p.id = d.process_id JOIN parameter_names n USING (parameter_id)
    WHERE d.process_id = $PROC AND d.parameter_id IN ($IDS) GROUP BY 1, 2" > "$WORK/rawb.csv"
cmp_buckets() {   # export (wide, --every) vs min,mean,max per bucket and parameter
    python3 - "$1" "$2" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head = rows[0]
got = {}
for r in rows[1:]:
    for i in range(1, len(head), 3):
        name = head[i].split(' min')[0]
        if r[i] != '':
            got[(r[0], name)] = tuple(float(x) for x in r[i:i + 3])
want = {(t, n): (float(a), float(b), float(c)) for t, n, a, b, c in csv.reader(open(sys.argv[2]))}
bad = [k for k in want if k not in got or got[k][0] != want[k][0] or got[k][2] != want[k][2]
       or abs(got[k][1] - want[k][1]) > 1e-9 * max(1, abs(want[k][1]))]
print('same', len(want)) if not bad and len(got) == len(want) else print('differ', bad[:3], len(got), len(want))
PY
}
check_match "--every 500ms: min/mean/max per bucket = date_bin over the raw rows" \
    "$(cmp_buckets "$WORK/b.csv" "$WORK/rawb.csv")" "^same [0-9]+"

# --- a fabricated run: spike, bad quality, hole, steps --------------------------------
# heater1.temperature at 10 Hz for 60 s (limits 0..400): 100 + a slow wave; at
# 20.0 s one sample of 10000; 30.0..30.4 s five failed reads (NULL, quality
# 3); nothing between 40.0 and 43.0 s. Steps: 1 at 0 s, 2 at 30 s.
H1=$(q "SELECT parameter_id FROM parameter_names WHERE full_name = 'heater1.temperature'")
FAB=$(q "INSERT INTO processes (machine_id, recipe, lot, recorder_id, started_at, ended_at, status)
         SELECT id, 'fab', 'F1', 'test', date_trunc('second', now()) - interval '2 min',
                date_trunc('second', now()) - interval '1 min', 'completed'
         FROM machines WHERE name = 'ald-demo' RETURNING id" | head -1)
q "INSERT INTO process_data_points
   SELECT $FAB, $H1, p.started_at + g * interval '100 ms',
          CASE WHEN g = 200 THEN 10000 WHEN g BETWEEN 300 AND 304 THEN NULL ELSE 100 + 5 * sin(g / 50.0) END,
          CASE WHEN g BETWEEN 300 AND 304 THEN 3 ELSE 0 END
   FROM processes p, generate_series(0, 599) g WHERE p.id = $FAB AND g NOT BETWEEN 401 AND 429;
   INSERT INTO process_steps SELECT $FAB, 1, 'first', started_at FROM processes WHERE id = $FAB;
   INSERT INTO process_steps SELECT $FAB, 2, 'second', started_at + interval '30 s' FROM processes WHERE id = $FAB" >/dev/null

$A export --process "$FAB" --param heater1.temperature --every 10s --layout long > "$WORK/spike.csv"
check_eq "bucketed export keeps the one-sample spike in max (bucket 20..30 s)" \
    "$(awk -F, 'NR == 4 {print $7}' "$WORK/spike.csv")" 10000
check_eq "... while the mean of that bucket is not the spike" \
    "$(awk -F, 'NR == 4 {print ($6 < 300)}' "$WORK/spike.csv")" 1
check_eq "... and the buckets either side have no spike" \
    "$(awk -F, 'NR == 3 || NR == 5 {printf "%d ", ($7 < 200)}' "$WORK/spike.csv")" "1 1 "
check_eq "... bucket 30..40 s counts its 5 bad-quality samples" \
    "$(awk -F, 'NR == 5 {print $4 "/" $8}' "$WORK/spike.csv")" "100/5"

# --- summary vs an independent computation over the raw rows ------------------------
# Range join on the step spans (not width_bucket), UNION ALL for the run
# (not grouping sets), poll_interval_ms from the table (no deadband here).
independent_summary() {   # process ids → step,name,samples,min,max,mean,stddev,bad,outside_s,gaps
    psql -XAtq -F, "$ADMIN_DSN" <<SQL
WITH st AS (
    SELECT step_no, started_at,
           coalesce(lead(started_at) OVER (ORDER BY started_at),
                    (SELECT ended_at FROM processes WHERE id = $1)) AS ended_at
    FROM process_steps WHERE process_id = $1),
d AS (
    SELECT d.*, cp.min_value, cp.max_value, cp.poll_interval_ms, mc.name || '.' || cp.name AS pname
    FROM process_data_points d JOIN component_parameters cp ON cp.id = d.parameter_id
    JOIN machine_components mc ON mc.id = cp.component_id
    WHERE d.process_id = $1 AND d.parameter_id IN ($2)),
j AS (SELECT st.step_no, d.* FROM d JOIN st ON d.ts >= st.started_at AND d.ts < st.ended_at
      UNION ALL SELECT NULL, d.* FROM d),
w AS (SELECT j.*, extract(epoch FROM lead(ts) OVER (PARTITION BY step_no, parameter_id ORDER BY ts) - ts) AS dt FROM j)
SELECT coalesce(step_no::text, 'run'), pname, count(*), min(value), max(value), avg(value), stddev_samp(value),
       count(*) FILTER (WHERE quality <> 0),
       coalesce(sum(dt) FILTER (WHERE value < min_value OR value > max_value), 0),
       count(*) FILTER (WHERE dt > 2.5 * poll_interval_ms / 1000.0)
FROM w GROUP BY 1, 2;
SQL
}
cmp_summary() {   # summary.json independent.csv
    python3 - "$1" "$2" <<'PY'
import csv, json, math, sys
doc = json.load(open(sys.argv[1]))
got = {}
sections = [('run', doc['run']['parameters'])] + [(str(s['step']), s['parameters']) for s in doc['steps']]
for step, params in sections:
    for p in params:
        got[(step, p['name'])] = p
bad = []
for r in csv.reader(open(sys.argv[2])):
    key = (r[0], r[1]); g = got.pop(key, None)
    if g is None:
        bad.append(('missing', key)); continue
    want = dict(samples=int(r[2]), min=float(r[3] or 'nan'), max=float(r[4] or 'nan'), mean=float(r[5] or 'nan'),
                stddev=float(r[6] or 'nan'), bad_quality=int(r[7]), outside_s=float(r[8]), gaps=int(r[9]))
    for k, v in want.items():
        x = g[k] if g[k] is not None else float('nan')
        if not (x == v or (math.isnan(x) and math.isnan(v)) or abs(x - v) <= 1e-9 * max(1, abs(v))):
            bad.append((key, k, x, v))
bad += [('extra', k) for k in got]
print('same', len(sections)) if not bad else print('differ', bad[:4])
PY
}
$A summary --process "$PROC" --param "$PARAMS" --format json > "$WORK/sum.json"; rc=$?
check_eq "summary exits 0" "$rc" 0
independent_summary "$PROC" "$IDS" > "$WORK/sum.csv"
check_eq "summary of the recorded run (run + 3 steps × 3 parameters) = independent SQL" \
    "$(cmp_summary "$WORK/sum.json" "$WORK/sum.csv")" "same 4"
$A summary --process "$FAB" --param heater1.temperature --format json > "$WORK/fsum.json"
independent_summary "$FAB" "$H1" > "$WORK/fsum.csv"
check_eq "summary of the fabricated run = independent SQL" "$(cmp_summary "$WORK/fsum.json" "$WORK/fsum.csv")" "same 3"
check_eq "... run: 571 samples, 5 bad, 0.1 s outside the limits (the spike), 1 gap" \
    "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["run"]["parameters"][0]; print(p["samples"], p["bad_quality"], round(p["outside_s"], 6), p["gaps"], p["max"])' "$WORK/fsum.json")" \
    "571 5 0.1 1 10000"
out=$($A summary --process "$FAB" --step 2)
check_match "summary table of one step names it" "$out" "^step 2 second "
check_match "... and shows its figures" "$out" "^  heater1.temperature +degC +271 +95 +105 .* 5 +0 +1$"
check_eq "summary table has no other step" "$(grep -c '^step ' <<<"$out")" 1

# --- compare_runs: two runs of one recipe side by side, vs the raw rows -------------
# A second run of recipe "fab": 70 s at 10 Hz, step 2 from 25.3 s (off the
# whole second: buckets are aligned to each run's own step start) to the end,
# nothing from 28.3 to 30.3 s (its step-2 buckets 3 and 4), two failed reads
# at 50.0 s, and heater2.temperature at 500 (must not leak into heater1's
# figures). Step 2 lasts 30 s in FAB (with its hole at step offsets 10..13 s)
# and 44.7 s here, so each run has buckets the other lacks.
FAB2=$(q "INSERT INTO processes (machine_id, recipe, lot, recorder_id, started_at, ended_at, status)
          SELECT id, 'fab', 'F2', 'test', date_trunc('second', now()) - interval '5 min',
                 date_trunc('second', now()) - interval '5 min' + interval '70 s', 'completed'
          FROM machines WHERE name = 'ald-demo' RETURNING id" | head -1)
H2=$(q "SELECT parameter_id FROM parameter_names WHERE full_name = 'heater2.temperature'")
q "INSERT INTO process_data_points
   SELECT $FAB2, $H1, p.started_at + g * interval '100 ms',
          CASE WHEN g IN (500, 501) THEN NULL ELSE 110 + 3 * cos(g / 40.0) END,
          CASE WHEN g IN (500, 501) THEN 3 ELSE 0 END
   FROM processes p, generate_series(0, 699) g WHERE p.id = $FAB2 AND g NOT BETWEEN 283 AND 302;
   INSERT INTO process_data_points
   SELECT $FAB2, $H2, p.started_at + g * interval '100 ms', 500, 0
   FROM processes p, generate_series(0, 699) g WHERE p.id = $FAB2;
   INSERT INTO process_steps SELECT $FAB2, 1, 'first', started_at FROM processes WHERE id = $FAB2;
   INSERT INTO process_steps SELECT $FAB2, 2, 'second', started_at + interval '25.3 s' FROM processes WHERE id = $FAB2" >/dev/null
# Independently: a step ends at the next step's start (min over
# process_steps, no window function) or the process end; a sample's bucket
# is floor(seconds since the step start / bucket) (no date_bin); the two
# runs are lined up and mean_diff taken in Python.
raw_buckets() {   # run_a run_b step param bucket_s → side,offset,n,min,mean,max per line
    psql -XAtq -F, -v ON_ERROR_STOP=1 "$ADMIN_DSN" <<SQL
WITH st AS (
    SELECT CASE s.process_id WHEN $1 THEN 'a' ELSE 'b' END AS side, s.process_id, s.started_at,
           coalesce((SELECT min(n.started_at) FROM process_steps n
                      WHERE n.process_id = s.process_id AND n.started_at > s.started_at),
                    (SELECT ended_at FROM processes WHERE id = s.process_id)) AS ended_at
    FROM process_steps s WHERE s.process_id IN ($1, $2) AND s.step_no = $3)
SELECT st.side, floor(extract(epoch FROM d.ts - st.started_at) / $5) * $5,
       count(*), min(d.value), avg(d.value), max(d.value)
FROM process_data_points d JOIN st ON d.process_id = st.process_id
WHERE d.parameter_id = $4 AND d.ts >= st.started_at AND d.ts < st.ended_at
GROUP BY 1, 2;
SQL
}
cmp_compare() {   # compare_runs.csv raw.csv → "same N (a only N, b only N)" or the differences
    python3 - "$1" "$2" <<'PY'
import csv, sys
num = lambda x: None if x == '' else float(x)
got = [[num(x) for x in r] for r in csv.reader(open(sys.argv[1]))]
side = {'a': {}, 'b': {}}
for s, o, n, lo, mean, hi in csv.reader(open(sys.argv[2])):
    side[s][round(float(o), 6)] = (int(n), num(lo), num(mean), num(hi))
keys = sorted(set(side['a']) | set(side['b']))
want = []
for k in keys:
    a, b = side['a'].get(k, (None,) * 4), side['b'].get(k, (None,) * 4)
    want.append((k,) + a + b + (None if a[2] is None or b[2] is None else b[2] - a[2],))
def same(x, y):
    return x is None and y is None or (x is not None and y is not None and abs(x - y) <= 1e-9 * max(1, abs(y)))
bad = [] if len(got) == len(want) else [('rows', len(got), len(want))]
bad += [(g, w) for g, w in zip(got, want) if len(g) != len(w) or not all(same(x, y) for x, y in zip(g, w))]
if [g[0] for g in got] != sorted(g[0] for g in got):
    bad.append('not ordered by offset')
if bad:
    print('differ', bad[:3])
else:
    print('same %d (a only %d, b only %d)' % (len(want), sum(k not in side['b'] for k in keys),
                                               sum(k not in side['a'] for k in keys)))
PY
}
compare_check() {   # step bucket bucket_s expected-shape
    psql -XAtq -F, -v ON_ERROR_STOP=1 "$READER_DSN" \
        -c "SELECT * FROM compare_runs($FAB, $FAB2, $1, $H1, '$2')" > "$WORK/cmp.csv"
    raw_buckets "$FAB" "$FAB2" "$1" "$H1" "$3" > "$WORK/cmpraw.csv"
    check_eq "compare_runs step $1, buckets of $2 (engineer role) = the raw rows bucketed independently" \
        "$(cmp_compare "$WORK/cmp.csv" "$WORK/cmpraw.csv")" "$4"
}
# The expected shapes follow from the fixture: step 1 is 30 s in FAB and
# 25.3 s in FAB2; step 2 as above.
compare_check 1 '1 second' 1 "same 30 (a only 4, b only 0)"
compare_check 2 '1 second' 1 "same 45 (a only 2, b only 17)"
compare_check 2 '2500 ms' 2.5 "same 18 (a only 0, b only 6)"
check_eq "... the spike shows as a_max 10000 at offset 20 s of step 1" \
    "$(psql -XAtq "$READER_DSN" -c "SELECT offset_s || ':' || a_max FROM compare_runs($FAB, $FAB2, 1, $H1, '1 second') WHERE a_max > 1000")" \
    "20:10000"
bad_sql() {   # description regex SQL — must fail with a message matching regex
    local out rc
    out=$(psql -XAtq "$READER_DSN" -c "$3" 2>&1); rc=$?
    if [ "$rc" -ne 0 ] && grep -Eq -- "$2" <<<"$out"; then ok "$1: \"$(head -1 <<<"$out")\""
    else not_ok "$1: exit $rc, \"$out\" (expected an error matching /$2/)"; fi
}
bad_sql "compare_runs refuses runs of different recipes" \
    "process $FAB ran recipe \"fab\", process $PROC ran \"q-recipe\"" "SELECT * FROM compare_runs($FAB, $PROC, 1, $H1)"
bad_sql "compare_runs refuses a step one run lacks" "process $FAB has no step 3" \
    "SELECT * FROM compare_runs($FAB, $FAB2, 3, $H1)"
bad_sql "compare_runs refuses an unknown process" "unknown process 999999" \
    "SELECT * FROM compare_runs($FAB, 999999, 1, $H1)"
# --- plot -----------------------------------------------------------------------------
$A plot --process "$PROC" --param "$PARAMS,heater2.temperature" -o "$WORK/run.svg"; rc=$?
check_eq "plot exits 0" "$rc" 0
svg_facts() {   # file → facts about the SVG, one per line
    python3 - "$1" <<'PY'
import re, sys, xml.etree.ElementTree as ET
NS = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[1]).getroot()
t0, t1 = int(root.get('data-t0-us')), int(root.get('data-t1-us'))
def cls(e): return (e.get('class') or '').split()
panels = [e for e in root.iter(NS + 'g') if 'panel' in cls(e)]
print('panels', ' '.join(sorted(p.get('data-units') for p in panels)))
series = [e for e in root.iter(NS + 'g') if 'series' in cls(e)]
print('series', ' '.join(sorted(s.get('data-param') for s in series)))
steps = [e for e in root.iter(NS + 'g') if 'step' in cls(e)]
print('steps', ' '.join('%s@%s' % (s.get('data-step'), s.get('data-t-us')) for s in steps))
limits = [e for e in root.iter(NS + 'line') if 'limit' in cls(e)]
print('limits', ' '.join(sorted('%s:%s' % (l.get('data-param'), l.get('data-limit')) for l in limits)))
print('window %d %d' % (t0, t1))
for p in panels:
    x, y, w, h = (float(p.get(k)) for k in ('data-x', 'data-y', 'data-width', 'data-height'))
    lo, hi = float(p.get('data-ymin')), float(p.get('data-ymax'))
    for s in p.iter(NS + 'g'):
        if 'series' not in cls(s): continue
        d = s.find(NS + 'path').get('d')
        pts = [tuple(map(float, m)) for m in re.findall(r'[ML]([-\d.]+) ([-\d.]+)', d)]
        top = min(py for px, py in pts)
        vmax = lo + (y + h - top) / h * (hi - lo)
        print('series %s points %d width %d max %.6g tol %.3g samples %s' % (
            s.get('data-param'), len(pts), w, vmax, (hi - lo) / h * 1.5, s.get('data-samples')))
        # times of the first and last drawn points (from x), and one column
        xt = lambda px: t0 + (px - x) / w * (t1 - t0)
        print('drawn %s %.0f %.0f %.0f' % (s.get('data-param'), xt(pts[0][0]), xt(max(px for px, py in pts)),
                                          (t1 - t0) / w))
    for r in p.iter(NS + 'rect'):
        if 'gap' in cls(r):
            a = t0 + (float(r.get('x')) - x) / w * (t1 - t0)
            b = a + float(r.get('width')) / w * (t1 - t0)
            print('gap %s %s %.2f %.2f' % (cls(r)[1], r.get('data-param'), (a - t0) / 1e6, (b - t0) / 1e6))
PY
}
facts=$(svg_facts "$WORK/run.svg"); rc=$?
check_eq "the SVG is well-formed XML" "$rc" 0
check_eq "one panel per unit" "$(sed -n 's/^panels //p' <<<"$facts")" "Torr degC sccm"
check_eq "one series per parameter" "$(sed -n 's/^series \([a-z]\)/\1/p' <<<"$facts" | head -1)" \
    "chamber.pressure heater1.temperature heater2.temperature mfc_tma.flow"
want_steps=$(q "SELECT string_agg(step_no || '@' || (extract(epoch FROM started_at) * 1000000)::int8, ' ' ORDER BY started_at)
                FROM process_steps WHERE process_id = $PROC")
check_eq "step markers at the recorded step starts" "$(sed -n 's/^steps //p' <<<"$facts")" "$want_steps"
check_eq "every series is drawn with all its samples counted" \
    "$(awk '$3 == "points" {print $2 "=" $12}' <<<"$facts" | sort | tr '\n' ' ')" \
    "$(q "SELECT string_agg(full_name || '=' || n, ' ' ORDER BY full_name) || ' ' FROM (SELECT n.full_name, count(*) AS n FROM process_data_points d JOIN parameter_names n USING (parameter_id) WHERE d.process_id = $PROC AND n.full_name IN ('heater1.temperature','chamber.pressure','mfc_tma.flow','heater2.temperature') GROUP BY 1) x")"
HMAX=$(q "SELECT max(value) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $H1")
check_eq "heater1.temperature's highest drawn point is its highest sample (within a pixel)" \
    "$(awk -v m="$HMAX" '$3 == "points" && $2 == "heater1.temperature" {d = $8 - m; print (d < 0 ? -d : d) <= $10}' <<<"$facts")" 1

# Set-point events become markers at their time and requested value, in
# their parameter's panel (two written here in SQL: the plot reads them).
q "INSERT INTO setpoint_events (process_id, parameter_id, ts, requested, readback, quality, requested_by)
   SELECT $PROC, $H1, started_at + interval '1.5 s', 230, 229.5, 0, 'recipe r1' FROM processes WHERE id = $PROC
   UNION ALL SELECT $PROC, $H1, started_at + interval '2.25 s',
          (SELECT round(avg(value)) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $H1), NULL, 0, 'ops'
   FROM processes WHERE id = $PROC" >/dev/null   # 230: above the samples (clamped to the top); the mean: inside
$A plot --process "$PROC" --param "$PARAMS" -o "$WORK/sets.svg"
check_eq "plot: a marker per set-point event, at its time and requested value, in its panel" \
    "$(python3 - "$WORK/sets.svg" <<'PY'
import re, sys, xml.etree.ElementTree as ET
NS = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[1]).getroot()
t0, t1 = int(root.get('data-t0-us')), int(root.get('data-t1-us'))
for p in root.iter(NS + 'g'):
    if 'panel' not in (p.get('class') or ''): continue
    x, y, w, h = (float(p.get(k)) for k in ('data-x', 'data-y', 'data-width', 'data-height'))
    lo, hi = float(p.get('data-ymin')), float(p.get('data-ymax'))
    for m in p.iter(NS + 'path'):
        if m.get('class') != 'setpoint': continue
        mx, my = map(float, re.match(r'M([-\d.]+) ([-\d.]+)', m.get('d')).groups())
        t = int(m.get('data-t-us'))
        v = min(max(float(m.get('data-requested')), lo), hi)
        print(p.get('data-units'), m.get('data-param'), (t - t0) // 1000, m.get('data-requested'), m.get('data-readback') or '-',
              abs(mx - (x + (t - t0) / (t1 - t0) * w)) <= 0.1, abs(my - (y + h - (v - lo) / (hi - lo) * h)) <= 0.1,
              m.find(NS + 'title').text)
PY
)" "$(q "SELECT string_agg(format('degC heater1.temperature %s %s %s True True %s', (extract(epoch FROM e.ts - p.started_at) * 1000)::int8,
            e.requested, coalesce(e.readback::text, '-'), e.title), E'\n' ORDER BY e.ts)
          FROM (SELECT *, 'heater1.temperature set to ' || requested || coalesce(' (read back ' || readback || ')', '') || ' by ' || requested_by
                       || ' at ' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS title
                FROM setpoint_events WHERE process_id = $PROC) e JOIN processes p ON p.id = e.process_id")"

# An event before the run (process NULL: between runs) is in the plot that
# starts before the run, not in the run's.
q "INSERT INTO setpoint_events (process_id, parameter_id, ts, requested, readback, quality, requested_by)
   SELECT NULL, $H1, started_at - interval '2 s', 210, 210, 0, 'ops' FROM processes WHERE id = $PROC" >/dev/null
$A plot --process "$PROC" --param "$PARAMS" --before 5s -o "$WORK/before.svg"
markers() { grep -o 'class="setpoint"[^>]*data-requested="[^"]*"' "$1" | sed 's/.*data-requested="\([^"]*\)"/\1/' | tr '\n' ' '; }
check_eq "plot --before: the set-point event between runs too, first" "$(markers "$WORK/before.svg")" \
    "210 230 $(q "SELECT requested FROM setpoint_events WHERE process_id = $PROC AND requested_by = 'ops'") "
$A plot --process "$PROC" --param "$PARAMS" -o "$WORK/sets2.svg"
check_eq "... not in the run's plot" "$(markers "$WORK/sets2.svg" | wc -w)" 2

# --- plot of one step, of a time window ------------------------------------------
# plot_window WHAT SVG PROC FROM TO NAMES — FROM and TO are SQL expressions;
# the SVG's time axis must be exactly [FROM, TO), each series must count the
# samples stored in that window and be drawn from its first good sample
# there to its last (within one pixel column), nothing outside.
plot_window() {
    local what=$1 svg=$2 proc=$3 from=$4 to=$5 names=$6 facts
    facts=$(svg_facts "$svg") || { not_ok "$what: the SVG is not well-formed XML"; return; }
    check_eq "$what: the time axis spans exactly the window" "$(sed -n 's/^window //p' <<<"$facts")" \
        "$(q "SELECT (extract(epoch FROM $from) * 1000000)::int8 || ' ' || (extract(epoch FROM $to) * 1000000)::int8")"
    psql -XAtq -F' ' -v ON_ERROR_STOP=1 "$ADMIN_DSN" -c "SELECT n.full_name, count(*),
            (extract(epoch FROM min(d.ts) FILTER (WHERE d.quality = 0 AND d.value IS NOT NULL)) * 1000000)::int8,
            (extract(epoch FROM max(d.ts) FILTER (WHERE d.quality = 0 AND d.value IS NOT NULL)) * 1000000)::int8
        FROM process_data_points d JOIN parameter_names n USING (parameter_id)
        WHERE d.process_id = $proc AND n.full_name = ANY (string_to_array('$names', ','))
          AND d.ts >= $from AND d.ts < $to GROUP BY 1" > "$WORK/win.raw"
    check_match "$what: every series counts the window's samples and is drawn over their span only" \
        "$(python3 - "$facts" "$WORK/win.raw" <<'PY'
import sys
samples, drawn = {}, {}
for l in sys.argv[1].splitlines():
    f = l.split()
    if f[0] == 'series' and len(f) > 3 and f[2] == 'points':
        samples[f[1]] = int(f[11])
    elif f[0] == 'drawn':
        drawn[f[1]] = tuple(float(x) for x in f[2:5])
rows = [l.split() for l in open(sys.argv[2]) if l.strip()]
bad = []
for name, n, lo, hi in rows:
    if samples.get(name) != int(n):
        bad.append((name, 'samples', samples.get(name), int(n)))
    a, b, col = drawn.get(name, (None, None, 0))
    if a is None or abs(a - int(lo)) > col or abs(b - int(hi)) > col:
        bad.append((name, 'drawn', a, b, 'want', lo, hi))
if sorted(samples) != sorted(r[0] for r in rows):
    bad.append(('series', sorted(samples), sorted(r[0] for r in rows)))
print('same %d' % len(rows) if rows and not bad else 'differ %s' % bad)
PY
)" "^same [1-9]"
}
S2="(SELECT started_at FROM process_steps WHERE process_id = $PROC AND step_no = 2)"
S3="(SELECT started_at FROM process_steps WHERE process_id = $PROC AND step_no = 3)"
$A plot --process "$PROC" --param "$PARAMS" --step 2 -o "$WORK/step2.svg"; rc=$?
check_eq "plot --step 2 exits 0" "$rc" 0
plot_window "plot --step 2" "$WORK/step2.svg" "$PROC" "$S2" "$S3" "$PARAMS"
check_eq "plot --step 2: the only step marker is step 2's, at its start" \
    "$(svg_facts "$WORK/step2.svg" | sed -n 's/^steps //p')" \
    "$(q "SELECT '2@' || (extract(epoch FROM $S2) * 1000000)::int8")"
# Absolute times (ISO 8601, as an engineer types them) 10 s and 25 s into FAB.
FROM_ISO=$(q "SELECT to_char((started_at + interval '10 s') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM processes WHERE id = $FAB")
TO_ISO=$(q "SELECT to_char((started_at + interval '25 s') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM processes WHERE id = $FAB")
$A plot --process "$FAB" --param heater1.temperature --from "$FROM_ISO" --to "$TO_ISO" -o "$WORK/win.svg"; rc=$?
check_eq "plot --from/--to exits 0" "$rc" 0
plot_window "plot --from/--to (ISO times, FAB +10 s .. +25 s)" "$WORK/win.svg" "$FAB" "'$FROM_ISO'::timestamptz" "'$TO_ISO'::timestamptz" \
    heater1.temperature
check_eq "... the spike inside the window is drawn at 10000 (within a pixel)" \
    "$(svg_facts "$WORK/win.svg" | awk '$3 == "points" && $2 == "heater1.temperature" {d = $8 - 10000; print (d < 0 ? -d : d) <= $10}')" 1
check_eq "... only step 1 (under way in the window) is marked" \
    "$(svg_facts "$WORK/win.svg" | sed -n 's/^steps //p' | sed 's/@.*//')" 1
# --from relative to the step with --step: 5 s into step 2 of FAB to its end.
$A plot --process "$FAB" --param heater1.temperature --step 2 --from +5s -o "$WORK/step2from.svg"
plot_window "plot --step 2 --from +5s" "$WORK/step2from.svg" "$FAB" \
    "(SELECT started_at + interval '5 s' FROM process_steps WHERE process_id = $FAB AND step_no = 2)" \
    "(SELECT ended_at FROM processes WHERE id = $FAB)" heater1.temperature

$A plot --process "$FAB" --param heater1.temperature -o "$WORK/fab.svg"
facts=$(svg_facts "$WORK/fab.svg")
check_eq "plot: the spike is drawn at 10000 (within a pixel)" \
    "$(awk '$3 == "points" {d = $8 - 10000; print (d < 0 ? -d : d) <= $10}' <<<"$facts")" 1
check_match "plot: bad quality shown where it was (30.0 .. 30.5 s)" "$facts" "gap bad heater1.temperature 30.0[0-9] 30.[45][0-9]"
check_match "plot: the hole in the data shown where it was (40.0 .. 43.0 s)" "$facts" "gap nodata heater1.temperature 40.0[0-9] 4[23].9[0-9]|gap nodata heater1.temperature 40.0[0-9] 43.0[0-9]"
check_eq "plot: limit lines at min and max (0 and 400 lie in the drawn range)" \
    "$(sed -n 's/^limits //p' <<<"$facts")" "heater1.temperature:max heater1.temperature:min"
check_eq "plot: two step markers" "$(sed -n 's/^steps //p' <<<"$facts" | wc -w)" 2

# A long run: one hour at 10 Hz is drawn with at most 4 points per pixel column.
LONG=$(q "INSERT INTO processes (machine_id, recipe, recorder_id, started_at, ended_at, status)
          SELECT id, 'long', 'test', now() - interval '3 hours', now() - interval '2 hours', 'completed'
          FROM machines WHERE name = 'ald-demo' RETURNING id" | head -1)
q "INSERT INTO process_data_points SELECT $LONG, $H1, p.started_at + g * interval '100 ms',
   CASE WHEN g = 20000 THEN 390 ELSE 150 + 20 * sin(g / 3000.0) + random() END, 0
   FROM processes p, generate_series(0, 35999) g WHERE p.id = $LONG" >/dev/null
$A plot --process "$LONG" --param heater1.temperature -o "$WORK/long.svg"
facts=$(svg_facts "$WORK/long.svg")
check_eq "plot of 36000 samples: at most 4 points per pixel column, spike (390) kept" \
    "$(awk '$3 == "points" {d = $8 - 390; print ($4 <= 4 * $6 && $4 >= $6) && (d < 0 ? -d : d) <= $10 && $12 == 36000}' <<<"$facts")" 1

# --- runs --machine ----------------------------------------------------------------
# A run on a second machine, started between the demo machine's runs: the
# filter must leave it out of ald-demo's list and list it alone for its own.
OTHER=$(q "INSERT INTO machines (name) VALUES ('ald-other') RETURNING id" | head -1)
OPROC=$(q "INSERT INTO processes (machine_id, recipe, recorder_id, started_at, ended_at, status)
           VALUES ($OTHER, 'fab', 'test', now() - interval '4 min', now() - interval '3 min', 'completed')
           RETURNING id" | head -1)
runs_of() {   # machine → "id machine" per run, newest first, as SQL has them
    q "SELECT string_agg(p.id || ' ' || m.name, ',' ORDER BY p.started_at DESC, p.id DESC)
       FROM processes p JOIN machines m ON m.id = p.machine_id WHERE m.name = '$1'"
}
listed() { $A runs --machine "$1" --limit 1000 --format csv | tail -n +2 | cut -d, -f1,2 | tr , ' ' | paste -sd,; }
check_eq "runs --machine ald-demo lists exactly that machine's runs, newest first" \
    "$(listed ald-demo)" "$(runs_of ald-demo)"
check_match "... which are several, and not the other machine's" "$(listed ald-demo)" "^[0-9]+ ald-demo(,[0-9]+ ald-demo){3,}$"
check_eq "runs --machine ald-other lists its one run" "$(listed ald-other)" "$OPROC ald-other"
# --- bad input: exit 2 naming the culprit -------------------------------------------------
bad_input() {   # description regex command...
    local what=$1 re=$2; shift 2
    local out rc
    out=$("$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" -eq 2 ] && grep -Eq -- "$re" <<<"$out"; then ok "$what: exit 2, \"$(head -1 <<<"$out")\""
    else not_ok "$what: exit $rc, \"$out\" (expected exit 2 and /$re/)"; fi
}
bad_input "unknown process" 'unknown process 999999' $A export --process 999999
bad_input "unknown parameter" 'unknown parameter "heater9.temp"' $A export --process "$PROC" --param heater1.temperature,heater9.temp
bad_input "inverted time range" '--from \+3s is not before --to \+1s' $A export --process "$PROC" --from +3s --to +1s
bad_input "unreadable time" '--from: cannot read "yesterday-ish"' $A export --process "$PROC" --from yesterday-ish
bad_input "bad --every" '--every: .*"fast"' $A export --process "$PROC" --every fast
bad_input "zero --every" '--every: .*"0s"' $A export --process "$PROC" --every 0s
bad_input "bad --format" '--format: expected csv or json' $A export --process "$PROC" --format xlsx
bad_input "unknown step" "process $PROC has no step 9 \(its steps: 1, 2, 3\)" $A summary --process "$PROC" --step 9
bad_input "summary: unknown process" 'unknown process 424242' $A summary --process 424242
bad_input "plot: unknown parameter" 'unknown parameter "nope"' $A plot --process "$PROC" --param nope -o "$WORK/x.svg"
check "... and no file is left behind" test ! -e "$WORK/x.svg"
bad_input "runs: unknown machine" '--machine: unknown machine "ald-9"' $A runs --machine ald-9
bad_input "process step: bad number" 'NUMBER must be an integer .*"two"' $A process step two "heat up"
bad_input "process step: control character" 'NAME contains a control character' $A process step 2 $'heat\nup'

# --- process step speaks STEP N NAME on the control socket -------------------------------
# (aldrecd handles STEP in a later phase; a stand-in daemon shows what is sent.)
FAKE=$WORK/fake.sock
socat UNIX-LISTEN:"$FAKE" SYSTEM:"head -1 > $WORK/step.line; echo 'OK step 2 recorded'" &
SOCAT_PID=$!; ald_track "$SOCAT_PID" socat
wait_until 10 "stand-in socket" test -S "$FAKE"
sed "s|^socket = .*|socket = $FAKE|" "$CFG" > "$WORK/fake.conf"
out=$("$BIN/aldrec" --config "$WORK/fake.conf" process step 2 "heat up"); rc=$?
check_eq "process step exits 0 on OK" "$rc" 0
check_eq "process step sends STEP NUMBER NAME" "$(cat "$WORK/step.line")" "STEP 2 heat up"

check_done query_run
