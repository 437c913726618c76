# spool_checks.sh — what the store-and-forward tests (tests/integration/
# spool_*.sh) share: reading `aldrec status`, and exact counts from
# aldsim's read counter (input register 20, +1 per answered read).
#
# aldrecd reads the demo map in REQ requests per poll, so consecutive
# recorded counter values differ by exactly REQ: a step of 0 is a poll
# stored twice, a step of k*REQ means k-1 polls are missing. Sourced after
# scripts/lib.sh and tests/lib/check.sh; needs A (the aldrec command).

# queue_batches — waiting batches (first number of the queue line).
queue_batches() { st queue batches; }

param_id() {
    q "SELECT cp.id FROM component_parameters cp JOIN machine_components mc ON mc.id = cp.component_id WHERE mc.name || '.' || cp.name = '$1'"
}

# counter_steps PROC — "steps_ok zero_steps gap_steps missing_polls max_gap_polls"
# over the read counter rows of PROC, in time order.
counter_steps() {
    q "WITH rc AS (SELECT value, value - lag(value) OVER (ORDER BY ts, value) AS d
                     FROM process_data_points WHERE process_id = $1 AND parameter_id = $RC_ID)
       SELECT count(*) FILTER (WHERE d = $REQ) || ' ' ||
              count(*) FILTER (WHERE d <= 0) || ' ' ||
              count(*) FILTER (WHERE d > $REQ) || ' ' ||
              coalesce(sum(d / $REQ - 1) FILTER (WHERE d > $REQ), 0)::bigint || ' ' ||
              coalesce(max(d / $REQ - 1), 0)::bigint
         FROM rc WHERE d IS NOT NULL"
}

# expected_rows PROC — polls between the first and last recorded counter
# value, times the parameters: what a loss-free recording holds.
expected_rows() {
    q "SELECT ((max(value) - min(value)) / $REQ + 1)::bigint * $NPARAM
         FROM process_data_points WHERE process_id = $1 AND parameter_id = $RC_ID"
}

stored_rows() { q "SELECT count(*) FROM process_data_points WHERE process_id = $1"; }

# rollup_diff PROC — buckets where the rollup rows aldrecd wrote beside the
# points (merged: a bucket may have a row per stored group) differ from the
# same aggregates over the stored points, or exist on one side only.
rollup_diff() {
    q "WITH r AS (
         SELECT parameter_id, bucket, sum(samples) AS n, sum(bad) AS bad,
                min(first_ts) AS f_ts, (array_agg(first_v ORDER BY first_ts) FILTER (WHERE first_ts IS NOT NULL))[1] AS f_v,
                min(min_v) AS lo, max(max_v) AS hi,
                max(last_ts) AS l_ts, (array_agg(last_v ORDER BY last_ts DESC) FILTER (WHERE last_ts IS NOT NULL))[1] AS l_v,
                min(bad_first) AS b0, max(bad_last) AS b1
         FROM process_data_rollup WHERE process_id = $1 GROUP BY 1, 2),
       d AS (
         SELECT parameter_id, 'epoch'::timestamptz + floor(extract(epoch FROM ts) / 10) * interval '10 s' AS bucket,
                ts, value, value IS NOT NULL AND quality = 0 AS good
         FROM process_data_points WHERE process_id = $1),
       p AS (
         SELECT parameter_id, bucket, count(*) AS n, count(*) FILTER (WHERE NOT good) AS bad,
                min(ts) FILTER (WHERE good) AS f_ts, (array_agg(value ORDER BY ts) FILTER (WHERE good))[1] AS f_v,
                min(value) FILTER (WHERE good) AS lo, max(value) FILTER (WHERE good) AS hi,
                max(ts) FILTER (WHERE good) AS l_ts, (array_agg(value ORDER BY ts DESC) FILTER (WHERE good))[1] AS l_v,
                min(ts) FILTER (WHERE NOT good) AS b0, max(ts) FILTER (WHERE NOT good) AS b1
         FROM d GROUP BY 1, 2)
     SELECT count(*) FROM r FULL JOIN p USING (parameter_id, bucket)
     WHERE (r.n, r.bad, r.f_ts, r.f_v, r.lo, r.hi, r.l_ts, r.l_v, r.b0, r.b1)
           IS DISTINCT FROM (p.n, p.bad, p.f_ts, p.f_v, p.lo, p.hi, p.l_ts, p.l_v, p.b0, p.b1)"
}

# check_complete NAME PROC — every poll present exactly once, the ledger
# accounts for every row, and the rollup rows stored with them sum them up
# exactly (none twice, none missing).
check_complete() {
    local name=$1 proc=$2 steps
    steps=$(counter_steps "$proc")
    check_eq "$name: read counter contiguous (steps ok/zero/gap/missing/max)" \
        "$(cut -d' ' -f2- <<<"$steps")" "0 0 0 0"
    check_ge "$name: polls recorded" "$(cut -d' ' -f1 <<<"$steps")" 20
    check_eq "$name: rows = polls x parameters" "$(stored_rows "$proc")" "$(expected_rows "$proc")"
    check_eq "$name: ledger rows (points) add up to the stored rows" \
        "$(q "SELECT coalesce(sum(rows), 0) FROM ingest_ledger WHERE process_id = $proc AND kind = 1")" \
        "$(stored_rows "$proc")"
    check_eq "$name: the rollup rows agree with the stored rows in every 10 s bucket" \
        "$(rollup_diff "$proc")" 0
}

# check_stored_once PROC STOP_REPLY — after kills and crashes: every row
# that reached the spool is stored (`aldrec process stop`'s count), none
# twice (read counter, ledger). Sets OK ZERO GAPS MISSING MAXGAP from
# counter_steps for the caller's own bounds on the holes.
check_stored_once() {
    local proc=$1 stop=$2
    check_eq "every row that reached the spool is stored, once (rows recorded = rows stored)" \
        "$(stored_rows "$proc")" "$(recorded_rows "$stop")"
    read -r OK ZERO GAPS MISSING MAXGAP <<<"$(counter_steps "$proc")"
    echo "# read counter: $OK steps of one poll, $GAPS gaps, $MISSING polls missing (largest gap $MAXGAP polls)"
    check_eq "no poll stored twice (no step of 0)" "$ZERO" 0
    check_eq "no row stored twice (ledger rows = stored rows)" \
        "$(q "SELECT coalesce(sum(rows), 0) FROM ingest_ledger WHERE process_id = $proc AND kind = 1")" \
        "$(stored_rows "$proc")"
}

# check_wrong_ca — aldrecd (started) and aldrec (A) configured with a CA
# that did not sign the server's certificate: refused, naming the
# certificate check (status, log, aldrec's error), and the run goes on
# into the spool.
check_wrong_ca() {
    local out rc
    wait_until 20 "certificate error" st_match last_error "certificate" \
        && ok "wrong CA: aldrecd's status names the certificate check" \
        || not_ok "wrong CA: aldrecd's status names the certificate check: $(st last_error)"
    echo "# wrong CA: $(st last_error)"
    check_match "... it is the verification that failed" "$(st last_error)" "certificate verify failed"
    check_match "... and the log says so" "$(cat "$WORK/aldrecd.log")" "certificate verify failed"
    out=$($A runs 2>&1); rc=$?
    check_eq "wrong CA: aldrec runs exits 1" "$rc" 1
    check_match "... naming the certificate check" "$out" "cannot connect to PostgreSQL: .*certificate verify failed"
    sleep 5
    check_ge "wrong CA: batches wait in the spool" "$(queue_batches)" 5
}

# spool_init_counts — REQ, NPARAM, RC_ID for the demo map (needs aldrecd up).
spool_init_counts() {
    REQ=$(st requests_per_cycle)
    NPARAM=$(q "SELECT count(*) FROM component_parameters WHERE is_active")
    RC_ID=$(param_id system.read_counter)
}

# poll_intervals_ms PROC FROM TO — the poll cycle's period (ms between
# consecutive read-counter samples) for samples with ts in [FROM, TO)
# (Unix seconds): prints "p50 p99 max count".
poll_intervals_ms() {
    q "WITH s AS (SELECT ts, extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) * 1000 AS ms
                    FROM process_data_points WHERE process_id = $1 AND parameter_id = $RC_ID)
       SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::bigint || ' ' ||
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::bigint || ' ' ||
              round(max(ms))::bigint || ' ' || count(*)
         FROM s WHERE ms IS NOT NULL AND ts >= to_timestamp($2) AND ts < to_timestamp($3)"
}

now_s() { date +%s.%N; }

# spool_setup NAME SEED [--relay] [section.key=value ...] — a fresh work
# directory, a private PostgreSQL (with --relay: reached through
# tests/tools/relay.c), aldsim, the demo machine at 10 Hz and aldrecd
# recording into it (batches of 96 rows = 3 polls, flushed every 300 ms,
# unless overridden). Sets CFG, A, REQ, NPARAM, RC_ID; exits on failure.
spool_setup() {
    local name=$1 seed=$2; shift 2
    local extra=()
    ald_workdir "it-$name"
    pg_start
    if [ "${1:-}" = --relay ]; then
        shift
        relay_start "$PGPORT"
        extra+=("database.conninfo=host=127.0.0.1 port=$RELAY_PORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass")
    fi
    aldsim_start a --seed "$seed"
    CFG=$WORK/aldrec.conf
    aldrecd_config "$CFG" recorder.batch_rows=96 recorder.flush_interval_ms=300 \
        database.connect_timeout_s=2 "${extra[@]}" "$@"
    pg_migrate "$CFG"
    demo_machine_load "$SIM_PORT_a" 100
    A="$BIN/aldrec --config $CFG"
    aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done "$name"; exit 1; }
    spool_init_counts
}

# wait_stored ROWS — until aldrecd has stored at least ROWS rows.
wait_stored() {
    wait_until 20 "$1 rows stored" st_ge stored rows "$1"
}

# wait_queue TIMEOUT_S OP N — until the spool holds OP N batches (-eq, -ge).
queue_is() { local n; n=$(st queue batches) && [ -n "$n" ] && [ "$n" "$1" "$2" ]; }
wait_queue() {
    wait_until "$1" "spool queue $2 $3" queue_is "$2" "$3"
}

# wait_link TIMEOUT_S STATE — until database_link shows STATE.
wait_link() {
    wait_until "$1" "link $2" st_is database_link state "$2"
}

# recorded_rows STOP_REPLY — "N rows recorded" from `aldrec process stop`:
# every row aldrecd put into the spool for the process (all its runs).
recorded_rows() { sed -n 's/.*process [0-9]*: \([0-9]*\) rows recorded.*/\1/p' <<<"$1"; }

# check_black_hole WHERE HOLD_S WAIT_S — a black hole in the relay in front
# of the server (relay_hole): noticed (the link leaves up; after the first
# failure it alternates between spooling, the backoff, and connecting, one
# deadline per attempt) within connect_timeout_s (TIMEOUT_S) + flush + 2 s,
# the deadline named; after HOLD_S s of it (relay_pass) the backlog is
# forwarded within WAIT_S s.
check_black_hole() {
    local where=$1 hold=$2 wait=$3 t_hole ms
    relay_hole
    t_hole=$(now_s)
    wait_until 30 "link down" st_match database_link '^(spooling|connecting)'
    ms=$(awk -v a="$t_hole" -v b="$(now_s)" 'BEGIN {printf "%d", (b - a) * 1000}')
    echo "# black hole $where noticed after $ms ms"
    check_ge "the black hole $where is noticed within the deadline + flush + 2 s margin" \
        $((TIMEOUT_S * 1000 + 300 + 2000)) "$ms"
    check_match "the reason is the deadline" "$(st last_error)" "no answer within $((TIMEOUT_S * 1000)) ms"
    sleep "$hold"
    relay_pass
    check "the backlog is forwarded after the black hole $where" wait_queue "$wait" -eq 0
}
