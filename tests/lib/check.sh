# check.sh — assertions for integration tests (bash). Each prints "ok - …"
# or "not ok - …"; check_done prints "NAME: N passed, N failed".
CHECK_PASS=0
CHECK_FAIL=0

ok()     { CHECK_PASS=$((CHECK_PASS + 1)); echo "ok - $*"; }
not_ok() { CHECK_FAIL=$((CHECK_FAIL + 1)); echo "not ok - $*"; }

# check DESCRIPTION CMD... — passes when CMD exits 0.
check() {
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# quiet CMD... — CMD with its stdout discarded, for `check`: a tool that
# prints "ok" (mbwrite) must not add a line that reads like a passed check.
quiet() { "$@" >/dev/null; }

# check_eq DESCRIPTION ACTUAL EXPECTED
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', expected '$3'"; fi
}

# check_ge DESCRIPTION ACTUAL MIN (integers)
check_ge() {
    if [ "$2" -ge "$3" ] 2>/dev/null; then ok "$1 ($2 >= $3)"; else not_ok "$1: got '$2', expected >= $3"; fi
}

# check_le DESCRIPTION ACTUAL MAX (integers)
check_le() {
    if [ "$2" -le "$3" ] 2>/dev/null; then ok "$1 ($2 <= $3)"; else not_ok "$1: got '$2', expected <= $3"; fi
}

# check_match DESCRIPTION TEXT REGEX
check_match() {
    if grep -Eq -- "$3" <<<"$2"; then ok "$1"; else not_ok "$1: '$2' does not match /$3/"; fi
}

check_done() {
    echo "$1: $CHECK_PASS passed, $CHECK_FAIL failed"
    [ "$CHECK_FAIL" -eq 0 ]
}

# q SQL — one value from the admin connection.
q() { psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" -c "$1"; }
