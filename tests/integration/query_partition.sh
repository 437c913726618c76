#!/bin/bash
# query_partition.sh — process_data_points partitioned by time:
#   - 0006 converts an existing table keeping its rows and indexes;
#   - `aldrec db maintain` creates partitions ahead and drops only the
#     partitions past the retention; the DEFAULT partition catches rows no
#     partition covers, and creating their partition moves them;
#   - a backlog of past days in the DEFAULT partition is moved into
#     partitions of its days (one transaction per day, indexes, nothing
#     lost) and then falls under the retention (0008);
#   - aldrecd records (binary COPY through pgsink) across a partition
#     boundary: nothing lost, nothing twice, the ledger intact;
#   - the per-parameter queries use an index on every partition holding
#     rows, and a time window or a step (summary --step) prunes partitions
#     (EXPLAIN, parsed).
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-query-partition
pg_start

# --- converting a table that holds data ------------------------------------
# Migrate a second database up to (not including) 0006, record rows into the
# plain table, then apply 0006.
CONV_DSN=${ADMIN_DSN/dbname=aldrec/dbname=conv}
psql -XAtq "${ADMIN_DSN/dbname=aldrec/dbname=postgres}" -c "CREATE DATABASE conv" >/dev/null
mkdir -p "$WORK/pre6/migrations"
for f in "$ALD_ROOT"/sql/migrations/*.sql; do
    [ "$(basename "$f" | cut -c1-4)" \< 0006 ] && cp "$f" "$WORK/pre6/migrations/"
done
printf '[database]\nconninfo = %s\n[recorder]\nmachine = x\nid = y\n' "$CONV_DSN" > "$WORK/conv.conf"
"$BIN/aldrec" --config "$WORK/conv.conf" db migrate --sql-dir "$WORK/pre6" >/dev/null
cq() { psql -XAtq -v ON_ERROR_STOP=1 "$CONV_DSN" -c "$1"; }
cq "INSERT INTO process_data_points
    SELECT 7, 1 + g % 3, now() - interval '3 days' + g * interval '1 minute', g * 0.5, 0
    FROM generate_series(0, 3 * 1440) g" >/dev/null
before=$(cq "SELECT count(*) || '/' || sum(value) FROM process_data_points")
out=$("$BIN/aldrec" --config "$WORK/conv.conf" db migrate); rc=$?
check_eq "0006 applies to a table holding data" "$rc" 0
check_eq "... keeping every row" "$(cq "SELECT count(*) || '/' || sum(value) FROM process_data_points")" "$before"
check_eq "... the old table is the partition holding them" \
    "$(cq "SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM process_data_points")" process_data_points_legacy
check_eq "... with its own indexes adopted as partitions of the new ones (none rebuilt)" \
    "$(cq "SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid
           WHERE i.indrelid = 'process_data_points_legacy'::regclass AND i.indpred IS NULL")/$(cq "SELECT count(*) FROM pg_index WHERE indrelid = 'process_data_points_legacy'::regclass AND indpred IS NULL")" "3/3"   # not partial: 0012's index of bad samples is new
check_eq "... and the legacy partition ends at the next UTC midnight after its newest row" \
    "$(cq "SELECT upper_bound = (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC' FROM data_partitions WHERE name = 'process_data_points_legacy'")" t
out=$(cq "INSERT INTO process_data_points SELECT process_id, parameter_id, ts, 1, 0 FROM process_data_points LIMIT 1" 2>&1)
check_match "the unique index still refuses a sample stored twice" "$out" "duplicate key value violates unique constraint"

# --- maintenance and retention ---------------------------------------------------
CFG=$WORK/aldrec.conf
aldsim_start a --seed 5
aldrecd_config "$CFG" recorder.batch_rows=50 recorder.flush_interval_ms=200
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
printf '[database]\npartition_interval = day\npartitions_ahead = 5\nretention_days = 20\n' >> "$CFG"
A="$BIN/aldrec --config $CFG"
# Partitions from the past, each with rows: 40 and 39 days old (expired
# with a retention of 20 days), 10 days old (kept).
old_part() {   # days ago → name
    q "SELECT aldrec_partition_create(d, d + interval '1 day', 'process_data_points_p' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'))
       FROM (SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '$1 days') AT TIME ZONE 'UTC' AS d) x" >/dev/null
    q "INSERT INTO process_data_points SELECT 5, 1, (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '$1 days') AT TIME ZONE 'UTC' + g * interval '1 minute', g, 0
       FROM generate_series(0, 99) g" >/dev/null
    q "SELECT 'process_data_points_p' || to_char(now() AT TIME ZONE 'UTC' - interval '$1 days', 'YYYYMMDD')"
}
P40=$(old_part 40); P39=$(old_part 39); P10=$(old_part 10)
q "SELECT aldrec_rollup_rebuild(5)" >/dev/null   # one rollup row per minute of those rows
out=$($A db maintain); rc=$?
check_eq "db maintain exits 0" "$rc" 0
check_match "db maintain creates the partition 4 days ahead" "$out" \
    "^created process_data_points_p$(date -u -d '+4 days' +%Y%m%d) "
check_match "... and 5 days ahead" "$out" "^created process_data_points_p$(date -u -d '+5 days' +%Y%m%d) "
check_match "db maintain drops the partition 40 days old, saying so" "$out" "^dropped $P40 .*: 100 rows older than 20 days"
check_match "... and the one 39 days old" "$out" "^dropped $P39 "
check_eq "... and no other" "$(grep -c '^dropped' <<<"$out")" 2
check_match "... and sums up" "$out" "2 created, 2 dropped"
check_eq "the expired partitions are gone, their rows with them" \
    "$(q "SELECT count(*) FROM data_partitions WHERE name IN ('$P40', '$P39')")/$(q "SELECT count(*) FROM process_data_points WHERE process_id = 5")" "0/100"
check_eq "the partition within the retention keeps its rows" \
    "$(q "SELECT count(*) FROM $P10")" 100
check_match "the rollup rows of the dropped partitions' time go with them, said once" "$out" \
    "^rollup: removed 200 rows of the dropped partitions' time$"
check_eq "... and those of the kept partition stay" \
    "$(q "SELECT count(*) FROM process_data_rollup WHERE process_id = 5")" 100
check_eq "today's and the future partitions are kept" \
    "$(q "SELECT count(*) FROM data_partitions WHERE upper_bound > now()")" 6
out=$($A db maintain)
check_match "a second run has nothing to do" "$out" "^0 created, 0 dropped; 7 partitions"

# --- the DEFAULT partition: ingest never fails for lack of a partition --------------
q "INSERT INTO process_data_points VALUES (6, 1, '2100-01-01 12:00:00+00', 1, 0)" >/dev/null
check_eq "a row no partition covers lands in the default partition" \
    "$(q "SELECT tableoid::regclass FROM process_data_points WHERE process_id = 6")" process_data_points_default
check_eq "creating their partition moves them out of the default partition" \
    "$(q "SELECT aldrec_partition_create('2100-01-01+00', '2100-01-02+00', 'process_data_points_p21000101')")/$(q "SELECT tableoid::regclass FROM process_data_points WHERE process_id = 6")" \
    "1/process_data_points_p21000101"

# --- a backlog in the DEFAULT partition: rows of days long past -----------------------
# Rows stamped 15 and 14 days ago (forwarded after an outage across days, or
# a backlog older than the installation) find no partition and land in the
# DEFAULT one. db maintain must move each day's rows into a partition of
# their own with every index, one transaction per day, so that retention
# drops them in time like any other; a row at 'infinity' fits no period:
# it stays, reported.
D15=$(q "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '15 days', 'YYYYMMDD')")
D14=$(q "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '14 days', 'YYYYMMDD')")
q "INSERT INTO process_data_points
   SELECT 8, 1 + g % 2, '$D15'::date::timestamp AT TIME ZONE 'UTC' + g * interval '30 s', g * 0.25, 0
   FROM generate_series(0, 2 * 2880 - 1) g;
   INSERT INTO process_data_points VALUES (9, 1, 'infinity', 1, 0)" >/dev/null
per_day() {   # process → "day:rows:sum ..." of its rows, whatever partition holds them
    q "SELECT string_agg(d || ':' || n || ':' || s, ' ' ORDER BY d) FROM (SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYYMMDD') AS d,
       count(*) AS n, sum(value) AS s FROM process_data_points WHERE process_id = $1 GROUP BY 1) x"
}
BACKLOG=$(per_day 8)
rows_of() { sed -n "s/.*$1:\([0-9]*\):.*/\1/p" <<<"$BACKLOG"; }   # day → rows of the backlog
N15=$(rows_of "$D15"); N14=$(rows_of "$D14")
check_eq "a backlog of two past days lands in the default partition" \
    "$(q "SELECT count(*) FROM process_data_points_default WHERE process_id = 8")/$((N15 + N14))" "5760/5760"
# A table in the way of day D14's partition: that day fails, the other is kept.
q "CREATE TABLE process_data_points_p$D14 (x int)" >/dev/null
out=$($A db maintain 2>"$WORK/maintain.err"); rc=$?
check_eq "db maintain exits 1 when a day cannot be moved" "$rc" 1
check_match "... naming it" "$(cat "$WORK/maintain.err")" "process_data_points_p$D14\" already exists"
check_match "... after moving the other day in a transaction of its own" "$out" \
    "^created process_data_points_p$D15 \[.*\), moved $N15 rows into it from the default partition\$"
check_eq "... which stays moved, while the failed day's rows stay in the default partition" \
    "$(q "SELECT count(*) FROM process_data_points_p$D15")/$(q "SELECT count(*) FROM process_data_points_default WHERE process_id = 8")" \
    "$N15/$N14"
check_match "... and says what is left there" "$out" "warning: the default partition holds $((N14 + 1)) rows"
q "DROP TABLE process_data_points_p$D14" >/dev/null
out=$($A db maintain); rc=$?
check_eq "db maintain, the way cleared: exits 0" "$rc" 0
check_match "... moves the other day" "$out" \
    "^created process_data_points_p$D14 \[.*\), moved $N14 rows into it from the default partition\$"
check_eq "every row of the backlog kept (rows and sum per day)" "$(per_day 8)" "$BACKLOG"
check_eq "... each in the partition of its day" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = 8
          AND tableoid::regclass::text <> 'process_data_points_p' || to_char(ts AT TIME ZONE 'UTC', 'YYYYMMDD')")" 0
check_eq "... partitions of one UTC day each" \
    "$(q "SELECT string_agg(to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD HH24:MI') || ' +' || (upper_bound - lower_bound), ', ' ORDER BY lower_bound)
          FROM data_partitions WHERE name IN ('process_data_points_p$D15', 'process_data_points_p$D14')")" \
    "$D15 00:00 +1 day, $D14 00:00 +1 day"
NIDX=$(q "SELECT count(*) FROM pg_index WHERE indrelid = 'process_data_points'::regclass")
check_eq "... each with every index of the table ($NIDX), attached and valid" \
    "$(q "SELECT string_agg(n::text, ' ' ORDER BY r) FROM (SELECT i.indrelid::regclass::text AS r, count(*) AS n
          FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid
          WHERE i.indisvalid AND i.indrelid IN ('process_data_points_p$D15'::regclass, 'process_data_points_p$D14'::regclass)
          GROUP BY 1) x")" "$NIDX $NIDX"
out=$(q "INSERT INTO process_data_points SELECT process_id, parameter_id, ts, 1, 0 FROM process_data_points_p$D14 LIMIT 1" 2>&1)
check_match "... the unique one refusing a moved sample stored twice" "$out" "duplicate key value violates unique constraint"
check_eq "... owned by aldrec_owner" \
    "$(q "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE tablename IN ('process_data_points_p$D15', 'process_data_points_p$D14')")" \
    aldrec_owner
check_eq "the default partition keeps only the row no period holds" \
    "$(q "SELECT count(*) || ' row: ' || min(process_id) || '@' || min(ts) FROM process_data_points_default")" "1 row: 9@infinity"
check_match "... and db maintain says so" "$($A db maintain)" "warning: the default partition holds 1 rows \(infinity \.\. infinity\)"
sed 's/^retention_days = 20$/retention_days = 12/' "$CFG" > "$WORK/ret12.conf"
out=$("$BIN/aldrec" --config "$WORK/ret12.conf" db maintain); rc=$?
check_eq "with retention_days = 12: exits 0" "$rc" 0
check_match "... drops the backlog's first day" "$out" "^dropped process_data_points_p$D15 .*: $N15 rows older than 12 days\$"
check_match "... and its second" "$out" "^dropped process_data_points_p$D14 .*: $N14 rows older than 12 days\$"
check_eq "... their rows gone, the 10 days old partition kept" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = 8")/$(q "SELECT count(*) FROM $P10")" "0/100"
# The same from SQL (a site that schedules aldrec_maintain() in PostgreSQL):
# one call moves a far-future row and a row 16 days old, and drops the latter.
D16=$(q "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '16 days', 'YYYYMMDD')")
q "INSERT INTO process_data_points VALUES (10, 1, '2099-06-15 08:00:00+00', 1, 0),
       (10, 1, '$D16'::date::timestamp AT TIME ZONE 'UTC' + interval '12 hours', 2, 0)" >/dev/null
check_eq "aldrec_maintain() moves default rows of any period, then applies the retention" \
    "$(q "SELECT string_agg(action || ' ' || partition || ' ' || rows, ', ' ORDER BY action, partition)
          FROM aldrec_maintain('day', 5, '12 days') WHERE action <> 'default'")" \
    "created process_data_points_p$D16 1, created process_data_points_p20990615 1, dropped process_data_points_p$D16 1"
check_eq "... the far-future row in its partition" \
    "$(q "SELECT string_agg(tableoid::regclass::text, ',') FROM process_data_points WHERE process_id = 10")" \
    process_data_points_p20990615
for f in "aldrec_maintain_period('day', now())" "aldrec_default_periods('day')"; do
    out=$(psql -XAtq "$REC_DSN" -c "SELECT * FROM $f" 2>&1)
    check_match "the recorder role may not call ${f%%(*}" "$out" "permission denied"
done
q "DELETE FROM process_data_points_default" >/dev/null

# --- recording across a partition boundary (aldrecd → binary COPY) ------------------
# Replace the partitions around now by two that meet 3 s from now.
B=$(q "SELECT date_trunc('second', now()) + interval '3 s'")
for p in $(q "SELECT name FROM data_partitions WHERE upper_bound > '$B'::timestamptz - interval '1 day'
              AND lower_bound < '$B'::timestamptz + interval '1 day'"); do
    q "ALTER TABLE process_data_points DETACH PARTITION $p; DROP TABLE $p" >/dev/null
done
q "SELECT aldrec_partition_create('$B'::timestamptz - interval '1 day', '$B', 'qp_before'),
          aldrec_partition_create('$B', '$B'::timestamptz + interval '1 day', 'qp_after')" >/dev/null
if ! aldrecd_start "$CFG"; then not_ok "aldrecd starts"; check_done query_partition; exit 1; fi
PROC=$($A process start --recipe across)
RC_ID=$(q "SELECT parameter_id FROM parameter_names WHERE full_name = 'system.read_counter'")
wait_until 30 "20 polls after the boundary" \
    bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c \"SELECT count(*) FROM qp_after WHERE process_id = $PROC AND parameter_id = $RC_ID\") -ge 20 ]"
$A process stop >/dev/null
REQ=$(st requests_per_cycle requests)
NPARAM=$(q "SELECT count(*) FROM component_parameters WHERE is_active")
in_before=$(q "SELECT count(*) FROM qp_before WHERE process_id = $PROC")
in_after=$(q "SELECT count(*) FROM qp_after WHERE process_id = $PROC")
POLLS=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID")
check_ge "rows before the boundary" "$in_before" "$NPARAM"
check_ge "rows after the boundary" "$in_after" $((20 * NPARAM))
check_eq "rows = polls × parameters across both partitions" "$((in_before + in_after))" $((POLLS * NPARAM))
check_eq "the ledger accounts for every row" "$(q "SELECT sum(rows) FROM ingest_ledger WHERE process_id = $PROC")" $((in_before + in_after))
check_eq "read counter contiguous across the boundary: no poll lost, none twice" \
    "$(q "SELECT count(*) FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM process_data_points
          WHERE process_id = $PROC AND parameter_id = $RC_ID) x WHERE d <> $REQ")" 0
check_eq "nothing went to the default partition" \
    "$(q "SELECT count(*) FROM process_data_points_default WHERE process_id = $PROC")" 0

# --- query plans use indexes ---------------------------------------------------------
# A history: 40 parameters × 3000 samples of each of runs 100 and 101, run
# 101 spanning both partitions around now; it has steps (1 from its
# start, 2 from B + 1 h, 3 from B + 2 h) so that step queries can be planned.
q "INSERT INTO processes (id, machine_id, recipe, recorder_id, started_at, ended_at, status)
   SELECT 100 + r, m.id, 'history', 'test', '$B'::timestamptz - interval '20 hours' + r * 3000 * interval '20 s',
          '$B'::timestamptz - interval '20 hours' + (r + 1) * 3000 * interval '20 s', 'completed'
   FROM machines m, generate_series(0, 1) r WHERE m.name = 'ald-demo'" >/dev/null
q "INSERT INTO process_data_points SELECT 100 + g / 3000, p, '$B'::timestamptz - interval '20 hours' + g * interval '20 s', g, 0
   FROM generate_series(1, 40) p, generate_series(0, 5999) g" >/dev/null
q "INSERT INTO process_steps SELECT 101, 1, 'first', started_at FROM processes WHERE id = 101;
   INSERT INTO process_steps VALUES (101, 2, 'second', '$B'::timestamptz + interval '1 hour'),
                                    (101, 3, 'third', '$B'::timestamptz + interval '2 hours')" >/dev/null
q "ANALYZE process_data_points" >/dev/null
# uses_index SQL [PREPARE…;] → "ok" when every scan of a partition holding
# 1000 rows or more is an index scan, else "NOT" and the offending nodes;
# then "scans N" = the partitions scanned, and "indexed P,Q" = those of
# them holding 1000 rows or more read through an index. (A partition of a
# page or two is rightly read whole.)
uses_index() {
    psql -XAtq "$ADMIN_DSN" -c "${2:-} EXPLAIN (FORMAT JSON) $1" | python3 -c '
import json, subprocess, sys
plan = json.load(sys.stdin)[0]["Plan"]
nonempty = set(sys.argv[1].split())
scans, bad, indexed = [], [], set()
def walk(n):
    rel = n.get("Relation Name", "")
    if rel.startswith("process_data_points") or rel.startswith("qp_") or rel == "flat":
        scans.append(rel)
        if rel in nonempty:
            if n["Node Type"] in ("Index Only Scan", "Index Scan", "Bitmap Heap Scan"):
                indexed.add(rel)
            else:
                bad.append("%s on %s" % (n["Node Type"], rel))
    for c in n.get("Plans", []):
        walk(c)
walk(plan)
print("ok" if not bad else "NOT " + ", ".join(bad), "scans", len(scans), "indexed", ",".join(sorted(indexed)) or "-")
' "$(q "SELECT string_agg(c.relname, ' ') FROM pg_class c WHERE c.relname ~ '^(process_data_points|qp_|flat)' AND c.relkind = 'r' AND c.reltuples >= 1000")"
}
holding() {   # WHERE clause → the partitions holding those rows, "a,b" (independently of any plan)
    q "SELECT string_agg(DISTINCT tableoid::regclass::text, ',' ORDER BY tableoid::regclass::text)
       FROM process_data_points WHERE $1"
}
P=17
H101=$(holding "process_id = 101 AND parameter_id = $P")
check_eq "(run 101 lies in both partitions around now)" "$H101" "qp_after,qp_before"
EXPORT_SQL="SELECT parameter_id, ts, value, quality FROM process_data_points WHERE process_id = 101 AND parameter_id = ANY ('{$P}'::int[]) AND ts >= '-infinity' AND ts < 'infinity' ORDER BY parameter_id, ts"
check_match "export of one parameter of one run: an index scan on every partition holding its rows" \
    "$(uses_index "$EXPORT_SQL")" "^ok scans [0-9]+ indexed $H101\$"
WINDOW_SQL="SELECT parameter_id, ts, value, quality FROM process_data_points WHERE process_id = 101 AND parameter_id = ANY ('{$P}'::int[]) AND ts >= '$B' AND ts < '$B'::timestamptz + interval '1 hour' ORDER BY parameter_id, ts"
check_match "a time window prunes to the one partition it falls in, with an index" \
    "$(uses_index "$WINDOW_SQL")" "^ok scans 1 indexed $(holding "process_id = 101 AND ts >= '$B' AND ts < '$B'::timestamptz + interval '1 hour'")\$"
check_match "the bucketed series function: an index scan on every partition holding the run's rows" \
    "$(uses_index "SELECT * FROM series_bucketed(101, '{$P}', '1 min')")" "^ok scans [0-9]+ indexed $H101\$"
# `aldrec summary --step N` sends this (query/summary.c), the step's bounds
# as the window: planned here as libpq's unnamed statement is, with the
# values bound (a custom plan).
SUMMARY_PREP="PREPARE sum_step(bigint, int, int[], timestamptz, timestamptz) AS
    SELECT step_no, step_name, parameter_id, parameter, units, samples, min, max, mean,
           stddev, bad_quality, outside_s, gaps, gap_s, min_limit, max_limit
    FROM process_summary(\$1, \$2::int, \$3::int[], \$4::timestamptz, \$5::timestamptz);"
step_span() {   # step → "'from', 'to'" as the command computes it (process_step_spans)
    q "SELECT quote_literal(started_at) || ', ' || quote_literal(ended_at) FROM process_step_spans
       WHERE process_id = 101 AND step_no = $1"
}
step_rows() {   # step → WHERE clause for its rows
    q "SELECT format('process_id = 101 AND parameter_id = $P AND ts >= %L AND ts < %L', started_at, ended_at)
       FROM process_step_spans WHERE process_id = 101 AND step_no = $1"
}
check_eq "(step 2 of run 101 lies in one partition, step 1 in two)" \
    "$(holding "$(step_rows 2)") $(holding "$(step_rows 1)")" "qp_after qp_after,qp_before"
check_match "summary --step 2: prunes to the one partition holding the step, read through an index" \
    "$(uses_index "EXECUTE sum_step(101, 2, '{$P}', $(step_span 2))" "$SUMMARY_PREP")" \
    "^ok scans 1 indexed $(holding "$(step_rows 2)")\$"
check_match "summary --step 1: the two partitions holding the step, each through an index" \
    "$(uses_index "EXECUTE sum_step(101, 1, '{$P}', $(step_span 1))" "$SUMMARY_PREP")" \
    "^ok scans 2 indexed $(holding "$(step_rows 1)")\$"
check_eq "... and it computes over exactly the step's rows" \
    "$(q "SELECT samples FROM process_summary(101, 2, '{$P}', $(step_span 2))")" \
    "$(q "SELECT count(*) FROM process_data_points WHERE $(step_rows 2)")"
q "CREATE TABLE flat AS SELECT * FROM process_data_points; ANALYZE flat" >/dev/null
check_match "the plan check itself sees a sequential scan on an unindexed table (self-test)" \
    "$(uses_index "${EXPORT_SQL/FROM process_data_points/FROM flat}")" "^NOT Seq Scan on flat"
check_match "... and a plan without any partition scan has nothing indexed (self-test)" \
    "$(uses_index "SELECT 1")" "^ok scans 0 indexed -\$"
check_eq "the engineer role reads across partitions" \
    "$(psql -XAtq "$READER_DSN" -c "SELECT count(*) FROM process_data_points WHERE process_id = 101 AND parameter_id = $P")" 3000

# --- settings are checked ---------------------------------------------------------
printf '[database]\nconninfo = x\npartition_interval = year\n[recorder]\nmachine = m\nid = i\n' > "$WORK/bad.conf"
out=$("$BIN/aldrec" --config "$WORK/bad.conf" db maintain 2>&1); rc=$?
check_eq "a bad partition_interval: exit 2" "$rc" 2
check_match "... naming file:line and the key" "$out" "bad.conf:3: partition_interval: expected day, week or month, got \"year\""

check_done query_partition
