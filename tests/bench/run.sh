#!/bin/bash
# run.sh — `make bench`. Prints figures as ratios against a reference
# measured in the same run, on the same machine, into the same tables:
#   1. writer ingest: our path (binary COPY + ledger row, one transaction per
#      batch) vs `psql \copy ... (FORMAT binary)` of the same rows in one COPY;
#   2. Modbus requests per poll cycle for the demo map: planned vs one
#      request per parameter, and the cycle time each way against aldsim;
#   3. acquisition (bench_acq.sh): points/s, CPU %, RSS, jitter of one aldrecd
#      polling 4 aldsim devices x 100 parameters at 10, 20 and 50 Hz.
#   4. queries (query_bench.sh): export and step summary vs the same on an
#      unindexed copy, plot time of a 10-hour run.
# Not run by `make test`: timings belong here, not in pass/fail checks.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap ald_cleanup EXIT

ROWS=${BENCH_ROWS:-1000000}
BATCH=${BENCH_BATCH:-5000}
ROUNDS=${BENCH_ROUNDS:-3}

ald_workdir bench
pg_start
aldrecd_config "$WORK/bench.conf"
pg_migrate "$WORK/bench.conf"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== writer ingest: $ROWS rows (100 parameters), indexed process_data_points"
"$BIN/bench_copy" --file-only "$ROWS" "$WORK/rows.bin" 1
ours=(); ref=()
for r in $(seq 1 "$ROUNDS"); do
    psql -XAtq "$ADMIN_DSN" -c "TRUNCATE process_data_points, ingest_ledger; CHECKPOINT"
    t=$("$BIN/bench_copy" "$ADMIN_DSN" "$ROWS" "$BATCH" "$WORK/ours.bin" 1 | sed -n 's/^rows_per_s //p')
    ours+=("$t")
    psql -XAtq "$ADMIN_DSN" -c "TRUNCATE process_data_points, ingest_ledger; CHECKPOINT"
    t0=$(date +%s.%N)
    psql -XAtq "$ADMIN_DSN" -c "\\copy process_data_points (process_id, parameter_id, ts, value, quality) FROM '$WORK/rows.bin' WITH (FORMAT binary)" >/dev/null
    t1=$(date +%s.%N)
    ref+=("$(awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')")
    echo "   round $r: ours ${ours[-1]} rows/s, psql \\copy ${ref[-1]} rows/s"
done
cmp -s "$WORK/rows.bin" "$WORK/ours.bin" && echo "   (same rows: our encoder's file is byte-identical to the reference input)"
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

echo "== acquisition: one aldrecd, 4 aldsim devices x 100 parameters (tests/bench/bench_acq.sh)"
bash "$(dirname "$0")/bench_acq.sh" | sed 's/^/   /'
# 4. the read side at 10 M points (its own private cluster)
bash "$(dirname "$0")/query_bench.sh"
