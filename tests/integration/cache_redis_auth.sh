#!/bin/bash
# cache_redis_auth.sh — the metadata cache's Redis L2 behind a password
# ([cache] redis_password_file, cache/l2redis.c) against a real redis-server
# started with requirepass (in its config file, not on its command line).
# Checks:
#   - the test is real: Redis refuses a client without AUTH, and the
#     password is on no process's command line; the password file is 0600;
#   - with the right password file aldrecd's refresher writes the map to
#     Redis (read back there with the password) and tool runs take it from
#     Redis (no PostgreSQL statement);
#   - no password file, a wrong password, a password file readable by
#     others: each tool run still answers correctly from PostgreSQL, saying
#     once that Redis failed and why (naming Redis and AUTH, or the file and
#     its mode), without the password; aldrecd started with a wrong password
#     records a run all the same (L1 + PostgreSQL), says so once, and its
#     `aldrec status` shows Redis down;
#   - neither password appears in aldrecd's log (its stderr), in any tool's
#     output, or in any log or output file of the run.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-redis-auth
PWF=$WORK/redis.pw                 # the right password
BADF=$WORK/redis-wrong.pw          # a wrong one
OPENF=$WORK/redis-open.pw          # the right one, but mode 0644
( umask 077; randpw > "$PWF"; randpw > "$BADF" )
cp "$PWF" "$OPENF"; chmod 0644 "$OPENF"
PW=$(cat "$PWF"); BADPW=$(cat "$BADF")
# Searches read the passwords from this file (grep -f), never from argv.
PATS=$WORK/passwords.pat
( umask 077; printf '%s\n' "$PW" "$BADPW" > "$PATS" )
check "the generated passwords are non-trivial and differ" \
    test "${#PW}" -ge 16 -a "${#BADPW}" -ge 16 -a "$PW" != "$BADPW"

pg_start
redis_start "$PWF"
aldsim_start a --seed 3
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" cache.redis_timeout_ms=200 cache.redis_password_file="$PWF"
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_a" 100
q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
A="$BIN/aldrec --config $CFG"
# Other configs: no password file, a wrong password, a too-open file.
aldrecd_config "$WORK/nopw.conf" cache.redis_timeout_ms=200
aldrecd_config "$WORK/badpw.conf" cache.redis_timeout_ms=200 cache.redis_password_file="$BADF" \
    recorder.log_level=debug
aldrecd_config "$WORK/openpw.conf" cache.redis_timeout_ms=200 cache.redis_password_file="$OPENF"

# rcli ARGS... — redis-cli with the right password (from the environment,
# not argv).
rcli() { REDISCLI_AUTH=$PW redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@" 2>/dev/null; }
load_calls() { q "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE 'SELECT m.id, cp.id%'"; }

# --- the Redis under test really requires the password -----------------------
check_eq "password file is mode 0600" "$(stat -c %a "$PWF")" 600
check_eq "redis-server's config file (holding requirepass) is mode 0600" \
    "$(stat -c %a "$WORK/redis/redis.conf")" 600
check_match "Redis refuses a client without AUTH" \
    "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" get x 2>&1)" 'NOAUTH'
check_match "... and one with a wrong password" \
    "$(REDISCLI_AUTH=$BADPW redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1)" 'WRONGPASS|invalid'
check_eq "... and answers one with the right password" "$(rcli ping)" PONG
ps -eo args= > "$WORK/ps.txt"
check_eq "the password is on no process's command line ($(wc -l <"$WORK/ps.txt") processes)" \
    "$(grep -cF -f "$PATS" "$WORK/ps.txt")" 0
check "... (self-test: the same search finds it in redis-server's config)" \
    grep -qF -f "$PATS" "$WORK/redis/redis.conf"

# --- right password: aldrecd writes the map to Redis, tools read it -----------
aldrecd_start "$CFG" || { not_ok "aldrecd starts"; check_done cache_redis_auth; exit 1; }
LOG=$WORK/aldrecd.log
blob_in_redis() { [ "$(rcli strlen aldrec:ald-demo:pmap)" -gt 0 ] 2>/dev/null; }
wait_until 10 "the parameter map in Redis" blob_in_redis \
    && ok "aldrecd wrote the parameter map to Redis through AUTH ($(rcli strlen aldrec:ald-demo:pmap) bytes)" \
    || not_ok "aldrecd wrote the parameter map to Redis"
from_redis() { local o; o=$($A get -v heater1.setpoint 2>&1); grep -q 'metadata from Redis' <<<"$o"; }
wait_until 10 "tools reading the map from Redis" from_redis \
    && ok "a tool run reads the map back from Redis" || not_ok "a tool run reads the map back from Redis"
check_match "... vouched for by the refresher's live key there" "$(rcli get aldrec:ald-demo:live)" '^[0-9]+$'
before=$(load_calls)
# (get -v: the tool looks the metadata up itself; the value comes from aldrecd)
for i in 1 2 3; do out=$($A get -v heater1.setpoint 2>"$WORK/get-right.err"); done
after=$(load_calls)
check_match "... 3 tool runs: the right value" "$out" "^heater1.setpoint = 200 degC \(quality 0 good, [0-9]+ ms old\)$"
check_eq "... without a PostgreSQL load" "$((after - before))" 0
check_eq "... and no warning or error on stderr (only -v's description)" "$(grep -Eic 'level=(warn|error)|warning' "$WORK/get-right.err")" 0
check_match "aldrec status: Redis up" "$(st cache_links redis)" '^up$'

# --- wrong or missing password: clear error, L1 + PostgreSQL -------------------
# tool_fallback DESCRIPTION CONFIG ERROR-REGEX — a tool run with CONFIG
# answers correctly from PostgreSQL and says once, on stderr, why Redis
# failed.
tool_fallback() {
    local what=$1 cfg=$2 re=$3 out rc b a
    b=$(load_calls)
    out=$("$BIN/aldrec" --config "$cfg" get -v heater1.setpoint 2>"$WORK/get.err"); rc=$?
    a=$(load_calls)
    local err; err=$(cat "$WORK/get.err")
    cat "$WORK/get.err" >> "$WORK/tools.err"
    check_eq "$what: get exits 0" "$rc" 0
    check_match "... with the right value" "$out" "^heater1.setpoint = 200 degC \(quality 0 good, [0-9]+ ms old\)$"
    check_match "... metadata from PostgreSQL" "$err" 'metadata from PostgreSQL'
    check_eq "... which it loaded (1 statement)" "$((a - b))" 1
    check_match "... saying why Redis failed" "$err" "$re"
    check_eq "... once" "$(grep -c 'running on L1 + PostgreSQL' <<<"$err")" 1
}
tool_fallback "no redis_password_file" "$WORK/nopw.conf" \
    "Redis 127\.0\.0\.1:$REDIS_PORT: MGET: NOAUTH Authentication required.* \(it requires AUTH: set \[cache\] redis_password_file\): running on L1 \+ PostgreSQL"
tool_fallback "wrong password" "$WORK/badpw.conf" \
    "Redis 127\.0\.0\.1:$REDIS_PORT: AUTH: WRONGPASS.*running on L1 \+ PostgreSQL"
tool_fallback "password file mode 0644" "$WORK/openpw.conf" \
    "Redis 127\.0\.0\.1:$REDIS_PORT: AUTH: redis_password_file $OPENF: permissions 644 are too open \(at most 0640\).*running on L1 \+ PostgreSQL"
chmod 0640 "$OPENF"
tool_right=$("$BIN/aldrec" --config "$WORK/openpw.conf" get -v heater1.setpoint 2>&1)
check_match "the same file at mode 0640 is accepted: metadata from Redis" "$tool_right" 'metadata from Redis'

# --- aldrecd with a wrong password (log level debug): records anyway -----------
ald_stop_pid "$ALDRECD_PID" aldrecd
LOG2=$WORK/aldrecd-badpw.log
aldrecd_start "$WORK/badpw.conf" "$LOG2" \
    || { not_ok "aldrecd starts with a wrong Redis password"; check_done cache_redis_auth; exit 1; }
ok "aldrecd starts with a wrong Redis password"
B="$BIN/aldrec --config $WORK/badpw.conf"
PROC=$($B process start --recipe it-redis-auth)
check_match "... a process starts" "$PROC" '^[0-9]+$'
sleep 2.5   # the refresher retries Redis meanwhile (every second, backing off)
$B process stop >/dev/null
check_ge "... and is recorded (L1 + PostgreSQL)" \
    "$(q "SELECT count(*) FROM process_data_points WHERE process_id = ${PROC:-0}")" 320
check_match "... the log names Redis and AUTH" "$(cat "$LOG2")" \
    "Redis 127\.0\.0\.1:$REDIS_PORT: AUTH: WRONGPASS.*running on L1 \+ PostgreSQL"
check_eq "... once, not per attempt" "$(grep -c 'running on L1 + PostgreSQL' "$LOG2")" 1
$B status > "$WORK/status-badpw.out" 2>&1
stb() { python3 "$ALD_ROOT/tests/tools/status.py" "$@" < "$WORK/status-badpw.out"; }
check_eq "aldrec status: Redis down" "$(stb cache_links redis)" down
check_match "... the degraded mode named" "$(stb cache_state)" \
    'Redis unreachable, running on L1 \+ PostgreSQL'

ald_stop_pid "$ALDRECD_PID" aldrecd

# --- the passwords appear nowhere ----------------------------------------------
for f in "$LOG" "$LOG2" "$WORK/tools.err"; do
    check "no password in $(basename "$f") ($(wc -l <"$f") lines)" \
        bash -c '! grep -qF -f "$1" "$2"' _ "$PATS" "$f"
done
check "the tools' errors name no password either: self-test of that check (the password file name is there)" \
    grep -qF "$OPENF" "$WORK/tools.err"
leaks=$(grep -rlF -f "$PATS" "$WORK" --include='*.log' --include='*.out' --include='*.err' \
        --include='*.conf' 2>/dev/null | grep -v '/redis/redis.conf$')
check_eq "no log, output or config file of the run holds a password (redis.conf aside)" "$leaks" ""

check_done cache_redis_auth
