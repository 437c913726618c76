#!/bin/bash
# run.sh — run the libFuzzer targets (build-fuzz/bin/fuzz_*, `make fuzzers`)
# for a bounded time.
#
#   tests/fuzz/run.sh TARGET|all SECONDS
#
# For each target (modbus_response, config):
#   1. replay every file of tests/fuzz/corpus/TARGET/ once — each is a
#      regression input, a seed or a past finding (one check each);
#   2. fuzz for SECONDS starting from that corpus (one check: no finding).
# New inputs and crash artifacts go to a scratch directory ($WORK or a
# temporary one), never into the committed corpus. Prints
# "fuzz_TARGET: N passed, N failed" per target; exit 1 if anything failed.
#
# The corpus: files with descriptive names are hand-made seeds; cov-* are
# inputs a longer run found new coverage with (kept after `-merge=1`);
# crash-* would be past findings. A finding: the artifact path is printed.
# Copy the file into tests/fuzz/corpus/TARGET/crash-WHAT, add a unit test
# for the same input, and fix the code.
set -uo pipefail
ALD_ROOT=${ALD_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
FUZZ_BIN=${FUZZ_BIN:-$ALD_ROOT/build-fuzz/bin}

target=${1:?usage: run.sh TARGET|all SECONDS}
secs=${2:?usage: run.sh TARGET|all SECONDS}

# Longest input per target: a Modbus ADU is at most 260 bytes (4 steering
# bytes + headroom); config lines are at most 2047 characters.
declare -A MAX_LEN=([modbus_response]=1100 [config]=8192)

fuzz_one() {   # target
    local t=$1 bin=$FUZZ_BIN/fuzz_$1 corpus=$ALD_ROOT/tests/fuzz/corpus/$1
    local scratch=${WORK:-${TMPDIR:-/tmp}}/fuzz-$t
    local pass=0 fail=0 f log
    rm -rf "$scratch"
    mkdir -p "$scratch/new" "$scratch/artifacts"
    if [ ! -x "$bin" ]; then
        echo "not ok - $bin not built (make fuzzers)"
        echo "fuzz_$t: 0 passed, 1 failed"
        return 1
    fi

    # All at once (one start-up); only when that fails, one by one to name
    # the culprits.
    local inputs=("$corpus"/*)
    if "$bin" "${inputs[@]}" >"$scratch/replay.log" 2>&1; then
        pass=${#inputs[@]}
    else
        for f in "${inputs[@]}"; do
            if "$bin" "$f" >"$scratch/replay.log" 2>&1; then
                pass=$((pass + 1))
            else
                fail=$((fail + 1))
                echo "not ok - regression input ${f#"$ALD_ROOT"/} fails again:"
                grep -E 'fuzz: |ERROR|SUMMARY|runtime error' "$scratch/replay.log" \
                    | head -5 | sed 's/^/    /'
            fi
        done
    fi

    log=$scratch/fuzz.log
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len="${MAX_LEN[$t]:-4096}" -print_final_stats=1 \
        -artifact_prefix="$scratch/artifacts/" "$scratch/new" "$corpus" >"$log" 2>&1
    local rc=$?
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1))
        echo "ok - fuzz_$t: no finding in ${runs:-?} runs ($secs s), corpus $(ls "$corpus" | wc -l) + $(ls "$scratch/new" | wc -l) new inputs"
    else
        fail=$((fail + 1))
        echo "not ok - fuzz_$t found a problem (exit $rc) after ${runs:-?} runs:"
        grep -E 'fuzz: |ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -8 | sed 's/^/    /'
        ls "$scratch"/artifacts/* 2>/dev/null | sed 's/^/    artifact: /'
    fi
    echo "fuzz_$t: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}

status=0
if [ "$target" = all ]; then
    for bin in "$FUZZ_BIN"/fuzz_*; do
        [ -x "$bin" ] || continue
        fuzz_one "${bin##*/fuzz_}" || status=1
    done
else
    fuzz_one "$target" || status=1
fi
exit $status
