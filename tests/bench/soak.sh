#!/bin/bash
# soak.sh — `make soak`: does aldrecd's memory stay flat? One aldrecd records
# 4 aldsim devices x 100 parameters (bench_acq.sh's map: 5 requests per
# device and cycle) at SOAK_HZ (50 Hz: 20,000 points/s) into a private
# PostgreSQL for SOAK_S seconds (3600). Every SOAK_EVERY_S seconds it samples
# aldrecd's /proc/PID/smaps_rollup: private memory (Private_Clean +
# Private_Dirty), its dirty part, Pss and Rss. It prints the growth of each
# from the end of the warm-up (SOAK_WARM_S, 300 s) to the end in %, and
# PASS when the dirty private memory grew <= SOAK_LIMIT_PCT (1 %, the
# issue's target) — compared over a window of SOAK_WINDOW_S (120 s) at
# each end, by its floor (lowest sample) and its peak (highest), not by two
# single samples: aldrecd hands malloc's free pages back once a minute
# (malloc_trim), and between two trims whatever a minute allocated and
# freed (the metadata refresh, a truncation's batch) is still dirty, a
# saw tooth of up to 1.5 MiB with a 60 s period; a single sample lands
# anywhere on it. A leak lifts the floor; a growing high water the peak.
# Dirty, because that is what the daemon wrote (heap,
# stacks, the libraries' relocated data): the clean private pages are
# library text that turns "shared" whenever another process maps the same
# library (psql, the aldrec CLI, anyone on the box), which moves the
# clean+dirty sum by up to a MiB either way without aldrecd doing anything.
# Then a breakdown of aldrecd's memory at the end from /proc/PID/smaps (heap,
# other anonymous mappings: thread stacks and malloc arenas, shared
# libraries, the binary) with SQLite's own count of its allocations
# (aldrec_memory_bytes in /metrics).
#
# The reference, in the same run: collectd 5.12's modbus plugin (Debian
# collectd-core) polling the same aldsim devices — the registers it can read
# (holding f32 and input u16: 80 of each device's 100; it has no coils or
# discrete inputs) at SOAK_COLLECTD_HZ (10 Hz: it sends one request per
# register, 3,200 requests/s, where aldrecd sends 5 per device and cycle),
# handing its values to its network plugin (UDP to loopback, the usual way
# to a central collectd). Its RSS and private memory are sampled beside
# aldrecd's. No collectd on the box, or SOAK_COLLECTD=0: aldrecd alone.
#
# The rows are counted in the ledger (ingest_ledger.rows, committed with
# them) and process_data_points is truncated every SOAK_TRUNCATE_S seconds
# (300), so an hour at 50 Hz (72 M rows, ~17 GB with its indexes) does not
# fill the disk; aldrecd only appends, it does not notice. At the end the
# process is stopped, the spool drained and the ledger compared with the
# points aldrecd spooled: nothing lost. SOAK_STALL_AT=T stops PostgreSQL
# (SIGSTOP, every process of the cluster) T seconds in for SOAK_STALL_S (30)
# seconds: aldrecd spools, then drains the backlog — what an outage leaves
# in its memory. Work directory build/run/SOAK_NAME
# (soak). Not part of `make test`.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/bench4.sh"
trap ald_cleanup EXIT

DUR=${SOAK_S:-3600}
WARM=${SOAK_WARM_S:-300}
EVERY=${SOAK_EVERY_S:-5}
HZ=${SOAK_HZ:-50}
CHZ=${SOAK_COLLECTD_HZ:-10}
LIMIT=${SOAK_LIMIT_PCT:-1}
WINDOW=${SOAK_WINDOW_S:-120}
TRUNC=${SOAK_TRUNCATE_S:-300}
STALL_AT=${SOAK_STALL_AT:-0}      # > 0: PostgreSQL stopped (SIGSTOP) this many s in ...
STALL_S=${SOAK_STALL_S:-30}       # ... for this long, then drained: an outage's mark on memory
[ "$WARM" -lt "$DUR" ] || ald_die "SOAK_WARM_S ($WARM) must be shorter than SOAK_S ($DUR)"

ald_workdir "${SOAK_NAME:-soak}"   # another name runs a second soak beside one in progress
# The binaries this run started with: a rebuild during an hour's soak must
# not change (or unlink) the aldrecd being measured.
mkdir -p "$WORK/bin"
cp "$BIN/aldrecd" "$BIN/aldrec" "$BIN/aldrec-full" "$BIN/aldsim" "$BIN/freeport" "$WORK/bin/"
BIN=$WORK/bin
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.machine=bench4 recorder.batch_rows=5000 recorder.flush_interval_ms=1000 \
    recorder.idle_interval_ms=0
pg_migrate "$CFG"
A="$BIN/aldrec --config $CFG"
q() { psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" -c "$1"; }

bench4_machine $((1000 / HZ))

# ---- collectd, the reference ------------------------------------------------
COLLECTD=$(command -v collectd || true)
[ -x /usr/sbin/collectd ] && COLLECTD=/usr/sbin/collectd
COLLECTD_PID=""
if [ "${SOAK_COLLECTD:-1}" != 0 ] && [ -n "$COLLECTD" ]; then
    ccfg=$WORK/collectd.conf
    udp=$("$BIN/freeport")
    {
        echo "Hostname \"soak\""
        echo "FQDNLookup false"
        echo "BaseDir \"$WORK/collectd\""
        echo "PIDFile \"$WORK/collectd.pid\""
        echo "TypesDB \"/usr/share/collectd/types.db\""
        echo "Interval 1"
        echo "LoadPlugin logfile"
        echo "<Plugin logfile>"
        echo "  LogLevel warning"
        echo "  File \"$WORK/collectd.log\""
        echo "</Plugin>"
        echo "LoadPlugin modbus"
        echo "LoadPlugin network"
        echo "<Plugin network>"
        echo "  Server \"127.0.0.1\" \"$udp\""
        echo "</Plugin>"
        echo "<Plugin modbus>"
        for a in $(seq 0 29); do
            printf '  <Data "h%d">\n    RegisterBase %d\n    RegisterType Float\n    RegisterCmd ReadHolding\n    Type gauge\n    Instance "h%d"\n  </Data>\n' \
                "$a" $((10 + 2 * a)) "$a"
        done
        for a in $(seq 0 39) $(seq 60 69); do
            printf '  <Data "i%d">\n    RegisterBase %d\n    RegisterType Uint16\n    RegisterCmd ReadInput\n    Type gauge\n    Instance "i%d"\n  </Data>\n' \
                "$a" "$a" "$a"
        done
        for d in 1 2 3 4; do
            port=SIM_PORT_d$d
            printf '  <Host "dev%d">\n    Address "127.0.0.1"\n    Port "%s"\n    Interval %s\n    <Slave 1>\n      Instance "dev%d"\n' \
                "$d" "${!port}" "$(awk -v h="$CHZ" 'BEGIN {printf "%.3f", 1 / h}')" "$d"
            for a in $(seq 0 29); do echo "      Collect \"h$a\""; done
            for a in $(seq 0 39) $(seq 60 69); do echo "      Collect \"i$a\""; done
            echo "    </Slave>"
            echo "  </Host>"
        done
        echo "</Plugin>"
    } > "$ccfg"
    mkdir -p "$WORK/collectd"
    "$COLLECTD" -t -C "$ccfg" >"$WORK/collectd.test" 2>&1 ||
        { cat "$WORK/collectd.test" >&2; ald_die "collectd refused $ccfg"; }
    "$COLLECTD" -f -C "$ccfg" >>"$WORK/collectd.log" 2>&1 &
    COLLECTD_PID=$!
    ald_track "$COLLECTD_PID" collectd
fi

# ---- aldrecd ------------------------------------------------------------------
aldrecd_start "$CFG" >/dev/null || ald_die "aldrecd did not start"
PROC=$($A process start --recipe "soak-${HZ}hz")
metric() {   # NAME: aldrecd's value of an unlabelled /metrics line (or of NAME{...})
    $A metrics | awk -v m="$1" '$1 == m {print $2; exit}'
}

kib() {   # PID FIELD: a field of smaps_rollup, in KiB (empty when gone)
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null
}
priv() { awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() {   # the cluster: postmaster with its reaped children + the children running
    { awk '{print $14 + $15 + $16 + $17}' "/proc/$PG_PID/stat"
      for p in $(pgrep -P "$PG_PID"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done; } |
        awk '{s += $1} END {print s}'
}
sims_ticks() {
    local d p s=0
    for d in 1 2 3 4; do p=SIM_PID_d$d; s=$((s + $(ticks "${!p}"))); done
    echo $s
}

# breakdown PID: private KiB of /proc/PID/smaps by kind of mapping
breakdown() {
    awk -v exe="$(readlink "/proc/$1/exe")" '
        /^[0-9a-f]+-[0-9a-f]+ / {
            name = (NF >= 6) ? $6 : ""
            if (name == "[heap]") k = "heap ([heap]: main arena)"
            else if (name == "[stack]") k = "main thread stack"
            else if (name == exe) k = "the binary (text, data)"
            else if (name ~ /\.so/) k = "shared libraries (their private pages)"
            else if (name ~ /^\[/) k = "other " name
            else if (name != "") k = "files " name
            else k = "anonymous (thread stacks, malloc arenas)"
            next }
        $1 == "Private_Clean:" || $1 == "Private_Dirty:" {p[k] += $2}
        $1 == "Private_Dirty:" {dt[k] += $2}
        $1 == "Rss:" {rss[k] += $2}
        END { for (k in p) if (rss[k] > 0) printf "%8.2f %8.2f %8.2f  %s\n", dt[k] / 1024, p[k] / 1024, rss[k] / 1024, k }' \
        "/proc/$1/smaps" | sort -rn
}

tck=$(getconf CLK_TCK)
ald_log "soak: ${DUR}s at ${HZ} Hz (warm-up ${WARM}s), samples every ${EVERY}s into $WORK/mem.tsv"
echo "== soak: aldrecd recording 4 aldsim x 100 parameters at $HZ Hz ($((400 * HZ)) points/s) into PostgreSQL for $DUR s (warm-up $WARM s); 2 shared cores"
[ -n "$COLLECTD_PID" ] && echo "   reference: collectd ($($COLLECTD -h 2>&1 | sed -n 's/^collectd \([0-9.]*\).*/\1/p' | head -1)) modbus plugin on the same devices, 80 registers each at $CHZ Hz, network plugin to loopback"
printf 't_s\theap_in_use_kib\theap_free_kib\tsqlite_kib\tqueue_rows\n' > "$WORK/alloc.tsv"
printf 't_s\tald_dirty_kib\tald_priv_kib\tald_pss_kib\tald_rss_kib\tcd_dirty_kib\tcd_priv_kib\tcd_rss_kib\n' > "$WORK/mem.tsv"
T0=$(date +%s.%N); c0=$(ticks "$ALDRECD_PID"); p0=$(pg_ticks); s0=$(sims_ticks)
[ -n "$COLLECTD_PID" ] && k0=$(ticks "$COLLECTD_PID")
last_trunc=0; stalled=""
pg_signal() { kill "-$1" "$PG_PID" $(pgrep -P "$PG_PID") 2>/dev/null || true; }
while :; do
    now=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    kill -0 "$ALDRECD_PID" 2>/dev/null || ald_die "aldrecd (pid $ALDRECD_PID) ended during the soak, at ${now}s"
    cdd=""; cdp=""; cdr=""
    if [ -n "$COLLECTD_PID" ]; then
        kill -0 "$COLLECTD_PID" 2>/dev/null || { tail -5 "$WORK/collectd.log" >&2; ald_die "collectd ended during the soak"; }
        cdd=$(kib "$COLLECTD_PID" Private_Dirty); cdp=$(priv "$COLLECTD_PID"); cdr=$(kib "$COLLECTD_PID" Rss)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$now" "$(kib "$ALDRECD_PID" Private_Dirty)" "$(priv "$ALDRECD_PID")" \
        "$(kib "$ALDRECD_PID" Pss)" "$(kib "$ALDRECD_PID" Rss)" "$cdd" "$cdp" "$cdr" >> "$WORK/mem.tsv"
    # aldrecd's own count beside it (KiB): malloc in use, malloc free, SQLite
    $A metrics 2>/dev/null | awk -v t="$now" -F'[ ]' '
        $1 == "aldrec_memory_bytes{kind=\"heap_in_use\"}" {u = $2} $1 == "aldrec_memory_bytes{kind=\"heap_free\"}" {f = $2}
        $1 == "aldrec_memory_bytes{kind=\"sqlite\"}" {q = $2} $1 == "aldrec_queue_rows" {r = $2}
        END {printf "%s\t%d\t%d\t%d\t%d\n", t, u / 1024, f / 1024, q / 1024, r}' >> "$WORK/alloc.tsv"
    if awk -v n="$now" -v d="$DUR" 'BEGIN {exit !(n >= d)}'; then break; fi
    if [ "$STALL_AT" != 0 ] && [ -z "$stalled" ] && awk -v n="$now" -v a="$STALL_AT" 'BEGIN {exit !(n >= a)}'; then
        ald_log "soak: PostgreSQL stopped at ${now}s for ${STALL_S}s"
        pg_signal STOP; stalled=$now
    fi
    if [ -n "$stalled" ] && [ "$stalled" != done ] && awk -v n="$now" -v a="$stalled" -v d="$STALL_S" 'BEGIN {exit !(n >= a + d)}'; then
        pg_signal CONT; stalled=done
        ald_log "soak: PostgreSQL continued at ${now}s"
    fi
    if { [ -z "$stalled" ] || [ "$stalled" = done ]; } &&
       awk -v n="$now" -v l="$last_trunc" -v t="$TRUNC" 'BEGIN {exit !(n - l >= t)}'; then
        q "TRUNCATE process_data_points, process_data_rollup" >/dev/null
        last_trunc=$now
    fi
    sleep "$EVERY"
done
T1=$(date +%s.%N); c1=$(ticks "$ALDRECD_PID"); p1=$(pg_ticks); s1=$(sims_ticks)
[ -n "$COLLECTD_PID" ] && k1=$(ticks "$COLLECTD_PID")
breakdown "$ALDRECD_PID" > "$WORK/breakdown.txt"
[ -n "$COLLECTD_PID" ] && breakdown "$COLLECTD_PID" > "$WORK/breakdown-collectd.txt"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$ALDRECD_PID/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$ALDRECD_PID/status")
$A metrics > "$WORK/metrics.txt"
st=$($A status)

# ---- nothing lost ---------------------------------------------------------------
$A process stop >/dev/null
wait_until 120 "spool drained" bash -c "[ \"\$($A status | sed -n 's/^queue: *\([0-9]*\) batches.*/\1/p')\" = 0 ]" ||
    ald_die "aldrecd's spool did not drain after the soak"
kept=$($A metrics | awk '$1 == "aldrec_points_spooled_total" {print $2}')
ledger_rows() { q "SELECT coalesce(sum(rows), 0) FROM ingest_ledger WHERE kind = 1 AND process_id = $PROC"; }
wait_until 60 "the ledger to hold the $kept points spooled" bash -c "[ \"\$(psql -XAtq \"\$ADMIN_DSN\" -c 'SELECT coalesce(sum(rows), 0) FROM ingest_ledger WHERE kind = 1 AND process_id = $PROC')\" = $kept ]" || true
inledger=$(ledger_rows)
dropped=$($A metrics | awk '$1 ~ /^aldrec_points_dropped_total/ {s += $2} END {print s + 0}')
[ "$inledger" = "$kept" ] || ald_die "soak: aldrecd spooled $kept points of process $PROC, the ledger holds $inledger"

# ---- the figures -----------------------------------------------------------------
# columns: 1 t, 2 dirty, 3 private, 4 pss, 5 rss, 6-8 collectd's dirty, private, rss
awk -v w="$WARM" -F'\t' 'NR > 1 && $1 >= w {print; exit}' "$WORK/mem.tsv" > "$WORK/warm.txt"
tail -1 "$WORK/mem.tsv" > "$WORK/end.txt"
read -r tw dw pw sw rw cdw cpw crw < "$WORK/warm.txt"
read -r te de pe se re cde cpe cre < "$WORK/end.txt"
# a least-squares slope of the dirty private memory after the warm-up (KiB per hour)
slope=$(awk -v w="$WARM" -F'\t' 'NR > 1 && $1 >= w {n++; x += $1; y += $2; xx += $1 * $1; xy += $1 * $2}
        END {d = n * xx - x * x; if (n > 2 && d > 0) printf "%.1f", (n * xy - x * y) / d * 3600; else print "n/a"}' "$WORK/mem.tsv")
col_range() { awk -v w="$WARM" -v c="$1" -F'\t' 'NR > 1 && $1 >= w {if (n++ == 0 || $c < lo) lo = $c; if ($c > hi) hi = $c}
              END {printf "%.2f-%.2f", lo / 1024, hi / 1024}' "$WORK/mem.tsv"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.2f", (b - a) / a * 100}'; }
# floor and peak of the dirty private memory in [FROM, TO) s
win() { awk -v a="$1" -v b="$2" -F'\t' 'NR > 1 && $1 >= a && $1 < b {if (n++ == 0 || $2 < lo) lo = $2; if ($2 > hi) hi = $2}
        END {print lo + 0, hi + 0}' "$WORK/mem.tsv"; }
read -r floor_w peak_w <<<"$(win "$WARM" $((WARM + WINDOW)))"
read -r floor_e peak_e <<<"$(win "$(awk -v t="$te" -v w="$WINDOW" 'BEGIN {print t - w}')" 1e12)"
g_floor=$(pct "$floor_w" "$floor_e"); g_peak=$(pct "$peak_w" "$peak_e")
growth=$(awk -v a="$g_floor" -v b="$g_peak" 'BEGIN {printf "%+.2f", a > b ? a : b}')
mib() { awk -v k="$1" 'BEGIN {printf "%.2f", k / 1024}'; }
cpu() { awk -v a="$1" -v b="$2" -v t="$tck" -v x="$T0" -v y="$T1" 'BEGIN {printf "%.1f", (b - a) / t / (y - x) * 100}'; }
echo "   samples: $(($(wc -l < "$WORK/mem.tsv") - 1)) every ${EVERY}s ($WORK/mem.tsv); $inledger points stored in process $PROC, $dropped dropped; the ledger = the points aldrecd spooled"
echo "   CPU over the soak (% of one core): aldrecd $(cpu "$c0" "$c1"), PostgreSQL $(cpu "$p0" "$p1"), 4 aldsim $(cpu "$s0" "$s1")$([ -n "$COLLECTD_PID" ] && echo ", collectd $(cpu "$k0" "$k1")")"
printf '   aldrecd from the end of the warm-up (%ss) to the end (%ss), MiB (range after the warm-up):\n' "$tw" "$te"
printf '     private dirty %s -> %s (%s %%; %s), slope %s KiB/h\n' "$(mib "$dw")" "$(mib "$de")" "$(pct "$dw" "$de")" "$(col_range 2)" "$slope"
printf '     private dirty over %ss at each end: floor %s -> %s MiB (%s %%), peak %s -> %s MiB (%s %%)\n' \
    "$WINDOW" "$(mib "$floor_w")" "$(mib "$floor_e")" "$g_floor" "$(mib "$peak_w")" "$(mib "$peak_e")" "$g_peak"
printf '     private       %s -> %s (%s %%; %s)\n' "$(mib "$pw")" "$(mib "$pe")" "$(pct "$pw" "$pe")" "$(col_range 3)"
printf '     Pss           %s -> %s (%s %%; %s)\n' "$(mib "$sw")" "$(mib "$se")" "$(pct "$sw" "$se")" "$(col_range 4)"
printf '     RSS           %s -> %s (%s %%; %s; peak %s, %s threads)\n' "$(mib "$rw")" "$(mib "$re")" "$(pct "$rw" "$re")" "$(col_range 5)" "$(mib "$hwm")" "$threads"
if [ -n "$COLLECTD_PID" ]; then
    printf '   collectd, same span, MiB: private dirty %s -> %s (%s %%), private %s -> %s, RSS %s -> %s (%s %%)\n' \
        "$(mib "$cdw")" "$(mib "$cde")" "$(pct "$cdw" "$cde")" "$(mib "$cpw")" "$(mib "$cpe")" "$(mib "$crw")" "$(mib "$cre")" "$(pct "$crw" "$cre")"
    awk -v a="$re" -v c="$cre" -v pa="$pe" -v pc="$cpe" -v da="$de" -v dc="$cde" 'BEGIN {
        printf "   RATIO aldrecd / collectd at the end: RSS %.2f, private %.2f, private dirty %.2f (aldrecd RSS %s collectd'"'"'s)\n",
               a / c, pa / pc, da / dc, (a <= c) ? "<=" : ">" }'
fi
awk '$1 ~ /^aldrec_commit_(delay|lag)_seconds\{quantile="0.99"\}/ {sub(/\{.*/, "", $1); v[$1] = $2 * 1000}
     END {if (length(v)) printf "   aldrecd commit p99 over the soak: last sample -> COMMIT %.0f ms, first (polled) sample -> COMMIT %.0f ms\n",
                                v["aldrec_commit_delay_seconds"], v["aldrec_commit_lag_seconds"]}' "$WORK/metrics.txt"
echo "   aldrecd at the end, MiB by mapping (/proc/PID/smaps): private dirty, private, RSS"
sed 's/^/     /' "$WORK/breakdown.txt"
awk '$1 ~ /^aldrec_memory_bytes/ {sub(/^aldrec_memory_bytes/, "", $1); printf "     %s %.2f MiB\n", $1, $2 / 1048576}' "$WORK/metrics.txt" |
    sed 's/^     /     reported by aldrecd: /'
if [ -n "$COLLECTD_PID" ]; then
    echo "   collectd at the end, MiB by mapping: private dirty, private, RSS"
    sed 's/^/     /' "$WORK/breakdown-collectd.txt"
fi
if awk -v g="$growth" -v l="$LIMIT" 'BEGIN {exit !(g <= l)}'; then
    echo "   PASS: aldrecd's private dirty memory grew $growth % from the end of the warm-up to the end (the larger of floor and peak over ${WINDOW}s; target <= $LIMIT %)"
else
    echo "   FAIL: aldrecd's private dirty memory grew $growth % from the end of the warm-up to the end (the larger of floor and peak over ${WINDOW}s; target <= $LIMIT %)"
fi
