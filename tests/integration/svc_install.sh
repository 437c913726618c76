#!/bin/bash
# svc_install.sh — make install: the layout a Debian admin expects under
# DESTDIR (binaries, unit, sysusers/tmpfiles snippets, default config that
# is never overwritten, SQL, README), the unit passing
# `systemd-analyze verify`, and binaries built for a PREFIX finding their
# migrations there.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$ALD_ROOT/tests/lib/check.sh"
trap ald_cleanup EXIT

ald_workdir it-svc-install
ROOT=$WORK/root
mk() { make -s -C "$ALD_ROOT" --no-print-directory "$@"; }

mode() { stat -c %a "$1" 2>/dev/null; }
mk install DESTDIR="$ROOT" BUILD="${BUILD:-build}" >"$WORK/install.log" 2>&1
check_eq "make install DESTDIR=... succeeds" "$?" 0
check_eq "aldrec in PREFIX/bin, 0755" "$(mode "$ROOT/usr/local/bin/aldrec")" 755
check_eq "aldrec-full in PREFIX/libexec/aldrec, 0755" "$(mode "$ROOT/usr/local/libexec/aldrec/aldrec-full")" 755
check_eq "the front aldrec needs no package library (no libpq)" \
    "$(ldd "$ROOT/usr/local/bin/aldrec" | grep -cE 'libpq|libmodbus|libsqlite3|libhiredis|libmicrohttpd')" 0
out=$(LD_DEBUG=libs "$ROOT/usr/local/bin/aldrec" --config "$ROOT/etc/aldrec/aldrec.conf" status 2>&1)
check_match "... reads the shipped config and asks aldrecd (aldrec status)" "$out" "aldrec: .*aldrecd"
check_eq "... without loading libpq for its conninfo check" \
    "$(grep -c 'calling init: .*libpq' <<<"$out")" 0
check_eq "aldrecd in PREFIX/sbin, 0755" "$(mode "$ROOT/usr/local/sbin/aldrecd")" 755
check_eq "the unit in PREFIX/lib/systemd/system" "$(mode "$ROOT/usr/local/lib/systemd/system/aldrecd.service")" 644
check_eq "sysusers.d snippet" "$(mode "$ROOT/usr/local/lib/sysusers.d/aldrec.conf")" 644
check_eq "tmpfiles.d snippet" "$(mode "$ROOT/usr/local/lib/tmpfiles.d/aldrec.conf")" 644
check_eq "config directory /etc/aldrec, 0750" "$(mode "$ROOT/etc/aldrec")" 750
check_eq "default config /etc/aldrec/aldrec.conf, 0640" "$(mode "$ROOT/etc/aldrec/aldrec.conf")" 640
check_eq "every migration in PREFIX/share/aldrec/sql/migrations" \
    "$(ls "$ROOT/usr/local/share/aldrec/sql/migrations" | tr '\n' ' ')" \
    "$(ls "$ALD_ROOT/sql/migrations" | tr '\n' ' ')"
check "README in PREFIX/share/doc/aldrec" test -s "$ROOT/usr/local/share/doc/aldrec/README.md"
check_eq "the shipped config is the installed one" \
    "$(cmp -s "$ALD_ROOT/dist/aldrec.conf" "$ROOT/etc/aldrec/aldrec.conf" && echo same)" same
# Every key it lists, set or commented out with its default, is one aldrecd
# knows and the default shown is valid: uncommented (and with this
# machine's paths and group for the site-specific ones), aldrecd
# --check-config accepts the file and counts every line as a key set.
CONF=$ROOT/etc/aldrec/aldrec.conf
NKEYS=$(grep -cE '^#?[a-z_]+ = ' "$CONF")
sed -E 's/^#([a-z_]+ = )/\1/' "$CONF" | sed -E \
    -e "s|^socket = .*|socket = $WORK/aldrecd.sock|" -e "s|^socket_group = .*|socket_group = $(id -gn)|" \
    -e "s|^snapshot = .*|snapshot = $WORK/pmap-snapshot.db|" -e "s|^path = .*|path = $WORK/spool.db|" \
    -e "s|^redis_password_file = .*|redis_password_file = $WORK/redis.pw|" > "$WORK/all-keys.conf"
( umask 077; echo pw > "$WORK/redis.pw" )
chmod 640 "$WORK/all-keys.conf"
out=$("$ROOT/usr/local/sbin/aldrecd" --check-config "$WORK/all-keys.conf" 2>&1); rc=$?
check_eq "... and every key it lists, uncommented, passes aldrecd --check-config (exit status)" "$rc" 0
check_match "... counted as set, all $NKEYS of them" "$out" "^$WORK/all-keys.conf: ok: .*, $NKEYS keys set, "

# An existing config is never overwritten.
echo "# site change" >> "$ROOT/etc/aldrec/aldrec.conf"
mk install DESTDIR="$ROOT" BUILD="${BUILD:-build}" >"$WORK/install2.log" 2>&1
check_eq "a second install keeps the site's config" "$(tail -1 "$ROOT/etc/aldrec/aldrec.conf")" "# site change"
check "... and puts the new default next to it" test -s "$ROOT/etc/aldrec/aldrec.conf.dist"
check_match "... saying so" "$(cat "$WORK/install2.log")" "kept .*aldrec.conf; the shipped default is aldrec.conf.dist"

# The unit.
UNIT=$ROOT/usr/local/lib/systemd/system/aldrecd.service
for want in '^Type=notify$' '^WatchdogSec=' '^Restart=on-failure$' '^User=aldrec$' '^Group=aldrec$' \
    '^ProtectSystem=strict$' '^ProtectHome=yes$' '^PrivateTmp=yes$' '^NoNewPrivileges=yes$' \
    '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$' '^RuntimeDirectory=aldrec$' \
    '^StateDirectory=aldrec$' '^ReadWritePaths=/var/lib/aldrec$' '^CapabilityBoundingSet=$' \
    '^ExecStart=/usr/local/sbin/aldrecd --config /etc/aldrec/aldrec.conf$' \
    '^ExecReload=/bin/kill -HUP \$MAINPID$'; do
    check "unit has $want" grep -q "$want" "$UNIT"
done
# systemd-analyze verify checks that ExecStart's binary exists: point it
# at the staged copy (systemd itself needs not run).
sed "s|/usr/local/sbin/|$ROOT/usr/local/sbin/|g" "$UNIT" > "$WORK/aldrecd.service"
out=$(systemd-analyze verify "$WORK/aldrecd.service" 2>&1); rc=$?
check_eq "systemd-analyze verify passes on the unit" "$rc" 0
check_eq "... without a single complaint" "$out" ""
mkdir -p "$WORK/bad"
sed 's|^ProtectSystem=strict|ProtectSystem=stricter|' "$WORK/aldrecd.service" > "$WORK/bad/aldrecd.service"
out=$(systemd-analyze verify "$WORK/bad/aldrecd.service" 2>&1)
check_match "... and it does complain about a broken copy" "$out" "protect system value.*stricter"
out=$(systemd-analyze verify "$UNIT" 2>&1)
check_match "... or one whose binary is missing" "$out" "is not executable"
# aldrec web's unit: installed beside it, the same hardening, verified.
WUNIT=$ROOT/usr/local/lib/systemd/system/aldrec-web.service
for want in '^User=aldrec$' '^ProtectSystem=strict$' '^PrivateDevices=yes$' '^NoNewPrivileges=yes$' \
    '^CapabilityBoundingSet=$' '^ExecStart=/usr/local/bin/aldrec --config /etc/aldrec/aldrec.conf web$'; do
    check "aldrec-web.service has $want" grep -q "$want" "$WUNIT"
done
sed "s|/usr/local/bin/|$ROOT/usr/local/bin/|g" "$WUNIT" > "$WORK/aldrec-web.service"
out=$(systemd-analyze verify "$WORK/aldrec-web.service" 2>&1); rc=$?
check_eq "systemd-analyze verify passes on aldrec-web.service, without a complaint" "$rc $out" "0 "

# Binaries built for a PREFIX find their migrations there.
P=$WORK/prefix
mk install BUILD="$WORK/build-prefix" PREFIX="$P" SYSCONFDIR="$P/etc" SETUP_SYSTEM=no \
    >"$WORK/install3.log" 2>&1
check_eq "make install PREFIX=... (a build of its own)" "$?" 0
check_match "aldrec's default config follows SYSCONFDIR" "$("$P/bin/aldrec" --help)" "then $P/etc/aldrec/aldrec.conf"
pg_start
cat > "$P/share/aldrec/sql/migrations/9999_marker.sql" <<'SQL'
CREATE TABLE install_marker (x int);
SQL
aldrecd_config "$WORK/a.conf"
out=$(env -u ALDREC_SQLDIR "$P/bin/aldrec" --config "$WORK/a.conf" db migrate 2>&1)
check_match "aldrec db migrate applies the migrations installed under PREFIX" "$out" "applied 9999_marker.sql"
check_eq "... all of them" "$(grep -c '^applied' <<<"$out")" "$(ls "$P/share/aldrec/sql/migrations" | wc -l)"
check_eq "... into the database" "$(q "SELECT count(*) FROM install_marker")" 0

check_done svc_install
