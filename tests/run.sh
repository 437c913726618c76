#!/bin/bash
# run.sh — run every test and end with "N passed, N failed".
#
#   tests/run.sh                 unit tests, fuzz targets, integration tests
#   tests/run.sh unit            unit tests only
#   tests/run.sh fuzz            fuzz targets only
#   tests/run.sh integration     integration tests only
#   tests/run.sh integration NAME...   only tests/integration/NAME.sh ...
#
# Unit tests are $BIN/test_* programs; those that need PostgreSQL get
# ALDREC_TEST_DSN (admin) and ALDREC_TEST_REC_DSN (recorder role) of a
# private cluster started here, those that need Redis REDIS_PORT. With
# SAN_BIN set (make test does), the unit tests found there (built with
# ASan+UBSan) run as well, as "san/test_*". With FUZZ_BIN set, each fuzz
# target there replays its corpus and fuzzes for FUZZ_SECONDS (default 5;
# tests/fuzz/run.sh). Integration tests are tests/integration/*.sh, each
# starting its own servers. Every test program ends with "NAME: N passed,
# N failed"; a program that ends without that line (crash, sanitizer abort,
# hang killed by timeout) counts as 1 failure.
set -uo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
trap ald_cleanup EXIT

what=${1:-all}
shift $(( $# > 0 ))
only=("$@")          # integration: just these scripts (names without .sh)
total_pass=0
total_fail=0
failed_names=()

run_one() {   # name timeout_s cmd...
    local name=$1 tmo=$2; shift 2
    local out=$WORK/$name.out
    echo "== $name"
    timeout --kill-after=10 "$tmo" "$@" >"$out" 2>&1
    local rc=$?
    grep -E '^(not ok|ok)( |$)' "$out" | grep -v '^ok' || true
    local last
    last=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    if [ -z "$last" ]; then
        echo "   $name ended without a result line (exit $rc); last output:"
        tail -20 "$out" | sed 's/^/   | /'
        total_fail=$((total_fail + 1)); failed_names+=("$name")
        return
    fi
    local p f
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$last")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$last")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "   $name exited $rc although no check failed; last output:"
        tail -20 "$out" | sed 's/^/   | /'
        f=1
    fi
    [ "$f" -gt 0 ] && failed_names+=("$name")
    echo "   $last"
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
}

ald_workdir tests
if [ "$what" = all ] || [ "$what" = unit ]; then
    pg_start
    redis_start
    aldrecd_config "$WORK/unit.conf"
    pg_migrate "$WORK/unit.conf"
    export ALDREC_TEST_DSN=$ADMIN_DSN ALDREC_TEST_REC_DSN=$REC_DSN REDIS_PORT
    for t in "$BIN"/test_*; do
        [ -x "$t" ] || continue
        run_one "$(basename "$t")" 300 ${ALDREC_TEST_WRAPPER:-} "$t"
    done
    if [ -n "${SAN_BIN:-}" ] && [ "$SAN_BIN" != "$BIN" ]; then
        mkdir -p "$WORK/san"
        for t in "$SAN_BIN"/test_*; do
            [ -x "$t" ] || continue
            run_one "san/$(basename "$t")" 300 "$t"
        done
    fi
    pg_stop
fi
if { [ "$what" = all ] || [ "$what" = fuzz ]; } && [ -n "${FUZZ_BIN:-}" ]; then
    for t in "$FUZZ_BIN"/fuzz_*; do
        [ -x "$t" ] || continue
        run_one "$(basename "$t")" 300 env FUZZ_BIN="$FUZZ_BIN" \
            "$ALD_ROOT/tests/fuzz/run.sh" "${t##*/fuzz_}" "${FUZZ_SECONDS:-5}"
    done
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
    scripts=()
    if [ ${#only[@]} -gt 0 ]; then
        for n in "${only[@]}"; do
            t=$ALD_ROOT/tests/integration/${n%.sh}.sh
            [ -f "$t" ] || { echo "no integration test $t"; total_fail=$((total_fail + 1)); continue; }
            scripts+=("$t")
        done
    else
        scripts=("$ALD_ROOT"/tests/integration/*.sh)
    fi
    for t in "${scripts[@]}"; do
        run_one "$(basename "$t" .sh)" "${INTEGRATION_TIMEOUT:-600}" bash "$t"
    done
fi

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
