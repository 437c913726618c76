#!/bin/bash
# spool_kill.sh — kill -9 of aldrecd at random moments, 20 times in one
# run; each restart goes on recording the same process (from the spool).
# Nothing is ever stored twice; each kill loses at most what had not been
# flushed to the spool yet (one batch: batch_rows rows or flush_interval_ms
# of polls, plus the poll in progress).
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT
KILLS=${KILLS:-20}
BATCH_ROWS=96
FLUSH_MS=300

spool_setup spool_kill 13 recorder.batch_rows=$BATCH_ROWS recorder.flush_interval_ms=$FLUSH_MS

PROC=$($A process start --recipe kill9)
T_PSTART=$(now_s)
check "step 1 marked" $A process step 1 "before the kills"
RANDOM=4711
resumed=0
DOWN_MS=0    # time from each kill until its restart answered: no aldrecd polling
# down_since T — adds the time since T (now_s) to DOWN_MS.
down_since() { DOWN_MS=$((DOWN_MS + $(awk -v a="$1" -v b="$(now_s)" 'BEGIN {printf "%d", (b - a) * 1000 + 0.5}'))); }
for i in $(seq 1 "$KILLS"); do
    # 0.2 .. 1.5 s after the daemon answered: a kill lands anywhere in the
    # flush / fsync / forward / delete cycle.
    sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
    [ $((RANDOM % 2)) = 1 ] && sleep 0.5
    T_KILL=$(now_s)
    kill -KILL "$ALDRECD_PID"
    wait "$ALDRECD_PID" 2>/dev/null
    if ! aldrecd_start "$CFG"; then
        not_ok "aldrecd restarts after kill $i"
        break
    fi
    down_since "$T_KILL"
    [ "$(st process)" = "$PROC" ] && resumed=$((resumed + 1))
    [ "$i" = 10 ] && check "step 2 marked after kill 10" $A process step 2 "between the kills"
done
# Step numbers are used once per run, also across restarts: the spool
# remembers them (PostgreSQL would refuse a second step 1 for good and the
# batch would end in quarantine).
for n in 1 2; do
    OUT=$($A process step $n "again" 2>&1); rc=$?
    check_eq "a second step $n after the restarts is refused (exit status)" "$rc" 1
    check_match "... saying why" "$OUT" "step $n of process $PROC is already marked"
done
check "step 3 is accepted" $A process step 3 "after the kills"
# The worst moment, made certain: aldrecd dies right after a COMMIT,
# before it deletes the batch from the spool. The restart sends the batch
# again; the ledger turns that into a skipped duplicate.
T_KILL=$(now_s)
kill -KILL "$ALDRECD_PID"; wait "$ALDRECD_PID" 2>/dev/null
ALDREC_TEST_CRASH_AFTER_COMMIT=3 "$BIN/aldrecd" --config "$CFG" 2>>"$WORK/aldrecd.log" &
CRASH_PID=$!
wait "$CRASH_PID"; rc=$?
check_eq "the crash hook ended aldrecd after its third commit" "$rc" 137
check "aldrecd restarts after the crash" aldrecd_start "$CFG"
down_since "$T_KILL"    # the crash hook's short run counts as down time too
check "the batch committed before the crash is sent again and skipped as a duplicate" \
    wait_until 10 "the replay" st_ge duplicates_skipped batches 1
check_match "... and the log says so" "$(cat "$WORK/aldrecd.log")" \
    "batch [0-9]+ \([0-9]+ rows\) was already stored \(ledger\); not storing it again"
check_eq "every restart went on recording process $PROC" "$resumed" "$KILLS"
check_eq "the restarts said so in the log" \
    "$(grep -c "resuming process $PROC, which was being recorded when aldrecd last stopped (from the spool;" "$WORK/aldrecd.log")" \
    $((KILLS + 2))
sleep 1
T_PSTOP=$(now_s)
STOP=$($A process stop)
check_match "process stop returns once all that was spooled is stored" "$STOP" "rows recorded, all stored"
check_stored_once "$PROC" "$STOP"
check_ge "at most one hole per kill (and the crash)" $((KILLS + 2)) "$GAPS"
# One batch is at most BATCH_ROWS rows (3 polls) or FLUSH_MS of polls (3-4
# at 10 Hz); the poll being read at the kill is lost with it.
PER_KILL=$(( (FLUSH_MS / 100) + 2 ))
check_ge "each hole is at most one unflushed batch ($PER_KILL polls)" "$PER_KILL" "$MAXGAP"
LOST=$(( $(expected_rows "$PROC") - $(stored_rows "$PROC") ))
echo "# rows lost in $KILLS kills: $LOST (at most $((KILLS * PER_KILL * NPARAM)))"
check_ge "rows lost are bounded by one batch per kill" $((KILLS * PER_KILL * NPARAM)) "$LOST"
# How many polls there were at all: the counter checks above see only the
# polls that were made (aldsim counts reads, not time), so a poller that
# polled at half the rate, or resumed late after each restart, would pass
# them. While an aldrecd ran it polled every 100 ms, from before its control
# socket answered (the poller starts first), so the polls recorded plus
# those the counter shows missing are at least the time aldrecd was up at
# 10 Hz, less one per up period (rounding); and at most the run's duration
# at 10 Hz, plus one per start (each aldrecd starts its own 100 ms grid)
# and two for the polls around process start and stop.
POLLS=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID")
RUN_MS=$(awk -v a="$T_PSTART" -v b="$T_PSTOP" 'BEGIN {printf "%d", (b - a) * 1000}')
UP_POLLS=$(( (RUN_MS - DOWN_MS) / 100 ))
echo "# run $RUN_MS ms, aldrecd down $DOWN_MS ms ($UP_POLLS polls due while up); polls $POLLS recorded + $MISSING missing"
check_ge "polls recorded + missing >= time aldrecd was up at 10 Hz, less one per up period" \
    $((POLLS + MISSING)) $((UP_POLLS - (KILLS + 2)))
check_le "polls recorded + missing <= the run's duration at 10 Hz, plus one per start and two" \
    $((POLLS + MISSING)) $((RUN_MS / 100 + KILLS + 2 + 2))
check_eq "nothing quarantined" "$(st quarantined)" "0 batches, 0 rows"
check_eq "steps 1, 2, 3 stored once each" \
    "$(q "SELECT string_agg(step_no::text, ',' ORDER BY step_no) FROM process_steps WHERE process_id = $PROC")" "1,2,3"
check_eq "the spool kept its identity through the kills" \
    "$(q "SELECT count(DISTINCT spool_id) FROM ingest_ledger WHERE recorder_id = 'rec-test'")" 1
check_done spool_kill
