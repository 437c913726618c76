# lib.sh — start and stop the servers aldrec needs, privately, on free
# loopback ports, each stopped by its PID. Sourced by scripts/demo.sh,
# tests/run.sh, tests/integration/*.sh and tests/bench/run.sh.
#
#   ald_workdir NAME        fresh directory for a run; sets WORK
#   pg_start                private PostgreSQL 15 cluster + database "aldrec",
#                           migrated; sets PGPORT, ADMIN_DSN, REC_DSN, READER_DSN
#   pg_crash / pg_restart   stop it at once (pg_ctl -m immediate, no
#                           shutdown checkpoint) / start it again, same port
#   PG_TLS=1 pg_start       the same with ssl = on, a private CA made by
#                           pg_tls_setup (openssl) and hostssl-only pg_hba; the
#                           DSNs then carry sslmode=verify-full and the CA file
#   pg_cert_role NAME GROUP a login role authenticated by a client certificate
#                           (pg_hba `cert`); sets CERT_DSN (needs PG_TLS=1)
#   pgbouncer_start [TARGET_PORT]
#                           pgbouncer in front of it: database "aldrec" in
#                           transaction pooling, "aldrec_listen" in session
#                           pooling; sets PGB_PORT, PGB_PID, PGB_REC_DSN,
#                           PGB_LISTEN_DSN, PGB_ADMIN_DSN (its console)
#   PGB_TLS=1 pgbouncer_start
#                           the same with clients over TLS only: pgbouncer's
#                           certificate signed by the test's CA (needs
#                           PG_TLS=1); the PGB_ DSNs then carry $TLS_OPTS
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
    if [ -n "${PG_TLS:-}" ]; then pg_tls_setup "$dir/data"; fi
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
    if [ -n "${PG_TLS:-}" ]; then
        ADMIN_DSN+=" $TLS_OPTS"; REC_DSN+=" $TLS_OPTS"; READER_DSN+=" $TLS_OPTS"
    fi
    psql -q "host=127.0.0.1 port=$PGPORT dbname=postgres user=aldrec_admin passfile=$WORK/pgpass" \
        -c "CREATE DATABASE aldrec" >/dev/null || ald_die "cannot create database"
}

# ---- TLS (PG_TLS=1 pg_start) ----------------------------------------------
# tls_ca NAME — a private certificate authority $WORK/tls/NAME.crt/.key.
tls_ca() {
    local d=$WORK/tls
    mkdir -p "$d"; chmod 700 "$d"
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 2 \
        -subj "/CN=aldrec test CA $1" -keyout "$d/$1.key" -out "$d/$1.crt" \
        >>"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; ald_die "openssl: CA $1"; }
    chmod 600 "$d/$1.key"; chmod 644 "$d/$1.crt"
}

# tls_cert CA NAME CN [SAN] — a key and a certificate signed by CA:
# $WORK/tls/NAME.crt/.key (mode 600). SAN e.g. "DNS:localhost,IP:127.0.0.1".
tls_cert() {
    local d=$WORK/tls ca=$1 name=$2 cn=$3 san=${4:-}
    local ext=$d/$name.ext
    { echo "basicConstraints = CA:FALSE"
      echo "keyUsage = digitalSignature, keyEncipherment"
      if [ -n "$san" ]; then echo "extendedKeyUsage = serverAuth"; echo "subjectAltName = $san"
      else echo "extendedKeyUsage = clientAuth"; fi
    } > "$ext"
    ( umask 077
      openssl req -new -nodes -newkey rsa:2048 -subj "/CN=$cn" \
          -keyout "$d/$name.key" -out "$d/$name.csr" &&
      openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" \
          -CAcreateserial -days 2 -sha256 -extfile "$ext" -out "$d/$name.crt"
    ) >>"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; ald_die "openssl: certificate $name"; }
}

# pg_tls_setup DATADIR — (pg_start with PG_TLS=1) a CA "ca", a server
# certificate for 127.0.0.1 and localhost signed by it, a second CA
# "wrong-ca" that signed nothing the server has; ssl = on; pg_hba: TCP only
# with TLS (hostnossl rejected), SCRAM passwords, and `cert` for the roles
# made by pg_cert_role (user name = certificate CN). Sets TLS_DIR, TLS_CA,
# TLS_WRONG_CA and TLS_OPTS (what a conninfo adds for verify-full).
pg_tls_setup() {
    local data=$1
    tls_ca ca
    tls_ca wrong-ca
    tls_cert ca server localhost "DNS:localhost,IP:127.0.0.1"
    cp "$WORK/tls/server.crt" "$WORK/tls/server.key" "$WORK/tls/ca.crt" "$data/"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data/server.crt" "$data/server.key" "$data/ca.crt"
    chmod 600 "$data/server.key"
    as_pg tee "$data/pg_hba.conf" >/dev/null <<HBA
# written by scripts/lib.sh (PG_TLS=1): TCP only over TLS
local     all  all                  scram-sha-256
hostssl   all  +aldrec_cert  127.0.0.1/32  cert
hostssl   all  all           127.0.0.1/32  scram-sha-256
hostnossl all  all           127.0.0.1/32  reject
HBA
    PG_EXTRA_OPTS="${PG_EXTRA_OPTS:-} -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=ca.crt"
    TLS_DIR=$WORK/tls TLS_CA=$WORK/tls/ca.crt TLS_WRONG_CA=$WORK/tls/wrong-ca.crt
    TLS_OPTS="sslmode=verify-full sslrootcert=$TLS_CA"
    export TLS_DIR TLS_CA TLS_WRONG_CA TLS_OPTS
}

# pg_cert_role NAME GROUP — a login role without a password, member of
# GROUP and of aldrec_cert (pg_hba: `cert`), and a client certificate with
# CN=NAME ($TLS_DIR/NAME.crt/.key). Sets CERT_DSN: its conninfo.
pg_cert_role() {
    psql -q -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<SQL || ald_die "cannot create role $1"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aldrec_cert') THEN
    CREATE ROLE aldrec_cert NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$1') THEN
    CREATE ROLE $1 LOGIN IN ROLE $2, aldrec_cert;
  END IF;
END \$\$;
SQL
    tls_cert ca "$1" "$1"
    export CERT_DSN="host=127.0.0.1 port=$PGPORT dbname=aldrec user=$1 $TLS_OPTS sslcert=$TLS_DIR/$1.crt sslkey=$TLS_DIR/$1.key"
}

# ---- pgbouncer --------------------------------------------------------------
# pgbouncer_start [TARGET_PORT] — pgbouncer on a free loopback port in front
# of the private cluster (or of TARGET_PORT on 127.0.0.1, e.g. a relay),
# run as the cluster's user, stopped by its PID. Its files are private
# ($WORK/pgbouncer, mode 700): the auth file holds the roles' SCRAM secrets
# read from pg_authid (no password in clear), so pgbouncer can log in to
# PostgreSQL with the client's own SCRAM keys. Two databases:
#   aldrec         transaction pooling, pool of PGB_POOL_SIZE (default 4)
#                  server connections: the forwarder, the tools
#   aldrec_listen  session pooling (dbname=aldrec): the LISTEN session
# ignore_startup_parameters=options: pgbouncer refuses libpq's "options"
# (pgconn sets the server's keepalives there); its own tcp_keepalive and
# tcp_user_timeout settings take that place. With PG_TLS=1 it reaches the
# cluster over TLS, verify-full against the test's CA. With PGB_TLS=1 (and
# PG_TLS=1, whose CA it uses) its clients must come over TLS as well
# (client_tls_sslmode = require: a plain TCP login is refused), and it
# presents a certificate for 127.0.0.1 and localhost signed by that CA
# (tls_cert, $TLS_DIR/pgbouncer.crt). server_login_retry is 1 s (default
# 15 s) so that tests see PostgreSQL back at once.
pgbouncer_start() {
    local target=${1:-$PGPORT} dir=$WORK/pgbouncer try opts=""
    mkdir -p "$dir"; chmod 700 "$dir"
    psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_DSN" -c \
        "SELECT format('\"%s\" \"%s\"', rolname, rolpassword) FROM pg_authid
          WHERE rolname IN ('aldrec_admin', 'aldrecd', 'engineer') AND rolpassword IS NOT NULL" \
        > "$dir/userlist.txt" || ald_die "pgbouncer_start: cannot read the SCRAM secrets"
    local tls=""
    if [ -n "${PG_TLS:-}" ]; then   # to a TLS cluster: verify-full as well
        cp "$TLS_CA" "$dir/ca.crt"
        tls="server_tls_sslmode = verify-full
server_tls_ca_file = $dir/ca.crt"
    fi
    if [ -n "${PGB_TLS:-}" ]; then   # its clients: TLS only, its own certificate
        [ -n "${PG_TLS:-}" ] || ald_die "pgbouncer_start: PGB_TLS=1 needs PG_TLS=1 (the test's CA)"
        tls_cert ca pgbouncer localhost "DNS:localhost,IP:127.0.0.1"
        cp "$TLS_DIR/pgbouncer.crt" "$TLS_DIR/pgbouncer.key" "$dir/"
        chmod 600 "$dir/pgbouncer.key"
        tls+="
client_tls_sslmode = require
client_tls_cert_file = $dir/pgbouncer.crt
client_tls_key_file = $dir/pgbouncer.key
client_tls_ca_file = $dir/ca.crt"
        opts=" $TLS_OPTS"
    fi
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
    for try in 1 2 3; do
        PGB_PORT=$("$BIN/freeport")
        as_pg tee "$dir/pgbouncer.ini" >/dev/null <<INI
[databases]
aldrec = host=127.0.0.1 port=$target dbname=aldrec pool_mode=transaction pool_size=${PGB_POOL_SIZE:-4}
aldrec_listen = host=127.0.0.1 port=$target dbname=aldrec pool_mode=session
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
admin_users = aldrec_admin
pool_mode = session
max_client_conn = ${PGB_MAX_CLIENTS:-200}
ignore_startup_parameters = options
server_login_retry = 1
server_connect_timeout = 5
tcp_keepalive = 1
tcp_keepidle = 2
tcp_keepintvl = 1
tcp_keepcnt = 3
tcp_user_timeout = 5000
$tls
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
        rm -f "$dir/pgbouncer.pid"
        if as_pg /usr/sbin/pgbouncer -d -q "$dir/pgbouncer.ini" 2>>"$dir/start.log" &&
            wait_until 10 pgbouncer test -s "$dir/pgbouncer.pid"; then
            PGB_PID=$(cat "$dir/pgbouncer.pid")
            ald_track "$PGB_PID" pgbouncer
            break
        fi
        PGB_PID=""
        ald_log "pgbouncer did not start on port $PGB_PORT (try $try)"
    done
    [ -n "$PGB_PID" ] || { cat "$dir/start.log" "$dir/pgbouncer.log" >&2; ald_die "cannot start pgbouncer"; }
    export PGB_PORT PGB_PID
    echo "127.0.0.1:$PGB_PORT:*:aldrec_admin:$ADMIN_PW" >> "$WORK/pgpass"
    export PGB_REC_DSN="host=127.0.0.1 port=$PGB_PORT dbname=aldrec user=aldrecd passfile=$WORK/pgpass$opts"
    export PGB_LISTEN_DSN="host=127.0.0.1 port=$PGB_PORT dbname=aldrec_listen user=aldrecd passfile=$WORK/pgpass$opts"
    export PGB_ADMIN_DSN="host=127.0.0.1 port=$PGB_PORT dbname=pgbouncer user=aldrec_admin passfile=$WORK/pgpass$opts"
    wait_until 10 "pgbouncer on $PGB_PORT" psql -XAtq "$PGB_ADMIN_DSN" -c "SHOW VERSION" \
        || { cat "$dir/pgbouncer.log" >&2; ald_die "pgbouncer does not answer"; }
}

# pgb_show WHAT — pgbouncer's console: SHOW WHAT (POOLS, SERVERS, ...), unaligned.
pgb_show() { psql -XAq -F' ' "$PGB_ADMIN_DSN" -c "SHOW $1"; }

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
# WEB_URL and WEB_PID. WEB_BIN: another aldrec (a sanitizer build).
web_start() {
    local cfg=$1 port
    port=$("$BIN/freeport")
    sed -i "/^\[web\]/,/^\[/{/^listen *=/d}" "$cfg"
    grep -q '^\[web\]' "$cfg" || echo "[web]" >> "$cfg"
    sed -i "/^\[web\]/a listen = 127.0.0.1:$port" "$cfg"
    "${WEB_BIN:-$BIN/aldrec}" --config "$cfg" web 2>>"$WORK/web.log" &
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
