# vectors.sh — fixed register vectors for every word order, and the raw
# words of aldsim's test pattern, for the recording tests (record.sh,
# acq_rtu.sh). Sourced after scripts/lib.sh and tests/lib/check.sh.
#
# aldsim fills its registers with the recorder's own regcodec
# (firmware/reactor.c), so a codec mistake made the same way in both
# directions (say the two middle words of a 4-word CDAB value left in place)
# round-trips through aldsim's test pattern unseen. These vectors never pass
# through regcodec on the way in: their wire words are spelled out here from
# the word-order table of firmware/REGISTERS.md (A = most significant byte),
# mbwrite puts them into aldsim's plain-storage holding registers 10-42, and
# the tests compare what PostgreSQL stored with the decimal constant, exactly.
#
# 1234.5678901234 is the float64 0x40934A4584FD0EE6, pi the float32
# 0x40490FDB, -123456789 the int32 0xF8A432EB, 4660 the uint16 0x1234: all
# bytes distinct, so a word or byte out of place changes the value.

#   name          addr type order value               wire words, hex
VECTORS=(
    "vec_f64_abcd   10 f64 ABCD 1234.5678901234     4093 4A45 84FD 0EE6"
    "vec_f64_cdab   14 f64 CDAB 1234.5678901234     0EE6 84FD 4A45 4093"
    "vec_f64_badc   18 f64 BADC 1234.5678901234     9340 454A FD84 E60E"
    "vec_f64_dcba   22 f64 DCBA 1234.5678901234     E60E FD84 454A 9340"
    "vec_f32_abcd   26 f32 ABCD 3.1415927410125732  4049 0FDB"
    "vec_f32_cdab   28 f32 CDAB 3.1415927410125732  0FDB 4049"
    "vec_f32_badc   30 f32 BADC 3.1415927410125732  4940 DB0F"
    "vec_f32_dcba   32 f32 DCBA 3.1415927410125732  DB0F 4940"
    "vec_i32_abcd   34 i32 ABCD -123456789          F8A4 32EB"
    "vec_i32_cdab   36 i32 CDAB -123456789          32EB F8A4"
    "vec_i32_badc   38 i32 BADC -123456789          A4F8 EB32"
    "vec_i32_dcba   40 i32 DCBA -123456789          EB32 A4F8"
    "vec_u16_badc   42 u16 BADC 4660                3412"
)
VEC_FIRST=10

# aldsim's test pattern, input registers 30-44 (REGISTERS.md): u16 54321,
# i16 -12345, u32 3000000000, i32 CDAB -123456789, f32 BADC pi, f32 DCBA
# -0.0025, f64 CDAB 1234.5678901234, i16 raw 1234 — as words on the wire.
TEST_PATTERN_WORDS="D431 CFC7 B2D0 5E00 32EB F8A4 4940 DB0F 0AD7 23BB 0EE6 84FD 4A45 4093 04D2"

# hex_words HEX... — the same words in decimal (as mbwrite takes them and
# mbclient prints them).
hex_words() { local w out=(); for w in "$@"; do out+=($((16#$w))); done; echo "${out[*]}"; }

# raw_words MBCLIENT_LINE — the words of an "ok MS W..." line of mbclient, in
# hex like the tables here; the line itself if it is not ok.
raw_words() {
    local st ms words
    read -r st ms words <<<"$1"
    [ "$st" = ok ] || { echo "$1"; return; }
    printf '%04X ' $words | sed 's/ $//'
}

# vectors_words — the wire words of every vector, in decimal, from
# VEC_FIRST on; fails if the table has a hole or an overlap.
vectors_words() {
    local v name addr type order value words next=$VEC_FIRST all=()
    for v in "${VECTORS[@]}"; do
        read -r name addr type order value words <<<"$v"
        [ "$addr" = "$next" ] || { echo "vectors.sh: $name at $addr, expected $next" >&2; return 1; }
        read -ra w <<<"$words"
        next=$((addr + ${#w[@]}))
        all+=($(hex_words "${w[@]}"))
    done
    echo "${all[*]}"
}

# vectors_sql COMPONENT_ID POLL_MS — SQL adding one read-only holding-register
# parameter per vector to that component.
vectors_sql() {
    local v name addr type order value words
    echo "INSERT INTO component_parameters (component_id, name, register_type, address,"
    echo "    data_type, word_order, is_writable, is_active, poll_interval_ms) VALUES"
    local sep=""
    for v in "${VECTORS[@]}"; do
        read -r name addr type order value words <<<"$v"
        echo "$sep($1, '$name', 'holding', $addr, '$type', '$order', false, true, $2)"
        sep=","
    done
    echo ";"
}

# vectors_expect PROC PARAM_ID_FN — one check per vector: every row of
# process PROC for it holds exactly the constant. PARAM_ID_FN NAME prints a
# vector parameter's id.
vectors_expect() {
    local proc=$1 idfn=$2 v name addr type order value words id n bad
    for v in "${VECTORS[@]}"; do
        read -r name addr type order value words <<<"$v"
        id=$($idfn "$name")
        read -r n bad <<<"$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE value IS DISTINCT FROM ($value)::float8 OR quality <> 0)
                                FROM process_data_points WHERE process_id = $proc AND parameter_id = $id")"
        if [ "$n" -gt 0 ] && [ "$bad" = 0 ]; then
            ok "$type $order from raw words ($words) = $value in all $n rows"
        else
            not_ok "$type $order from raw words ($words): $bad of $n rows differ from $value (e.g. $(q "SELECT value FROM process_data_points WHERE process_id = $proc AND parameter_id = $id AND value IS DISTINCT FROM ($value)::float8 LIMIT 1"))"
        fi
    done
}
