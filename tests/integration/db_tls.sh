#!/bin/bash
# db_tls.sh — aldrecd and aldrec talk to PostgreSQL over TLS only: a private
# cluster with ssl = on, a CA made here with openssl, pg_hba refusing TCP
# without TLS, every conninfo with sslmode=verify-full and sslrootcert (in
# the config file: nothing secret in argv). A run is recorded through a
# PostgreSQL restart and a black hole; a TLS handshake that never gets an
# answer ends at the connect deadline; a wrong CA is refused with a message
# naming the certificate check, and what was recorded meanwhile waits in the
# spool and is stored once the CA is fixed; `cert` login (client
# certificate, no password) works for aldrecd and for a reader.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT
TIMEOUT_S=2

export PG_TLS=1
spool_setup db_tls 14 --relay database.connect_timeout_s=$TIMEOUT_S
# spool_setup's relay conninfo has no TLS options: add them, restart aldrecd.
RELAY_DSN="host=127.0.0.1 port=$RELAY_PORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass $TLS_OPTS"
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
    database.connect_timeout_s=$TIMEOUT_S "database.conninfo=$RELAY_DSN"
aldrecd_start "$CFG" || not_ok "aldrecd starts with sslmode=verify-full"

check_match "the cluster refuses TCP without TLS" \
    "$(psql -XAtq "host=127.0.0.1 port=$PGPORT dbname=aldrec user=engineer passfile=$WORK/pgpass sslmode=disable" -c 'SELECT 1' 2>&1)" \
    "no encryption|pg_hba.conf rejects"
check_eq "no password and no key in aldrecd's argv" \
    "$(tr '\0' ' ' </proc/"$ALDRECD_PID"/cmdline | grep -ciE 'password|BEGIN|sslkey')" 0

PROC=$($A process start --recipe tls)
wait_stored $((30 * NPARAM))
check_eq "aldrecd's sessions use TLS (pg_stat_ssl), none without" \
    "$(q "SELECT count(*) FILTER (WHERE s.ssl) > 0 AND count(*) FILTER (WHERE NOT s.ssl) = 0
            FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'aldrecd'")" t
check_match "... with TLS 1.2 or 1.3" \
    "$(q "SELECT DISTINCT s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'aldrecd'")" \
    "^TLSv1\.[23]$"
check_match "aldrec runs (reader, verify-full) lists the run" "$($A runs 2>&1)" "tls"

# PostgreSQL restarts (crash, recovery): TLS sessions come back on their own.
pg_crash
check "link goes to spooling when PostgreSQL is gone" wait_link 15 spooling
sleep 5
pg_restart
check "after the restart the backlog is forwarded over TLS" wait_queue 60 -eq 0

# A black hole on the TLS connection: noticed at the deadline, recovered.
check_black_hole "over TLS" 8 60

# A handshake that never gets an answer: a relay that lets the server's
# 'S' (yes to SSLRequest) through and then holds the connection. The
# ClientHello goes out, nothing comes back: both libpq paths must give up
# at connect_timeout_s.
"$BIN/relay" --target "127.0.0.1:$PGPORT" --hole-after 1 >"$WORK/hs.out" 2>"$WORK/hs.log" &
HS_PID=$!
ald_track "$HS_PID" relay-hs
wait_until 10 "handshake relay" grep -q 'listening on' "$WORK/hs.out" || ald_die "relay did not start"
HS_PORT=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$WORK/hs.out" | head -1)
HS_CFG=$WORK/hs.conf
aldrecd_config "$HS_CFG" database.connect_timeout_s=$TIMEOUT_S \
    "database.reader_conninfo=host=127.0.0.1 port=$HS_PORT dbname=aldrec user=engineer passfile=$WORK/pgpass $TLS_OPTS"
T0=$(now_s)
OUT=$(timeout 60 "$BIN/aldrec" --config "$HS_CFG" runs 2>&1); rc=$?
HS_MS=$(awk -v a="$T0" -v b="$(now_s)" 'BEGIN {printf "%d", (b - a) * 1000}')
echo "# aldrec runs against a stalled TLS handshake: exit $rc after $HS_MS ms ($OUT)"
check_ge "aldrec: a stalled TLS handshake fails (not killed by timeout)" "$rc" 1
check_ge "... and not by timeout(1)" 123 "$rc"
check_ge "... within connect_timeout_s + 2 s" $((TIMEOUT_S * 1000 + 2000)) "$HS_MS"
check_match "... saying it timed out" "$OUT" "cannot connect to PostgreSQL: .*timeout"
check "the relay saw the handshake start and held it" grep -q '^held after 1 bytes down' "$WORK/hs.out"
# aldrecd's forwarder (common/pgconn.c): the same over its own deadline.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
    database.connect_timeout_s=$TIMEOUT_S \
    "database.conninfo=host=127.0.0.1 port=$HS_PORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass $TLS_OPTS"
aldrecd_start "$CFG" || not_ok "aldrecd starts in front of a stalled handshake"
wait_until 20 "aldrecd reports the handshake deadline" st_match last_error "no answer within" \
    && ok "aldrecd: a stalled TLS handshake ends at the deadline (no answer within $((TIMEOUT_S * 1000)) ms)" \
    || not_ok "aldrecd: a stalled TLS handshake ends at the deadline: $(st last_error)"
HELD=$(grep -c '^held after' "$WORK/hs.out")
sleep 6
check_ge "... and it keeps trying (new handshakes, each cut at the deadline)" \
    "$(grep -c '^held after' "$WORK/hs.out")" $((HELD + 1))

# A server whose certificate the configured CA did not sign: refused,
# naming the check; the run goes on into the spool.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
WRONG_DSN="host=127.0.0.1 port=$RELAY_PORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass sslmode=verify-full sslrootcert=$TLS_WRONG_CA"
aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
    database.connect_timeout_s=$TIMEOUT_S "database.conninfo=$WRONG_DSN" \
    "database.reader_conninfo=host=127.0.0.1 port=$PGPORT dbname=aldrec user=engineer passfile=$WORK/pgpass sslmode=verify-full sslrootcert=$TLS_WRONG_CA"
aldrecd_start "$CFG" || not_ok "aldrecd starts with the wrong CA"
check_wrong_ca
STORED_BEFORE=$(stored_rows "$PROC")

# The CA fixed: everything waiting is stored.
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
    database.connect_timeout_s=$TIMEOUT_S "database.conninfo=$RELAY_DSN"
aldrecd_start "$CFG" || not_ok "aldrecd restarts with the right CA"
check "CA fixed: the spool is forwarded" wait_queue 60 -eq 0
check_ge "... rows were added" "$(stored_rows "$PROC")" $((STORED_BEFORE + 1))
sleep 1
STOP=$($A process stop)
check_match "process stop: all stored" "$STOP" "rows recorded, all stored"
check_complete tls "$PROC"
check_eq "every row aldrecd spooled is stored (rows recorded = rows stored)" \
    "$(stored_rows "$PROC")" "$(recorded_rows "$STOP")"
check_eq "nothing quarantined, nothing dropped" \
    "$(st quarantined) / $(st dropped)" "0 batches, 0 rows / 0 batches, 0 rows"
check_eq "every ledger batch number from this spool is used once" \
    "$(q "SELECT count(*) = count(DISTINCT batch_seq) FROM ingest_ledger WHERE recorder_id = 'rec-test'")" t

# cert login: roles without a password, authenticated by a client
# certificate signed by the CA (CN = role name).
pg_cert_role eng_cert aldrec_reader
ENG_CERT_DSN=$CERT_DSN
pg_cert_role rec_cert aldrec_recorder
check_eq "the cert roles have no password" \
    "$(q "SELECT count(*) FROM pg_authid WHERE rolname IN ('eng_cert', 'rec_cert') AND rolpassword IS NULL")" 2
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"
aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
    database.connect_timeout_s=$TIMEOUT_S "database.conninfo=$CERT_DSN" \
    "database.reader_conninfo=$ENG_CERT_DSN"
aldrecd_start "$CFG" || not_ok "aldrecd starts with a client certificate"
PROC2=$($A process start --recipe tls-cert)
wait_stored $((20 * NPARAM))
check_eq "aldrecd logged in as rec_cert over TLS with a client certificate" \
    "$(q "SELECT count(*) > 0 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
           WHERE a.usename = 'rec_cert' AND s.ssl AND s.client_dn = '/CN=rec_cert'")" t
sleep 2
STOP=$($A process stop)
check_match "cert login: process stop, all stored" "$STOP" "rows recorded, all stored"
check_complete tls-cert "$PROC2"
check_match "cert login: aldrec runs (eng_cert) lists both runs" "$($A runs 2>&1)" "tls-cert"
# Without the certificate the same role gets nowhere.
OUT=$(psql -XAtq "host=127.0.0.1 port=$PGPORT dbname=aldrec user=eng_cert $TLS_OPTS" -c 'SELECT 1' 2>&1); rc=$?
check_eq "cert role without its certificate: refused" "$rc" 2
check_match "... by the cert check" "$OUT" "certificate authentication failed|connection requires a valid client certificate"
check_done db_tls
