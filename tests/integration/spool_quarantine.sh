#!/bin/bash
# spool_quarantine.sh — batches PostgreSQL refuses for good (a CHECK
# constraint added for the test refuses one poll of the read counter) go to
# the spool's quarantine with the error text, and the batches behind them
# keep flowing — live (one batch per transaction) and while draining a
# backlog (several per transaction: the failing transaction is split to
# find the culprit). `aldrec spool quarantine list` shows them (also with
# aldrecd down), `retry` stores them once the cause is gone, `drop` gives
# one up and leaves a gap record saying so.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT

spool_setup spool_quarantine 16

last_counter() { q "SELECT coalesce(max(value), 0)::bigint FROM process_data_points WHERE parameter_id = $RC_ID"; }
quarantined() { st quarantined batches; }
quarantine_and_queue_empty() { st_is quarantined batches 0 && st_is queue batches 0; }
# poison NAME VALUE — PostgreSQL refuses the read-counter row with VALUE.
poison() { q "ALTER TABLE process_data_points ADD CONSTRAINT $1 CHECK (NOT (parameter_id = $RC_ID AND value = $2)) NOT VALID" >/dev/null; }

PROC=$($A process start --recipe quarantine)
wait_stored 320

# 1. Live: the poll 1.5 s ahead is refused; the ones after it arrive.
C=$(last_counter); X1=$((C + 15 * REQ))
poison poison_live "$X1"
wait_until 20 "a batch in quarantine" st_ge quarantined batches 1 \
    && ok "a refused batch goes to quarantine" || not_ok "a refused batch goes to quarantine"
wait_until 20 "batches behind it stored" bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c 'SELECT max(value)::bigint FROM process_data_points WHERE parameter_id = $RC_ID') -gt $((X1 + 20 * REQ)) ]" \
    && ok "the batches behind it keep flowing" || not_ok "the batches behind it keep flowing"
check_eq "exactly one batch quarantined" "$(quarantined)" 1
check_match "the log names the batch and the error" "$(cat "$WORK/aldrecd.log")" \
    "PostgreSQL refused batch [0-9]+ \(96 rows, points, process $PROC\): COPY: ERROR: .*violates check constraint \\\\?\"poison_live\\\\?\"; moved to the spool's quarantine"

# 2. Draining: the refused poll falls into an outage; the backlog goes in
# transactions of several batches, and the one that fails is split.
C=$(last_counter); X2=$((C + 30 * REQ))
poison poison_drain "$X2"
pg_crash
sleep 6
pg_restart
wait_queue 60 -eq 0
check_eq "after the backlog: two batches quarantined" "$(quarantined)" 2
check_match "the failing multi-batch transaction was split" "$(cat "$WORK/aldrecd.log")" \
    "a transaction of [0-9]+ batches failed \(COPY: ERROR: .*poison_drain.*\); writing them one by one"
check_eq "points of the backlog besides the refused batch are stored" \
    "$(q "SELECT count(*) FROM process_data_points WHERE parameter_id = $RC_ID AND value BETWEEN $((X2 - 9 * REQ)) AND $((X2 + 9 * REQ))")" 16

LIST=$($A spool quarantine list)
echo "$LIST" | sed 's/^/# /'
check_eq "quarantine list: one line per batch" "$(grep -c '^[0-9]* *points' <<<"$LIST")" 2
check_match "quarantine list: the error text" "$LIST" "points +$PROC +96 .*violates check constraint \"poison_live\""
check_match "quarantine list: count" "$LIST" "^2 quarantined batches$"
SEQ_LIVE=$(grep poison_live <<<"$LIST" | awk '{print $1}')

# 3. With aldrecd down: list reads the file; retry needs the daemon.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
OFF=$($A spool quarantine list)
check_match "list works with aldrecd down (read-only)" "$OFF" "aldrecd is not running: read from .*spool.db"
check_eq "... and shows the same batches" "$(grep -c '^[0-9]* *points' <<<"$OFF")" 2
out=$($A spool quarantine retry all 2>&1); rc=$?
check_eq "retry without aldrecd exits 1" "$rc" 1
check_match "... saying it needs aldrecd" "$out" "needs aldrecd"
out=$($A spool quarantine retry 12x 2>&1); rc=$?
check_eq "retry with a bad argument exits 2" "$rc" 2
aldrecd_start "$CFG" || { not_ok "aldrecd restarts"; check_done spool_quarantine; exit 1; }
check_eq "restart resumes the process" "$(st process)" "$PROC"

# 4. The cause is gone: retry stores them, in place.
q "ALTER TABLE process_data_points DROP CONSTRAINT poison_live, DROP CONSTRAINT poison_drain" >/dev/null
out=$($A spool quarantine retry "$SEQ_LIVE"); rc=$?
check_eq "retry SEQ exits 0" "$rc" 0
check_match "... and says so" "$out" "queued again 1 batch"
out=$($A spool quarantine retry all)
check_match "retry all queues the rest" "$out" "queued again 1 batch"
wait_until 20 "quarantine empty, queue empty" quarantine_and_queue_empty \
    && ok "retried batches are stored" || not_ok "retried batches are stored"
check_eq "the read counter is complete again" "$(counter_steps "$PROC" | cut -d' ' -f2-)" "0 0 0 0"
out=$($A spool quarantine retry 999999 2>&1); rc=$?
check_eq "retry of an unknown batch exits 1" "$rc" 1
check_match "... naming it" "$out" "no quarantined batch 999999"

# 5. Give one up: drop leaves a gap record that says why.
C=$(last_counter); X3=$((C + 15 * REQ))
poison poison_drop "$X3"
wait_until 20 "a batch in quarantine" st_ge quarantined batches 1
SEQ_DROP=$($A spool quarantine list | awk '/poison_drop/ {print $1}')
out=$($A spool quarantine drop "$SEQ_DROP")
check_match "drop SEQ gives it up" "$out" "dropped 1 batch\(es\); a gap record for each is queued"
q "ALTER TABLE process_data_points DROP CONSTRAINT poison_drop" >/dev/null
sleep 1
STOP=$($A process stop)
echo "# $STOP"
check_match "process stop: does not claim all stored; names the dropped rows" "$STOP" \
    "; [0-9]+ stored, 96 dropped"
check_eq "gap record of the dropped batch" \
    "$(q "SELECT points || ' ' || batches FROM data_gaps WHERE process_id = $PROC AND reason LIKE 'quarantined batch $SEQ_DROP dropped by the operator; PostgreSQL had refused it: COPY: ERROR: %poison_drop%'")" \
    "96 1"
read -r OK ZERO GAPS MISSING MAXGAP <<<"$(counter_steps "$PROC")"
check_eq "the only hole is the dropped batch (3 polls), nothing twice" "$ZERO $GAPS $MISSING" "0 1 3"
check_eq "stored + dropped = every row sampled" \
    $(( $(stored_rows "$PROC") + $(q "SELECT sum(points) FROM data_gaps WHERE process_id = $PROC") )) \
    "$(expected_rows "$PROC")"
check_eq "ledger rows (points) = stored rows" \
    "$(q "SELECT sum(rows) FROM ingest_ledger WHERE process_id = $PROC AND kind = 1")" \
    "$(stored_rows "$PROC")"
check_done spool_quarantine
