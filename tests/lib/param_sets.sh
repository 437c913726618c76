# param_sets.sh — the set-point load of param_set.sh and param_set_rtu.sh:
# 100 single and 20 three-parameter sets through aldrecd, and the checks
# that every one of them reached the device once, was recorded once, and
# cost the poller nothing. Needs A and PROC; sourced after tests/lib/check.sh.

# ps_run_sets P1 P2 P3 P4 — 100 × "set P1 V" (201..300) and 20 × "set
# P2=101.. P3=201.. P4=1.5.." with --by "param test step N" (P4 a u16 of
# scale 0.1 and max 50); counts failed commands in PS_FAILED.
ps_run_sets() {
    PS_FAILED=0
    local i out
    for i in $(seq 1 100); do
        out=$($A set "$1" $((200 + i)) 2>&1) || { PS_FAILED=$((PS_FAILED + 1)); echo "# $out"; }
    done
    for i in $(seq 1 20); do
        out=$($A set "$2=$((100 + i))" "$3=$((200 + i))" "$4=$((i % 50)).5" \
            --by "param test step $i" 2>&1) || { PS_FAILED=$((PS_FAILED + 1)); echo "# $out"; }
    done
}

# ps_writes SIM TABLE ADDR — answered writes of aldsim SIM to TABLE ADDR
# (from its exit line "aldsim: writes per register: ...").
ps_writes() {
    local line
    line=$(grep '^aldsim: writes per register: ' "$WORK/aldsim-$1.log" | tail -1)
    sed -nE "s/.*[:,] $2 $3: ([0-9]+).*/\1/p" <<<"$line" | head -1 | grep . || echo 0
}

# ps_read_counter_extra RC_ID REQ — sum over the recorded read-counter rows
# of (step - REQ): the reads that were not the poller's. A lost or repeated
# poll adds or takes REQ.
ps_read_counter_extra() {
    q "SELECT coalesce(sum(d - $2), 0) FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM process_data_points WHERE process_id = $PROC AND parameter_id = $1) x WHERE d IS NOT NULL"
}
