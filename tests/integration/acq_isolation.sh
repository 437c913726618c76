#!/bin/bash
# acq_isolation.sh — devices are polled independently. Two aldsim devices,
# "fast" and "slow", 32 parameters each at 10 Hz, one aldrecd:
#   1. slow is down when the daemon starts (nothing listens on its port);
#   2. it comes up and is polled without a restart of the daemon;
#   3. it turns slow (aldsim fault latency=200, switched at run time);
#   4. it stops answering (fault silent: timeouts), then answers again;
#   5. it is killed, then restarted on the same port, and resumes on its own.
# Meanwhile fast must not notice: its read counter is contiguous, it has one
# sample per 100 ms of the whole run, no gap between cycles beyond a margin,
# all good. slow's gaps carry comm-error (2) / timeout (3) quality with NULL
# values, and going down / coming back is logged once each, not per poll.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-acq-isolation
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.machine=acq2 recorder.batch_rows=500 \
    recorder.flush_interval_ms=300 modbus.response_timeout_ms=300 modbus.reconnect_max_ms=800
pg_migrate "$CFG"
A="$BIN/aldrec --config $CFG"

aldsim_start fast --seed 1
SLOW_PORT=$("$BIN/freeport")
acq_component acq2 fast 100 "port = $SIM_PORT_fast"
acq_component acq2 slow 100 "port = $SLOW_PORT"

now() { date +%s.%N; }
# dev_field NAME FIELD — a number from the device's `aldrec status` line
dev_field() { st "device 127.0.0.1:$1 unit 1" "$2"; }
dev_cycles() { dev_field "$1" cycles; }
dev_overruns() { dev_field "$1" overruns; }
dev_failed() { dev_field "$1" failed; }
failed_reach() { [ "$(dev_failed "$1")" -ge "$2" ]; }
dev_is() { [ "$(dev_field "$1" state)" = "$2" ]; }
cycles_reach() { [ "$(dev_cycles "$1")" -ge "$2" ]; }

if ! aldrecd_start "$CFG"; then not_ok "aldrecd starts with one device down"; check_done acq_isolation; exit 1; fi
ok "aldrecd starts while one of its devices is down"
PROC=$($A process start --recipe it-isolation)
T_START=$(now)

# 1. slow is down: its cycles run (and store comm errors) without I/O waits
c0=$(dev_cycles "$SLOW_PORT")
wait_until 10 "10 cycles of the down device" cycles_reach "$SLOW_PORT" $((c0 + 10))
check "the down device is reported down" dev_is "$SLOW_PORT" down

# 2. it comes up: polled without restarting the daemon
aldsim_start slow --port "$SLOW_PORT"
check "the device that was down at start-up is polled once it is up" \
    wait_until 15 "slow device up" dev_is "$SLOW_PORT" up
T_UP=$(now)
sleep 1

# 3. slow: 200 ms per answer, 4 requests per cycle → 800 ms cycles
o0=$(dev_overruns "$SLOW_PORT")
check "aldsim slow: latency=200 switched on at run time" aldsim_fault slow latency=200
T_LAT=$(now)
c0=$(dev_cycles "$SLOW_PORT")
wait_until 15 "3 cycles of the slow device" cycles_reach "$SLOW_PORT" $((c0 + 4))
check_ge "the slow device overran its 100 ms cycles" "$(dev_overruns "$SLOW_PORT")" $((o0 + 10))

# 4. no answers at all: timeouts, until three requests have failed; then
# it answers again (so that every request it left unanswered timed out in
# aldrecd, none was cut short by the kill).
f0=$(dev_failed "$SLOW_PORT")
check "aldsim slow: silent switched on at run time" aldsim_fault slow silent
T_SILENT=$(now)
check "the silent device times out (3 failed requests)" \
    wait_until 15 "3 timeouts" failed_reach "$SLOW_PORT" $((f0 + 3))
check "aldsim slow: silent switched off again" aldsim_fault slow
check "... and the device answers again" wait_until 15 "slow device answering" dev_is "$SLOW_PORT" up

# 5. killed, then restarted on the same port
kill -TERM "$SIM_PID_slow"; wait "$SIM_PID_slow" 2>/dev/null
T_KILL=$(now)
c0=$(dev_cycles "$SLOW_PORT")
wait_until 15 "cycles of the killed device" cycles_reach "$SLOW_PORT" $((c0 + 10))
check "the killed device is reported down" dev_is "$SLOW_PORT" down
T_RESTART0=$(now)
aldsim_start slow2 --port "$SLOW_PORT"
T_RESTART=$(now)
check "the restarted device is polled again on its own" \
    wait_until 15 "slow device back" dev_is "$SLOW_PORT" up
sleep 1.5
STATUS=$($A status)
$A process stop >/dev/null
T_STOP=$(now)
echo "$STATUS" | grep '^device' | sed 's/^/# /'

pid_of() { q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id JOIN machines m ON m.id = mc.machine_id AND m.name = 'acq2' WHERE mc.name = '$1' AND cp.name = '$2'"; }
FAST_RC=$(pid_of fast system_read_counter)
SLOW_RC=$(pid_of slow system_read_counter)
rows() { q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $1 $2"; }

# --- fast: unaffected ----------------------------------------------------------
N=$(rows "$FAST_RC" "")
SPAN_MS=$(q "SELECT round(extract(epoch FROM max(ts) - min(ts)) * 1000) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $FAST_RC")
RUN_MS=$(awk -v a="$T_START" -v b="$T_STOP" 'BEGIN {printf "%d", (b - a) * 1000}')
check_ge "fast: one sample per 100 ms over the whole run ($N samples, run $RUN_MS ms)" "$N" $((RUN_MS / 100 - 3))
FAST_ST=$(grep "127.0.0.1:$SIM_PORT_fast unit" <<<"$STATUS")
# A cycle that overran (a starved CPU) may push the next one a period on.
FAST_OVR=$(sed -n 's/.*(\([0-9]*\) overruns).*/\1/p' <<<"$FAST_ST")
check_eq "fast: samples = span / interval + 1 (no cycle lost, span $SPAN_MS ms, $FAST_OVR overruns)" \
    "$(awk -v n="$N" -v s="$SPAN_MS" -v o="${FAST_OVR:-0}" 'BEGIN {d = (n - 1) - s / 100; print (d >= -1 - o && d <= 1) ? "yes" : "no: " d}')" yes
REQ=$(sed -n 's/.*groups, \([0-9]*\) requests\/cycle.*/\1/p' <<<"$FAST_ST")
check_eq "fast: read in 4 requests per cycle" "$REQ" 4
check_eq "fast: read counter contiguous (each stored cycle is the next one)" \
    "$(q "SELECT count(*) FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $FAST_RC) x WHERE d <> $REQ")" 0
MAXGAP=$(q "SELECT round(max(d) * 1000) FROM (SELECT extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $FAST_RC) x")
check_ge "fast: no gap between cycles over 250 ms while slow was slow, silent, dead (max $MAXGAP ms)" 250 "$MAXGAP"
check_eq "fast: every value good, every parameter complete" \
    "$(q "SELECT count(*) FROM process_data_points d JOIN component_parameters cp ON cp.id = d.parameter_id JOIN machine_components mc ON mc.id = cp.component_id WHERE d.process_id = $PROC AND mc.name = 'fast' AND d.quality = 0 AND d.value IS NOT NULL")" $((N * 32))
check_ge "fast: at most 2 overruns ($FAST_OVR), for a starved CPU; waiting on slow would overrun at each of its timeouts" 2 "$FAST_OVR"

# --- slow: gaps marked, resumes ----------------------------------------------
in_window() { echo "AND ts > to_timestamp($1) AND ts < to_timestamp($2)"; }
check_ge "slow, down at start-up: comm-error rows (quality 2, NULL)" \
    "$(rows "$SLOW_RC" "AND quality = 2 AND value IS NULL $(in_window "$T_START" "$T_UP")")" 5
check_eq "slow, down at start-up: nothing but comm errors before it came up" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $SLOW_RC AND ts < (SELECT min(ts) FROM process_data_points WHERE process_id = $PROC AND parameter_id = $SLOW_RC AND quality = 0) AND quality <> 2")" 0
check_ge "slow, latency 200 ms: still recorded, good" \
    "$(rows "$SLOW_RC" "AND quality = 0 $(in_window "$T_LAT + 0.9" "$T_SILENT")")" 2
SLOW_PARAMS="SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id AND mc.name = 'slow'"
# Timeouts, exactly: aldsim counts the requests it read and never answered
# (its exit summary). Over TCP each of them is one timeout in aldrecd (after
# 300 ms it closes the connection, so the next request goes out on a new
# one); silent was switched off before the kill, so none was still waiting.
# A timeout stores quality 3, stamped at one instant, for the values of the
# request that timed out — a whole table here: the demo map is read one
# request per table, tables in plan order (coils, discrete inputs, holding,
# input registers; plan.h) — and 2 for the requests after it in its cycle,
# at once (within 50 ms; the next cycle is 100 ms later at the earliest).
# The first timeout may hit any request of the cycle in flight when silent
# began, the others hit a cycle's first. Nothing else in the run can time
# out: latency 200 ms is below the timeout, a dead port refuses.
UNANSWERED=$(sed -n 's/.*faults applied: [0-9]* answers delayed, \([0-9]*\) requests unanswered.*/\1/p' "$WORK/aldsim-slow.log")
echo "# aldsim slow left $UNANSWERED requests unanswered"
check_ge "slow, silent: aldsim left 3 requests unanswered at least" "${UNANSWERED:-0}" 3
TAB="CASE cp.register_type WHEN 'coil' THEN 1 WHEN 'discrete' THEN 2 WHEN 'holding' THEN 3 ELSE 4 END"
SLOW_ROWS="SELECT d.ts, d.quality, $TAB AS tab
             FROM process_data_points d JOIN component_parameters cp ON cp.id = d.parameter_id
            WHERE d.process_id = $PROC AND cp.id IN ($SLOW_PARAMS)"
check_eq "slow, silent: one timed-out request (quality 3, NULL) per request aldsim left unanswered" \
    "$(q "SELECT count(DISTINCT ts) FROM process_data_points WHERE process_id = $PROC AND quality = 3 AND value IS NULL $(in_window "$T_SILENT" "$T_KILL")")" \
    "$UNANSWERED"
check_eq "... and no quality 3 anywhere else in the run" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = $PROC AND quality = 3
            AND (value IS NOT NULL OR ts <= to_timestamp($T_SILENT) OR ts >= to_timestamp($T_KILL))")" 0
check_eq "slow, silent: each timeout marks one request's values 3 and the rest of its cycle 2 at once" \
    "$(q "WITH s AS ($SLOW_ROWS), n AS (SELECT $TAB AS tab, count(*) AS k FROM component_parameters cp WHERE cp.id IN ($SLOW_PARAMS) GROUP BY 1),
               t AS (SELECT ts, min(tab) AS tab, count(*) AS k3, count(DISTINCT tab) AS tabs FROM s WHERE quality = 3 GROUP BY ts)
          SELECT count(*) FROM t
           WHERE tabs <> 1 OR k3 <> (SELECT k FROM n WHERE n.tab = t.tab)
              OR (SELECT count(*) FROM s WHERE s.quality = 2 AND s.tab > t.tab AND s.ts >= t.ts AND s.ts < t.ts + interval '50 ms')
                 <> (SELECT coalesce(sum(k), 0) FROM n WHERE n.tab > t.tab)")" 0
check_eq "slow, killed: no good value between kill and restart" \
    "$(rows "$SLOW_RC" "AND quality = 0 $(in_window "$T_KILL + 0.5" "$T_RESTART0")")" 0
check_ge "slow, killed: the gap carries comm-error/timeout rows" \
    "$(rows "$SLOW_RC" "AND quality IN (2, 3) $(in_window "$T_KILL + 0.5" "$T_RESTART0")")" 5
check_ge "slow, restarted: good values again, without a daemon restart" \
    "$(rows "$SLOW_RC" "AND quality = 0 AND ts > to_timestamp($T_RESTART)")" 5
check_eq "slow: NULL exactly when the quality is bad, and only codes 0, 2, 3" \
    "$(q "SELECT count(*) FROM process_data_points d JOIN component_parameters cp ON cp.id = d.parameter_id JOIN machine_components mc ON mc.id = cp.component_id WHERE d.process_id = $PROC AND mc.name = 'slow' AND ((d.quality = 0) <> (d.value IS NOT NULL) OR d.quality NOT IN (0, 2, 3))")" 0
check_eq "slow: every parameter has a row in every cycle that was run" \
    "$(q "SELECT count(DISTINCT n) FROM (SELECT count(*) AS n FROM process_data_points d JOIN component_parameters cp ON cp.id = d.parameter_id JOIN machine_components mc ON mc.id = cp.component_id WHERE d.process_id = $PROC AND mc.name = 'slow' GROUP BY d.parameter_id) x")" 1

# --- logging: state changes, not polls -----------------------------------------
LOG=$WORK/aldrecd.log
DOWN_LINES=$(grep -c "device 127.0.0.1:$SLOW_PORT unit 1: \(cannot connect\|.*reconnecting\)" "$LOG")
UP_LINES=$(grep -c "device 127.0.0.1:$SLOW_PORT unit 1: answering again" "$LOG")
check_ge "slow: going down is logged (start-up, silent, kill)" "$DOWN_LINES" 2
check_ge "... at most once per outage, not per poll ($DOWN_LINES lines)" 6 "$DOWN_LINES"
check_ge "slow: coming back is logged" "$UP_LINES" 2
check_match "... with the number of failures" "$(grep "127.0.0.1:$SLOW_PORT unit 1: answering again" "$LOG" | head -1)" "after [0-9]+ failed attempts?"
check_eq "fast: nothing logged about it" "$(grep -c "127.0.0.1:$SIM_PORT_fast" "$LOG")" 0

check_done acq_isolation
