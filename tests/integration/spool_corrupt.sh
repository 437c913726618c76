#!/bin/bash
# spool_corrupt.sh — aldrecd starts on a damaged spool file (batches waiting
# in it from a run during a database outage, then garbage written over part
# of it) while PostgreSQL is still down: the file is moved aside with a
# timestamped name (with its -wal), a fresh spool with a new identity takes
# its place, the failure is logged loudly, and recording goes on at once —
# the process being recorded comes from the spool's process file, not from
# PostgreSQL — and every poll after the restart is stored exactly once when
# PostgreSQL is back.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT

spool_setup spool_corrupt 15
PROC=$($A process start --recipe corrupt)
wait_stored 320
OLD_ID=$(st spool id)
pg_crash
wait_queue 30 -ge 40
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
check_match "a graceful stop keeps the spooled batches for later" "$(cat "$WORK/aldrecd.log")" \
    "exiting with [0-9]+ batches \([0-9]+ rows\) in the spool; they are forwarded after the next start"
check_eq "the spool's process file names the run" "$(cat "$WORK/spool.db.process")" "process_id $PROC"

# Garbage over the second half of the file, and a stale log next to it.
SIZE=$(stat -c %s "$WORK/spool.db")
head -c $((SIZE / 2)) /dev/urandom | dd of="$WORK/spool.db" bs=4096 seek=$((SIZE / 2 / 4096)) conv=notrunc status=none
head -c 1000 /dev/urandom > "$WORK/spool.db-wal"
: > "$WORK/aldrecd.log"
aldrecd_start "$CFG" || { not_ok "aldrecd starts on a damaged spool"; check_done spool_corrupt; exit 1; }
ok "aldrecd starts on a damaged spool"
LOG=$(cat "$WORK/aldrecd.log")
check_match "logged loudly, with the reason and where the file went" "$LOG" \
    "level=error .*SPOOL FILE DAMAGED: .*spool.db: failed PRAGMA quick_check: .* Moved it \(with its -wal/-shm\) to .*spool.db.corrupt-[0-9]{8}T[0-9]{6}Z"
MOVED=$(ls "$WORK"/spool.db.corrupt-* 2>/dev/null | grep -v -- '-wal$' | head -1)
check "the damaged file was moved aside with a timestamped name" test -s "$MOVED"
check "... together with its -wal" test -s "$MOVED-wal"
check "a fresh spool file took its place" test -s "$WORK/spool.db"
NEW_ID=$(st spool id)
check "the fresh spool has a new identity ($OLD_ID -> $NEW_ID)" test "$OLD_ID" != "$NEW_ID"
check_match "the process comes from the process file (PostgreSQL is down)" "$LOG" \
    "the new spool takes the process being recorded from .*spool.db.process: process $PROC"
check_eq "recording resumes the process" "$(st process)" "$PROC"
check_match "... while PostgreSQL is still down" "$(st database_link)" "^(spooling|connecting)"
check "polls are spooled during the outage" wait_queue 10 -ge 5
pg_restart
wait_queue 30 -eq 0
sleep 2
STOP=$($A process stop)
check_match "process stop: all stored" "$STOP" "rows recorded, all stored"

# Rows recorded after the restart are complete; the batches of the damaged
# file are not in PostgreSQL (they are in the moved-aside file).
NEW_SPOOL=$((16#$NEW_ID))
check_eq "ledger: batches from the fresh spool carry its id" \
    "$(q "SELECT count(*) > 0 FROM ingest_ledger WHERE spool_id = $NEW_SPOOL")" t
FIRST_NEW=$(q "SELECT min(first_ts) FROM ingest_ledger WHERE spool_id = $NEW_SPOOL AND kind = 1")
read -r OK ZERO GAPS MISSING MAXGAP <<<"$(q "WITH rc AS (SELECT value, value - lag(value) OVER (ORDER BY ts) AS d
      FROM process_data_points WHERE process_id = $PROC AND parameter_id = $RC_ID AND ts >= '$FIRST_NEW')
    SELECT count(*) FILTER (WHERE d = $REQ) || ' ' || count(*) FILTER (WHERE d <= 0) || ' ' ||
           count(*) FILTER (WHERE d > $REQ) || ' 0 0' FROM rc WHERE d IS NOT NULL")"
check_eq "every poll after the restart stored once (no hole, no duplicate)" "$ZERO $GAPS" "0 0"
check_ge "... about 4 s of polls" "$OK" 25
check_eq "rows after the restart = polls x parameters" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND ts >= '$FIRST_NEW'")" \
    $(( (OK + 1) * NPARAM ))
check_eq "nothing quarantined" "$(st quarantined)" "0 batches, 0 rows"
check_done spool_corrupt
