#!/bin/bash
# rebuild.sh — a second make after a complete build rebuilds nothing: every
# object is kept (.SECONDARY) and every dependency is a real file, so a
# maintainer's edit-build cycle recompiles only what the edit touched.
# Runs after `make all` (make test and make check build first); ends with
# "rebuild: N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
pass=0 fail=0
out=$(make -C "$root" --no-print-directory BUILD="$build" all 2>&1)
rc=$?
redone=$(grep -E '^(cc|gcc|clang|ar) ' <<<"$out" | sed -E 's/.* -o ([^ ]+).*/\1/; s/^ar rcs ([^ ]+).*/\1/')
if [ $rc -ne 0 ]; then
    echo "not ok - make all failed (exit $rc)"; fail=$((fail + 1))
elif [ -n "$redone" ]; then
    echo "not ok - a second make rebuilt: $(tr '\n' ' ' <<<"$redone")"; fail=$((fail + 1))
else
    echo "ok - a second make rebuilds nothing"; pass=$((pass + 1))
fi
echo "rebuild: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
