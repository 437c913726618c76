#!/bin/bash
# db_pgbouncer.sh — aldrecd through pgbouncer (/usr/sbin/pgbouncer, private
# config on a free loopback port, stopped by its PID): the forwarder's
# connection in a transaction-mode pool (its BEGIN; ledger INSERT; binary
# COPY; COMMIT stays on one server connection for the transaction, and it
# uses no named prepared statement and no session state), the metadata
# refresher's LISTEN in a session-mode pool (database.listen_conninfo). A
# run is recorded through a PostgreSQL outage behind pgbouncer and a black
# hole in front of it (tests/tools/relay.c between aldrecd and pgbouncer):
# 0 polls lost, 0 stored twice (read counter + ledger), and a map change
# still reaches aldrecd through the session pool afterwards.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT
TIMEOUT_S=2
OUTAGE_S=${OUTAGE_S:-20}
HOLE_S=${HOLE_S:-15}

spool_setup db_pgbouncer 15 database.connect_timeout_s=$TIMEOUT_S
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
PGB_POOL_SIZE=2 pgbouncer_start
relay_start "$PGB_PORT"
BOUNCED_DSN="host=127.0.0.1 port=$RELAY_PORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass"
aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
    database.connect_timeout_s=$TIMEOUT_S "database.conninfo=$BOUNCED_DSN" \
    "database.listen_conninfo=$PGB_LISTEN_DSN" \
    "database.reader_conninfo=host=127.0.0.1 port=$PGB_PORT dbname=aldrec user=engineer passfile=$WORK/pgpass"
aldrecd_start "$CFG" || not_ok "aldrecd starts through pgbouncer"

# pool VIEW DB COLUMN — one column of pgbouncer's SHOW POOLS for database DB.
pool() {
    pgb_show POOLS | awk -v db="$1" -v col="$2" \
        'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next } $1 == db { s += $h[col] } END { print s + 0 }'
}

PROC=$($A process start --recipe bouncer)
T_START=$(now_s)
wait_stored $((50 * NPARAM))
check_eq "link is up through pgbouncer" "$(st database_link | cut -d' ' -f1)" up
check_eq "aldrecd's sessions all come from pgbouncer (application_name)" \
    "$(q "SELECT count(*) FILTER (WHERE application_name <> 'pgbouncer' AND application_name NOT LIKE 'aldrec%') FROM pg_stat_activity WHERE usename = 'aldrecd'")" 0
check_eq "the refresher's LISTEN holds one session-pool server connection" \
    "$(pool aldrec_listen sv_active)" 1
check_eq "... held by one client (the refresher)" "$(pool aldrec_listen cl_active)" 1
TX_SV=$(( $(pool aldrec sv_active) + $(pool aldrec sv_idle) + $(pool aldrec sv_used) ))
echo "# transaction pool: $TX_SV server connection(s) for aldrecd's forwarder"
check_ge "the forwarder's pool stays within pool_size 2" 2 "$TX_SV"
check_match "aldrec runs through pgbouncer lists the run" "$($A runs 2>&1)" "bouncer"

# PostgreSQL goes away behind pgbouncer, then comes back.
pg_crash
T_CRASH=$(now_s)
check "link goes to spooling when PostgreSQL behind pgbouncer is gone" wait_link 20 spooling
echo "# outage: $(st last_error)"
sleep "$OUTAGE_S"
check_ge "batches wait in the spool during the outage" "$(queue_batches)" 5
pg_restart
check "the backlog goes through pgbouncer once PostgreSQL is back" wait_queue 90 -eq 0
check_match "the log says when PostgreSQL came back" "$(cat "$WORK/aldrecd.log")" "PostgreSQL reachable again"
# pgbouncer answers the login itself while PostgreSQL is gone: only a
# stored batch may count as "reachable again", or every retry would log
# it, reset the backoff and log the failure once more.
check_eq "the outage is one 'reachable again' in the log, not one per retry" \
    "$(grep -c 'PostgreSQL reachable again; ' "$WORK/aldrecd.log")" 1

# A black hole between aldrecd and pgbouncer.
check_black_hole "in front of pgbouncer" "$HOLE_S" 90
sleep 1
STOP=$($A process stop)
check_match "process stop: all stored" "$STOP" "rows recorded, all stored"
check_complete bouncer "$PROC"
check_eq "0 lost: every row aldrecd spooled is stored (rows recorded = rows stored)" \
    "$(stored_rows "$PROC")" "$(recorded_rows "$STOP")"
check_eq "0 duplicates: every ledger batch number from this spool is used once" \
    "$(q "SELECT count(*) = count(DISTINCT batch_seq) FROM ingest_ledger WHERE recorder_id = 'rec-test'")" t
check_eq "nothing quarantined, nothing dropped" \
    "$(st quarantined) / $(st dropped)" "0 batches, 0 rows / 0 batches, 0 rows"

# After the outage the refresher's LISTEN is back in the session pool: a
# map change reaches aldrecd.
listen_back() { [ "$(pool aldrec_listen sv_active)" = 1 ]; }
wait_until 20 "LISTEN again" listen_back \
    && ok "the refresher LISTENs again after the outage" || not_ok "the refresher LISTENs again after the outage"
CHANGES=$(grep -c 'parameter map of machine ald-demo changed' "$WORK/aldrecd.log")
q "UPDATE component_parameters SET max_value = 123456 WHERE id = (SELECT id FROM component_parameters WHERE name = 'uptime' LIMIT 1)" >/dev/null
wait_until 15 "map change applied" bash -c \
    "[ \$(grep -c 'parameter map of machine ald-demo changed' '$WORK/aldrecd.log') -gt $CHANGES ]" \
    && ok "a map change (NOTIFY) reaches aldrecd through the session pool" \
    || not_ok "a map change (NOTIFY) reaches aldrecd through the session pool"
check_eq "pgbouncer is still the one we started" "$(cat "$WORK/pgbouncer/pgbouncer.pid")" "$PGB_PID"
check_done db_pgbouncer
