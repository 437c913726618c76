#!/bin/bash
# docs.sh — the documentation holds together.
#
#   1. README.md is at most 250 lines and links every page of docs/;
#   2. in README.md and docs/*.md every relative link resolves to a file or
#      folder of the checkout, and a #anchor to a heading of its page
#      (GitHub's heading ids);
#   3. every source path they name in a code span (`recorder/store/spool.h`,
#      `tests/integration/svc_*.sh`) exists;
#   4. every section a source comment cites (the form is PAGE "HEADING",
#      as in ARCH.md "Layers") is a heading of that page;
#   5. no issue numbers in README.md, docs/ or the sources.
# Prints one "ok"/"not ok" line per check and ends with
# "docs: N passed, N failed".
#
#   tests/check/docs.sh [ROOT]     ROOT: the checkout (default: this one)
set -uo pipefail
source "$(dirname "$0")/../lib/report.sh"
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 2
export LC_ALL=C.UTF-8


# The text of a Markdown page outside fenced code blocks.
prose() { awk '/^[[:space:]]*```/ { fence = !fence; next } !fence' "$1"; }

# The anchors of a page's headings, as GitHub makes them: lower case,
# punctuation dropped, spaces to hyphens, "-1", "-2" for repeats.
anchors() {
    prose "$1" | sed -nE 's/^#{1,6}[[:space:]]+(.*[^#[:space:]])[[:space:]#]*$/\1/p' |
        sed -E 's/`//g; s/\[([^]]*)\]\([^)]*\)/\1/g' | tr '[:upper:]' '[:lower:]' |
        sed -E 's/[^[:alnum:] _-]//g; s/ /-/g' |
        awk '{ n = seen[$0]++; print (n ? $0 "-" n : $0) }'
}

# The heading texts of a page (for cited sections).
headings() { prose "$1" | sed -nE 's/^#{1,6}[[:space:]]+(.*[^#[:space:]])[[:space:]#]*$/\1/p'; }

pages=(README.md docs/*.md)

# ---- 1. the front door ----------------------------------------------------
n=$(wc -l < README.md)
if [ "$n" -le 250 ]; then ok "README.md is $n lines (at most 250)"
else report "README.md is at most 250 lines" "it has $n"; fi
problems=()
for d in docs/*.md; do
    prose README.md | grep -F "]($d" >/dev/null || problems+=("no link to $d")
done
report "README.md links every page of docs/" "${problems[@]}"

# ---- 2. links and anchors -------------------------------------------------
for page in "${pages[@]}"; do
    dir=$(dirname "$page")
    problems=()
    count=0
    while IFS= read -r target; do
        case $target in
        http://* | https://* | mailto:*) continue ;;
        esac
        count=$((count + 1))
        file=${target%%#*}
        anchor=
        [[ $target == *"#"* ]] && anchor=${target#*#}
        if [ -z "$file" ]; then
            path=$page
        else
            path=$dir/$file
            path=${path#./}
            if [ ! -e "$path" ]; then
                problems+=("($target): $path does not exist")
                continue
            fi
        fi
        if [ -n "$anchor" ]; then
            if [[ $path != *.md ]]; then
                problems+=("($target): an anchor into $path, which is not a Markdown page")
            elif ! anchors "$path" | grep -xF "$anchor" >/dev/null; then
                problems+=("($target): $path has no heading with the anchor #$anchor")
            fi
        fi
    done < <(prose "$page" | grep -oE '\]\([^)[:space:]]+\)' | sed -E 's/^\]\((.*)\)$/\1/')
    report "$page: $count relative links resolve" "${problems[@]}"
done

# ---- 3. source paths named in code spans ----------------------------------
for page in "${pages[@]}"; do
    problems=()
    count=0
    while IFS= read -r p; do
        # FOO/ in a path is a placeholder (tests/fuzz/corpus/TARGET/).
        [[ /$p/ =~ /[A-Z][A-Z_]*/ ]] && continue
        count=$((count + 1))
        compgen -G "$p" >/dev/null || problems+=("\`$p\` does not exist")
    done < <(prose "$page" | grep -oE '`[^`]+`' | tr -d '`' |
             grep -E '^(common|recorder|cache|query|firmware|sql|dist|scripts|tests|docs)/[][A-Za-z0-9_.*/-]*$' |
             sort -u)
    report "$page: $count source paths it names exist" "${problems[@]}"
done

# ---- 4. sections cited by source comments -----------------------------------
# Comment text of every source file, comment markers stripped and lines
# joined, so that a citation may wrap over two comment lines. A page named
# without a folder is looked for at the top, beside the citing file, then
# in docs/. PAGE "NAME" followed by the word column cites a table column.
# The sources: git's list, or every file when this is not a git checkout.
list_files() { git ls-files 2>/dev/null | grep . || find . -type f ! -path './.git/*' | sed 's|^\./||'; }
mapfile -t sources < <(list_files | grep -E '\.(c|h|sh|sql|py)$|(^|/)Makefile$' |
                       grep -vE '^(tests/fuzz/corpus|build[^/]*)/')
arch=() other=()
for f in "${sources[@]}"; do
    [ -f "$f" ] || continue
    while IFS= read -r cite; do
        doc=${cite%% \"*} rest=${cite#* \"}
        section=${rest%%\"*} column=
        [[ $rest == *'" column' ]] && column=yes
        [ "$doc" = README ] && doc=README.md
        if [[ $doc != */* ]]; then
            for cand in "$doc" "$(dirname "$f")/$doc" "docs/$doc"; do
                [ -f "$cand" ] && { doc=$cand; break; }
            done
        fi
        if [ "$doc" = docs/ARCH.md ]; then
            arch+=("$f	$doc	$section	$column")
        else
            other+=("$f	$doc	$section	$column")
        fi
    done < <(sed -E 's/^[[:space:]]*(\/\*+|\*+\/?|#+|\/\/+|--+)?[[:space:]]*//' "$f" | tr '\n' ' ' |
             tr -s ' ' | grep -oE '(README|[A-Za-z0-9_/-]+\.md) "[^"]+"( column)?')
done
for kind in arch other; do
    declare -n list=$kind
    problems=()
    for c in "${list[@]}"; do
        IFS=$'\t' read -r f doc section column <<<"$c"
        if [ ! -f "$doc" ]; then
            problems+=("$f cites $doc \"$section\": there is no $doc")
        elif [ -n "$column" ]; then
            prose "$doc" | grep -E "^\|.*\| *$section *\|" >/dev/null ||
                problems+=("$f cites the column \"$section\" of $doc: no table there has it")
        elif ! headings "$doc" | grep -xF "$section" >/dev/null; then
            problems+=("$f cites $doc \"$section\": no such heading in $doc")
        fi
    done
    if [ "$kind" = arch ]; then
        report "the ${#list[@]} ARCH.md sections cited in source comments are headings of docs/ARCH.md" "${problems[@]}"
    else
        report "the ${#list[@]} other pages' sections cited in source comments exist" "${problems[@]}"
    fi
    unset -n list
done

# ---- 5. no issue numbers ----------------------------------------------------
problems=()
while IFS= read -r hit; do
    problems+=("$hit")
done < <(grep -nHiE '\bissues? #?[0-9]+' "${pages[@]}" "${sources[@]}" 2>/dev/null | cut -c1-160)
report "no issue numbers in README.md, docs/ or the sources" "${problems[@]}"

# ---- 6. every test is described in docs/testing.md --------------------------
problems=()
for t in tests/unit/test_*.c tests/integration/*.sh tests/check/*.sh; do
    n=$(basename "$t"); n=${n%.c}; n=${n%.sh}
    grep -q "\`$n\`" docs/testing.md || problems+=("$t is not described in docs/testing.md (as \`$n\`)")
done
report "docs/testing.md describes every unit test, integration test and static check" "${problems[@]}"

# ---- 7. the configuration reference is the keys table's -------------------
problems=()
aldrecd=${BUILD:-build}/bin/aldrecd
if [ ! -x "$aldrecd" ]; then
    problems+=("$aldrecd not built (make all)")
else
    want=$("$aldrecd" --config-reference)
    have=$(sed -n '/^<!-- config-reference:/,/^<!-- end config-reference -->/p' docs/operating.md | sed '1d;$d')
    if [ -z "$have" ]; then
        problems+=("docs/operating.md has no config-reference markers")
    elif [ "$want" != "$have" ]; then
        problems+=("docs/operating.md's reference differs from aldrecd --config-reference (run scripts/config-reference.sh): $(diff <(echo "$have") <(echo "$want") | head -4 | tr '\n' ' ')")
    fi
fi
report "docs/operating.md's configuration reference is aldrecd --config-reference" "${problems[@]}"

echo "docs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
