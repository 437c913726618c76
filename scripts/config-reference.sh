#!/bin/bash
# config-reference.sh — writes the configuration reference of
# docs/operating.md from the keys table (aldrecd --config-reference), between
# its two marker lines. tests/check/docs.sh fails when they differ.
#   scripts/config-reference.sh [ALDRECD]   (default build/bin/aldrecd)
set -euo pipefail
cd "$(dirname "$0")/.."
aldrecd=${1:-build/bin/aldrecd}
ref=$("$aldrecd" --config-reference)
python3 - "$ref" <<'PY'
import sys
p = 'docs/operating.md'
s = open(p).read()
a = s.index('<!-- config-reference:')
a = s.index('\n', a) + 1
b = s.index('<!-- end config-reference -->')
open(p, 'w').write(s[:a] + sys.argv[1].rstrip('\n') + '\n' + s[b:])
PY
