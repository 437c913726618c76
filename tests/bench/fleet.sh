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
# psql \copy of the same total rows; each batch's time (ledger + COPY +
# COMMIT) p50 over the tools and p99 of the worst. From the highest N:
# reference tools per PostgreSQL core and GB per tool per day.
#
# Then, paced: each tool writes one batch per second of the reference load
# for FLEET_PACED_S seconds (BENCH_COPY_PACE_MS=1000), as an aldrecd with
# flush_interval_ms = 1000 does, and per recorder the p99 of commit latency
# (batch ready -> COMMIT done) and of the lag (first sample polled -> COMMIT
# done) are printed: where they grow past a second, the server no longer
# keeps up. (aldrecd itself reports both: aldrec_commit_delay_seconds and
# aldrec_commit_lag_seconds in /metrics.)
#
# Last, each index of process_data_points left out once (dropped, the same
# FLEET_INDEX_N tools run, the index made again): rows/s and PostgreSQL
# CPU-seconds per million rows with and without it, same run.
#
# Then the catch-up after an outage: FLEET_CATCHUP_N recorders (8) each
# drain FLEET_CATCHUP_S seconds (an hour) of spooled reference load at once
# through aldrecd's forwarder while recording live: drain time, rows/s and
# the live batches' lag, during the drain and after.
#
# The box has 2 cores shared with other work; the runs are kept short and
# the figures say so.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap ald_cleanup EXIT

ROWS=${FLEET_ROWS:-200000}        # per tool
BATCH=${FLEET_BATCH:-4000}        # one second of the reference load
NS=${FLEET_NS:-1 2 4 8 16 32}
PACED_NS=${FLEET_PACED_NS:-1 4 8 16 32}
PACED_S=${FLEET_PACED_S:-20}
INDEX_N=${FLEET_INDEX_N:-4}
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
reset_tables() { q "TRUNCATE process_data_points, process_data_rollup, ingest_ledger; CHECKPOINT" >/dev/null; }
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
# run_tools N ROWS [PACE_MS]: N bench_copy writers at once, outputs in
# $WORK/w<k>.txt; sets T0 T1 (wall), C0 C1 (PostgreSQL CPU-s)
run_tools() {
    local n=$1 rows=$2 pace=${3:-} k p
    local -a pids=()
    C0=$(pg_cpu); T0=$(date +%s.%N)
    for k in $(seq 1 "$n"); do
        BENCH_COPY_PACE_MS=$pace "$BIN/bench_copy" "$ADMIN_DSN" "$rows" "$BATCH" "$WORK/o$k.bin" "$k" "tool$k" \
            > "$WORK/w$k.txt" &
        pids+=($!)
    done
    sleep 0.5
    CONNS=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
    for p in "${pids[@]}"; do wait "$p" || ald_die "a load generator failed (N=$n)"; done
    T1=$(date +%s.%N); C1=$(pg_cpu)
}
# tool_q NAME: NAME's value from each tool's output, one a line, tool order
tool_q() { local k; for k in $(seq 1 "$1"); do sed -n "s/^$2 //p" "$WORK/w$k.txt"; done; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxof() { sort -n | tail -1; }

q "INSERT INTO processes (id, machine_id, recipe, recorder_id, started_at)
   SELECT g, (SELECT id FROM machines LIMIT 1), 'fleet', 'tool' || g, now() FROM generate_series(1, 64) g
   ON CONFLICT DO NOTHING" >/dev/null

echo "== fleet: N tools into one PostgreSQL, $ROWS rows each in batches of $BATCH (load generator: bench_copy on aldrecd's write path, not aldrecd + aldsim; 2 cores shared with other work)"
printf '   %4s %10s %12s %10s %10s %10s %10s %6s %14s\n' N rows/s "PG cpu-s/Mrow" "WAL B/row" "disk B/row" "batch p50" "p99 worst" conns "psql \\copy r/s"
last=""
for n in $NS; do
    reset_tables
    l0=$(lsn)
    run_tools "$n" "$ROWS"
    l1=$(lsn)
    total=$((n * ROWS))
    stored=$(q "SELECT count(*) FROM process_data_points")
    [ "$stored" -eq "$total" ] || ald_die "fleet N=$n: $stored rows stored, $total written"
    b50=$(tool_q "$n" write_ms_p50 | median); b99=$(tool_q "$n" write_ms_p99 | maxof)
    wal=$(wal_bytes "$l0" "$l1"); dk=$(disk); rk=$(q "SELECT pg_total_relation_size('process_data_rollup')")
    # the reference: one psql \copy of the same total rows (text input, the
    # same rows n times under n process ids)
    reset_tables
    for k in $(seq 1 "$n"); do sed "s/^1\t/$k\t/" "$WORK/rows.txt"; done > "$WORK/all.txt"
    r0=$(date +%s.%N)
    q "\\copy process_data_points (process_id, parameter_id, ts, value, quality) FROM '$WORK/all.txt'" >/dev/null
    r1=$(date +%s.%N)
    awk -v n="$n" -v tot="$total" -v a="$T0" -v b="$T1" -v c0="$C0" -v c1="$C1" -v wal="$wal" -v dk="$dk" \
        -v b50="$b50" -v b99="$b99" -v cn="$CONNS" -v r0="$r0" -v r1="$r1" 'BEGIN {
        printf "   %4d %10.0f %12.2f %10.0f %10.0f %7.1f ms %7.1f ms %6d %14.0f\n", n, tot / (b - a), (c1 - c0) / (tot / 1e6),
               wal / tot, dk / tot, b50, b99, cn, tot / (r1 - r0) }'
    last="$n $total $T0 $T1 $C0 $C1 $dk $rk"
done
idx=$(reset_tables; "$BIN/bench_copy" "$ADMIN_DSN" "$ROWS" "$BATCH" "$WORK/o.bin" 1 tool1 >/dev/null; idx_disk)
read -r n total t0 t1 c0 c1 dk rk <<<"$last"
awk -v n="$n" -v tot="$total" -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v dk="$dk" -v rk="$rk" -v date="$(date -u +%Y-%m-%d)" 'BEGIN {
    rps_core = tot / (c1 - c0)             # rows per PostgreSQL CPU-second
    printf "   at N=%d: %.0f rows per PostgreSQL CPU-second = %.0f reference tools (4,000 points/s) per PostgreSQL core\n",
           n, rps_core, rps_core / 4000
    printf "   disk: %.0f bytes per row (table + indexes) = %.1f GB per reference tool per day (measured %s)\n",
           dk / tot, dk / tot * 4000 * 86400 / 1e9, date
    printf "   + the rollup (one row per parameter per 10-s bucket per batch group): %.1f bytes per point = %.2f GB per tool per day (%.1f%% of the points)\n",
           rk / tot, rk / tot * 4000 * 86400 / 1e9, rk / dk * 100 }'
echo "   index sizes after $ROWS rows of one tool: $idx"

echo "== paced: each tool one batch of $BATCH rows per second (the reference load, as aldrecd with flush_interval_ms = 1000) for $PACED_S s; 2 shared cores"
echo "   commit = batch ready -> COMMIT done; lag = first sample polled -> COMMIT done; p99 per recorder, ms"
printf '   %4s %10s %10s %12s %12s  %s\n' N "rows/s" "PG % core" "commit p99" "lag p99" "lag p99 per recorder (tool1 ...)"
for n in $PACED_NS; do
    reset_tables
    run_tools "$n" $((PACED_S * BATCH)) 1000
    c99=$(tool_q "$n" commit_ms_p99 | maxof); l99=$(tool_q "$n" lag_ms_p99 | maxof)
    per=$(tool_q "$n" lag_ms_p99 | awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}')
    awk -v n="$n" -v tot=$((n * PACED_S * BATCH)) -v a="$T0" -v b="$T1" -v c0="$C0" -v c1="$C1" \
        -v c99="$c99" -v l99="$l99" -v per="$per" 'BEGIN {
        printf "   %4d %10.0f %10.1f %9.1f ms %9.1f ms  %s\n", n, tot / (b - a), (c1 - c0) / (b - a) * 100,
               c99, l99, per }'
done

echo "== index cost: process_data_points with each index left out once, $INDEX_N tools x $ROWS rows as fast as they can; 2 shared cores"
# pg_get_indexdef says CREATE INDEX ... ON ONLY for a partitioned table (the
# parent alone, invalid until each partition's index is attached): without
# ONLY, the partitions get theirs too.
mapfile -t IDX < <(q "SELECT c.relname || '|' || replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') FROM pg_index i
                      JOIN pg_class c ON c.oid = i.indexrelid
                      WHERE i.indrelid = 'process_data_points'::regclass ORDER BY c.relname")
[ ${#IDX[@]} -gt 0 ] || ald_die "process_data_points has no indexes to leave out"
printf '   %-46s %10s %12s %10s %8s\n' "indexes" rows/s "PG cpu-s/Mrow" "disk B/row" "vs all"
idx_run() {   # LABEL: one run with the indexes as they are now
    reset_tables
    run_tools "$INDEX_N" "$ROWS"
    local tot=$((INDEX_N * ROWS)) dk
    dk=$(disk)
    awk -v l="$1" -v tot="$tot" -v a="$T0" -v b="$T1" -v c0="$C0" -v c1="$C1" -v dk="$dk" -v base="${BASE_RPS:-}" 'BEGIN {
        r = tot / (b - a); printf "   %-46s %10.0f %12.2f %10.0f %8s\n", l, r, (c1 - c0) / (tot / 1e6), dk / tot,
        base == "" ? "1.00" : sprintf("%.2f", r / base) }'
}
BASE_RPS=""
line=$(idx_run "all ${#IDX[@]}")
echo "$line"
BASE_RPS=$(awk '{print $(NF - 3)}' <<<"$line")
for e in "${IDX[@]}"; do
    name=${e%%|*} def=${e#*|}
    q "DROP INDEX $name" >/dev/null
    idx_run "without $name"
    q "$def" >/dev/null
done
for e in "${IDX[@]}"; do q "DROP INDEX ${e%%|*}" >/dev/null; done
idx_run "none"
for e in "${IDX[@]}"; do q "${e#*|}" >/dev/null; done
[ "$(q "SELECT count(*) FROM pg_index WHERE indrelid = 'process_data_points'::regclass AND indisvalid")" = ${#IDX[@]} ] ||
    ald_die "the indexes of process_data_points were not all made again"

# Catch-up: CATCHUP_N recorders come back to the network at once, each with
# CATCHUP_S seconds of the reference load in its spool (4,000 points a
# second, in batches of 4,000), and each keeps recording live meanwhile:
# bench_spool catchup runs aldrecd's forwarder on the spool while a thread
# appends a live batch a second behind the backlog, as aldrecd's main loop
# does. The forwarder sends oldest first, so a live batch waits for the
# backlog in front of it: its lag while the backlog drains is about the
# drain time; the recorder has caught up once the live batches that queued
# behind the backlog meanwhile are stored too; after, the lag is the paced
# figure above.
CATCHUP_N=${FLEET_CATCHUP_N:-8}
CATCHUP_S=${FLEET_CATCHUP_S:-3600}
CATCHUP_AFTER_S=${FLEET_CATCHUP_AFTER_S:-30}
echo "== catch-up: $CATCHUP_N recorders, each with $CATCHUP_S s of the reference load spooled ($((CATCHUP_S * BATCH)) rows), draining at once while recording live (1 batch of 4,000 points a second each); 2 shared cores"
reset_tables
for k in $(seq 1 "$CATCHUP_N"); do
    rm -f "$WORK/catch$k.db"*
    "$BIN/bench_spool" write "$WORK/catch$k.db" $((CATCHUP_S * BATCH)) "$BATCH" "$k" >/dev/null ||
        ald_die "could not fill the spool of recorder $k"
done
sb=$(du -cb "$WORK"/catch*.db | tail -1 | cut -f1)
pids=()
C0=$(pg_cpu); T0=$(date +%s.%N)
for k in $(seq 1 "$CATCHUP_N"); do
    "$BIN/bench_spool" catchup "$ADMIN_DSN" "$WORK/catch$k.db" "catch$k" "$k" "$CATCHUP_AFTER_S" > "$WORK/c$k.txt" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || ald_die "a catch-up recorder failed"; done
T1=$(date +%s.%N); C1=$(pg_cpu)
printf '   %-8s %12s %10s %12s %12s %16s %14s\n' recorder "backlog rows" "drain s" "drain rows/s" "caught up s" "live lag max ms" "after: p99 ms"
for k in $(seq 1 "$CATCHUP_N"); do
    awk -v k="$k" '{v[$1] = $2} END {printf "   catch%-3d %12d %10.1f %12.0f %12.1f %16.0f %14.0f (%d batches)\n", k, v["backlog_rows"], v["drain_s"],
        v["drain_rows_per_s"], v["catchup_s"], v["lag_ms_max_draining"], v["lag_ms_p99_after"], v["after_batches"]}' "$WORK/c$k.txt"
done
cmax=$(for k in $(seq 1 "$CATCHUP_N"); do sed -n 's/^catchup_s //p' "$WORK/c$k.txt"; done | maxof)
echo "   caught up (the live batches that queued behind the backlog stored too) after $cmax s at the latest"

stored=$(q "SELECT count(*) FROM process_data_points WHERE ts < '2026-01-01'")
want=$((CATCHUP_N * CATCHUP_S * BATCH))
[ "$stored" -eq "$want" ] || ald_die "catch-up: $stored backlog rows stored, $want spooled"
dmax=$(for k in $(seq 1 "$CATCHUP_N"); do sed -n 's/^drain_s //p' "$WORK/c$k.txt"; done | maxof)
awk -v n="$CATCHUP_N" -v s="$CATCHUP_S" -v d="$dmax" -v want="$want" -v sb="$sb" -v c0="$C0" -v c1="$C1" -v a="$T0" -v b="$T1" 'BEGIN {
    printf "   all %d backlogs (%d rows, %.1f GB of spool) stored in %.0f s: %.0f rows/s, %.0fx faster than they were recorded; PostgreSQL %.0f%% of a core\n",
           n, want, sb / 1e9, d, want / d, s / d, (c1 - c0) / (b - a) * 100 }'
echo "   rollup rows: $(q "SELECT count(*) FROM process_data_rollup"), $(q "SELECT pg_total_relation_size('process_data_rollup')") bytes on disk, against $(disk) for the points"
