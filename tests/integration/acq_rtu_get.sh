#!/bin/bash
# acq_rtu_get.sh — `aldrec get` and `aldrec set` of an RTU parameter frame
# the line as aldrecd does. aldsim serves unit 1 at 19200 8E1 on a socat
# pty pair; the component leaves baud, parity, data and stop bits NULL, so
# both programs must take them from [modbus] (19200 8E1 by default).
#
# A pty carries bytes whatever framing its ends ask for (Linux even clears
# PARENB and forces CS8 on it), so a wrong parity would go unnoticed on the
# wire here: the framing each program asks the line for is read from its
# TCSETS ioctl (strace), and aldrec's must equal aldrecd's. The values must
# be the ones aldsim serves.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

if ! command -v strace >/dev/null; then
    not_ok "strace is installed (scripts/setup.sh installs it)"
    check_done acq_rtu_get
    exit 1
fi

ald_workdir it-acq-rtu-get
pg_start
CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.machine=rtug recorder.flush_interval_ms=300 \
    modbus.response_timeout_ms=300
pg_migrate "$CFG"
A="$BIN/aldrec --config $CFG"

aldsim_start_rtu r --baud 19200 --parity E --seed 3
TTY=$SIM_TTY_r
acq_component rtug line 100 "transport = 'rtu', serial_port = '$TTY', unit_id = 1,
    baud = NULL, parity = NULL, data_bits = NULL, stop_bits = NULL"
check_eq "the component leaves the line's framing to [modbus]" \
    "$(q "SELECT count(*) FROM machine_components WHERE name = 'line' AND serial_port = '$TTY'
           AND baud IS NULL AND parity IS NULL AND data_bits IS NULL AND stop_bits IS NULL")" 1

# The framing bits of c_cflag (speed, size, parity, stop bits) of the
# first TCSETS call in strace output FILE: "B19200 CS8 PARENB" (libmodbus
# sets the line up once when it opens it and restores the old settings
# when it closes it).
framing() {
    sed -nE 's/.*TCSETS.*c_cflag=([A-Z0-9|]+).*/\1/p' "$1" | head -1 | tr '|' '\n' |
        grep -E '^(B[0-9]+|CS[5-8]|PARENB|PARODD|CSTOPB)$' | paste -sd' '
}
traced() {   # FILE CMD... — CMD under strace, its ioctls in FILE
    local file=$1; shift
    strace -f -qq -e trace=ioctl -o "$file" "$@"
}

# --- aldrec get --direct: one-off reads over the line (no aldrecd) -----------------------------------
out=$(traced "$WORK/get.strace" $A get --direct line.test_u16 2>"$WORK/get.err")
check_eq "aldrec get line.test_u16 returns what aldsim serves" "$out" \
    "line.test_u16 = 54321 (quality 0 good)"
GET_FRAMING=$(framing "$WORK/get.strace")
echo "# aldrec get framed the line: $GET_FRAMING"
check_eq "aldrec get frames the line 19200 8E1 ([modbus] defaults)" "$GET_FRAMING" \
    "B19200 CS8 PARENB"
check_eq "aldrec get of a 4-register value" "$($A get --direct line.test_f64_cdab 2>&1)" \
    "line.test_f64_cdab = 1234.56789 (quality 0 good)"

# --- aldrec set (without aldrecd: --unrecorded) --------------------------------
out=$(traced "$WORK/set.strace" $A set --unrecorded line.heater1_setpoint 215 2>"$WORK/set.err")
check_match "aldrec set writes and reads back over the line" "$out" \
    "^line.heater1_setpoint: 200 .*-> 215 .*read back 215"
check_eq "aldrec set frames the line as aldrec get does" "$(framing "$WORK/set.strace")" \
    "$GET_FRAMING"

# --- aldrecd on the same line: the same framing --------------------------------
# (under make valgrind aldrecd keeps its valgrind wrapper; its status line
# still names the framing it opened the line with)
TRACE_D=yes
ald_under_valgrind && TRACE_D=no
WRAP=${ALDRECD_WRAPPER:-}
[ $TRACE_D = yes ] && WRAP="strace -f -qq -e trace=ioctl -o $WORK/aldrecd.strace"
if ! ALDRECD_WRAPPER=$WRAP aldrecd_start "$CFG"; then
    not_ok "aldrecd starts"; check_done acq_rtu_get; exit 1
fi
DPID=$ALDRECD_PID
if [ $TRACE_D = yes ]; then   # ALDRECD_PID is strace's: stop aldrecd itself
    DPID=$(pgrep -P "$ALDRECD_PID" -x aldrecd)
    ald_track "$DPID" aldrecd
fi
wait_until 10 "aldrecd's device up" st_is "device $TTY (rtu 19200 8E1)" state up
check_eq "aldrecd names the line with its framing, up" \
    "$(st "device $TTY (rtu 19200 8E1)" state)" up

# --- with aldrecd on the line, aldrec never opens it -------------------------------
out=$(strace -f -qq -e trace=openat -o "$WORK/set-d.strace" $A set line.heater1_setpoint 216 2>&1); rc=$?
check_eq "aldrec set through aldrecd on the RTU line exits 0" "$rc" 0
check_match "... written, read back" "$out" "^line.heater1_setpoint: 215 .*-> 216 .*read back 216"
check_eq "... aldrec itself did not open the line" "$(grep -c "$TTY" "$WORK/set-d.strace")" 0
out=$(strace -f -qq -e trace=openat -o "$WORK/get-d.strace" $A get --direct line.test_u16 2>&1); rc=$?
check_eq "aldrec get --direct while aldrecd runs: refused (exit 1)" "$rc" 1
check_match "... saying aldrecd is the master" "$out" "aldrecd is running and is the devices' one Modbus master"
check_eq "... without opening the line" "$(grep -c "$TTY" "$WORK/get-d.strace")" 0
check_eq "aldrec get --fresh through aldrecd equals what aldsim serves" \
    "$($A get --fresh line.test_u16 2>&1)" "line.test_u16 = 54321 (quality 0 good)"
ald_stop_pid "$DPID" aldrecd
if [ $TRACE_D = yes ]; then
    ald_stop_pid "$ALDRECD_PID" strace
    check_eq "aldrecd frames the line as aldrec get does" \
        "$(framing "$WORK/aldrecd.strace")" "$GET_FRAMING"
fi

check_done acq_rtu_get
