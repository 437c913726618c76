#!/bin/bash
# web_api.sh — aldrec web's JSON and CSV against a real recording (aldsim →
# aldrecd → PostgreSQL, tests/web/common.sh), read through the reader role:
# every figure compared with SQL over the raw rows; the reduction keeps
# every extreme (a one-sample spike in a 10-hour run); bad requests get the
# documented status naming the field; a database that is down gives 503
# and the server recovers; a non-loopback listen is refused without
# allow_remote; a few thousand random query strings never give a 5xx.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"   # rollup_diff
trap ald_cleanup EXIT

ald_workdir it-web-api
pg_start
aldsim_start a --seed 5
source "$ALD_ROOT/tests/web/common.sh"
web_start "$CFG" || { not_ok "aldrec web starts"; check_done web_api; exit 1; }
ok "aldrec web serves on $WEB_URL"

get() { curl -sS -o "$WORK/body" -w '%{http_code}' "$WEB_URL$1"; }
js() { python3 -c "import json,sys; d=json.load(open('$WORK/body')); $1"; }

check_eq "/health: 200" "$(get /health)" 200
check_eq "/api/runs: 200" "$(get /api/runs)" 200
check_eq "/api/runs lists the recorded runs with the ledger's points" \
    "$(js "r={x['run']:x for x in d}; print(r[$PROC1]['points'], r[$PROC1]['steps'], r[$PROC1]['status'])")" \
    "$(q "SELECT points || ' ' || steps || ' ' || status FROM process_runs WHERE process_id = $PROC1")"
get /api/runs >/dev/null
check_eq "/api/runs: bad-quality samples per run, as SQL counts them" \
    "$(js "r={x['run']:x for x in d}; print(r[$LONG]['bad'], r[$PROC1]['bad'])")" \
    "$(q "SELECT 37 || ' ' || count(*) FROM process_data_points WHERE process_id = $PROC1 AND quality <> 0")"
check_eq "/api/runs?lot=W2 filters" "$(get '/api/runs?lot=W2'; js "print([x['run'] for x in d])")" "200[$PROC2]"
check_eq "/api/runs?limit=0 → 400 naming limit" "$(get '/api/runs?limit=0'; js "print(d['error'].split(':')[0])")" "400limit"

check_eq "/api/run: 200" "$(get "/api/run?run=$PROC1")" 200
check_eq "/api/run: steps, parameter count, set points as SQL" \
    "$(js "print(len(d['steps']), len(d['params']), len(d['setpoints']), d['setpoints'][0]['requested'])")" \
    "$(q "SELECT (SELECT count(*) FROM process_steps WHERE process_id = $PROC1) || ' ' ||
              (SELECT count(*) FROM parameter_names WHERE machine = 'ald-demo') || ' ' ||
              (SELECT count(*) FROM setpoint_events WHERE process_id = $PROC1) || ' 250'")"
check_eq "/api/run: units and limits of heater1.setpoint" \
    "$(js "p=[x for x in d['params'] if x['name']=='heater1.setpoint'][0]; print(p['units'], p['min'], p['max'])")" \
    "$(q "SELECT units || ' ' || min_value::int || ' ' || max_value::int FROM parameter_names WHERE full_name = 'heater1.setpoint'")"

# --- series: reduced, every point a real sample, extremes kept ---------------
P3=heater1.temperature,chamber.pressure,mfc_tma.flow
check_eq "/api/series: 200" "$(get "/api/series?run=$PROC1&param=$P3&width=200")" 200
cp "$WORK/body" "$WORK/series.json"
python3 - "$WORK/series.json" > "$WORK/points.csv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for s in d["series"]:
    for t, v in zip(s["t"], s["v"]):
        print(f"{s['id']},{t:.6f},{v!r}")
PY
npts=$(wc -l < "$WORK/points.csv")
missing=$(psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" <<SQL
CREATE TEMP TABLE x (pid int, t float8, v float8);
\copy x FROM '$WORK/points.csv' CSV
SELECT count(*) FROM x WHERE NOT EXISTS (SELECT 1 FROM process_data_points d
    WHERE d.process_id = $PROC1 AND d.parameter_id = x.pid AND d.ts = to_timestamp(x.t) AND d.value = x.v);
SQL
)
check_eq "/api/series: each of the $npts points drawn is a stored sample (time and value)" "$missing" 0
check_eq "/api/series: each series' lowest and highest value equal SQL's" \
    "$(python3 -c "
import json; d=json.load(open('$WORK/series.json'))
print(' '.join('%d:%r:%r' % (s['id'], min(s['v']), max(s['v'])) for s in sorted(d['series'], key=lambda s: s['id'])))")" \
    "$(q "SELECT string_agg(parameter_id || ':' || lo::text || ':' || hi::text, ' ' ORDER BY parameter_id)
          FROM (SELECT parameter_id, min(value) AS lo, max(value) AS hi FROM process_data_points
                WHERE process_id = $PROC1 AND quality = 0 AND parameter_id IN (SELECT parameter_id
                FROM parameter_names WHERE full_name IN ('heater1.temperature','chamber.pressure','mfc_tma.flow'))
                GROUP BY parameter_id) s")"
check_le "/api/series: at most 4 points per column" \
    "$(python3 -c "import json; d=json.load(open('$WORK/series.json')); print(max(len(s['t']) for s in d['series']))")" 800
# The 10-hour run: its one-sample spike survives the reduction to 1000 columns.
check_eq "/api/series of the 10-hour run: 200" "$(get "/api/series?run=$LONG&param=heater1.temperature&width=1000")" 200
check_eq "the spike is in the reduced series, at its time" \
    "$(js "s=d['series'][0]; i=s['v'].index(max(s['v'])); print('%g' % s['v'][i], '%.1f' % s['t'][i], s['samples'], len(s['t']) <= 4000)")" \
    "900 $SPIKE_TS 360000 True"
check_eq "... and its 37 bad samples are one red span, in the first column (36 s)" \
    "$(js "sp=[x for x in d['series'][0]['spans'] if x[2]=='bad']; print(len(sp), 1767571200 <= sp[0][0] < sp[0][1] <= 1767571236)")" \
    "1 True"
# The whole 10-hour run is read from the rollup (36 s columns, 10 s
# buckets); the same window asked for explicitly reads the samples: the
# two answers are the same points, breaks and spans.
check_eq "the whole 10-hour run comes from the rollup" "$(js "print(d['source'])")" rollup
cp "$WORK/body" "$WORK/long-rollup.json"
get "/api/series?run=$LONG&param=heater1.temperature&width=1000&from=2026-01-05T00:00:00Z&to=2026-01-05T10:00:00Z" >/dev/null
check_eq "... and draws exactly what the samples draw" \
    "$(python3 -c "
import json; a, b = json.load(open('$WORK/long-rollup.json')), json.load(open('$WORK/body'))
x, y = a['series'][0], b['series'][0]
print(b['source'], len(x['t']), [x[k] == y[k] for k in ('t', 'v', 'breaks', 'spans', 'samples')])")" \
    "samples $(js "print(len(d['series'][0]['t']))") [True, True, True, True, True]"
check_eq "the recorded run's rollup rows (written by aldrecd) agree with its samples in every bucket" \
    "$(q "SELECT count(*) FROM process_data_rollup WHERE process_id = $PROC1") $(rollup_diff "$PROC1")" \
    "$(q "SELECT count(*) FROM process_data_rollup WHERE process_id = $PROC1 AND samples > 0") 0"
check_eq "... and aldrec process start marked it complete; a run made in SQL is not" \
    "$(q "SELECT string_agg(rollup::text, ' ' ORDER BY id) FROM processes WHERE id IN ($PROC1, $PROC3)")" "true false"

# Zoomed to a 2-second window of the 10-hour run: finer (more points per
# second of data than the whole run at the same width).
pps() { python3 -c "import json; d=json.load(open('$WORK/body')); s=d['series'][0]; print(len(s['t']) / (d['to'] - d['from']))"; }
get "/api/series?run=$LONG&param=heater1.temperature&width=1000" >/dev/null; whole=$(pps)
check_eq "/api/series of a 2 s window: 200" \
    "$(get "/api/series?run=$LONG&param=heater1.temperature&width=1000&from=2026-01-05T03:00:00Z&to=2026-01-05T03:00:02Z")" 200
zoomed=$(pps)
check "zoomed to 2 s: more points per second of data ($zoomed vs $whole)" python3 -c "import sys; sys.exit(0 if $zoomed > 10 * $whole else 1)"
check_eq "zoomed to 2 s: every sample of the window (20 at 10 Hz)" "$(js "print(len(d['series'][0]['t']))")" 20
# --- CSV: the same code path as aldrec export ---------------------------------
get "/api/export.csv?run=$PROC1&param=$P3&layout=wide" >/dev/null
$A export --process "$PROC1" --param "$P3" --layout wide --format csv > "$WORK/cli.csv"
check "/api/export.csv equals aldrec export (wide, byte for byte)" cmp -s "$WORK/body" "$WORK/cli.csv"

# --- compare -------------------------------------------------------------------
check_eq "/api/compare: 200" "$(get "/api/compare?runs=$PROC1,$PROC2&param=heater1.temperature&step=1")" 200
cp "$WORK/body" "$WORK/compare.json"
python3 - "$WORK/compare.json" > "$WORK/traces.txt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a, b = d["traces"][0], d["traces"][1]
for name, t in (("a", a), ("b", b)):
    for o, m in zip(t["offset_s"], t["mean"]):
        if m is not None:
            print(f"{name} {o:.3f} {m:.9g}")
PY
check_eq "compare: the aligned offsets and means equal compare_runs()" "$(sort "$WORK/traces.txt" | md5sum)" \
    "$(q "SELECT 'a ' || to_char(offset_s, 'FM999990.000') || ' ' || a_mean FROM compare_runs($PROC1, $PROC2, 1, $HT_ID) WHERE a_mean IS NOT NULL
          UNION ALL
          SELECT 'b ' || to_char(offset_s, 'FM999990.000') || ' ' || b_mean FROM compare_runs($PROC1, $PROC2, 1, $HT_ID) WHERE b_mean IS NOT NULL" |
       python3 -c "import sys
for l in sys.stdin:
    n, o, m = l.split(); print(f'{n} {float(o):.3f} {float(m):.9g}')" | sort | md5sum)"
check_eq "/api/compare with refs of three runs, k=2: 200" \
    "$(get "/api/compare?runs=$PROC1,$PROC2,$PROC3&param=heater1.temperature&step=1&k=2")" 200
cp "$WORK/body" "$WORK/env.json"
# Independently: each run's bucket mean aligned at its step 1, then mean ± 2σ.
env_sql=$(q "WITH s AS (SELECT p.id, s.started_at, coalesce(s.ended_at, 'infinity') AS ended_at
                        FROM processes p JOIN process_step_spans s ON s.process_id = p.id AND s.step_no = 1
                        WHERE p.id IN ($PROC1, $PROC2, $PROC3)),
                  m AS (SELECT s.id, extract(epoch FROM date_bin('1 second', d.ts, s.started_at) - s.started_at) AS o,
                               avg(d.value) AS v
                        FROM s JOIN process_data_points d ON d.process_id = s.id AND d.parameter_id = $HT_ID
                             AND d.ts >= s.started_at AND d.ts < s.ended_at AND d.quality = 0 GROUP BY 1, 2),
                  e AS (SELECT o, avg(v) - 2 * stddev_samp(v) AS lo, avg(v) + 2 * stddev_samp(v) AS hi
                        FROM m GROUP BY o HAVING count(*) >= 2)
             SELECT string_agg(to_char(o, 'FM99990') || ':' || round(lo::numeric, 6) || ':' || round(hi::numeric, 6), ' ' ORDER BY o) FROM e")
env_api=$(python3 -c "
import json; e=json.load(open('$WORK/env.json'))['envelope']
print(' '.join('%d:%.6f:%.6f' % (o, lo, hi) for o, lo, hi in zip(e['offset_s'], e['lo'], e['hi']) if lo is not None))")
check_eq "compare: the envelope's bounds equal SQL's mean ± 2σ at every aligned second" "$env_api" "$env_sql"
check_ge "compare: the envelope has instants to compare" "$(wc -w <<<"$env_api")" 2

# --- bad requests ----------------------------------------------------------------
bad() {   # status field url
    local st; st=$(get "$3")
    check_eq "$3 → $1 naming $2" "$st $(js "print(d['error'].split(':')[0])" 2>/dev/null)" "$1 $2"
}
bad 404 run "/api/run?run=99999999"
bad 400 run "/api/run?run=abc"
bad 400 run "/api/run"
bad 404 param "/api/series?run=$PROC1&param=nosuch.thing"
bad 400 param "/api/series?run=$PROC1"
bad 400 from "/api/series?run=$PROC1&param=chamber.pressure&from=yesterday-ish"
bad 400 from "/api/series?run=$PROC1&param=chamber.pressure&from=%2B60s&to=%2B10s"
bad 400 width "/api/series?run=$PROC1&param=chamber.pressure&width=5"
bad 400 param "/api/series?run=$PROC1&param=$(printf 'chamber.pressure,%.0s' {1..17})chamber.pressure"
bad 404 step "/api/compare?runs=$PROC1,$PROC2&param=heater1.temperature&step=9"
bad 400 runs "/api/compare?runs=$PROC1&param=heater1.temperature"
bad 400 k "/api/compare?runs=$PROC1,$PROC2&param=heater1.temperature&k=-1"
bad 404 path "/api/nothing"
check_eq "POST → 405" "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d x=1 "$WEB_URL/api/runs")" 405
check_eq "a path outside the pages → 404" "$(curl -sS --path-as-is -o /dev/null -w '%{http_code}' "$WEB_URL/../../etc/passwd")" 404
check_eq "a dot file → 404" "$(curl -sS -o /dev/null -w '%{http_code}' "$WEB_URL/.htaccess")" 404
# A crafted parameter reaches SQL bound, as text: nothing runs, nothing changes.
n0=$(q "SELECT count(*) FROM processes")
get "/api/series?run=$PROC1&param=x');DELETE%20FROM%20processes;--" >/dev/null
get "/api/runs?machine=x'%3BDELETE%20FROM%20processes%3B--" >/dev/null
check_eq "SQL in the query string is only ever a value: processes unchanged" "$(q "SELECT count(*) FROM processes")" "$n0"
out=$(psql -XAtq "$READER_DSN" -c "DELETE FROM processes" 2>&1)
check_match "the reader role aldrec web connects as cannot write" "$out" "permission denied"

# --- random query strings: never a 5xx, the server stays up ----------------------
# Against the ASan+UBSan build when there is one (make test builds it into
# SAN_BIN): a memory error or undefined behaviour ends that server, and its
# report lands in $WORK/asan.*.
FUZZ_URL=$WEB_URL FUZZ_PID=$WEB_PID FUZZ_WHAT="aldrec web"
if [ -x "${SAN_BIN:-}/aldrec-full" ]; then
    PLAIN_URL=$WEB_URL PLAIN_PID=$WEB_PID
    sed -i "/^\[web\]/a root = $BIN/../web" "$CFG"
    if ASAN_OPTIONS="log_path=$WORK/asan:detect_leaks=1" UBSAN_OPTIONS="log_path=$WORK/asan:print_stacktrace=1" \
        WEB_BIN=$SAN_BIN/aldrec-full web_start "$CFG"; then
        FUZZ_URL=$WEB_URL FUZZ_PID=$WEB_PID FUZZ_WHAT="aldrec web (ASan+UBSan build)"
    else
        not_ok "the ASan+UBSan build of aldrec web starts"
    fi
    WEB_URL=$PLAIN_URL WEB_PID=$PLAIN_PID
else
    echo "# no sanitizer build of aldrec (SAN_BIN): fuzzing the plain build"
fi
python3 - "$FUZZ_URL" "$PROC1" > "$WORK/fuzz.txt" <<'PY'
import random, sys, urllib.request, urllib.error, urllib.parse
base, run = sys.argv[1], sys.argv[2]
rnd = random.Random(20261202)
paths = ["/api/runs", "/api/run", "/api/series", "/api/compare", "/api/export.csv"]
keys = ["run", "param", "from", "to", "width", "step", "runs", "refs", "k", "bucket", "limit", "lot", "since", "layout"]
vals = [run, "0", "-1", "1e309", "nan", "", "heater1.temperature", "a,b", ",,,", "+1s", "+-5s",
        "2026-13-45T99:00:00Z", "'", "\"", "\\", "%00", "9" * 40, "chamber.pressure," * 20, "\u00e9\u4e2d", " "]
counts = {}
for i in range(3000):
    q = {rnd.choice(keys): rnd.choice(vals) if rnd.random() < 0.7 else
         "".join(chr(rnd.randint(1, 0x2ff)) for _ in range(rnd.randint(0, 12))) for _ in range(rnd.randint(0, 5))}
    url = base + rnd.choice(paths) + "?" + urllib.parse.urlencode(q)
    try:
        st = urllib.request.urlopen(url, timeout=30).status
    except urllib.error.HTTPError as e:
        st = e.code
    except Exception as e:
        st = "exception " + type(e).__name__
    counts[st] = counts.get(st, 0) + 1
    if not isinstance(st, int) or st >= 500:
        print("BAD", st, url)
print("statuses", sorted(counts.items(), key=str))
PY
check_eq "3000 random query strings to $FUZZ_WHAT: no 5xx, no failed request ($(tail -1 "$WORK/fuzz.txt"))" "$(grep -c '^BAD' "$WORK/fuzz.txt")" 0
check "$FUZZ_WHAT is still running" kill -0 "$FUZZ_PID"
if [ "$FUZZ_PID" != "$WEB_PID" ]; then
    ald_stop_pid "$FUZZ_PID" "aldrec web (ASan+UBSan build)"
    check_eq "... and ends without a sanitizer report (leaks included)" \
        "$(cat "$WORK"/asan.* 2>/dev/null | head -20)" ""
fi

# --- the database goes away and comes back ------------------------------------------
ald_stop_pid "$ALDRECD_PID" aldrecd
pg_crash
check_eq "database down: /api/runs → 503" "$(get /api/runs)" 503
check_match "the answer says why" "$(cat "$WORK/body")" "database unreachable"
check_eq "database down: /health → 503" "$(get /health)" 503
pg_restart
check_eq "database back: /api/runs → 200 again" "$(get /api/runs)" 200

# --- listen: loopback only unless allow_remote ---------------------------------------
sed -i "/^\[web\]/,\$ {s/^listen = .*/listen = 0.0.0.0:0/}" "$CFG"
out=$($A web 2>&1); rc=$?
check_eq "a non-loopback listen without allow_remote: exit 2" "$rc" 2
check_match "... naming the key and the address" "$out" "listen: 0.0.0.0 is not a loopback address"
check_done web_api
