#!/bin/bash
# web_browser.sh — aldrec web's pages in real Chromium (playwright-core
# driving Debian's chromium, tests/web/browser.mjs) against a real recording
# (tests/web/common.sh): every panel draws, the legend names parameters with
# units, the cursor readout shows stored samples, drag-zoom re-fetches finer
# and double-click resets, a one-sample spike in a 10-hour run is drawn at
# full zoom-out, the compare page's offsets and envelope equal SQL, a
# running process is followed within 2 s, no request leaves the origin.
# Screenshots go to build/web-run.png and build/web-compare.png.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-web-browser
pg_start
aldsim_start a --seed 6
source "$ALD_ROOT/tests/web/common.sh"
web_start "$CFG" || { not_ok "aldrec web starts"; check_done web_browser; exit 1; }
LIVE=$($A process start --recipe web-live --lot LIVE1)
OUT=$ALD_ROOT/${BUILD:-build}
export WEB_URL ADMIN_DSN PROC1 PROC2 PROC3 LONG SPIKE_TS LIVE OUT
# Its lines are this script's checks; its closing line is counted with ours.
out=$(cd "$ALD_ROOT" && timeout 240 node tests/web/browser.mjs 2>"$WORK/browser.err"); rc=$?
[ -s "$WORK/browser.err" ] && sed "s/^/# /" "$WORK/browser.err" | tail -20
echo "$out" | grep -v '^web_browser:'
CHECK_PASS=$((CHECK_PASS + $(grep -c '^ok - ' <<<"$out")))
CHECK_FAIL=$((CHECK_FAIL + $(grep -c '^not ok - ' <<<"$out")))
grep -q '^web_browser: ' <<<"$out" || not_ok "the browser script ran to its end (exit $rc): $(tail -3 <<<"$out")"
$A process stop >/dev/null
check "screenshots written" test -s "$OUT/web-run.png" -a -s "$OUT/web-compare.png"
check_done web_browser
