#!/bin/bash
# db_pgbouncer_tls.sh — aldrecd and aldrec talk to pgbouncer over TLS only,
# and pgbouncer to PostgreSQL over TLS: the cluster and its CA as in
# db_tls.sh (PG_TLS=1), pgbouncer with client_tls_sslmode = require and a
# certificate for 127.0.0.1 and localhost signed by that CA (PGB_TLS=1
# pgbouncer_start), server_tls_sslmode = verify-full to the cluster; every
# conninfo to pgbouncer with sslmode=verify-full and sslrootcert. Both legs
# are shown TLS (pgbouncer's SHOW CLIENTS and SHOW SERVERS, pg_stat_ssl); a
# plain TCP login to pgbouncer is refused. A run is recorded through a
# PostgreSQL outage behind pgbouncer and a black hole in front of it
# (tests/tools/relay.c between aldrecd and pgbouncer: the TLS bytes pass
# through it); a client with the wrong CA is refused naming the certificate
# check, what was recorded meanwhile waits in the spool and is stored once
# the CA is fixed: 0 polls lost, 0 stored twice (read counter + ledger).
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT
TIMEOUT_S=2
OUTAGE_S=${OUTAGE_S:-15}
HOLE_S=${HOLE_S:-8}

export PG_TLS=1
spool_setup db_pgbouncer_tls 16 database.connect_timeout_s=$TIMEOUT_S
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
PGB_TLS=1 PGB_POOL_SIZE=2 pgbouncer_start
relay_start "$PGB_PORT"
# bounced_config CA — aldrecd's config: everything through pgbouncer
# (conninfo through the relay), verify-full against CA.
bounced_config() {
    local tls="sslmode=verify-full sslrootcert=$1"
    aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
        database.connect_timeout_s=$TIMEOUT_S \
        "database.conninfo=host=127.0.0.1 port=$RELAY_PORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass $tls" \
        "database.listen_conninfo=host=127.0.0.1 port=$PGB_PORT dbname=aldrec_listen user=aldrecd passfile=$WORK/pgpass $tls" \
        "database.reader_conninfo=host=127.0.0.1 port=$PGB_PORT dbname=aldrec user=engineer passfile=$WORK/pgpass $tls"
}
bounced_config "$TLS_CA"
aldrecd_start "$CFG" || not_ok "aldrecd starts through pgbouncer with sslmode=verify-full"

check_match "pgbouncer refuses a login without TLS" \
    "$(psql -XAtq "host=127.0.0.1 port=$PGB_PORT dbname=aldrec user=engineer passfile=$WORK/pgpass sslmode=disable" -c 'SELECT 1' 2>&1)" \
    "SSL required"

# pool DB COLUMN — one column of pgbouncer's SHOW POOLS for database DB.
pool() {
    pgb_show POOLS | awk -v db="$1" -v col="$2" \
        'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next } $1 == db { s += $h[col] } END { print s + 0 }'
}
# pgb_tls WHAT USER — the tls column of SHOW WHAT (CLIENTS, SERVERS) for
# USER's connections, one line each ("-" where it is empty: no TLS).
pgb_tls() {
    psql -XAq -F'|' "$PGB_ADMIN_DSN" -c "SHOW $1" | awk -F'|' -v u="$2" \
        'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
         $h["user"] == u { print ($h["tls"] == "" ? "-" : $h["tls"]) }'
}

PROC=$($A process start --recipe bouncer-tls)
wait_stored $((30 * NPARAM))
check_eq "link is up through pgbouncer over TLS" "$(st database_link | cut -d' ' -f1)" up
CL_TLS=$(pgb_tls CLIENTS aldrecd)
echo "# pgbouncer's clients (aldrecd), tls: $(tr '\n' ' ' <<<"$CL_TLS")"
check_ge "aldrecd's connections to pgbouncer: forwarder and refresher" "$(grep -c . <<<"$CL_TLS")" 2
check_eq "... every one TLS 1.2 or 1.3 (SHOW CLIENTS, tls)" "$(grep -vcE '^TLSv1\.[23]/' <<<"$CL_TLS")" 0
SV_TLS=$(pgb_tls SERVERS aldrecd)
echo "# pgbouncer's server connections (aldrecd), tls: $(tr '\n' ' ' <<<"$SV_TLS")"
check_ge "pgbouncer holds server connections for aldrecd" "$(grep -c . <<<"$SV_TLS")" 1
check_eq "... every one TLS 1.2 or 1.3 (SHOW SERVERS, tls)" "$(grep -vcE '^TLSv1\.[23]/' <<<"$SV_TLS")" 0
check_eq "PostgreSQL: aldrecd's sessions (pgbouncer's) use TLS (pg_stat_ssl), none without" \
    "$(q "SELECT count(*) FILTER (WHERE s.ssl) > 0 AND count(*) FILTER (WHERE NOT s.ssl) = 0
            FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'aldrecd'")" t
check_eq "the refresher's LISTEN holds one session-pool server connection" \
    "$(pool aldrec_listen sv_active)" 1
check_match "aldrec runs (reader, verify-full to pgbouncer) lists the run" "$($A runs 2>&1)" "bouncer-tls"
# pgbouncer logs each client's login with its TLS version ("tls=no" for
# plain TCP): the short sessions of aldrec and of the console too.
logins() { grep ' login attempt: ' "$WORK/pgbouncer/pgbouncer.log"; }
check_ge "pgbouncer's log: aldrec runs logged in as engineer" "$(logins | grep -c ' user=engineer ')" 1
check_eq "... every client login so far over TLS 1.2 or 1.3 ($(logins | grep -c .) logins)" \
    "$(logins | grep -vcE ' tls=TLSv1\.[23]/')" 0

# PostgreSQL goes away behind pgbouncer, then comes back.
pg_crash
check "link goes to spooling when PostgreSQL behind pgbouncer is gone" wait_link 20 spooling
echo "# outage: $(st last_error)"
sleep "$OUTAGE_S"
check_ge "batches wait in the spool during the outage" "$(queue_batches)" 5
pg_restart
check "the backlog goes through pgbouncer over TLS once PostgreSQL is back" wait_queue 90 -eq 0
check_eq "the outage is one 'reachable again' in the log, not one per retry" \
    "$(grep -c 'PostgreSQL reachable again; ' "$WORK/aldrecd.log")" 1

# A black hole between aldrecd and pgbouncer, inside a TLS session.
check_black_hole "in front of pgbouncer (TLS)" "$HOLE_S" 90

# A client whose CA did not sign pgbouncer's certificate: refused, naming
# the check; the run goes on into the spool.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
bounced_config "$TLS_WRONG_CA"
aldrecd_start "$CFG" || not_ok "aldrecd starts with the wrong CA"
check_wrong_ca
STORED_BEFORE=$(stored_rows "$PROC")

# The CA fixed: everything waiting is stored.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
bounced_config "$TLS_CA"
aldrecd_start "$CFG" || not_ok "aldrecd restarts with the right CA"
check "CA fixed: the spool is forwarded" wait_queue 60 -eq 0
check_ge "... rows were added" "$(stored_rows "$PROC")" $((STORED_BEFORE + 1))
sleep 1
STOP=$($A process stop)
check_match "process stop: all stored" "$STOP" "rows recorded, all stored"
check_complete bouncer-tls "$PROC"
check_eq "0 lost: every row aldrecd spooled is stored (rows recorded = rows stored)" \
    "$(stored_rows "$PROC")" "$(recorded_rows "$STOP")"
check_eq "0 duplicates: every ledger batch number from this spool is used once" \
    "$(q "SELECT count(*) = count(DISTINCT batch_seq) FROM ingest_ledger WHERE recorder_id = 'rec-test'")" t
check_eq "nothing quarantined, nothing dropped" \
    "$(st quarantined) / $(st dropped)" "0 batches, 0 rows / 0 batches, 0 rows"
check_eq "pgbouncer's log: every client login over TLS 1.2 or 1.3 ($(logins | grep -c .) logins)" \
    "$(logins | grep -vcE ' tls=TLSv1\.[23]/')" 0
check_eq "pgbouncer is still the one we started" "$(cat "$WORK/pgbouncer/pgbouncer.pid")" "$PGB_PID"
check_done db_pgbouncer_tls
