#!/bin/bash
# svc_daemon.sh — aldrecd as a service, with real parts (aldsim, PostgreSQL,
# Redis): --check-config; the control socket's mode and group (a user
# outside the group is refused, one inside is served); sd_notify (READY,
# WATCHDOG, STOPPING) on a socket of our own; /metrics scraped during a
# recording moving consistently with the rows in PostgreSQL and equal to
# them once stored; `aldrec metrics`; SIGHUP applying a new flush interval
# (smaller batches in the ledger) and naming what needs a restart; /health
# degraded while PostgreSQL is stopped and ok again after, failing while
# every device is down; one alert line per episode.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
PROM="python3 $ALD_ROOT/tests/tools/prom.py"
TUSERS=()
cleanup() {
    local u
    for u in "${TUSERS[@]}"; do userdel "$u" >/dev/null 2>&1; done
    [ -n "${TGROUP:-}" ] && groupdel "$TGROUP" >/dev/null 2>&1
    ald_cleanup   # last: under valgrind it may exit 1
}
trap cleanup EXIT

ald_workdir it-svc-daemon
pg_start
redis_start
aldsim_start a --seed 3
CFG=$WORK/aldrec.conf
# --- --check-config ------------------------------------------------------------
aldrecd_config "$CFG" recorder.batch_rows=100000 recorder.flush_interval_ms=1000 \
    health.database_down_s=2 health.device_down_s=2 alerts.database_down_s=3 \
    alerts.device_down_s=3
chmod 0640 "$CFG"
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
A="$BIN/aldrec --config $CFG"

out=$("$BIN/aldrecd" --check-config "$CFG" 2>&1); rc=$?
check_eq "--check-config on a good file: exit 0" "$rc" 0
check_match "... one line saying so" "$out" "^$CFG: ok: machine ald-demo, recorder rec-test, [0-9]+ keys set, metrics on 127.0.0.1:0$"
BAD=$WORK/bad.conf
printf '[database]\nconninfo = host=x password=secret\n[recorder]\nmachine = m\nid = r\nbatch_rows = lots\nsocket_group = no-such-group-x\n[metrics]\nlisten = 0.0.0.0:9464\n[health]\nspool_degraded_pct = 95\n' > "$BAD"
out=$("$BIN/aldrecd" --check-config "$BAD" 2>&1); rc=$?
check_eq "--check-config on a bad file: exit 2" "$rc" 2
check_match "... the password, with file:line" "$out" "$BAD:2: conninfo: passwords do not belong"
check_match "... the bad number" "$out" "$BAD:6: batch_rows: expected an integer"
check_match "... the remote listen address" "$out" "$BAD:9: listen: 0.0.0.0 is not a loopback address"
check_match "... the cross-field rule" "$out" "$BAD:11: spool_degraded_pct \(95\) must be below spool_failing_pct"
printf '[database]\nconninfo = host=x\n[recorder]\nmachine = m\nid = r\nsocket_group = no-such-group-x\n' > "$BAD"
out=$("$BIN/aldrecd" --check-config "$BAD" 2>&1); rc=$?
check_eq "--check-config checks this machine too (exit 2)" "$rc" 2
check_match "... an unknown socket_group, with file:line" "$out" "$BAD:6: socket_group: no group \"no-such-group-x\""
chmod 0666 "$BAD"
out=$("$BIN/aldrecd" --check-config "$BAD" 2>&1)
check_match "... and warns about a world-writable config" "$out" "warning: .*bad.conf is world-writable"

# --- the control socket's group ---------------------------------------------------
TGROUP=aldrec-t$$
groupadd --system "$TGROUP"
for u in in out; do
    useradd --system --no-create-home --shell /usr/sbin/nologin "aldrec-t$$-$u" && TUSERS+=("aldrec-t$$-$u")
done
usermod -aG "$TGROUP" "aldrec-t$$-in"
# The test users run aldrec from a directory whose permissions this test
# sets: the checkout may sit under one they cannot enter (a 0700 parent),
# and then only the socket's group rule must decide, not the path. $WORK
# is reachable for other users (ald_workdir sees to that for PostgreSQL).
TBIN=$WORK/tbin
install -d -m 0755 "$TBIN"
install -m 0755 "$BIN/aldrec" "$TBIN/aldrec"
check "the test users can reach aldrec and the config's directory" \
    runuser -u "aldrec-t$$-out" -- test -x "$TBIN/aldrec" -a -r "$WORK"
echo "[recorder]" >/dev/null
sed -i "s/^\[recorder\]$/[recorder]\nsocket_group = $TGROUP/" "$CFG"
chmod 0644 "$CFG"      # the test users read it too (aldrecd warns, see below)

# sd_notify: a datagram socket of our own as NOTIFY_SOCKET
NOTIFY=$WORK/notify.sock
socat -u "UNIX-RECV:$NOTIFY" - > "$WORK/notify.log" 2>&1 &
ald_track $! socat-notify
wait_until 5 "notify socket" test -S "$NOTIFY"
export NOTIFY_SOCKET=$NOTIFY
aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done svc_daemon; exit 1; }
unset NOTIFY_SOCKET
ok "aldrecd starts"
SOCK=$WORK/aldrecd.sock
check_eq "control socket mode 0660" "$(stat -c %a "$SOCK")" 660
check_eq "... group socket_group" "$(stat -c %G "$SOCK")" "$TGROUP"
out=$(runuser -u "aldrec-t$$-out" -- "$TBIN/aldrec" --config "$CFG" status 2>&1); rc=$?
check_eq "a user outside the group is refused" "$rc" 1
check_match "... by the kernel (permission denied)" "$out" "Permission denied"
out=$(runuser -u "aldrec-t$$-in" -- "$TBIN/aldrec" --config "$CFG" status 2>&1); rc=$?
check_eq "a member of the group is served" "$rc" 0
check_match "the log warns about the world-readable config" "$(cat "$WORK/aldrecd.log")" \
    "level=warn .*aldrec.conf is world-readable"
wait_until 10 "READY=1" grep -q 'READY=1' "$WORK/notify.log"
check_match "sd_notify: READY=1 with a status line" "$(cat "$WORK/notify.log")" "READY=1"
wait_until 10 "WATCHDOG=1 twice" bash -c "[ \$(grep -c 'WATCHDOG=1' '$WORK/notify.log') -ge 2 ]"
check_ge "sd_notify: WATCHDOG=1 from the main loop, repeatedly" "$(grep -c 'WATCHDOG=1' "$WORK/notify.log")" 2

# --- metrics during a recording ---------------------------------------------------
URL=$(st metrics url)
check_match "aldrec status names the metrics URL" "$URL" '^http://127.0.0.1:[0-9]+/metrics$'
HURL=${URL%/metrics}/health
check_match "/metrics parses as Prometheus text" "$($PROM check "$URL")" '^[0-9]+$'
check_eq "/health: ok" "$($PROM health "$HURL")" "200 ok"
check_match "aldrec status: health line" "$($A status)" "health: +ok"
PROC=$($A process start --recipe svc-metrics)
wait_until 20 "rows stored" bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c 'SELECT count(*) FROM process_data_points WHERE process_id = $PROC') -gt 500 ]"
# /metrics serves what the main loop rendered up to a second ago, so only
# the counter read before the database may come from it (a stale "written"
# is smaller still); "spooled" and "read" must be as of after the count:
# `aldrec metrics` renders them at the moment it asks.
consistent=0
for i in 1 2 3 4 5; do
    w=$($PROM get "$URL" aldrec_points_written_total)
    c=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC")
    fresh=$($A metrics)
    s=$($PROM get - aldrec_points_spooled_total <<<"$fresh")
    r=$($PROM get - aldrec_points_read_total <<<"$fresh")
    [ "$w" -le "$c" ] && [ "$c" -le "$s" ] && [ "$s" -le "$r" ] && consistent=$((consistent + 1))
    echo "# scrape $i: written $w <= rows in PostgreSQL $c <= spooled $s <= read $r"
    sleep 0.7
done
check_eq "during the recording: written <= rows in PostgreSQL <= spooled <= read, every scrape" "$consistent" 5
# /metrics is republished once a second, so its count may still be older
# than the fresh $r: wait for it to pass $r rather than read it once.
read_above() { [ "$($PROM get "$URL" aldrec_points_read_total)" -gt "$1" ]; }
check "... and the counters move" wait_until 5 "/metrics read counter above $r" read_above "$r"
out=$($A process stop)
check_match "process stop: all stored" "$out" "all stored"
ROWS=$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC")
wait_until 5 "written = rows" bash -c "[ \"\$($PROM get '$URL' aldrec_points_written_total)\" = '$ROWS' ]"
check_eq "once stored: aldrec_points_written_total = rows in PostgreSQL" "$($PROM get "$URL" aldrec_points_written_total)" "$ROWS"
check_eq "... = rows_written_total{kind=points}" "$($PROM get "$URL" aldrec_rows_written_total kind=points)" "$ROWS"
check_eq "... = the ledger's rows" "$(q "SELECT sum(rows) FROM ingest_ledger WHERE process_id = $PROC AND kind = 1")" "$ROWS"
DEV="device=127.0.0.1:$SIM_PORT_a unit 1"
check_eq "per device: up" "$($PROM get "$URL" aldrec_device_up "$DEV")" 1
check_match "per device: cycle time p99" "$($PROM get "$URL" aldrec_poll_cycle_seconds "$DEV" quantile=0.99)" '^0\.[0-9]+|^[0-9]e-'
check_match "flush latency p95" "$($PROM get "$URL" aldrec_flush_seconds quantile=0.95)" '^[0-9.e-]+$'
check_match "COPY latency p99" "$($PROM get "$URL" aldrec_copy_seconds quantile=0.99)" '^[0-9.e-]+$'
# From a batch's last sample / first (polled) sample to its COMMIT: the
# first is earlier, and neither is 0 or the age of the process.
dly=$($PROM get "$URL" aldrec_commit_delay_seconds quantile=0.99)
lag=$($PROM get "$URL" aldrec_commit_lag_seconds quantile=0.99)
check "commit delay p99 ($dly s) > 0, <= poll -> commit lag p99 ($lag s) <= 10 s" \
    awk -v d="$dly" -v l="$lag" 'BEGIN {exit !(d > 0 && d <= l && l <= 10)}'
check "memory: malloc's heap in use and SQLite's part of it are counted" \
    awk -v h="$($PROM get "$URL" aldrec_memory_bytes kind=heap_in_use)" \
        -v q="$($PROM get "$URL" aldrec_memory_bytes kind=sqlite)" 'BEGIN {exit !(q > 0 && h > q)}'
check_eq "link state up" "$($PROM get "$URL" aldrec_database_link state=up)" 1
check_eq "Modbus errors: none so far" "$($PROM get "$URL" aldrec_modbus_errors_total "$DEV" kind=timeout)" 0
m=$($A metrics)
check_match "aldrec metrics: the same exposition over the control socket" "$($PROM check - <<<"$m")" '^[0-9]+$'
check_eq "... with the same written count" "$($PROM get - aldrec_points_written_total <<<"$m")" "$ROWS"

# --- SIGHUP: a new flush interval takes effect; conninfo needs a restart -----------
PROC=$($A process start --recipe svc-reload)
wait_until 20 "three 1 s batches" bash -c "[ \$(psql -XAtq '$ADMIN_DSN' -c 'SELECT count(*) FROM ingest_ledger WHERE process_id = $PROC') -ge 3 ]"
sed -i 's/^flush_interval_ms = 1000$/flush_interval_ms = 200/; s/^log_level = info$/log_level = debug/' "$CFG"
sed -i "s/^conninfo = \(.*\)$/conninfo = \1 application_name=changed/" "$CFG"
T_RELOAD=$(q "SELECT clock_timestamp()")
kill -HUP "$ALDRECD_PID"
wait_until 10 "reload logged" grep -q 'reload: applied' "$WORK/aldrecd.log"
check_match "reload: the new flush interval is applied" "$(cat "$WORK/aldrecd.log")" \
    'reload: applied .*recorder.flush_interval_ms \(1000 -> 200\)'
check_match "... and the log level" "$(cat "$WORK/aldrecd.log")" 'reload: applied .*recorder.log_level'
check_match "... a changed conninfo needs a restart, and the log says so" "$(cat "$WORK/aldrecd.log")" \
    'level=warn .*reload: changed but needs a restart.*database.conninfo'
sleep 3
$A process stop >/dev/null
avg() { q "SELECT round(avg(rows)) FROM ingest_ledger WHERE process_id = $PROC AND kind = 1 AND first_ts $1 '$T_RELOAD'"; }
before=$(avg "<"); after=$(q "SELECT round(avg(rows)) FROM (SELECT rows FROM ingest_ledger WHERE process_id = $PROC AND kind = 1 AND first_ts > '$T_RELOAD'::timestamptz + interval '0.5 s' ORDER BY batch_seq OFFSET 1) b")
echo "# rows per batch: before $before, after $after (320 rows/s)"
check "batches before the reload: about 1 s of rows (> 200)" test "${before:-0}" -gt 200
check "batches after: about 0.2 s of rows (< 120)" test "${after:-999}" -lt 120
printf '[recorder]\nbogus = 1\n' >> "$CFG"
kill -HUP "$ALDRECD_PID"
wait_until 10 "bad reload logged" grep -q 'keeping the running configuration' "$WORK/aldrecd.log"
check_match "a reload of a broken file changes nothing, naming file:line" "$(cat "$WORK/aldrecd.log")" \
    "reload: $CFG has errors; keeping the running configuration: .*aldrec.conf:[0-9]+: unknown key"
sed -i '/^bogus = 1$/d' "$CFG"
check_match "... and it still answers" "$($A status)" "health:"

# --- /health: PostgreSQL stopped, back; every device down -------------------------
pg_crash
wait_until 20 "health degraded" bash -c "$PROM health '$HURL' | grep -q '^200 degraded'"
check_eq "/health: degraded while PostgreSQL is stopped" "$($PROM health "$HURL")" "200 degraded"
check_match "... saying why" "$(curl_body() { python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())" "$1"; }; curl_body "$HURL")" \
    "PostgreSQL unreachable for [0-9]+ s"
wait_until 10 "database alert" grep -q 'alert=database_down state=raised' "$WORK/aldrecd.log"
sleep 2
check_eq "alert database_down: one warning, however long it lasts" \
    "$(grep -c 'alert=database_down state=raised' "$WORK/aldrecd.log")" 1
pg_restart
wait_until 30 "health ok" bash -c "$PROM health '$HURL' | grep -q '^200 ok'"
check_eq "/health: ok again when PostgreSQL is back" "$($PROM health "$HURL")" "200 ok"
wait_until 10 "alert cleared" grep -q 'alert=database_down state=cleared' "$WORK/aldrecd.log"
check_eq "... and one line clearing the alert" "$(grep -c 'alert=database_down state=cleared' "$WORK/aldrecd.log")" 1
aldsim_fault a silent
wait_until 30 "health failing" bash -c "$PROM health '$HURL' | grep -q '^503 failing'"
check_eq "/health: failing (HTTP 503) while every device is down" "$($PROM health "$HURL")" "503 failing"
check_match "aldrec status says so too" "$($A status)" "health: +failing \(failing: every device"
check_match "Modbus timeouts are counted per device" "$($PROM get "$URL" aldrec_modbus_errors_total "$DEV" kind=timeout)" '^[1-9][0-9]*$'
# The alert waits alerts.device_down_s (3 s), longer than /health (2 s):
# the device stays down until it is raised.
wait_until 10 "device alert" grep -q 'alert=device_down state=raised' "$WORK/aldrecd.log"
aldsim_fault a
wait_until 10 "device alert cleared" grep -q 'alert=device_down state=cleared' "$WORK/aldrecd.log"
wait_until 30 "health ok" bash -c "$PROM health '$HURL' | grep -q '^200 ok'"
check_eq "... ok once it answers again" "$($PROM health "$HURL")" "200 ok"
check_eq "alert device_down: raised once, cleared once" \
    "$(grep -c 'alert=device_down state=raised' "$WORK/aldrecd.log") $(grep -c 'alert=device_down state=cleared' "$WORK/aldrecd.log")" "1 1"

kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID" 2>/dev/null
check_match "sd_notify: STOPPING=1 on SIGTERM" "$(cat "$WORK/notify.log")" "STOPPING=1"
check_done svc_daemon
