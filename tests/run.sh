#!/bin/bash
# run.sh — run every test and end with "N passed, N failed".
#
#   tests/run.sh                 static checks, unit tests, fuzz targets,
#                                integration tests
#   tests/run.sh check           the fast tier, no server: the static checks
#                                and the unit tests that need no PostgreSQL
#                                or Redis (make check)
#   tests/run.sh unit            unit tests only
#   tests/run.sh fuzz            fuzz targets only
#   tests/run.sh integration     integration tests only
#   tests/run.sh integration NAME...   only tests/integration/NAME.sh ...
#
# Static checks are tests/check/*.sh (the layering of includes, the docs'
# links, the manual pages, a second make rebuilding nothing). Unit tests
# are $BIN/test_* programs; those that need PostgreSQL get
# ALDREC_TEST_DSN (admin) and ALDREC_TEST_REC_DSN (recorder role) of a
# private cluster started here, those that need Redis REDIS_PORT. With
# SAN_BIN set (make test does), the unit tests found there (built with
# ASan+UBSan) run as well, as "san/test_*". With FUZZ_BIN set, each fuzz
# target there replays its corpus and fuzzes for FUZZ_SECONDS (default 5;
# tests/fuzz/run.sh). Integration tests are tests/integration/*.sh, each
# starting its own servers.
#
# How a program is counted. It prints one or more result lines "NAME: N
# passed, N failed" (a test program one; a script whose exit trap adds a
# verdict after its closing line, one more), and its figures are the sum of
# all of them. Every failed check also prints a line beginning with "not
# ok" (unit tests print nothing for a passing check, scripts "ok - ..."):
# the number of those lines must equal the summed failures; a mismatch is
# reported and counted as the larger of the two. A program that prints no
# result line (crash, sanitizer abort, hang killed by timeout) counts as 1
# failure, and so does one that exits non-zero although no check failed.
# A kind of test asked for that finds nothing to run (no $BIN/test_*, no
# unit tests in SAN_BIN, no fuzz_* in FUZZ_BIN, FUZZ_BIN unset for
# "run.sh fuzz", no integration script) is a failure too.
#
# The last line is exactly "N passed, N failed" (CI reads it); the line
# before it says where the checks came from, e.g.
#   breakdown: unit 2412 ×2 (plain + ASan/UBSan), integration 812, fuzz 2
set -uo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
trap ald_cleanup EXIT

what=${1:-all}
shift $(( $# > 0 ))
only=("$@")          # integration: just these scripts (names without .sh)
total_pass=0
total_fail=0
failed_names=()
declare -A kind_checks=()   # checks counted per kind: static, unit, san, fuzz, integration
# The unit tests that need the private PostgreSQL (and Redis) started
# below; "check" runs every other one. One missing here fails loudly in
# make check (it finds no ALDREC_TEST_DSN), so the list cannot go stale
# quietly.
SERVER_UNITS=" test_ctlrec test_pcache test_pgsink test_poller test_spool "

count() {   # kind passed failed
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
    kind_checks[$1]=$(( ${kind_checks[$1]:-0} + $2 + $3 ))
}

# nothing_found KIND MESSAGE — a kind of test was asked for and none found.
nothing_found() {
    echo "== $1"
    echo "not ok - $2"
    count "$1" 0 1
    failed_names+=("$1:none")
}

run_one() {   # kind name timeout_s cmd...
    local kind=$1 name=$2 tmo=$3; shift 3
    local out=$WORK/$name.out
    echo "== $name"
    timeout --kill-after=10 "$tmo" "$@" >"$out" 2>&1
    local rc=$?
    grep -E '^not ok( |$)' "$out" || true
    local re='^[A-Za-z0-9_.-]+: ([0-9]+) passed, ([0-9]+) failed' line
    local p=0 f=0 nok lines=()
    while IFS= read -r line; do
        [[ $line =~ $re ]] || continue
        p=$((p + 10#${BASH_REMATCH[1]}))
        f=$((f + 10#${BASH_REMATCH[2]}))
        lines+=("$line")
    done <"$out"
    nok=$(grep -cE '^not ok( |$)' "$out")
    if [ ${#lines[@]} -eq 0 ]; then
        echo "   $name ended without a result line (exit $rc); last output:"
        tail -20 "$out" | sed 's/^/   | /'
        count "$kind" 0 1
        failed_names+=("$name")
        return
    fi
    printf '   %s\n' "${lines[@]}"
    [ ${#lines[@]} -gt 1 ] &&
        echo "   $name: $p passed, $f failed (its ${#lines[@]} result lines added up)"
    if [ "$nok" -ne "$f" ]; then
        echo "   $name: $nok \"not ok\" line(s), but $f failed in its result line(s);" \
             "counted as $(( nok > f ? nok : f )) failed"
        [ "$nok" -gt "$f" ] && f=$nok
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "   $name exited $rc although no check failed; last output:"
        tail -20 "$out" | sed 's/^/   | /'
        f=1
    fi
    [ "$f" -gt 0 ] && failed_names+=("$name")
    count "$kind" "$p" "$f"
}

# Prints "breakdown: ..." — the checks of each kind of test that ran.
breakdown() {
    local parts=() u=${kind_checks[unit]:-} s=${kind_checks[san]:-} i line
    [ -n "${kind_checks[static]:-}" ] && parts+=("static ${kind_checks[static]}")
    if [ -n "$u" ] && [ "$u" = "$s" ]; then
        parts+=("unit $u ×2 (plain + ASan/UBSan)")
    else
        [ -n "$u" ] && parts+=("unit $u")
        [ -n "$s" ] && parts+=("unit under ASan/UBSan $s")
    fi
    [ -n "${kind_checks[integration]:-}" ] && parts+=("integration ${kind_checks[integration]}")
    [ -n "${kind_checks[fuzz]:-}" ] && parts+=("fuzz ${kind_checks[fuzz]}")
    [ ${#parts[@]} -gt 0 ] || return 0
    line="breakdown: ${parts[0]}"
    for i in "${parts[@]:1}"; do
        line+=", $i"
    done
    echo "$line"
}

ald_workdir tests
if [ "$what" = all ] || [ "$what" = check ]; then
    found=0
    for t in "$ALD_ROOT"/tests/check/*.sh; do
        [ -f "$t" ] || continue
        found=1
        run_one static "$(basename "$t" .sh)" 300 env BUILD="${BUILD:-build}" bash "$t"
    done
    [ "$found" -eq 1 ] || nothing_found static "no static checks in $ALD_ROOT/tests/check"
fi
if [ "$what" = check ]; then
    found=0
    for t in "$BIN"/test_*; do
        [ -x "$t" ] || continue
        [[ $SERVER_UNITS == *" $(basename "$t") "* ]] && continue
        found=1
        run_one unit "$(basename "$t")" 60 "$t"
    done
    [ "$found" -eq 1 ] || nothing_found unit "no unit test programs $BIN/test_* (make units)"
fi
if [ "$what" = all ] || [ "$what" = unit ]; then
    pg_start
    redis_start
    aldrecd_config "$WORK/unit.conf"
    pg_migrate "$WORK/unit.conf"
    export ALDREC_TEST_DSN=$ADMIN_DSN ALDREC_TEST_REC_DSN=$REC_DSN REDIS_PORT
    found=0
    for t in "$BIN"/test_*; do
        [ -x "$t" ] || continue
        found=1
        run_one unit "$(basename "$t")" 300 ${ALDREC_TEST_WRAPPER:-} "$t"
    done
    [ "$found" -eq 1 ] || nothing_found unit "no unit test programs $BIN/test_* (make units)"
    if [ -n "${SAN_BIN:-}" ] && [ "$SAN_BIN" != "$BIN" ]; then
        mkdir -p "$WORK/san"
        found=0
        for t in "$SAN_BIN"/test_*; do
            [ -x "$t" ] || continue
            found=1
            run_one san "san/$(basename "$t")" 300 "$t"
        done
        [ "$found" -eq 1 ] ||
            nothing_found san "SAN_BIN=$SAN_BIN holds no unit test programs (make SAN=1 units)"
    fi
    pg_stop
fi
if { [ "$what" = all ] || [ "$what" = fuzz ]; } && [ -n "${FUZZ_BIN:-}" ]; then
    found=0
    for t in "$FUZZ_BIN"/fuzz_*; do
        [ -x "$t" ] || continue
        found=1
        run_one fuzz "$(basename "$t")" 300 env FUZZ_BIN="$FUZZ_BIN" \
            "$ALD_ROOT/tests/fuzz/run.sh" "${t##*/fuzz_}" "${FUZZ_SECONDS:-5}"
    done
    [ "$found" -eq 1 ] || nothing_found fuzz "FUZZ_BIN=$FUZZ_BIN holds no fuzz_* targets (make fuzzers)"
elif [ "$what" = fuzz ]; then
    nothing_found fuzz "FUZZ_BIN is not set: no fuzz targets to run (make fuzzers builds them)"
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
    scripts=()
    if [ ${#only[@]} -gt 0 ]; then
        for n in "${only[@]}"; do
            t=$ALD_ROOT/tests/integration/${n%.sh}.sh
            [ -f "$t" ] || { nothing_found integration "no integration test $t"; continue; }
            scripts+=("$t")
        done
    else
        for t in "$ALD_ROOT"/tests/integration/*.sh; do
            [ -f "$t" ] && scripts+=("$t")
        done
        [ ${#scripts[@]} -gt 0 ] ||
            nothing_found integration "no integration scripts in $ALD_ROOT/tests/integration"
    fi
    for t in "${scripts[@]}"; do
        run_one integration "$(basename "$t" .sh)" "${INTEGRATION_TIMEOUT:-600}" bash "$t"
    done
fi

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
breakdown
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
