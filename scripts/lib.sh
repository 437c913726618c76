# lib.sh — start and stop the servers aldrec needs, privately, on free
# loopback ports, each stopped by its PID. Sourced by scripts/demo.sh,
# tests/run.sh, tests/integration/*.sh and tests/bench/run.sh.
#
#   ald_workdir NAME        fresh directory for a run; sets WORK
#   pg_start                private PostgreSQL 15 cluster + database "aldrec",
#                           migrated; sets PGPORT, ADMIN_DSN, REC_DSN, READER_DSN
#   pg_crash / pg_restart   stop it at once (pg_ctl -m immediate, no
#                           shutdown checkpoint) / start it again, same port
#   relay_start TARGET_PORT a TCP relay in front of it (tests/tools/relay.c);
#                           sets RELAY_PORT, RELAY_PID; relay_hole /
#                           relay_pass switch it to black hole and back
#   redis_start [PWFILE]    sets REDIS_PORT, REDIS_PID; redis_stop, redis_restart;
#                           with PWFILE, Redis requires AUTH with its first line
#   aldsim_start NAME ARGS  sets SIM_PORT_<NAME>, SIM_PID_<NAME>
#   aldsim_start_rtu NAME ARGS
#                           aldsim serving RTU on a socat pty pair; sets
#                           SIM_TTY_<NAME> (the clients' end), SIM_PID_<NAME>,
#                           SIM_SOCAT_PID_<NAME>
#   aldsim_fault NAME [SPEC...]
#                           replaces aldsim NAME's faults (none: no faults) and
#                           waits until they are in effect
#   demo_machine_load PORT [POLL_MS]
#   acq_component MACHINE COMPONENT POLL_MS [SET]  a device with the demo's
#                           32 parameters (named REGISTER-owner_name); SET
#                           is SQL for machine_components ("port = 1502, ...")
#   aldrecd_config FILE [KEY=VALUE ...]
#   aldrecd_start CONFIG    waits until it answers; sets ALDRECD_PID
#   record_step CFG PROC N NAME
#                           recipe step N of process PROC starts now
#                           (aldrec process step); waits until it is stored
#   ald_cleanup             stops everything started (installed as EXIT trap);
#                           under valgrind (make valgrind) it then fails the
#                           script if any aldrecd's valgrind log shows an error
#
# Passwords are generated per run and kept in $WORK/pgpass (mode 600);
# they never appear on a command line.

ALD_ROOT=${ALD_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BIN=$ALD_ROOT/${BUILD:-build}/bin
# The migrations of this checkout, whatever an installed copy holds.
export ALDREC_SQLDIR=${ALDREC_SQLDIR:-$ALD_ROOT/sql}
PG_BINDIR=$(pg_config --bindir 2>/dev/null || true)
[ -x "$PG_BINDIR/initdb" ] || PG_BINDIR=/usr/lib/postgresql/15/bin
ALD_PIDS=()          # "pid:name" of plain processes to stop
ALD_PGDATA=""

ald_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
ald_die() { echo "error: $*" >&2; exit 1; }

# Runs a command as the unprivileged user that owns the cluster.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ald_workdir() {
    WORK=$ALD_ROOT/${BUILD:-build}/run/$1
    rm -rf "$WORK"
    mkdir -p "$WORK"
    # PostgreSQL must run unprivileged: when we are root, the cluster
    # belongs to "postgres", which must be able to reach $WORK. If the
    # checkout lives somewhere it cannot (e.g. under /root), use /tmp.
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$WORK" 2>/dev/null; then
        WORK=$(mktemp -d "/tmp/aldrec-$1.XXXXXX")
        chmod 755 "$WORK"
    fi
    export WORK
}

# wait_until TIMEOUT_S DESCRIPTION CMD... — poll CMD every 50 ms.
wait_until() {
    local timeout=$1 what=$2; shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && { ald_log "timed out after ${timeout}s waiting for $what"; return 1; }
        sleep 0.05
    done
}

ald_stop_pid() {   # pid name
    local pid=$1 name=$2 i tries=200
    kill -0 "$pid" 2>/dev/null || return 0
    # Under valgrind aldrecd's exit (leak check) takes seconds; killing it
    # would lose valgrind's summary.
    [ "$name" = aldrecd ] && ald_under_valgrind && tries=1200
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $tries); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        ald_log "$name (pid $pid) ignored SIGTERM for $((tries / 20)) s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Stops everything started. Under valgrind, then fails the script (a
# "not ok" line, a new closing line, exit 1) when any aldrecd's valgrind
# log shows an error: however a script stopped aldrecd (ald_stop_pid,
# kill and wait, kill -9), its log is there to be read.
ald_cleanup() {
    local i entry
    for ((i = ${#ALD_PIDS[@]} - 1; i >= 0; i--)); do
        entry=${ALD_PIDS[$i]}
        ald_stop_pid "${entry%%:*}" "${entry#*:}"
    done
    ALD_PIDS=()
    pg_stop
    ald_valgrind_verdict || exit 1
}

# ---- aldrecd under valgrind (make valgrind) ---------------------------------
# ALDRECD_WRAPPER="valgrind ..." runs every aldrecd that aldrecd_start
# starts under valgrind, each writing $WORK/valgrind/aldrecd.PID.log.
ALD_VG_RUNS=0        # aldrecds started under valgrind by this shell

ald_under_valgrind() {
    local -a w=(${ALDRECD_WRAPPER:-})
    [ ${#w[@]} -gt 0 ] && [ "${w[0]##*/}" = valgrind ]
}

# vg_log_errors LOG — prints the number of errors valgrind reported in LOG
# and how it knows: its ERROR SUMMARY (the process exited), or, for a
# process killed before it could write one (kill -9), the error reports in
# the log. A crash ("Process terminating with default action") counts too.
vg_log_errors() {
    awk '
        /== ERROR SUMMARY: / { s = $0; sub(/.*ERROR SUMMARY: /, "", s); sub(/ .*/, "", s)
                               gsub(/,/, "", s); summary = s + 0; have = 1 }
        /^==[0-9]+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched |Source and destination overlap|Argument .* fishy|Jump to the invalid|Process terminating with default action)/ { seen++ }
        /^==[0-9]+== .*bytes in .* blocks are definitely lost/ { seen++ }
        /^==[0-9]+== Process terminating with default action/ { crash = 1 }
        END {
            n = have ? summary : seen
            if (crash && n == 0) n = 1
            printf "%d %s\n", n, have ? (crash ? "ERROR SUMMARY, crashed" : "ERROR SUMMARY") \
                                       : "no ERROR SUMMARY: killed before exit"
        }' "$1"
}

# ald_valgrind_verdict — returns 1 (after printing why) when an aldrecd log
# shows an error, or when a log is missing.
ald_valgrind_verdict() {
    ald_under_valgrind && [ "$ALD_VG_RUNS" -gt 0 ] || return 0
    local f n how fails=() nlogs=0
    for f in "$WORK"/valgrind/aldrecd.*.log; do
        [ -e "$f" ] || continue
        nlogs=$((nlogs + 1))
        read -r n how < <(vg_log_errors "$f")
        if [ "$n" -gt 0 ]; then
            fails+=("valgrind: aldrecd pid $(basename "$f" .log | sed 's/^aldrecd\.//'): $n error(s) ($how); log $f")
            # The reports themselves, without valgrind's preamble.
            grep -v -E '^==[0-9]+== (Memcheck|Copyright|Using Valgrind|Command:|Parent PID:|$)' "$f" \
                | head -60 | sed 's/^/# /'
        fi
    done
    [ "$nlogs" -lt "$ALD_VG_RUNS" ] &&
        fails+=("valgrind: $ALD_VG_RUNS aldrecd run(s) under valgrind but $nlogs log(s) in $WORK/valgrind")
    [ ${#fails[@]} -eq 0 ] && return 0
    local msg
    for msg in "${fails[@]}"; do
        if declare -F not_ok >/dev/null; then not_ok "$msg"; else echo "not ok - $msg"; fi
    done
    # tests/run.sh adds up every result line of a script; these failures
    # come after check_done's line, so they get a line of their own.
    echo "$(basename "$0" .sh).valgrind: 0 passed, ${#fails[@]} failed"
    return 1
}

ald_track() { ALD_PIDS+=("$1:$2"); }

randpw() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

pg_start() {
    local dir=$WORK/pg try
    mkdir -p "$dir"
    ADMIN_PW=$(randpw); REC_PW=$(randpw); READER_PW=$(randpw)
    printf '%s\n' "$ADMIN_PW" > "$dir/admin.pw"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
    chmod 700 "$dir"
    as_pg "$PG_BINDIR/initdb" -D "$dir/data" -U aldrec_admin -A scram-sha-256 \
        --pwfile="$dir/admin.pw" --no-locale -E UTF8 >"$WORK/initdb.log" 2>&1 \
        || { cat "$WORK/initdb.log" >&2; ald_die "initdb failed"; }
    rm -f "$dir/admin.pw"
    for try in 1 2 3; do
        PGPORT=$("$BIN/freeport")
        PG_OPTS="-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$dir/data \
                -c shared_preload_libraries=pg_stat_statements ${PG_EXTRA_OPTS:-}"
        if as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "$PG_OPTS" start >/dev/null 2>&1; then
            ALD_PGDATA=$dir/data
            break
        fi
        ald_log "PostgreSQL did not start on port $PGPORT (try $try)"
    done
    [ -n "$ALD_PGDATA" ] || { cat "$dir/server.log" >&2; ald_die "cannot start PostgreSQL"; }
    PG_PID=$(head -1 "$ALD_PGDATA/postmaster.pid")
    umask 077
    cat > "$WORK/pgpass" <<PASS
127.0.0.1:$PGPORT:*:aldrec_admin:$ADMIN_PW
127.0.0.1:*:*:aldrecd:$REC_PW
127.0.0.1:*:*:engineer:$READER_PW
PASS
    umask 022
    export PGPORT PG_PID
    export ADMIN_DSN="host=127.0.0.1 port=$PGPORT dbname=aldrec user=aldrec_admin passfile=$WORK/pgpass"
    export REC_DSN="host=127.0.0.1 port=$PGPORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass"
    export READER_DSN="host=127.0.0.1 port=$PGPORT dbname=aldrec user=engineer passfile=$WORK/pgpass"
    psql -q "host=127.0.0.1 port=$PGPORT dbname=postgres user=aldrec_admin passfile=$WORK/pgpass" \
        -c "CREATE DATABASE aldrec" >/dev/null || ald_die "cannot create database"
}

# Applies migrations (as the admin role) and creates the login roles: the
# recorder's (aldrecd, a member of aldrec_recorder only) and an engineer's
# (engineer, a member of aldrec_reader only: read-only). Needs a config file
# (see aldrecd_config) because aldrec reads its connection from one.
pg_migrate() {
    local cfg=$1
    "$BIN/aldrec" --config "$cfg" db migrate >/dev/null || ald_die "migration failed"
    pg_login_role aldrecd aldrec_recorder "$REC_PW"
    pg_login_role engineer aldrec_reader "$READER_PW"
}

# pg_login_role NAME GROUP PASSWORD — a login role, member of GROUP only.
pg_login_role() {
    psql -q -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<SQL || ald_die "cannot create role $1"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$1') THEN
    CREATE ROLE $1 LOGIN IN ROLE $2;
  END IF;
END \$\$;
ALTER ROLE $1 PASSWORD '$3';
SQL
}

# record_step CFG PROC N NAME — recipe step N of process PROC (the one
# aldrecd records) starts now: `aldrec process step`, which returns once
# aldrecd has the marker in its spool; then waits until the forwarder has
# stored it in process_steps, so that a test can cut by it at once.
record_step() {
    local cfg=$1 proc=$2 no=$3 name=$4
    "$BIN/aldrec" --config "$cfg" process step "$no" "$name" >/dev/null || return 1
    wait_until 30 "step $no of process $proc in process_steps" step_stored "$proc" "$no"
}
step_stored() {   # proc no
    [ "$(psql -XAtq "$ADMIN_DSN" -c "SELECT count(*) FROM process_steps WHERE process_id = $1 AND step_no = $2")" = 1 ]
}

# pg_crash — PostgreSQL goes away at once (as on power loss: no shutdown
# checkpoint; crash recovery at the next start). pg_restart brings it back
# on the same port and data directory.
pg_crash() {
    [ -n "$ALD_PGDATA" ] || return 0
    as_pg "$PG_BINDIR/pg_ctl" -D "$ALD_PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
}

pg_restart() {
    [ -n "$ALD_PGDATA" ] || ald_die "pg_restart: no cluster"
    as_pg "$PG_BINDIR/pg_ctl" -D "$ALD_PGDATA" -l "$ALD_PGDATA/../server.log" -w -t 60 \
        -o "$PG_OPTS" start >/dev/null 2>&1 || ald_die "PostgreSQL did not start again"
    PG_PID=$(head -1 "$ALD_PGDATA/postmaster.pid")
}

# relay_start TARGET_PORT — tests/tools/relay.c between 127.0.0.1:RELAY_PORT
# and 127.0.0.1:TARGET_PORT.
relay_start() {
    local out=$WORK/relay.out
    "$BIN/relay" --target "127.0.0.1:$1" >"$out" 2>"$WORK/relay.log" &
    RELAY_PID=$!
    ald_track "$RELAY_PID" relay
    wait_until 10 relay grep -q 'listening on' "$out" || ald_die "relay did not start"
    RELAY_PORT=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$out" | head -1)
    export RELAY_PORT RELAY_PID
}

# relay_hole / relay_pass — switch and wait until the relay says it did.
relay_switch() {   # signal mode
    local before
    before=$(grep -c "^mode $2" "$WORK/relay.out")
    kill "-$1" "$RELAY_PID"
    wait_until 10 "relay mode $2" \
        bash -c "[ \$(grep -c '^mode $2' '$WORK/relay.out') -gt $before ]"
}
relay_hole() { relay_switch USR1 hole; }
relay_pass() { relay_switch USR2 pass; }

pg_stop() {
    [ -n "$ALD_PGDATA" ] || return 0
    as_pg "$PG_BINDIR/pg_ctl" -D "$ALD_PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    ALD_PGDATA=""
}

# redis_launch PORT — starts redis-server on PORT and waits until it
# answers. Returns 1 if it does not. Its settings are in a config file
# (mode 0600), never on the command line: with REDIS_PASSWORD_FILE set
# (redis_start PASSWORD_FILE), that file's first line is its requirepass,
# and readiness is checked with the password (REDISCLI_AUTH, not argv).
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
redis_launch() {
    local dir=$WORK/redis pw=""
    mkdir -p "$dir"
    if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
        IFS= read -r pw < "$REDIS_PASSWORD_FILE" || [ -n "$pw" ] \
            || ald_die "redis_launch: no password in $REDIS_PASSWORD_FILE"
    fi
    ( umask 077
      { echo "bind 127.0.0.1"; echo "port $1"; echo "protected-mode yes"
        echo 'save ""'; echo "appendonly no"; echo "dir $dir"; echo "logfile $dir/redis.log"
        [ -n "$pw" ] && echo "requirepass \"$pw\""
      } > "$dir/redis.conf" )
    redis-server "$dir/redis.conf" &
    REDIS_PID=$!
    if ( if [ -n "$pw" ]; then export REDISCLI_AUTH=$pw; fi
         wait_until 10 "redis on $1" redis_ping "$1" ); then
        ald_track "$REDIS_PID" redis-server
        export REDIS_PORT=$1 REDIS_PID
        return 0
    fi
    kill "$REDIS_PID" 2>/dev/null || true
    return 1
}

# redis_start [PASSWORD_FILE] — a private Redis on a free port; with
# PASSWORD_FILE (first line: the password; the caller makes it 0600) it
# requires AUTH. Sets REDIS_PORT, REDIS_PID (and REDIS_PASSWORD_FILE).
redis_start() {
    local try
    if [ -n "${1:-}" ]; then export REDIS_PASSWORD_FILE=$1; fi
    for try in 1 2 3; do
        redis_launch "$("$BIN/freeport")" && return 0
    done
    ald_die "cannot start redis-server"
}

# redis_stop / redis_restart — stop the private Redis by its PID; start it
# again on the same port (degraded-mode tests of the metadata cache).
redis_stop() { ald_stop_pid "$REDIS_PID" redis-server; }
redis_restart() { redis_launch "$REDIS_PORT" || ald_die "cannot restart redis-server on $REDIS_PORT"; }

# aldsim_start NAME [ARGS...] — starts aldsim on a free port (it picks one),
# with fault file $WORK/aldsim-NAME.faults (empty) for aldsim_fault.
aldsim_start() {
    local name=$1; shift
    local out=$WORK/aldsim-$name.out
    : > "$WORK/aldsim-$name.faults"
    "$BIN/aldsim" --port 0 --fault-file "$WORK/aldsim-$name.faults" "$@" \
        >"$out" 2>"$WORK/aldsim-$name.log" &
    local pid=$!
    ald_track "$pid" "aldsim-$name"
    wait_until 10 "aldsim $name" grep -q 'listening on' "$out" || ald_die "aldsim did not start"
    local port
    port=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$out" | head -1)
    printf -v "SIM_PORT_$name" '%s' "$port"
    printf -v "SIM_PID_$name" '%s' "$pid"
    export "SIM_PORT_$name" "SIM_PID_$name"
}

# aldsim_start_rtu NAME [ARGS...] — makes a pseudo-terminal pair with socat
# (a null-modem cable), starts aldsim serving Modbus RTU on one end and
# exports the other end as SIM_TTY_<NAME> for clients (--baud etc. are
# accepted on both ends; a pty ignores them). Both processes are stopped
# by PID at cleanup, aldsim first. Fault file as for aldsim_start.
aldsim_start_rtu() {
    local name=$1; shift
    local slog=$WORK/socat-$name.log out=$WORK/aldsim-$name.out
    socat -d -d pty,raw,echo=0 pty,raw,echo=0 2>"$slog" &
    local spid=$!
    ald_track "$spid" "socat-$name"
    wait_until 10 "socat pty pair $name" grep -q 'starting data transfer loop' "$slog" \
        || { cat "$slog" >&2; ald_die "socat did not make a pty pair"; }
    local ptys
    mapfile -t ptys < <(sed -n 's/.*PTY is \(.*\)$/\1/p' "$slog")
    : > "$WORK/aldsim-$name.faults"
    "$BIN/aldsim" --rtu "${ptys[0]}" --fault-file "$WORK/aldsim-$name.faults" "$@" \
        >"$out" 2>"$WORK/aldsim-$name.log" &
    local pid=$!
    ald_track "$pid" "aldsim-$name"
    wait_until 10 "aldsim $name on ${ptys[0]}" grep -q 'serving RTU on' "$out" \
        || { cat "$WORK/aldsim-$name.log" >&2; ald_die "aldsim did not start on ${ptys[0]}"; }
    printf -v "SIM_TTY_$name" '%s' "${ptys[1]}"
    printf -v "SIM_PID_$name" '%s' "$pid"
    printf -v "SIM_SOCAT_PID_$name" '%s' "$spid"
    export "SIM_TTY_$name" "SIM_PID_$name" "SIM_SOCAT_PID_$name"
}

# aldsim_fault NAME [SPEC...] — the specs (firmware/REGISTERS.md, e.g.
# latency=200 exception=input:20-21:2) become aldsim NAME's whole fault set;
# no SPEC: no faults. Returns once aldsim says they are in effect, 1 (with
# aldsim's message) if it rejected them.
aldsim_fault() {
    local name=$1; shift
    local log=$WORK/aldsim-$name.log pidvar=SIM_PID_$name
    local ok0 bad0
    ok0=$(grep -c '^aldsim: faults: ' "$log")
    bad0=$(grep -c 'faults unchanged$' "$log")
    printf '%s\n' "$@" > "$WORK/aldsim-$name.faults"
    kill -HUP "${!pidvar}" || return 1
    wait_until 10 "aldsim $name to load faults" bash -c \
        "[ \$(grep -c '^aldsim: faults: ' '$log') -gt $ok0 ] || [ \$(grep -c 'faults unchanged\$' '$log') -gt $bad0 ]" \
        || return 1
    if [ "$(grep -c 'faults unchanged$' "$log")" -gt "$bad0" ]; then
        grep 'faults unchanged$' "$log" | tail -1 >&2
        return 1
    fi
}

demo_machine_load() {   # sim_port [poll_ms]
    psql -q -v ON_ERROR_STOP=1 -v sim_host=127.0.0.1 -v "sim_port=$1" -v "poll_ms=${2:-100}" \
        "$ADMIN_DSN" -f "$ALD_ROOT/sql/demo/demo_machine.sql" >/dev/null \
        || ald_die "cannot load the demo machine"
}

# acq_component MACHINE COMPONENT POLL_MS [SET] — one component of machine
# MACHINE (created if needed) holding a copy of the demo machine's register
# map: parameter "system_read_counter" is ald-demo's system.read_counter, and
# so on. SET adjusts the component's machine_components row (endpoint,
# transport, limits). Loads ald-demo first if it is missing (its endpoint is
# irrelevant: it only serves as the template).
acq_component() {
    local machine=$1 comp=$2 poll=$3 set=${4:-"is_activated = true"}
    if [ "$(psql -XAtq "$ADMIN_DSN" -c "SELECT count(*) FROM machines WHERE name = 'ald-demo'")" = 0 ]; then
        demo_machine_load 1 100
    fi
    psql -q -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<SQL || ald_die "cannot load component $comp"
INSERT INTO machines (name, description) VALUES ('$machine', 'test machine')
    ON CONFLICT (name) DO NOTHING;
INSERT INTO machine_components (machine_id, name, kind, host, port, unit_id)
SELECT id, '$comp', 'test device', '127.0.0.1', 502, 1 FROM machines WHERE name = '$machine';
UPDATE machine_components SET $set
 WHERE name = '$comp' AND machine_id = (SELECT id FROM machines WHERE name = '$machine');
INSERT INTO component_parameters
    (component_id, name, units, register_type, address, data_type, word_order,
     scale, value_offset, min_value, max_value, set_value, is_writable, is_active,
     poll_interval_ms)
SELECT c.id, tc.name || '_' || t.name, t.units, t.register_type, t.address, t.data_type,
       t.word_order, t.scale, t.value_offset, t.min_value, t.max_value, t.set_value,
       t.is_writable, true, $poll
  FROM machine_components c
  JOIN machines m ON m.id = c.machine_id AND m.name = '$machine' AND c.name = '$comp'
 CROSS JOIN component_parameters t
  JOIN machine_components tc ON tc.id = t.component_id
  JOIN machines tm ON tm.id = tc.machine_id AND tm.name = 'ald-demo';
SQL
}

# aldrecd_config FILE [section.key=value ...] — writes a config for the
# private cluster; extra settings override the defaults below.
aldrecd_config() {
    local file=$1; shift
    local -A kv=(
        [recorder.machine]=ald-demo [recorder.id]=rec-test
        [recorder.socket]=$WORK/aldrecd.sock [recorder.batch_rows]=1000
        [recorder.flush_interval_ms]=500 [recorder.log_level]=info
        [modbus.response_timeout_ms]=500 [spool.path]=$WORK/spool.db
        [cache.redis_port]=${REDIS_PORT:-0} [cache.snapshot]=$WORK/pmap-snapshot.db
        [database.conninfo]=$REC_DSN [database.admin_conninfo]=$ADMIN_DSN
        [database.reader_conninfo]=$READER_DSN
        [metrics.listen]=127.0.0.1:0
    )
    local a
    for a in "$@"; do kv[${a%%=*}]=${a#*=}; done
    {
        echo "# written by scripts/lib.sh"
        local sec k
        for sec in database recorder modbus spool cache metrics health alerts web; do
            echo "[$sec]"
            for k in $(printf '%s\n' "${!kv[@]}" | sort); do
                if [ "${k%%.*}" = "$sec" ]; then echo "${k#*.} = ${kv[$k]}"; fi
            done
        done
    } > "$file"
}

# web_start CONFIG — `aldrec web` with CONFIG on a free loopback port
# (CONFIG's [web] listen is rewritten); waits until it serves a page; sets
# WEB_URL and WEB_PID.
web_start() {
    local cfg=$1 port
    port=$("$BIN/freeport")
    sed -i "/^\[web\]/,/^\[/{/^listen *=/d}" "$cfg"
    grep -q '^\[web\]' "$cfg" || echo "[web]" >> "$cfg"
    sed -i "/^\[web\]/a listen = 127.0.0.1:$port" "$cfg"
    "$BIN/aldrec" --config "$cfg" web 2>>"$WORK/web.log" &
    WEB_PID=$!
    ald_track "$WEB_PID" "aldrec web"
    WEB_URL=http://127.0.0.1:$port
    export WEB_URL WEB_PID
    wait_until 20 "aldrec web" curl -fsS -o /dev/null "$WEB_URL/index.html" \
        || { cat "$WORK/web.log" >&2; return 1; }
}

aldrecd_start() {   # config [log]
    local cfg=$1 log=${2:-$WORK/aldrecd.log}
    local -a wrap=(${ALDRECD_WRAPPER:-})
    if ald_under_valgrind; then
        # One log per process (%p), away from aldrecd's own stderr.
        mkdir -p "$WORK/valgrind"
        wrap=("${wrap[0]}" "--log-file=$WORK/valgrind/aldrecd.%p.log" "${wrap[@]:1}")
        ALD_VG_RUNS=$((ALD_VG_RUNS + 1))
    fi
    "${wrap[@]}" "$BIN/aldrecd" --config "$cfg" 2>>"$log" &
    ALDRECD_PID=$!
    ald_track "$ALDRECD_PID" aldrecd
    export ALDRECD_PID
    wait_until "${ALDRECD_START_TIMEOUT:-20}" aldrecd "$BIN/aldrec" --config "$cfg" status \
        || { cat "$log" >&2; return 1; }
}
