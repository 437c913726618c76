#!/bin/bash
# man.sh — the manual pages in dist/man/ are clean and complete.
#
#   1. mandoc -Tlint -W warning reports nothing for each page (any warning
#      or error fails it);
#   2. aldrec(1) has an ".It Cm NAME [SUB]" entry for every command of the
#      table in recorder/cli/aldrec.c and mentions every option that table
#      and aldrec's global options name (as "Fl -opt" / "Fl o");
#   3. aldrec.conf(5) has an ".It Cm KEY" entry, under ".Ss [SECTION]", for
#      every key of the keys table in common/config.c (removed keys
#      excepted), and none for a key the table does not have;
#   4. aldrecd(8) mentions every option of aldrecd's getopt table
#      (recorder/daemon/*.c).
# The lists come from the code, so a new command, option or key without
# its documentation fails here. Prints one "ok"/"not ok" line per check and
# ends with "man: N passed, N failed".
#
#   tests/check/man.sh [ROOT]     ROOT: the checkout (default: this one)
set -uo pipefail
source "$(dirname "$0")/../lib/report.sh"
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 2
export LC_ALL=C

# has_flag PAGE OPT: the page's source shows option OPT ("--by", "-v").
has_flag() {
    local page=$1 opt=${2#-}
    grep -Eq "(^|[[:space:]])Fl ${opt//-/\\-}([^a-z-]|$)" "$page"
}

man1=dist/man/aldrec.1 man5=dist/man/aldrec.conf.5 man8=dist/man/aldrecd.8

# ---- 1. lint -------------------------------------------------------------
if ! command -v mandoc >/dev/null; then
    not_ok "mandoc is not installed (Debian package mandoc; make setup)"
else
    for page in "$man1" "$man5" "$man8"; do
        if [ ! -f "$page" ]; then
            not_ok "$page is missing"
            continue
        fi
        out=$(mandoc -Tlint -W warning "$page" 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && [ -z "$out" ]; then
            ok "$page: mandoc -Tlint -W warning is clean"
        else
            while IFS= read -r l; do echo "not ok - $l"; done <<<"$out"
            not_ok "$page: mandoc -Tlint -W warning (exit $rc)"
        fi
    done
fi

# ---- 2. aldrec(1): commands and options ----------------------------------
table=$(sed -n '/^static const struct command commands\[\]/,/^};/p' recorder/cli/aldrec.c)
mapfile -t cmds < <(grep -oE '\.name = "[a-z]+"(, \.sub = "[a-z]+")?' <<<"$table" |
                    sed -E 's/\.name = "([a-z]+)"(, \.sub = "([a-z]+)")?/\1 \3/; s/ $//')
# Options: those the table's usage strings name, and aldrec's global ones.
mapfile -t opts < <({ grep -oE '"[^"]*"' <<<"$table" | grep -oE '(^"|[[ ])--?[a-z][a-z-]*' |
                      sed -E 's/^["[ ]//'
                      grep -oE '"--?[a-z][a-z-]*"' recorder/cli/aldrec.c | tr -d '"'; } | sort -u)
problems=()
if [ ${#cmds[@]} -lt 5 ] || [ ${#opts[@]} -lt 5 ]; then
    problems+=("cannot read the command table in recorder/cli/aldrec.c (${#cmds[@]} commands, ${#opts[@]} options found)")
fi
for c in "${cmds[@]}"; do
    grep -Eq "^\.It Cm $c( |$)" "$man1" || problems+=("no entry \".It Cm $c\" for the command \"aldrec $c\"")
done
for o in "${opts[@]}"; do
    has_flag "$man1" "$o" || problems+=("option $o is not documented (\"Fl ${o#-}\")")
done
report "$man1 documents the ${#cmds[@]} commands and ${#opts[@]} options of recorder/cli/aldrec.c" "${problems[@]}"

# ---- 3. aldrec.conf(5): every key under its section ----------------------
# The keys come from the keys table itself (aldrecd --config-reference
# prints one row per key, `section.key` first); removed keys are not in it.
aldrecd=${BUILD:-build}/bin/aldrecd
mapfile -t keys < <("$aldrecd" --config-reference 2>/dev/null |
                    sed -nE 's/^\| `([a-z]+\.[a-z0-9_]+)` \|.*/\1/p' | sort -u)
mapfile -t documented < <(awk '
    /^\.Ss / { s = $0; sub(/^\.Ss[ \t]+/, "", s); gsub(/\\&/, "", s)
               sec = (s ~ /^\[[a-z]+\]$/) ? substr(s, 2, length(s) - 2) : ""; next }
    /^\.Sh / { sec = ""; next }
    /^\.It Cm [a-z0-9_]+/ && sec != "" { print sec "." $3 }' "$man5" | sort -u)
problems=()
if [ ${#keys[@]} -lt 10 ]; then
    problems+=("cannot read the keys from $aldrecd --config-reference (${#keys[@]} keys found)")
fi
missing=$(comm -23 <(printf '%s\n' "${keys[@]}") <(printf '%s\n' "${documented[@]}"))
extra=$(comm -13 <(printf '%s\n' "${keys[@]}") <(printf '%s\n' "${documented[@]}"))
for k in $missing; do problems+=("key ${k#*.} of [${k%%.*}] is not documented under .Ss [${k%%.*}]"); done
for k in $extra; do problems+=("documents ${k#*.} in [${k%%.*}], which common/config.c does not know"); done
report "$man5 documents the ${#keys[@]} keys of common/config.c, each under its section" "${problems[@]}"

# ---- 4. aldrecd(8): every option ------------------------------------------
daemon_src=(recorder/daemon/*.c)
mapfile -t dopts < <({ grep -hoE '\{ *"[a-z][a-z-]*", *(no|required|optional)_argument' "${daemon_src[@]}" |
                       sed -E 's/\{ *"([a-z-]+)".*/--\1/'
                       grep -hoE 'getopt_long\([^,]+, *[^,]+, *"[^"]*"' "${daemon_src[@]}" |
                       sed -E 's/.*"([^"]*)"$/\1/' | tr -d ':+' | grep -o . | sed 's/^/-/'; } | sort -u)
problems=()
[ ${#dopts[@]} -lt 2 ] && problems+=("cannot read aldrecd's options in recorder/daemon/ (${#dopts[@]} found)")
for o in "${dopts[@]}"; do
    has_flag "$man8" "$o" || problems+=("option $o is not documented (\"Fl ${o#-}\")")
done
report "$man8 documents the ${#dopts[@]} options of aldrecd" "${problems[@]}"

echo "man: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
