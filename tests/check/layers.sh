#!/bin/bash
# layers.sh — the build's layering rule, checked on every #include.
#
# Each folder is a layer and may include headers only of itself and of the
# layers it is allowed to use (docs/ARCH.md "Layers"). A project header is
# included by its path ("store/spool.h"), so the first path component of an
# include names the layer it reaches into. Prints one "ok"/"not ok" line per
# source folder and ends with "layers: N passed, N failed".
#
#   tests/check/layers.sh [ROOT]     ROOT: the checkout (default: this one)
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 2

# folder  layer  layers it may use (besides itself)
table=(
    "common           common   -"
    "recorder/acq     acq      common"
    "recorder/store   store    common acq"
    "cache            cache    common acq"
    "query            query    common"
    "web              web      common query"
    "recorder/ops     ops      common acq store cache"
    "recorder/daemon  daemon   common acq store cache ops"
    "recorder/cli     cli      common acq store cache query web"
    "firmware         firmware common acq"
)
known=" common acq store cache query web ops daemon cli firmware "

pass=0 fail=0
for row in "${table[@]}"; do
    read -r dir layer uses <<<"$row"
    allowed=" $layer ${uses/-/} "
    bad=()
    shopt -s nullglob
    for f in "$dir"/*.c "$dir"/*.h; do
        while IFS= read -r inc; do
            top=${inc%%/*}
            if [ "$top" = "$inc" ]; then
                bad+=("$f: \"$inc\" is not included by its path")
            elif [[ $known != *" $top "* ]]; then
                bad+=("$f: \"$inc\" names no layer")
            elif [[ $allowed != *" $top "* ]]; then
                bad+=("$f: \"$inc\" reaches into $top, which $layer may not use")
            fi
        done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/p' "$f")
    done
    if [ ${#bad[@]} -eq 0 ]; then
        echo "ok - $dir ($layer) includes only: $layer ${uses/-/}"
        pass=$((pass + 1))
    else
        echo "not ok - ${bad[0]}"
        for b in "${bad[@]:1}"; do echo "   also: $b"; done
        fail=$((fail + 1))
    fi
done
# Every source folder is in the table: a new folder must say its layer.
while IFS= read -r d; do
    found=0
    for row in "${table[@]}"; do [ "${row%% *}" = "$d" ] && found=1; done
    if [ $found -eq 0 ]; then
        echo "not ok - $d holds C sources but has no row in tests/check/layers.sh"
        fail=$((fail + 1))
    fi
done < <(git ls-files '*.c' '*.h' 2>/dev/null | grep -v '^tests/' | xargs -r -n1 dirname | sort -u)
echo "layers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
