#!/bin/bash
# sim_rtu.sh — aldsim serving Modbus RTU on a pseudo-terminal pair (socat),
# read by a libmodbus RTU client (tests/tools/mbclient): the read counter
# counts exactly the answered reads, the test pattern decodes to the values
# of firmware/REGISTERS.md, other unit ids are ignored without swallowing
# the next request, serial framing options are accepted, the faults that
# make sense on a serial line work there (latency, silent, exceptions,
# max_registers, drop_every as a lost frame) and are switched at run time
# with aldsim_fault; the exit summary adds up; aldsim stops when the line
# goes away. Also aldsim_fault over TCP, as the recorder tests use it.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
source "$ALD_ROOT/tests/lib/vectors.sh"
trap ald_cleanup EXIT

ald_workdir it-sim-rtu
aldsim_start_rtu r --unit 5 --seed 3
check_match "aldsim says where it serves" "$(cat "$WORK/aldsim-r.out")" \
    "^aldsim: serving RTU on /dev/pts/[0-9]+ unit 5$"
MB() { "$BIN/mbclient" --rtu "$SIM_TTY_r" --unit 5 "$@"; }
value() { MB "$@" | awk '$1 == "ok" { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit } { print; exit }'; }
reads=0

# --- the read counter counts answered reads ----------------------------------
check_eq "first read: read counter (input 20-21) is 0 1" "$(value input 20 2)" "0 1"
reads=1
MB --repeat 20 input 30 > "$WORK/repeat.out"
check_eq "20 reads on one connection, all answered" "$(grep -c '^ok .* 54321$' "$WORK/repeat.out")" 20
reads=$((reads + 20))
check_eq "read counter after 21 reads + this one" "$(value --type u32 input 20)" $((reads + 1))
reads=$((reads + 1))

# --- test pattern (REGISTERS.md) over RTU -------------------------------------
expect() {   # description expected type order table addr
    local got
    got=$(value --type "$3" --order "$4" "$5" "$6")
    reads=$((reads + 1))
    check_eq "$1" "$got" "$2"
}
expect "test.u16" 54321 u16 ABCD input 30
expect "test.i16" -12345 i16 ABCD input 31
expect "test.u32" 3000000000 u32 ABCD input 32
expect "test.i32 (CDAB)" -123456789 i32 CDAB input 34
expect "test.f32_badc" 3.1415927410125732 f32 BADC input 36
expect "test.f32_dcba" -0.0024999999441206455 f32 DCBA input 38
expect "test.f64_cdab" 1234.5678901234 f64 CDAB input 40
expect "test.scaled raw" 1234 i16 ABCD input 44
# The values above are decoded with the codec aldsim encoded them with; the
# words themselves, against REGISTERS.md, do not depend on it.
check_eq "the test pattern's raw words (input 30-44) as REGISTERS.md spells them" \
    "$(raw_words "$(MB input 30 15)")" "$TEST_PATTERN_WORDS"
reads=$((reads + 1))
expect "heater1.setpoint default (holding 0, f32)" 200 f32 ABCD holding 0
expect "ald.enable (coil 2)" 1 bool ABCD coil 2
check_eq "an address past the table: exception 2" "$(MB input 100 1 | cut -d' ' -f1-2)" "exception 2"
reads=$((reads + 1))

# --- unit ids -----------------------------------------------------------------
out=$("$BIN/mbclient" --rtu "$SIM_TTY_r" --unit 6 --timeout 200 input 20 2)
check_match "a request for unit 6 gets no answer" "$out" "^error .*timed out"
check_eq "... and the next request for unit 5 is answered (not swallowed)" \
    "$(value --type u32 input 20)" $((reads + 1))
reads=$((reads + 1))

# --- faults over RTU, switched at run time ------------------------------------
aldsim_fault r latency=150
check_match "latency: aldsim reports the new set" "$(tail -1 "$WORK/aldsim-r.log")" "^aldsim: faults: latency=150$"
ms=$(MB input 30 | awk '$1 == "ok" { print int($2) }')
reads=$((reads + 1))
check_ge "latency=150: the answer took >= 150 ms" "${ms:-0}" 150

aldsim_fault r exception=input:31:4 max_registers=4
check_eq "exception=input:31:4: input 31 gets exception 4" "$(MB input 31 1 | cut -d' ' -f1-2)" "exception 4"
check_eq "... input 30-31 touches it too" "$(MB input 30 2 | cut -d' ' -f1-2)" "exception 4"
check_eq "... input 32 does not" "$(value input 32 1)" 45776
check_eq "max_registers=4: 5 registers get exception 3" "$(MB input 40 5 | cut -d' ' -f1-2)" "exception 3"
check_eq "... 4 registers are answered" "$(value --type f64 --order CDAB input 40)" 1234.5678901234
reads=$((reads + 5))

aldsim_fault r silent
check_match "silent: no answer (timeout)" "$(MB --timeout 200 input 30)" "^error .*timed out"

aldsim_fault r drop_every=2
MB --timeout 200 --repeat 6 input 30 > "$WORK/drop.out"
check_eq "drop_every=2 on a serial line: every 2nd frame unanswered (ok/error pattern)" \
    "$(cut -d' ' -f1 "$WORK/drop.out" | tr '\n' ' ')" "ok error ok error ok error "
reads=$((reads + 3))

if aldsim_fault r latency=fast 2>"$WORK/bad.err"; then
    not_ok "a bad spec is refused"
else
    ok "a bad spec is refused"
fi
check_match "... with aldsim's message" "$(cat "$WORK/bad.err")" 'latency=fast.*faults unchanged'

aldsim_fault r
check_eq "no faults: read counter = every answered read + this one" "$(value --type u32 input 20)" $((reads + 1))
reads=$((reads + 1))

# --- summary, and the line going away -----------------------------------------
ald_stop_pid "$SIM_PID_r" aldsim-r
check_match "exit summary: served reads = answered reads" "$(cat "$WORK/aldsim-r.log")" \
    "served $reads read requests"
check_match "exit summary: faults applied" "$(cat "$WORK/aldsim-r.log")" \
    "faults applied: 1 answers delayed, 4 requests unanswered, 3 exceptions, 0 connections dropped, 0 refusals"

aldsim_start_rtu framing --baud 115200 --parity E --data-bits 7 --stop-bits 2
check_eq "--baud/--parity/--data-bits/--stop-bits: served with that framing" \
    "$("$BIN/mbclient" --rtu "$SIM_TTY_framing" --baud 115200 --parity E --data-bits 7 --stop-bits 2 input 30 | cut -d' ' -f1,3)" "ok 54321"
kill -TERM "$SIM_SOCAT_PID_framing"
wait_until 10 "aldsim to notice the line is gone" bash -c "! kill -0 $SIM_PID_framing 2>/dev/null"
wait "$SIM_PID_framing" 2>/dev/null; rc=$?
check_eq "the line hanging up stops aldsim with status 1" "$rc" 1
check_match "... saying so" "$(cat "$WORK/aldsim-framing.log")" "serial line /dev/pts/[0-9]+ hung up"

out=$("$BIN/aldsim" --rtu /nonexistent/tty 2>&1); rc=$?
check_eq "a serial device that cannot be opened: exit 1" "$rc" 1
check_match "... naming it" "$out" "cannot open /nonexistent/tty"

# --- aldsim_fault over TCP ----------------------------------------------------
aldsim_start t
check_match "aldsim_start gives every aldsim an (empty) fault file" "$(cat "$WORK/aldsim-t.log")" "^aldsim: faults: none$"
aldsim_fault t exception=holding:0-1:11
check_eq "TCP: exception=holding:0-1:11" \
    "$("$BIN/mbclient" --tcp "127.0.0.1:$SIM_PORT_t" holding 0 2 | cut -d' ' -f1-2)" "exception 11"
aldsim_fault t
check_eq "TCP: back to no faults" \
    "$("$BIN/mbclient" --tcp "127.0.0.1:$SIM_PORT_t" --type f32 holding 0 | cut -d' ' -f1,3)" "ok 200"

check_done sim_rtu
