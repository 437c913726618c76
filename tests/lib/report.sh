# report.sh — the counting of the static checks (tests/check/*.sh), bash.
# Each check is one "ok - WHAT" line, or one "not ok - WHAT: PROBLEM" line
# with its further problems indented below ("   also: ..."), so that
# tests/run.sh can match the "not ok" lines with the failure count.
pass=0 fail=0
ok()     { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
# report WHAT PROBLEM...: ok when there is no problem, else one failure.
report() {
    local what=$1; shift
    if [ $# -eq 0 ]; then
        ok "$what"
    else
        echo "not ok - $what: $1"
        shift
        local p
        for p in "$@"; do echo "   also: $p"; done
        fail=$((fail + 1))
    fi
}
