#!/bin/bash
# spool_blackhole.sh — the network between aldrecd and PostgreSQL turns into
# a black hole for 30 s: a relay (tests/tools/relay.c) stops moving bytes
# without closing either side, so TCP stays up and no error ever comes.
# aldrecd must notice within its stated bound (connect_timeout_s after the
# last answer, plus one flush interval), spool, recover on its own when the
# network returns, store every poll exactly once — and the poll loop must
# not feel any of it. Then a second hole with a SIGTERM in it: the stop is
# bounded and the restarted aldrecd forwards what was left.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT
HOLE_S=${HOLE_S:-30}
TIMEOUT_S=3                 # [database] connect_timeout_s: the deadline
FLUSH_MS=300

spool_setup spool_blackhole 12 --relay recorder.flush_interval_ms=$FLUSH_MS \
    database.connect_timeout_s=$TIMEOUT_S

PROC=$($A process start --recipe blackhole)
T_START=$(now_s)
wait_link 20 up
sleep 8                                   # a baseline of undisturbed polling

relay_hole
T_HOLE=$(now_s)
# Noticed = the link leaves "up". After the failure it is "spooling" only
# for the backoff (200 ms at first), then "connecting" into the hole for
# connect_timeout_s: waiting for "spooling" alone can miss that window on
# a loaded machine and see it only after the next attempt, 3 s later.
link_left_up() { st_match database_link '^(spooling|connecting)'; }
wait_until 30 "link down" link_left_up
DETECT_MS=$(awk -v a="$T_HOLE" -v b="$(now_s)" 'BEGIN {printf "%d", (b - a) * 1000}')
BOUND_MS=$((TIMEOUT_S * 1000 + FLUSH_MS))
echo "# black hole noticed after $DETECT_MS ms (stated bound $BOUND_MS ms)"
check_ge "the black hole is noticed within the stated bound + 2 s scheduling margin" \
    $((BOUND_MS + 2000)) "$DETECT_MS"
check_match "the reason is a deadline, not an error from the peer" "$(st last_error)" \
    "no answer within $((TIMEOUT_S * 1000)) ms"
sleep "$(awk -v t="$T_HOLE" -v n="$(now_s)" -v h="$HOLE_S" 'BEGIN {d = t + h - n; print (d > 0 ? d : 0)}')"
QB=$(queue_batches)
check_ge "batches wait in the spool during the black hole" "$QB" $((HOLE_S * 2))
T_PASS=$(now_s)

# The network comes back: the same aldrecd reconnects and drains the
# backlog while it goes on recording.
relay_pass
wait_queue 90 -eq 0 \
    && ok "the same aldrecd recovers and forwards the backlog" \
    || not_ok "the same aldrecd recovers and forwards the backlog"
T_DRAINED=$(now_s)
echo "# backlog of $QB batches forwarded $(awk -v a="$T_PASS" -v b="$T_DRAINED" 'BEGIN {printf "%.1f", b - a}') s after the network returned"
check_match "... and the link is up again" "$(st database_link)" "^(up|draining)"
sleep 2

# A graceful stop in the middle of a second black hole: the open batch goes
# to the spool, the forwarder gets a short bounded chance, aldrecd exits.
relay_hole
wait_link 30 spooling
sleep 2
T0=$(now_s)
kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID"; rc=$?
STOP_MS=$(awk -v a="$T0" -v b="$(now_s)" 'BEGIN {printf "%d", (b - a) * 1000}')
echo "# SIGTERM during the black hole: exit after $STOP_MS ms"
check_eq "SIGTERM during a black hole: exit status 0" "$rc" 0
check_ge "... within 4 s (2 s forwarding budget, then every wait is cut short)" 4000 "$STOP_MS"
check_match "... keeping the batches in the spool" "$(cat "$WORK/aldrecd.log")" \
    "exiting with [0-9]+ batches \([0-9]+ rows\) in the spool"
relay_pass
aldrecd_start "$CFG" || not_ok "aldrecd restarts"
check_eq "the restart resumes the process" "$(st process)" "$PROC"
wait_queue 90 -eq 0 \
    && ok "the restarted aldrecd forwards what the stop left in the spool" \
    || not_ok "the restarted aldrecd forwards what the stop left in the spool"
sleep 1
STOP=$($A process stop)
check_match "process stop: all stored" "$STOP" "rows recorded, all stored"
check_complete blackhole "$PROC"
check_eq "every row aldrecd spooled is stored (rows recorded = rows stored)" \
    "$(stored_rows "$PROC")" "$(recorded_rows "$STOP")"
check_eq "nothing quarantined, nothing dropped" \
    "$(st quarantined) / $(st dropped)" "0 batches, 0 rows / 0 batches, 0 rows"

# The poll loop never waits for the network: the poll period during the
# hole and while the same aldrecd drains the backlog looks like the
# baseline. A loop blocked by the forwarder would show gaps of seconds (the
# deadline is 3 s). (The counter stands still while aldrecd restarts, so
# the restart is no hole: check_complete above.)
BASE=$(poll_intervals_ms "$PROC" "$T_START" "$T_HOLE")
HOLE=$(poll_intervals_ms "$PROC" "$T_HOLE" "$T_PASS")
DRAIN=$(poll_intervals_ms "$PROC" "$T_PASS" "$T_DRAINED")
echo "# poll period ms (p50 p99 max n): baseline $BASE; black hole $HOLE; drain $DRAIN"
read -r _ B99 _ _ <<<"$BASE"
read -r _ H99 HMAX HN <<<"$HOLE"
check_ge "polling continued through the hole" "$HN" $((HOLE_S * 8))
check_ge "no poll period during the hole reached 1 s" 999 "$HMAX"
check_ge "p99 poll period during the hole within baseline p99 + 300 ms" $((B99 + 300)) "$H99"
read -r _ D99 DMAX _ <<<"$DRAIN"
check_ge "no poll period while draining reached 1 s" 999 "$DMAX"
check_ge "p99 poll period while draining within baseline p99 + 300 ms" $((B99 + 300)) "$D99"
echo "# after the restart: spool append $(st spool_append_ms) ms; cycle $(st cycle_ms) ms"
check_done spool_blackhole
