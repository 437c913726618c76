#!/bin/bash
# run.sh — `make bench`. Prints figures as ratios against a reference
# measured in the same run, on the same machine, into the same tables:
#   1. writer ingest: our path (binary COPY + ledger row, one transaction per
#      batch) vs `psql \copy ... (FORMAT binary)` of the same rows in one COPY,
#      from a file PostgreSQL encoded itself (text in, binary COPY OUT), which
#      our encoder's file of those rows must equal byte for byte;
#   2. Modbus requests per poll cycle for the demo map: planned vs one
#      request per parameter, and the cycle time each way against aldsim;
#   3. store and forward: appending the same rows to the spool (one fsync'd
#      SQLite transaction per batch) and draining that backlog into
#      PostgreSQL with the forwarder, each vs psql \copy above;
#   4. aldrecd's poll loop (aldsim, demo map at 10 Hz) while it drains a
#      backlog of the same size vs without one: the poll period measured
#      from the recorded timestamps of system.read_counter.
#   5. acquisition (bench_acq.sh): points/s, CPU %, RSS, jitter of one aldrecd
#      polling 4 aldsim devices x 100 parameters at 10, 20 and 50 Hz.
#   6. queries (query_bench.sh): export and step summary vs the same on an
#      unindexed copy, plot time of a 10-hour run.
#   7. web pages (web_bench.sh): first complete chart of a 10-hour run in
#      headless Chromium, zoom re-fetch, bytes, server RSS, vs aldrec plot.
#   8. parameter metadata cache: lookup medians (L1 hit, L2 hit, PostgreSQL
#      miss) and bulk refresh vs one query per component (demo map; 1,000
#      parameters over 100 components).
#   9. set points (bench_param.sh): aldrec set/get through aldrecd vs
#      --direct, the Python client, the CLI floor, poll lateness with 20
#      sets/s vs none.
#  10. idle recording (idle_bench.sh): run queries with a week of idle
#      history beside them vs without; idle CPU and disk per day.
# Not run by `make test`: timings belong here, not in pass/fail checks.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT

ROWS=${BENCH_ROWS:-1000000}
BATCH=${BENCH_BATCH:-5000}
ROUNDS=${BENCH_ROUNDS:-3}
DRAIN_ROUNDS=${BENCH_DRAIN_ROUNDS:-5}

ald_workdir bench
pg_start
aldrecd_config "$WORK/bench.conf"
pg_migrate "$WORK/bench.conf"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== writer ingest: $ROWS rows (100 parameters), indexed process_data_points"
# The reference input is PostgreSQL's own binary encoding of the rows:
# loaded from text (written without pgcopy), then COPY OUT binary. Our
# encoder's file of the same rows must be byte-identical to it.
"$BIN/bench_copy" --text-only "$ROWS" "$WORK/rows.txt" 1
psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<SQL
CREATE TEMP TABLE bench_rows (LIKE process_data_points);
\copy bench_rows (process_id, parameter_id, ts, value, quality) FROM '$WORK/rows.txt'
\copy (SELECT process_id, parameter_id, ts, value, quality FROM bench_rows ORDER BY ts, parameter_id) TO '$WORK/rows.bin' WITH (FORMAT binary)
SQL
ours=(); ref=()
for r in $(seq 1 "$ROUNDS"); do
    psql -XAtq "$ADMIN_DSN" -c "TRUNCATE process_data_points, process_data_rollup, ingest_ledger; CHECKPOINT"
    t=$("$BIN/bench_copy" "$ADMIN_DSN" "$ROWS" "$BATCH" "$WORK/ours.bin" 1 | sed -n 's/^rows_per_s //p')
    ours+=("$t")
    psql -XAtq "$ADMIN_DSN" -c "TRUNCATE process_data_points, process_data_rollup, ingest_ledger; CHECKPOINT"
    t0=$(date +%s.%N)
    psql -XAtq "$ADMIN_DSN" -c "\\copy process_data_points (process_id, parameter_id, ts, value, quality) FROM '$WORK/rows.bin' WITH (FORMAT binary)" >/dev/null
    t1=$(date +%s.%N)
    ref+=("$(awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')")
    echo "   round $r: ours ${ours[-1]} rows/s, psql \\copy ${ref[-1]} rows/s"
done
if diff=$(cmp "$WORK/rows.bin" "$WORK/ours.bin" 2>&1); then
    echo "   (same rows: our encoder's file is byte-identical to PostgreSQL's binary COPY OUT of them)"
else
    ald_die "our encoder's file differs from PostgreSQL's binary COPY OUT of the same rows: $diff"
fi
o=$(printf '%s\n' "${ours[@]}" | median); p=$(printf '%s\n' "${ref[@]}" | median)
printf "   median: ours %s rows/s (batches of %s rows, each with its ledger row), psql \\\\copy %s rows/s\n" "$o" "$BATCH" "$p"
awk -v o="$o" -v p="$p" 'BEGIN {printf "   RATIO writer / psql \\copy = %.2f\n", o / p}'

echo "== Modbus requests per poll cycle (demo map, aldsim on loopback)"
aldsim_start bench --seed 1
demo_machine_load "$SIM_PORT_bench" 100
"$BIN/bench_plan" "$ADMIN_DSN" ald-demo 500 > "$WORK/plan.txt"
sed 's/^/   /' "$WORK/plan.txt"
awk '/requests_planned/ {rp=$2} /requests_single/ {rs=$2} /cycle_ms_planned/ {cp=$2} /cycle_ms_single/ {cs=$2}
     END {printf "   RATIO requests planned / single = %d / %d = %.3f; cycle time single / planned = %.1fx\n", rp, rs, rp / rs, cs / cp}' "$WORK/plan.txt"

echo "== store and forward: $ROWS rows (batches of $BATCH) through the spool"
# The drain's reference is a psql \copy of the same rows measured in the
# same round, beside it, in alternating order (ABBA): PostgreSQL's speed on
# this box drifts by tens of percent over a minute (checkpoints, the WAL's
# segments, the page cache), and a reference taken minutes earlier would
# measure that drift. The figure is the median of the rounds' ratios.
wr=(); dr=(); tx=(); rr=(); dref=()
copy_ref() {
    psql -XAtq "$ADMIN_DSN" -c "TRUNCATE process_data_points, process_data_rollup, ingest_ledger; CHECKPOINT"
    local t0 t1
    t0=$(date +%s.%N)
    psql -XAtq "$ADMIN_DSN" -c "\\copy process_data_points (process_id, parameter_id, ts, value, quality) FROM '$WORK/rows.bin' WITH (FORMAT binary)" >/dev/null
    t1=$(date +%s.%N)
    dref+=("$(awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')")
}
for r in $(seq 1 "$DRAIN_ROUNDS"); do
    [ $((r % 2)) = 1 ] && copy_ref
    rm -f "$WORK"/bench-spool.db*
    psql -XAtq "$ADMIN_DSN" -c "TRUNCATE process_data_points, process_data_rollup, ingest_ledger; CHECKPOINT"
    "$BIN/bench_spool" write "$WORK/bench-spool.db" "$ROWS" "$BATCH" 1 > "$WORK/spool-write.txt"
    "$BIN/bench_spool" drain "$ADMIN_DSN" "$WORK/bench-spool.db" > "$WORK/spool-drain.txt"
    wr+=("$(sed -n 's/^rows_per_s //p' "$WORK/spool-write.txt")")
    dr+=("$(sed -n 's/^rows_per_s //p' "$WORK/spool-drain.txt")")
    tx+=("$(sed -n 's/^transactions //p' "$WORK/spool-drain.txt")")
    [ $((r % 2)) = 0 ] && copy_ref
    rr+=("$(awk -v d="${dr[-1]}" -v p="${dref[-1]}" 'BEGIN {printf "%.3f", d / p}')")
    echo "   round $r: spool write ${wr[-1]} rows/s, drain ${dr[-1]} rows/s in ${tx[-1]} transactions, psql \\copy beside it ${dref[-1]} rows/s: ${rr[-1]}"
done
w=$(printf '%s\n' "${wr[@]}" | median); d=$(printf '%s\n' "${dr[@]}" | median)
dp=$(printf '%s\n' "${dref[@]}" | median); dq=$(printf '%s\n' "${rr[@]}" | median)
awk -v w="$w" -v d="$d" -v p="$p" -v dp="$dp" -v dq="$dq" -v n="$DRAIN_ROUNDS" 'BEGIN {
    printf "   RATIO spool write (fsync per batch) / psql \\copy = %s / %s = %.2f\n", w, p, w / p
    printf "   median drain %s rows/s, psql \\copy beside it %s rows/s\n", d, dp
    printf "   RATIO drain of the backlog / psql \\copy (median of %d rounds) = %.2f\n", n, dq }'

echo "== aldrecd poll loop while draining a $ROWS-row backlog (demo map, 10 Hz, aldsim)"
psql -XAtq "$ADMIN_DSN" -c "TRUNCATE process_data_points, process_data_rollup, ingest_ledger; CHECKPOINT"
DCFG=$WORK/aldrecd-bench.conf
aldrecd_config "$DCFG" recorder.batch_rows=1000 recorder.flush_interval_ms=500 \
    spool.path="$WORK/daemon-spool.db"
A="$BIN/aldrec --config $DCFG"
aldrecd_start "$DCFG" "$WORK/aldrecd-bench.log" || ald_die "aldrecd did not start"
spool_init_counts
PROC=$($A process start --recipe bench)
T0=$(now_s)
sleep "${BENCH_POLL_S:-20}"
T1=$(now_s)
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID" || true
# The backlog: rows of another process, appended to aldrecd's own spool
# while it is down, as if PostgreSQL had been away.
"$BIN/bench_spool" write "$WORK/daemon-spool.db" "$ROWS" "$BATCH" 900000 >/dev/null
aldrecd_start "$DCFG" "$WORK/aldrecd-bench.log" || ald_die "aldrecd did not restart"
T2=$(now_s)
wait_until 300 "backlog drained" bash -c "[ \"\$($A status | sed -n 's/^queue: *\([0-9]*\) batches.*/\1/p')\" = 0 ]"
T3=$(now_s)
sleep 2
$A process stop >/dev/null
QUIET=$(poll_intervals_ms "$PROC" "$T0" "$T1")
BUSY=$(poll_intervals_ms "$PROC" "$T2" "$T3")
read -r q50 q99 qmax qn <<<"$QUIET"
read -r b50 b99 bmax bn <<<"$BUSY"
echo "   poll period without backlog: p50 $q50 ms, p99 $q99 ms, max $qmax ms ($qn polls)"
echo "   poll period while draining:  p50 $b50 ms, p99 $b99 ms, max $bmax ms ($bn polls)"
awk -v n="$ROWS" -v a="$T2" -v b="$T3" -v p="$p" 'BEGIN {
    printf "   aldrecd drained %d rows in %.1f s while polling: %.0f rows/s (%.2f of psql \\copy)\n", n, b - a, n / (b - a), n / (b - a) / p }'
awk -v q="$q99" -v b="$b99" 'BEGIN {printf "   RATIO poll p99 while draining / without = %d / %d = %.2f\n", b, q, b / q}'
echo "== acquisition: one aldrecd, 4 aldsim devices x 100 parameters (tests/bench/bench_acq.sh)"
bash "$(dirname "$0")/bench_acq.sh" | sed 's/^/   /'
# 6. the read side at 10 M points (its own private cluster)
bash "$(dirname "$0")/query_bench.sh"
# 8. set points through aldrecd (its own private cluster)
bash "$(dirname "$0")/bench_param.sh"
echo "== web pages: aldrec web in headless Chromium (tests/bench/web_bench.sh)"
bash "$(dirname "$0")/web_bench.sh"
# 10. idle recording's cost on the controller (its own cluster)
bash "$(dirname "$0")/idle_bench.sh"
echo "== parameter metadata cache (demo map; 100 components x 10 parameters)"
redis_start
psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<'SQL'
INSERT INTO machines (name) VALUES ('bulk100') ON CONFLICT DO NOTHING;
INSERT INTO machine_components (machine_id, name, host, port)
SELECT m.id, 'c' || lpad(g::text, 3, '0'), '127.0.0.1', 1502
  FROM machines m, generate_series(1, 100) g WHERE m.name = 'bulk100' ON CONFLICT DO NOTHING;
INSERT INTO component_parameters (component_id, name, register_type, address, data_type)
SELECT mc.id, 'p' || k, 'holding', k, 'u16'
  FROM machine_components mc JOIN machines m ON m.id = mc.machine_id AND m.name = 'bulk100',
       generate_series(0, 9) k
ON CONFLICT DO NOTHING;
SQL
"$BIN/bench_cache" "$REC_DSN" "$REDIS_PORT" "${BENCH_CACHE_ROUNDS:-101}" ald-demo bulk100 > "$WORK/cache.txt"
sed 's/^/   /' "$WORK/cache.txt"
awk '/^l1_hit_ns/ {l1=$2} /^l2_hit_us/ {l2=$2} /^pg_miss_us/ {pg=$2}
     END {printf "   MEDIAN lookup: L1 hit %d ns, L2 hit (tool run: connect + MGET + decode) %.0f us, PostgreSQL miss (connect + bulk query + L2 write) %.0f us\n", l1, l2, pg}' "$WORK/cache.txt"
awk '/^refresh/ {printf "   RATIO %s (%d parameters, %d components): one query per component / bulk = %.3f ms / %.3f ms = %.1fx\n", $2, $4, $6, $10, $8, $10 / $8}' "$WORK/cache.txt"
