#!/bin/bash
# spool_drain2.sh — a backlog drains over two connections (spool.
# drain_connections = 2, the default): two transactions in flight at once,
# each on a server backend of its own, committed in their order. A backlog
# is made by taking INSERT on the ingest ledger away from the recorder
# role (aldrecd's writes fail, its connections stay), then given back. Checked: the
# transactions overlapped (aldrec_db_transactions_overlapped_total) and
# every row went in once; a kill right after a COMMIT while the next
# transaction was in flight (the crash hook) loses and doubles nothing; a
# second connection the server refuses (the role's connection limit) makes
# the drain go over one, saying so, and still stores everything; with
# drain_connections = 1 nothing overlaps.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT

# Commit timestamps show the order transactions committed in.
PG_EXTRA_OPTS="-c track_commit_timestamp=on" spool_setup spool_drain2 23 spool.drain_batches=2

overlapped() { $A metrics | awk '$1 == "aldrec_db_transactions_overlapped_total" {print $2}'; }
ROLE=$(q "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'aldrecd'")
# backlog N — aldrecd's writes are refused until N batches wait in the spool.
backlog() {
    q "REVOKE INSERT ON ingest_ledger FROM aldrec_recorder" >/dev/null
    wait_queue 60 -ge "$1"
    q "GRANT INSERT ON ingest_ledger TO aldrec_recorder" >/dev/null
}

PROC=$($A process start --recipe drain2)
wait_stored 320
# With drain_batches = 2 a stall of the box over a second makes a backlog
# of live batches, which is then rightly drained over both connections;
# the log says so. Overlap without that line is the fault this checks.
O0=$(overlapped)
if [ "$O0" != 0 ] && grep -q "draining a backlog" "$WORK/aldrecd.log"; then
    echo "# a stall made a backlog before the first one: $O0 overlapped while draining it"
    O0=0
fi
check_eq "live batches do not overlap (one in flight at a time)" "$O0" 0

# 1. A backlog of 30 batches (15 transactions of 2) over two connections.
backlog 30
wait_queue 60 -eq 0
O1=$(overlapped)
echo "# transactions written while the one before was in flight: $O1"
check_ge "the backlog's transactions overlapped (two connections)" "$O1" 5

# 2. The crash hook: aldrecd exits right after its 3rd COMMIT, with the
# next transaction in flight on the other connection (rolled back by the
# server when the connection goes). The restart replays what was committed
# but not yet deleted from the spool: skipped as duplicates.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
backlog_offline() {   # batches spooled while aldrecd cannot write
    q "REVOKE INSERT ON ingest_ledger FROM aldrec_recorder" >/dev/null
    aldrecd_start "$CFG" || return 1
    wait_queue 60 -ge "$1"
    kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
    q "GRANT INSERT ON ingest_ledger TO aldrec_recorder" >/dev/null
}
check "a backlog of 30 batches with aldrecd stopped" backlog_offline 30
ALDREC_TEST_CRASH_AFTER_COMMIT=3 "$BIN/aldrecd" --config "$CFG" 2>>"$WORK/aldrecd.log" &
CRASH_PID=$!
wait "$CRASH_PID"; rc=$?
check_eq "the crash hook ended aldrecd after its third commit" "$rc" 137
check "aldrecd restarts after the crash" aldrecd_start "$CFG"
wait_queue 60 -eq 0
check_ge "what was committed before the crash is skipped as a duplicate" \
    "$(st duplicates_skipped batches)" 1

# 3. The server refuses a second connection: the drain goes over one.
# aldrecd holds two (the forwarder's, the metadata refresher's LISTEN).
check_eq "aldrecd holds two connections when idle" \
    "$(q "SELECT count(*) FROM pg_stat_activity WHERE usename = '$ROLE'")" 2
q "ALTER ROLE $ROLE CONNECTION LIMIT 2" >/dev/null
O2=$(overlapped)
backlog 20
wait_queue 60 -eq 0
check_match "the log says the drain went over one connection, and why" "$(cat "$WORK/aldrecd.log")" \
    "draining over one connection: a second one failed: .*too many connections for role"
check_eq "... and nothing overlapped" "$(overlapped)" "$O2"
check_eq "... and it tried the second connection once, not once a transaction" \
    "$(grep -c 'too many connections for role' "$WORK/pg/server.log")" 1
q "ALTER ROLE $ROLE CONNECTION LIMIT -1" >/dev/null

# 4. drain_connections = 1: one transaction at a time.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
sed -i 's/^\[spool\]$/[spool]\ndrain_connections = 1/' "$CFG"
check "aldrecd restarts with drain_connections = 1" aldrecd_start "$CFG"
backlog 20
wait_queue 60 -eq 0
check_eq "with drain_connections = 1 nothing overlaps" "$(overlapped)" 0

sleep 1
STOP=$($A process stop)
check_match "process stop: all stored" "$STOP" "rows recorded, all stored"
check_stored_once "$PROC" "$STOP"
check_ge "at most one hole (the batch open at the crash)" 1 "$GAPS"
check_eq "batches committed in their order (no ledger row committed before one of a lower seq)" \
    "$(q "SELECT count(*) FROM (SELECT pg_xact_commit_timestamp(xmin) AS c,
                 lag(pg_xact_commit_timestamp(xmin)) OVER (PARTITION BY spool_id ORDER BY batch_seq) AS p
                 FROM ingest_ledger) x WHERE c < p")" 0
check_eq "the rollup rows agree with the stored rows in every 10 s bucket" \
    "$(rollup_diff "$PROC")" 0
check_eq "nothing quarantined" "$(st quarantined)" "0 batches, 0 rows"
check_done spool_drain2
