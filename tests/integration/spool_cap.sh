#!/bin/bash
# spool_cap.sh — the spool reaches [spool] max_bytes while a process runs and
# PostgreSQL is down: the oldest batches are dropped (never the newest),
# every dropped point is counted, dropping is logged when it starts and when
# it ends (not per batch), and once PostgreSQL is back a gap record
# (data_gaps) says exactly what is missing: its point count equals the
# points missing from process_data_points.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT
MAX_BYTES=98304            # 96k: about 19 batches of 96 rows (5 KiB each)

spool_setup spool_cap 14 spool.max_bytes=96k
PROC=$($A process start --recipe cap)
wait_stored 320
T_CRASH=$(now_s)
pg_crash
check "the spool fills up while PostgreSQL is down" \
    wait_until 40 "spool full" st_match dropped 'dropping now'
# Drop for a while, watching the files: their largest sizes, sampled every
# 100 ms for 6 s, must stay within what the cap allows.
#   log: spool.c checkpoints it once it holds T pages, T = a quarter of
#        max_bytes, at least 16 and at most 1024 pages of 4 KiB (spool.h), and
#        journal_size_limit cuts it back to T pages; between an append and its
#        checkpoint it may hold one or two transactions more (an append that
#        drops the oldest writes ~4-6 pages): 16 pages of slack. A WAL file is
#        a 32-byte header and frames of 24 + 4096 bytes. Here T = 16 pages,
#        bound 129 KiB; seen 80 KiB. Without checkpoints it grows with every
#        append (1.5 MB by now), and without checkpoints while PostgreSQL is
#        down (only when the forwarder tries to reconnect) to 0.5-0.7 MB.
#   file: the queued payload is at most max_bytes; a batch (5 KiB here) costs
#        its payload plus at most one page of overflow and B-tree slack, so
#        less than twice its size; plus 16 pages of schema and free pages.
#        Bound 256 KiB; seen 136 KiB.
T_PAGES=$((MAX_BYTES / 4 / 4096)); [ $T_PAGES -lt 16 ] && T_PAGES=16; [ $T_PAGES -gt 1024 ] && T_PAGES=1024
WAL_BOUND=$((32 + (T_PAGES + 16) * 4120))
DB_BOUND=$((2 * MAX_BYTES + 16 * 4096))
MAX_DB=0; MAX_WAL=0
for i in $(seq 60); do
    db=$(stat -c %s "$WORK/spool.db"); wal=$(stat -c %s "$WORK/spool.db-wal" 2>/dev/null || echo 0)
    [ "$db" -gt "$MAX_DB" ] && MAX_DB=$db
    [ "$wal" -gt "$MAX_WAL" ] && MAX_WAL=$wal
    sleep 0.1
done
echo "# largest spool file $MAX_DB bytes, log $MAX_WAL bytes (checkpoint at $T_PAGES pages)"
BYTES=$(st queue bytes)
check_le "queued bytes stay under max_bytes" "$BYTES" "$MAX_BYTES"
check_ge "... and the spool is nearly full" "$BYTES" $((MAX_BYTES - 6000))
check_match "status: dropping now" "$(st dropped)" "dropping now: spool full"
check_le "the log is checkpointed: at most $T_PAGES + 16 pages (a quarter of max_bytes, min 16)" \
    "$MAX_WAL" "$WAL_BOUND"
check_le "the spool file stays under 2 x max_bytes + 16 pages" "$MAX_DB" "$DB_BOUND"

pg_restart
drained() { st_is queue batches 0 && ! st_match dropped 'dropping now'; }
check "after PostgreSQL is back the spool drains" wait_until 60 "spool drained, gap closed" drained
sleep 1
STOP=$($A process stop)
DROPPED=$(st dropped rows)
DROPPED_B=$(st dropped batches)
echo "# $STOP"
check_match "process stop does not claim all stored: it names the dropped rows" "$STOP" \
    "; [0-9]+ stored, $DROPPED dropped \(see data_gaps\)"
check_ge "points were dropped" "$DROPPED" 96
check_eq "rows recorded = rows stored + rows dropped" "$(recorded_rows "$STOP")" \
    $(( $(stored_rows "$PROC") + DROPPED ))

EXPECTED=$(expected_rows "$PROC")
STORED=$(stored_rows "$PROC")
echo "# expected $EXPECTED rows, stored $STORED, dropped $DROPPED in $DROPPED_B batches"
check_eq "one gap record for the process" "$(q "SELECT count(*) FROM data_gaps WHERE process_id = $PROC")" 1
check_eq "gap record: points = rows missing from the table, exactly" \
    "$(q "SELECT points FROM data_gaps WHERE process_id = $PROC")" $((EXPECTED - STORED))
check_eq "gap record: points = the dropped count aldrecd reported" \
    "$(q "SELECT points FROM data_gaps WHERE process_id = $PROC")" "$DROPPED"
check_eq "gap record: batches = dropped batches" \
    "$(q "SELECT batches FROM data_gaps WHERE process_id = $PROC")" "$DROPPED_B"
check_eq "gap record: the parameter set is every parameter" \
    "$(q "SELECT parameter_ids = (SELECT array_agg(id ORDER BY id) FROM component_parameters WHERE is_active) FROM data_gaps WHERE process_id = $PROC")" t
check_match "gap record: the reason" "$(q "SELECT reason FROM data_gaps WHERE process_id = $PROC")" \
    "^spool full: max_bytes $MAX_BYTES reached, policy drop_oldest$"
check_eq "gap record: its time range holds no stored sample, and both ends are next to one" \
    "$(q "SELECT (SELECT count(*) FROM process_data_points p WHERE p.process_id = $PROC AND p.ts BETWEEN g.first_ts AND g.last_ts) || ' ' ||
                 (SELECT max(ts) < g.first_ts AND max(ts) > g.first_ts - interval '1 s' FROM process_data_points p WHERE p.process_id = $PROC AND p.ts < g.first_ts) || ' ' ||
                 (SELECT min(ts) > g.last_ts AND min(ts) < g.last_ts + interval '1 s' FROM process_data_points p WHERE p.process_id = $PROC AND p.ts > g.last_ts)
            FROM data_gaps g WHERE g.process_id = $PROC")" "0 true true"
read -r OK ZERO GAPS MISSING MAXGAP <<<"$(counter_steps "$PROC")"
check_eq "the oldest were dropped: one hole in the read counter, nothing stored twice" "$GAPS $ZERO" "1 0"
check_eq "... and its polls are the dropped points" $((MISSING * NPARAM)) "$DROPPED"
check_eq "... and it starts where the outage started (the oldest went first)" \
    "$(q "SELECT first_ts BETWEEN to_timestamp($T_CRASH - 2) AND to_timestamp($T_CRASH + 2) FROM data_gaps WHERE process_id = $PROC")" t
check_eq "the ledger has the gap record (kind 4) and its points rows" \
    "$(q "SELECT count(*) FILTER (WHERE kind = 4) || ' ' || sum(rows) FILTER (WHERE kind = 1) FROM ingest_ledger WHERE process_id = $PROC")" \
    "1 $STORED"
check_eq "dropping was logged once when it started" \
    "$(grep -c 'spool full (.*): dropping the oldest batches' "$WORK/aldrecd.log")" 1
check_eq "... and once when it ended" \
    "$(grep -c "spool has room again: $DROPPED points in $DROPPED_B batches were dropped" "$WORK/aldrecd.log")" 1
check_done spool_cap
