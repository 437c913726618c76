#!/bin/bash
# bench_acq.sh — what one aldrecd sustains: 4 aldsim devices × 100
# parameters (coils, discrete inputs, holding f32, input u16 with one gap
# wider than max_gap: 5 requests per device and cycle at best) recorded into
# PostgreSQL at 10 Hz (the brief's 4,000 points/s reference load), 20 Hz
# and 50 Hz. For each rate, over BENCH_ACQ_S seconds of a running process:
#   points/s stored (rows in PostgreSQL / span of their timestamps),
#   aldrecd CPU % of one core (utime+stime from /proc/PID/stat over the run),
#   peak RSS (VmHWM; most of it is shared library pages) and the anonymous
#   part (RssAnon: heap and thread stacks, what the daemon itself uses), p99 cycle lateness (jitter) and cycle time, requests
#   per cycle actually sent (aldrecd's request and cycle counters between
#   two snapshots) vs the plan's minimum. Called by tests/bench/run.sh; runnable on its own.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/bench4.sh"
trap ald_cleanup EXIT

DUR=${BENCH_ACQ_S:-10}
RATES=${BENCH_ACQ_HZ:-"10 20 50"}

ald_workdir bench-acq
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.machine=bench4 recorder.batch_rows=5000 recorder.flush_interval_ms=1000
pg_migrate "$CFG"
A="$BIN/aldrec --config $CFG"

bench4_machine 100
ald_log "bench4: $(psql -XAtq "$ADMIN_DSN" -c "SELECT count(*) FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id JOIN machines m ON m.id = mc.machine_id AND m.name = 'bench4'") parameters on 4 aldsim devices"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '%-6s %10s %10s %8s %9s %9s %10s %10s %14s %9s\n' rate points/s expected cpu% \
    peakRSS anon_MiB p99_late p99_cycle 'req/cycle(min)' overruns
for hz in $RATES; do
    ms=$((1000 / hz))
    psql -XAtq "$ADMIN_DSN" -c "UPDATE component_parameters SET poll_interval_ms = $ms WHERE component_id IN (SELECT mc.id FROM machine_components mc JOIN machines m ON m.id = mc.machine_id AND m.name = 'bench4')" >/dev/null
    : > "$WORK/aldrecd.log"
    aldrecd_start "$CFG" >/dev/null
    sleep 1
    PROC=$($A process start --recipe "bench-${hz}hz")
    t0=$(date +%s.%N); c0=$(cpu_ticks "$ALDRECD_PID")
    s0=$($A status)
    sleep "$DUR"
    s1=$($A status)
    c1=$(cpu_ticks "$ALDRECD_PID"); t1=$(date +%s.%N)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$ALDRECD_PID/status")
    anon=$(awk '/RssAnon/ {print $2}' "/proc/$ALDRECD_PID/status")
    $A process stop >/dev/null
    kill -TERM "$ALDRECD_PID"; wait "$ALDRECD_PID" 2>/dev/null || true
    tck=$(getconf CLK_TCK)
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tck" -v x="$t0" -v y="$t1" 'BEGIN {printf "%.1f", (b - a) / t / (y - x) * 100}')
    pts=$(psql -XAtq "$ADMIN_DSN" -c "SELECT round(count(*) / extract(epoch FROM max(ts) - min(ts))) FROM process_data_points WHERE process_id = $PROC")
    late=$(sed -n 's/^late_ms: *p50 [0-9.]*, p99 \([0-9.]*\),.*/\1/p' <<<"$s1")
    cyc=$(sed -n 's/^cycle_ms: *p50 [0-9.]*, p99 \([0-9.]*\),.*/\1/p' <<<"$s1")
    # requests actually sent per device cycle, between the two snapshots
    r0=$(sed -n 's/^requests: *\([0-9]*\) .*/\1/p' <<<"$s0"); r1=$(sed -n 's/^requests: *\([0-9]*\) .*/\1/p' <<<"$s1")
    y0=$(sed -n 's/^poll_cycles: *\([0-9]*\) .*/\1/p' <<<"$s0"); y1=$(sed -n 's/^poll_cycles: *\([0-9]*\) .*/\1/p' <<<"$s1")
    ovr=$(sed -n 's/^poll_cycles: *[0-9]* (\([0-9]*\) overruns).*/\1/p' <<<"$s1")
    minr=$(grep '^device' <<<"$s1" | sed -n 's/.*(min \([0-9]*\)).*/\1/p' | awk '{s += $1} END {print s / NR}')
    req=$(awk -v a="$r0" -v b="$r1" -v x="$y0" -v y="$y1" 'BEGIN {printf "%.2f", (b - a) / (y - x)}')
    printf '%-6s %10s %10s %8s %9.1f %9.1f %10s %10s %14s %9s\n' "${hz}Hz" "$pts" $((400 * hz)) \
        "$cpu" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')" "$(awk -v k="$anon" 'BEGIN {print k / 1024}')" \
        "${late}ms" "${cyc}ms" "$req($minr)" "$ovr"
done
