#!/bin/bash
# query_bench.sh — the read side at scale (called by tests/bench/run.sh).
#
# Fabricates a history in SQL — RUNS runs of 10 parameters × 5,000 samples
# over 100 days (daily partitions), 5 steps each, plus one 10-hour run at
# 10 Hz of 4 parameters — then times, through the real `aldrec` commands:
#   1. export of one parameter of one run (CSV),
#   2. the summary of one step of one run (JSON),
# each against the same command reading an unindexed, unpartitioned copy
# of the same rows (schema "flat", reached through the reader's
# search_path: same SQL, same plans apart from the indexes); and
#   3. the plot of the 10-hour run (1.44 M samples);
#   4. 1 and 2 again with a week of idle history at 1 Hz of every parameter
#      of the machine beside the runs (machine_history, 0010_idle.sql),
#      against the times of 1 and 2 measured just before (same run, same
#      cluster), the idle history's size on disk per day, and an export of
#      an hour of it (aldrec export --machine).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
[ -n "${BENCH_KEEP:-}" ] || trap ald_cleanup EXIT   # BENCH_KEEP=1: leave the cluster up to look at it

RUNS=${BENCH_QUERY_RUNS:-200}
ROUNDS=${BENCH_ROUNDS:-3}

ald_workdir bench-query
PG_EXTRA_OPTS="-c shared_buffers=512MB -c maintenance_work_mem=256MB -c max_wal_size=4GB -c synchronous_commit=off" pg_start
CFG=$WORK/bench.conf
aldrecd_config "$CFG"
pg_migrate "$CFG"
demo_machine_load 1502 100
A="$BIN/aldrec --config $CFG"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_s() { date +%s.%N; }
# time_cmd N CMD... → median wall seconds of N runs
time_cmd() {
    local n=$1 i t0 t1; shift
    for i in $(seq 1 "$n"); do
        t0=$(now_s); "$@" >/dev/null; t1=$(now_s)
        awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
    done | median
}

echo "== query bench: fabricating $RUNS runs × 10 parameters × 5000 samples + one 10-hour run at 10 Hz"
t0=$(now_s)
psql -XAtq -v ON_ERROR_STOP=1 -v runs="$RUNS" "$ADMIN_DSN" >/dev/null <<'SQL'
SET client_min_messages = warning;
-- daily partitions for the last 101 days (the migration made today onwards)
SELECT count(*) FROM (
    SELECT aldrec_partition_create(d, d + interval '1 day', 'process_data_points_p' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'))
    FROM (SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') - k * interval '1 day') AT TIME ZONE 'UTC' AS d
          FROM generate_series(1, 101) k) x
    WHERE NOT EXISTS (SELECT 1 FROM data_partitions p WHERE p.lower_bound = x.d)) y;
CREATE TEMP TABLE bp AS
    SELECT parameter_id, row_number() OVER (ORDER BY parameter_id) AS k
    FROM parameter_names WHERE machine = 'ald-demo' ORDER BY parameter_id LIMIT 10;
-- runs: one every 12 hours, 5000 s long (1 Hz), recipes in turn
INSERT INTO processes (machine_id, recipe, lot, recorder_id, started_at, ended_at, status)
SELECT m.id, 'recipe-' || (r % 3), 'LOT' || r, 'bench',
       date_trunc('second', now()) - interval '100 days' + r * interval '12 hours',
       date_trunc('second', now()) - interval '100 days' + r * interval '12 hours' + interval '5000 s',
       'completed'
FROM machines m, generate_series(0, :runs - 1) r WHERE m.name = 'ald-demo';
INSERT INTO process_steps
SELECT p.id, s, 'step ' || s, p.started_at + (s - 1) * interval '1000 s'
FROM processes p, generate_series(1, 5) s WHERE p.recorder_id = 'bench';
INSERT INTO process_data_points
SELECT p.id, bp.parameter_id, p.started_at + g * interval '1 s',
       100 * bp.k + 10 * sin(g / 300.0) + random(), CASE WHEN random() < 0.001 THEN 3 ELSE 0 END
FROM processes p, generate_series(0, 4999) g, bp
WHERE p.recorder_id = 'bench'
ORDER BY p.started_at, g;
-- the long run: 10 h at 10 Hz, 4 parameters, ending an hour ago
INSERT INTO processes (machine_id, recipe, lot, recorder_id, started_at, ended_at, status)
SELECT id, 'long', 'LONG', 'bench-long', date_trunc('second', now()) - interval '11 hours',
       date_trunc('second', now()) - interval '1 hour', 'completed'
FROM machines WHERE name = 'ald-demo';
INSERT INTO process_steps
SELECT p.id, s, 'long step ' || s, p.started_at + (s - 1) * interval '2 hours'
FROM processes p, generate_series(1, 5) s WHERE p.recorder_id = 'bench-long';
INSERT INTO process_data_points
SELECT p.id, bp.parameter_id, p.started_at + g * interval '100 ms',
       100 * bp.k + 20 * sin(g / 20000.0) + random(), 0
FROM processes p, generate_series(0, 359999) g, bp
WHERE p.recorder_id = 'bench-long' AND bp.k <= 4
ORDER BY g;
-- what the recorder leaves in the ingest ledger: one row per batch (here
-- one per run), with the batch's first and last sample time
INSERT INTO ingest_ledger (recorder_id, spool_id, batch_seq, kind, rows, process_id, first_ts, last_ts)
SELECT 'bench', 1, row_number() OVER (ORDER BY p.id), 1, count(*), p.id, min(d.ts), max(d.ts)
FROM processes p JOIN process_data_points d ON d.process_id = p.id
WHERE p.recorder_id LIKE 'bench%' GROUP BY p.id;
-- the unindexed copy, reached by the reader through search_path
CREATE SCHEMA flat;
CREATE TABLE flat.process_data_points AS SELECT * FROM public.process_data_points;
GRANT USAGE ON SCHEMA flat TO aldrec_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA flat TO aldrec_reader;
VACUUM ANALYZE;
SQL
t1=$(now_s)
TOTAL=$(psql -XAtq "$ADMIN_DSN" -c "SELECT count(*) FROM process_data_points")
NPART=$(psql -XAtq "$ADMIN_DSN" -c "SELECT count(*) FROM data_partitions")
awk -v a="$t0" -v b="$t1" -v n="$TOTAL" -v p="$NPART" \
    'BEGIN {printf "   %d points in %d partitions, generated in %.0f s\n", n, p, b - a}'

FLAT_CFG=$WORK/flat.conf
sed "s|^reader_conninfo = \(.*\)|reader_conninfo = \1 options='-c search_path=flat,public'|" "$CFG" > "$FLAT_CFG"
F="$BIN/aldrec --config $FLAT_CFG"
RUN=$(psql -XAtq "$ADMIN_DSN" -c "SELECT id FROM processes WHERE recorder_id = 'bench' ORDER BY id OFFSET $((RUNS / 2)) LIMIT 1")
LONG=$(psql -XAtq "$ADMIN_DSN" -c "SELECT id FROM processes WHERE recorder_id = 'bench-long'")
PARAM=$(psql -XAtq "$ADMIN_DSN" -c "SELECT full_name FROM parameter_names WHERE machine = 'ald-demo' ORDER BY parameter_id OFFSET 3 LIMIT 1")
PARAMS4=$(psql -XAtq "$ADMIN_DSN" -c "SELECT string_agg(full_name, ',' ORDER BY parameter_id) FROM (SELECT * FROM parameter_names WHERE machine = 'ald-demo' ORDER BY parameter_id LIMIT 4) x")

# Same answers both ways (the copy holds the same rows).
cmp -s <($A export --process "$RUN" --param "$PARAM") <($F export --process "$RUN" --param "$PARAM") \
    || ald_die "export differs between the indexed table and the copy"
ratio() {   # label indexed unindexed
    awk -v l="$1" -v i="$2" -v u="$3" 'BEGIN {printf "   RATIO %s: indexed / unindexed = %.1f / %.1f ms = %.4f (%.0fx faster)\n", l, i * 1000, u * 1000, i / u, u / i}'
}
echo "   (load average now: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)"
# sql_s SEARCH_PATH SQL → median seconds of planning + execution (EXPLAIN
# ANALYZE, TIMING OFF), on the server alone: the query without the
# command's connection set-up and lookups.
sql_s() {
    local i
    for i in $(seq 1 "$ROUNDS"); do
        psql -XAtq "$ADMIN_DSN" -c "SET search_path = $1" -c "EXPLAIN (ANALYZE, TIMING OFF) $2" |
            awk '/Planning Time|Execution Time/ {t += $3} END {printf "%.6f\n", t / 1000}'
    done | median
}
PID=$(psql -XAtq "$ADMIN_DSN" -c "SELECT parameter_id FROM parameter_names WHERE full_name = '$PARAM'")
WIN=$(psql -XAtq "$ADMIN_DSN" -c "SELECT quote_literal(min(first_ts) - interval '1 hour') || ', ' || quote_literal(max(last_ts) + interval '1 hour') FROM ingest_ledger WHERE process_id = $RUN")
EXPORT_SQL="SELECT parameter_id, ts, value, quality FROM process_data_points WHERE process_id = $RUN AND parameter_id = ANY ('{$PID}'::int[]) AND ts >= ${WIN%%, *} AND ts < ${WIN#*, } ORDER BY parameter_id, ts"
IDS=$(psql -XAtq "$ADMIN_DSN" -c "SELECT array_agg(parameter_id)::text FROM parameter_names WHERE machine = 'ald-demo'")
# (literal arguments, as the command passes them: a subquery argument would
# keep PostgreSQL from inlining the function and pruning partitions)
STEP_SQL="SELECT * FROM process_summary($RUN, 3, '$IDS', $WIN)"
echo "== export of one parameter of one run (5000 rows, CSV), median of $ROUNDS"
ei=$(time_cmd "$ROUNDS" $A export --process "$RUN" --param "$PARAM")
eu=$(time_cmd "$ROUNDS" $F export --process "$RUN" --param "$PARAM")
ratio "export (aldrec export, end to end)" "$ei" "$eu"
ratio "export (its query alone)" "$(sql_s public "$EXPORT_SQL")" "$(sql_s flat,public "$EXPORT_SQL")"
echo "== summary of one step of one run (all 32 parameters of the machine, JSON), median of $ROUNDS"
si=$(time_cmd "$ROUNDS" $A summary --process "$RUN" --step 3 --format json)
su=$(time_cmd "$ROUNDS" $F summary --process "$RUN" --step 3 --format json)
ratio "step summary (aldrec summary, end to end)" "$si" "$su"
ratio "step summary (its query alone)" "$(sql_s public "$STEP_SQL")" "$(sql_s flat,public "$STEP_SQL")"
echo "== the same run queries with a week of idle history at 1 Hz beside them"
eq0=$(sql_s public "$EXPORT_SQL"); sq0=$(sql_s public "$STEP_SQL")
t0=$(now_s)
psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<'SQL'
SET client_min_messages = warning;
-- one row per past day first, so that aldrec_idle_maintain() makes the
-- day partitions and the week goes straight into them
INSERT INTO machine_history
SELECT n.parameter_id, now() - k * interval '1 day', 0, 0
FROM parameter_names n, generate_series(1, 7) k WHERE n.machine = 'ald-demo' LIMIT 7;
SELECT count(*) FROM aldrec_idle_maintain(1);
TRUNCATE machine_history;
INSERT INTO machine_history
SELECT n.parameter_id, date_trunc('second', now()) - interval '7 days' + g * interval '1 s',
       n.parameter_id * 10 + sin(g / 600.0), 0
FROM generate_series(0, 7 * 86400 - 1) g, parameter_names n
WHERE n.machine = 'ald-demo'
ORDER BY g, n.parameter_id;
VACUUM ANALYZE machine_history;
SQL
t1=$(now_s)
read -r HROWS HBYTES HPARAMS <<<"$(psql -XAtq -F' ' "$ADMIN_DSN" -c "SELECT count(*), (SELECT sum(pg_total_relation_size(partition)) FROM history_partitions) + pg_total_relation_size('machine_history_default'), count(DISTINCT parameter_id) FROM machine_history")"
awk -v a="$t0" -v b="$t1" -v n="$HROWS" -v by="$HBYTES" -v np="$HPARAMS" 'BEGIN {
    printf "   %d idle rows (%d parameters x 7 days x 86,400 s), generated in %.0f s\n", n, np, b - a
    printf "   FIGURE idle history on disk (PostgreSQL, table + indexes): %.1f MB per day for %d parameters at 1 Hz (%.1f bytes per row)\n", by / 7 / 1e6, np, by / n }'
ratio2() {   # label with without
    awk -v l="$1" -v w="$2" -v o="$3" 'BEGIN {printf "   RATIO %s: with idle history / without = %.1f / %.1f ms = %.2f\n", l, w * 1000, o * 1000, w / o}'
}
ei2=$(time_cmd "$ROUNDS" $A export --process "$RUN" --param "$PARAM")
ratio2 "export (aldrec export, end to end)" "$ei2" "$ei"
ratio2 "export (its query alone)" "$(sql_s public "$EXPORT_SQL")" "$eq0"
si2=$(time_cmd "$ROUNDS" $A summary --process "$RUN" --step 3 --format json)
ratio2 "step summary (aldrec summary, end to end)" "$si2" "$si"
ratio2 "step summary (its query alone)" "$(sql_s public "$STEP_SQL")" "$sq0"
H_FROM=$(psql -XAtq "$ADMIN_DSN" -c "SELECT to_char((now() - interval '3 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
H_TO=$(psql -XAtq "$ADMIN_DSN" -c "SELECT to_char((now() - interval '3 days' + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
hm=$(time_cmd "$ROUNDS" $A export --machine ald-demo --param "$PARAM" --from "$H_FROM" --to "$H_TO")
awk -v a="$hm" 'BEGIN {printf "   export --machine of one parameter, one idle hour (3,600 rows): %.0f ms\n", a * 1000}'

echo "== plot of a 10-hour run at 10 Hz, median of $ROUNDS"
p1=$(time_cmd "$ROUNDS" $A plot --process "$LONG" --param "$PARAM" -o "$WORK/long1.svg")
p4=$(time_cmd "$ROUNDS" $A plot --process "$LONG" --param "$PARAMS4" -o "$WORK/long4.svg")
e1=$(time_cmd "$ROUNDS" $A export --process "$LONG" --param "$PARAM" -o "$WORK/long1.csv")
awk -v a="$p1" -v b="$p4" -v e="$e1" -v s1="$(stat -c %s "$WORK/long1.svg")" -v s4="$(stat -c %s "$WORK/long4.svg")" 'BEGIN {
    printf "   plot 1 parameter (360,000 samples): %.0f ms, %d kB SVG\n", a * 1000, s1 / 1024
    printf "   plot 4 parameters (1,440,000 samples): %.0f ms, %d kB SVG\n", b * 1000, s4 / 1024
    printf "   (for scale: CSV export of the same 360,000 samples: %.0f ms)\n", e * 1000 }'
[ -z "${BENCH_KEEP:-}" ] || echo "export ADMIN_DSN=\"$ADMIN_DSN\" CFG=$CFG FLAT_CFG=$FLAT_CFG RUN=$RUN LONG=$LONG PARAM=$PARAM PARAMS4=$PARAMS4 WORK=$WORK" > "$WORK/env"
