#!/bin/bash
# spool_outage.sh — PostgreSQL stops dead (pg_ctl stop -m immediate) for
# 30 s in the middle of a run, then comes back: batches wait in the spool,
# are forwarded oldest first, and every poll is stored exactly once; polling
# goes on at its pace through the outage (the poll period, as in
# spool_blackhole.sh). The run is stopped late in the outage: `process stop`
# says how much is still spooled instead of claiming it stored.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT
OUTAGE_S=${OUTAGE_S:-30}

spool_setup spool_outage 11
PROC=$($A process start --recipe outage)
T_START=$(now_s)
wait_stored $((50 * NPARAM))    # a baseline of 50 undisturbed polls
check_eq "link is up while PostgreSQL runs" "$(st database_link | cut -d' ' -f1)" up

pg_crash
T0=$SECONDS
T_CRASH=$(now_s)
check "link goes to spooling when PostgreSQL is gone" wait_link 15 spooling
# The run ends late in the outage (12 s into it: process stop waits up to
# 15 s for PostgreSQL, aldrecd's STOP_WAIT_MS), and says honestly how many
# rows are not in PostgreSQL yet. Until then its samples show the poll loop.
sleep "$(awk -v t="$T_CRASH" -v n="$(now_s)" 'BEGIN {d = t + 12 - n; print (d > 0 ? d : 0)}')"
T_STOP=$(now_s)
STOP=$($A process stop 2>"$WORK/stop.err"); rc=$?
echo "# $STOP"
check_match "process stop during the outage: rows still spooled, and why" "$STOP" \
    "stopped process $PROC: [0-9]+ rows recorded; [0-9]+ stored, [0-9]+ still spooled \(PostgreSQL has not taken them yet: .+\)"
check_eq "... and aldrec exits 1: it could not close the process row" "$rc" 1
check_match "... saying so" "$(cat "$WORK/stop.err")" "process $PROC is still marked running"
LEFT=$((OUTAGE_S - (SECONDS - T0)))
[ "$LEFT" -gt 0 ] && sleep "$LEFT"
QB=$(queue_batches)
check_ge "batches wait in the spool during the outage" "$QB" 5
check_match "status names the failure" "$(st last_error)" "connect|server closed|terminat"
check_match "aldrec status shows the queue's rows, bytes and age" "$(st queue)" \
    "^[0-9]+ batches, [0-9]+ rows, [0-9]+ bytes, oldest [0-9.]+ s$"
OLDEST=$(st queue oldest_s | cut -d. -f1)
check_ge "the oldest batch is as old as the outage" "$OLDEST" $((OUTAGE_S - 5))

pg_restart
check "the backlog is forwarded after PostgreSQL is back" wait_queue 90 -eq 0
check_match "the log says when PostgreSQL came back" "$(cat "$WORK/aldrecd.log")" "PostgreSQL reachable again"
check_match "... and that a backlog was drained" "$(cat "$WORK/aldrecd.log")" "backlog drained: [0-9]+ rows"
check_complete outage "$PROC"
# Polling went on through the outage, at the baseline's pace: the read
# counter's samples between the crash and the stop (12 s: 120 at 10 Hz),
# stored now, are there and spaced as before it. A poll loop that stalled while
# PostgreSQL was away would show periods of seconds; the batch count above
# cannot tell (a late poll still makes its batch).
BASE=$(poll_intervals_ms "$PROC" "$T_START" "$T_CRASH")
DOWN=$(poll_intervals_ms "$PROC" "$T_CRASH" "$T_STOP")
echo "# poll period ms (p50 p99 max n): baseline $BASE; outage $DOWN"
read -r _ B99 _ _ <<<"$BASE"
read -r _ D99 DMAX DN <<<"$DOWN"
check_ge "polling continued through the outage (12 s at 10 Hz, 8 Hz at least)" "$DN" 96
check_le "no poll period during the outage reached 1 s" "$DMAX" 999
check_le "p99 poll period during the outage within baseline p99 + 300 ms" "$D99" $((B99 + 300))
check_eq "every row aldrecd spooled is stored (rows recorded = rows stored)" \
    "$(stored_rows "$PROC")" "$(recorded_rows "$STOP")"
check_eq "no gap records" "$(q "SELECT count(*) FROM data_gaps")" 0
check_eq "nothing quarantined" "$(st quarantined)" "0 batches, 0 rows"
check_eq "every ledger batch number from this spool is used once" \
    "$(q "SELECT count(*) = count(DISTINCT batch_seq) FROM ingest_ledger WHERE recorder_id = 'rec-test'")" t
check_done spool_outage
