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

# ---- aldrec status, parsed by its contract ----------------------------------
# The STATUS answer is a documented contract (recorder/ops/service.h,
# svc_render_status; docs/protocol.md): tests read it through
# tests/tools/status.py, which refuses a line whose value does not have its
# key's documented form, so a drifting format fails the test instead of
# feeding it a wrong number. They use the script's $A ("aldrec --config F").
#   st KEY [FIELD]          the value (or one named field) of KEY
#   st_is KEY FIELD VALUE   true when that field equals VALUE
#   st_ge KEY FIELD N       true when that field is an integer >= N
#   st_match KEY REGEX      true when KEY's whole value matches REGEX
st() { $A status 2>/dev/null | python3 "$ALD_ROOT/tests/tools/status.py" "$@"; }
st_is() { [ "$(st "$1" "$2")" = "$3" ]; }
st_ge() { local v; v=$(st "$1" "$2") && [ -n "$v" ] && [ "$v" -ge "$3" ] 2>/dev/null; }
st_match() { grep -Eq -- "$2" <<<"$(st "$1")"; }
