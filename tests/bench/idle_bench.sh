#!/bin/bash
# idle_bench.sh — what idle recording costs the controller (called by
# tests/bench/run.sh): aldrecd on the demo machine (32 parameters at 10 Hz,
# aldsim) with no process running, first with [recorder] idle_interval_ms
# = 0 (polling only, nothing kept), then with the default 1000 (one sample
# per parameter per second into the idle history). Prints aldrecd's CPU
# time (user + system, /proc/PID/stat) per day of each and of the
# difference, and the idle rows per day that reached PostgreSQL.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/spool_checks.sh"
trap ald_cleanup EXIT

SECS=${BENCH_IDLE_S:-60}
ald_workdir bench-idle
pg_start
aldsim_start a --seed 3
demo_cfg() {   # file idle_ms
    aldrecd_config "$1" recorder.idle_interval_ms="$2" spool.path="$WORK/spool-$2.db"
}
demo_cfg "$WORK/off.conf" 0
pg_migrate "$WORK/off.conf"
demo_machine_load "$SIM_PORT_a" 100
cpu_s() {   # pid → user + system CPU seconds
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
measure() {   # idle_ms → "cpu_s wall_s rows"
    local cfg=$WORK/idle-$1.conf c0 c1 t0 t1 r0 r1
    demo_cfg "$cfg" "$1"
    A="$BIN/aldrec --config $cfg"
    aldrecd_start "$cfg" "$WORK/aldrecd-$1.log" >/dev/null || ald_die "aldrecd did not start"
    sleep 2
    c0=$(cpu_s "$ALDRECD_PID"); t0=$(date +%s.%N)
    sleep "$SECS"
    c1=$(cpu_s "$ALDRECD_PID"); t1=$(date +%s.%N)
    sleep 2
    kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID" || true
    local n; n=$(q "SELECT count(*) FROM machine_history WHERE ts >= to_timestamp($t0) AND ts < to_timestamp($t1)")
    awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v n="$n" 'BEGIN {print b - a, e - s, n}'
}
echo "== idle recording: aldrecd, demo machine (32 parameters, 10 Hz), no process, ${SECS} s each"
read -r c_off w_off n_off <<<"$(measure 0)"
read -r c_on w_on n_on <<<"$(measure 1000)"
awk -v co="$c_off" -v wo="$w_off" -v no="$n_off" -v c1="$c_on" -v w1="$w_on" -v n1="$n_on" 'BEGIN {
    printf "   idle_interval_ms = 0:    %.2f CPU s in %.1f s = %.0f CPU s/day (%d idle rows)\n", co, wo, co / wo * 86400, no
    printf "   idle_interval_ms = 1000: %.2f CPU s in %.1f s = %.0f CPU s/day (%d idle rows, %.1f rows/s)\n", c1, w1, c1 / w1 * 86400, n1, n1 / w1
    printf "   FIGURE idle recording costs aldrecd %.0f CPU s/day more (%.2f%% of one core); RATIO CPU with / without = %.2f\n", (c1 / w1 - co / wo) * 86400, (c1 / w1 - co / wo) * 100, (c1 / w1) / (co / wo)
    printf "   FIGURE idle history: %.2f M rows/day into PostgreSQL (bytes per row: query_bench.sh)\n", n1 / w1 * 86400 / 1e6 }'
