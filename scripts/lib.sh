# lib.sh — start and stop the servers aldrec needs, privately, on free
# loopback ports, each stopped by its PID. Sourced by scripts/demo.sh,
# tests/run.sh, tests/integration/*.sh and tests/bench/run.sh.
#
#   ald_workdir NAME        fresh directory for a run; sets WORK
#   pg_start                private PostgreSQL 15 cluster + database "aldrec",
#                           migrated; sets PGPORT, ADMIN_DSN, REC_DSN
#   pg_crash / pg_restart   stop it at once (pg_ctl -m immediate, no
#                           shutdown checkpoint) / start it again, same port
#   relay_start TARGET_PORT a TCP relay in front of it (tests/tools/relay.c);
#                           sets RELAY_PORT, RELAY_PID; relay_hole /
#                           relay_pass switch it to black hole and back
#   redis_start             sets REDIS_PORT
#   aldsim_start NAME ARGS  sets SIM_PORT_<NAME>, SIM_PID_<NAME>
#   demo_machine_load PORT [POLL_MS]
#   aldrecd_config FILE [KEY=VALUE ...]
#   aldrecd_start CONFIG    waits until it answers; sets ALDRECD_PID
#   ald_cleanup             stops everything started (installed as EXIT trap)
#
# Passwords are generated per run and kept in $WORK/pgpass (mode 600);
# they never appear on a command line.

ALD_ROOT=${ALD_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BIN=$ALD_ROOT/${BUILD:-build}/bin
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
    local pid=$1 name=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        ald_log "$name (pid $pid) ignored SIGTERM for 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

ald_cleanup() {
    local i entry
    for ((i = ${#ALD_PIDS[@]} - 1; i >= 0; i--)); do
        entry=${ALD_PIDS[$i]}
        ald_stop_pid "${entry%%:*}" "${entry#*:}"
    done
    ALD_PIDS=()
    pg_stop
}

ald_track() { ALD_PIDS+=("$1:$2"); }

randpw() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

pg_start() {
    local dir=$WORK/pg try
    mkdir -p "$dir"
    ADMIN_PW=$(randpw); REC_PW=$(randpw)
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
PASS
    umask 022
    export PGPORT PG_PID
    export ADMIN_DSN="host=127.0.0.1 port=$PGPORT dbname=aldrec user=aldrec_admin passfile=$WORK/pgpass"
    export REC_DSN="host=127.0.0.1 port=$PGPORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass"
    psql -q "host=127.0.0.1 port=$PGPORT dbname=postgres user=aldrec_admin passfile=$WORK/pgpass" \
        -c "CREATE DATABASE aldrec" >/dev/null || ald_die "cannot create database"
}

# Applies migrations (as the admin role) and creates the recorder's login
# role, a member of aldrec_recorder only. Needs a config file (see
# aldrecd_config) because aldrec reads its connection from one.
pg_migrate() {
    local cfg=$1
    "$BIN/aldrec" --config "$cfg" db migrate >/dev/null || ald_die "migration failed"
    psql -q -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<SQL || ald_die "cannot create role aldrecd"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aldrecd') THEN
    CREATE ROLE aldrecd LOGIN IN ROLE aldrec_recorder;
  END IF;
END \$\$;
ALTER ROLE aldrecd PASSWORD '$REC_PW';
SQL
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

redis_start() {
    local dir=$WORK/redis try
    mkdir -p "$dir"
    for try in 1 2 3; do
        REDIS_PORT=$("$BIN/freeport")
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
            --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
        REDIS_PID=$!
        if wait_until 10 "redis on $REDIS_PORT" \
            bash -c "[ \"\$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping)\" = PONG ]"; then
            ald_track "$REDIS_PID" redis-server
            export REDIS_PORT REDIS_PID
            return 0
        fi
        kill "$REDIS_PID" 2>/dev/null || true
    done
    ald_die "cannot start redis-server"
}

# aldsim_start NAME [ARGS...] — starts aldsim on a free port (it picks one).
aldsim_start() {
    local name=$1; shift
    local out=$WORK/aldsim-$name.out
    "$BIN/aldsim" --port 0 "$@" >"$out" 2>"$WORK/aldsim-$name.log" &
    local pid=$!
    ald_track "$pid" "aldsim-$name"
    wait_until 10 "aldsim $name" grep -q 'listening on' "$out" || ald_die "aldsim did not start"
    local port
    port=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$out" | head -1)
    printf -v "SIM_PORT_$name" '%s' "$port"
    printf -v "SIM_PID_$name" '%s' "$pid"
    export "SIM_PORT_$name" "SIM_PID_$name"
}

demo_machine_load() {   # sim_port [poll_ms]
    psql -q -v ON_ERROR_STOP=1 -v sim_host=127.0.0.1 -v "sim_port=$1" -v "poll_ms=${2:-100}" \
        "$ADMIN_DSN" -f "$ALD_ROOT/sql/demo/demo_machine.sql" >/dev/null \
        || ald_die "cannot load the demo machine"
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
        [database.conninfo]=$REC_DSN [database.admin_conninfo]=$ADMIN_DSN
    )
    local a
    for a in "$@"; do kv[${a%%=*}]=${a#*=}; done
    {
        echo "# written by scripts/lib.sh"
        local sec k
        for sec in database recorder modbus spool; do
            echo "[$sec]"
            for k in "${!kv[@]}"; do
                [ "${k%%.*}" = "$sec" ] && echo "${k#*.} = ${kv[$k]}"
            done
        done
    } > "$file"
}

aldrecd_start() {   # config [log]
    local cfg=$1 log=${2:-$WORK/aldrecd.log}
    ${ALDRECD_WRAPPER:-} "$BIN/aldrecd" --config "$cfg" 2>>"$log" &
    ALDRECD_PID=$!
    ald_track "$ALDRECD_PID" aldrecd
    export ALDRECD_PID
    wait_until "${ALDRECD_START_TIMEOUT:-20}" aldrecd "$BIN/aldrec" --config "$cfg" status \
        || { cat "$log" >&2; return 1; }
}
