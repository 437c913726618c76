#!/bin/bash
# fleet.sh — `make bench-fleet`: N tools writing into one PostgreSQL at once.
#
# 2 cores cannot run 32 aldrecd + aldsim pairs, so each tool is a load
# generator on aldrecd's write path: bench_copy, i.e. pgcopy's binary
# encoding and pgsink's transaction (ledger row + binary COPY + COMMIT, one
# per batch), with a recorder id, a process and a ledger of its own, one
# batch per second's worth of the reference load (4 x 100 parameters at
# 10 Hz = 4,000 points per batch). Per N: rows/s stored, PostgreSQL
# CPU-seconds per million rows (its processes' utime+stime from /proc), WAL
# and disk bytes per row (table and each index), connections; beside it one
# psql \copy of the same total rows. From the highest N: reference tools per
# PostgreSQL core and GB per tool per day.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap ald_cleanup EXIT

ROWS=${FLEET_ROWS:-200000}        # per tool
BATCH=${FLEET_BATCH:-4000}        # one second of the reference load
NS=${FLEET_NS:-1 2 4 8 16 32}
ald_workdir bench-fleet
PG_EXTRA_OPTS="-c max_connections=200 -c shared_buffers=256MB -c max_wal_size=4GB" pg_start
aldrecd_config "$WORK/bench.conf"
pg_migrate "$WORK/bench.conf"
demo_machine_load 1502 100
"$BIN/bench_copy" --text-only "$ROWS" "$WORK/rows.txt" 1

pg_cpu() {   # CPU-seconds of the cluster: the postmaster with its reaped
             # children (backends that ended) and the children still running
    local pids
    pids=$(pgrep -P "$PG_PID" | tr '\n' ' ')
    { awk '{print $14 + $15 + $16 + $17}' "/proc/$PG_PID/stat"
      for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done; } |
        awk -v hz="$(getconf CLK_TCK)" '{s += $1} END {printf "%.3f\n", s / hz}'
}
q() { psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" -c "$1"; }
reset_tables() { q "TRUNCATE process_data_points, ingest_ledger; CHECKPOINT" >/dev/null; }
lsn() { q "SELECT pg_current_wal_lsn()"; }
wal_bytes() { q "SELECT pg_wal_lsn_diff('$2', '$1')::bigint"; }
disk() { q "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'process_data_points'::regclass"; }
idx_disk() { q "SELECT string_agg(ip.relname || ' ' || s, ', ') FROM (SELECT pi.indexrelid::regclass::text AS relname,
               sum(pg_relation_size(ci.indexrelid)) AS s FROM pg_index pi
               JOIN pg_inherits i ON i.inhparent = pi.indrelid JOIN pg_index ci ON ci.indrelid = i.inhrelid
               WHERE pi.indrelid = 'process_data_points'::regclass
                 AND ci.indexrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = pi.indexrelid)
               GROUP BY 1) ip"; }
q "INSERT INTO processes (id, machine_id, recipe, recorder_id, started_at)
   SELECT g, (SELECT id FROM machines LIMIT 1), 'fleet', 'tool' || g, now() FROM generate_series(1, 64) g
   ON CONFLICT DO NOTHING" >/dev/null

echo "== fleet: N tools into one PostgreSQL, $ROWS rows each in batches of $BATCH (load generator: bench_copy on aldrecd's write path, not aldrecd + aldsim)"
printf '   %4s %10s %12s %10s %10s %10s %6s %14s\n' N rows/s "PG cpu-s/Mrow" "WAL B/row" "disk B/row" "commit p50" conns "psql \\copy r/s"
last=""
for n in $NS; do
    reset_tables
    l0=$(lsn); c0=$(pg_cpu); t0=$(date +%s.%N)
    pids=()
    for k in $(seq 1 "$n"); do
        "$BIN/bench_copy" "$ADMIN_DSN" "$ROWS" "$BATCH" "$WORK/o$k.bin" "$k" "tool$k" > "$WORK/w$k.txt" &
        pids+=($!)
    done
    conns=0
    sleep 0.5
    conns=$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%' AND backend_type = 'client backend'" )
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(date +%s.%N); c1=$(pg_cpu); l1=$(lsn)
    total=$((n * ROWS))
    stored=$(q "SELECT count(*) FROM process_data_points")
    [ "$stored" -eq "$total" ] || ald_die "fleet N=$n: $stored rows stored, $total written"
    # commit latency: each batch's wall time inside bench_copy (seconds/batches)
    per_batch=$(cat "$WORK"/w*.txt | awk '/^seconds/ {s = $2} /^batches/ {print s / $2 * 1000}' | sort -n |
                awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    wal=$(wal_bytes "$l0" "$l1"); dk=$(disk)
    rm -f "$WORK"/w*.txt
    # the reference: one psql \copy of the same total rows (text input, the
    # same rows n times under n process ids)
    reset_tables
    for k in $(seq 1 "$n"); do sed "s/^1\t/$k\t/" "$WORK/rows.txt"; done > "$WORK/all.txt"
    r0=$(date +%s.%N)
    q "\\copy process_data_points (process_id, parameter_id, ts, value, quality) FROM '$WORK/all.txt'" >/dev/null 2>&1 ||
        psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" -c "\\copy process_data_points (process_id, parameter_id, ts, value, quality) FROM '$WORK/all.txt'" >/dev/null
    r1=$(date +%s.%N)
    awk -v n="$n" -v tot="$total" -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v wal="$wal" -v dk="$dk" \
        -v pb="$per_batch" -v cn="$conns" -v r0="$r0" -v r1="$r1" 'BEGIN {
        printf "   %4d %10.0f %12.2f %10.0f %10.0f %8.1f ms %6d %14.0f\n", n, tot / (b - a), (c1 - c0) / (tot / 1e6),
               wal / tot, dk / tot, pb, cn, tot / (r1 - r0) }'
    last="$n $total $t0 $t1 $c0 $c1 $dk"
done
idx=$(reset_tables; "$BIN/bench_copy" "$ADMIN_DSN" "$ROWS" "$BATCH" "$WORK/o.bin" 1 tool1 >/dev/null; idx_disk)
read -r n total t0 t1 c0 c1 dk <<<"$last"
awk -v n="$n" -v tot="$total" -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v dk="$dk" -v date="$(date -u +%Y-%m-%d)" 'BEGIN {
    rps_core = tot / (c1 - c0)             # rows per PostgreSQL CPU-second
    printf "   at N=%d: %.0f rows per PostgreSQL CPU-second = %.0f reference tools (4,000 points/s) per PostgreSQL core\n",
           n, rps_core, rps_core / 4000
    printf "   disk: %.0f bytes per row (table + indexes) = %.1f GB per reference tool per day (measured %s)\n",
           dk / tot, dk / tot * 4000 * 86400 / 1e9, date }'
echo "   index sizes after $ROWS rows of one tool: $idx"
