#!/bin/bash
# setup.sh — install the Debian packages aldrec needs to build, demo and
# test; does nothing (and needs no network) when they are all present.
set -euo pipefail

PKGS=(
    build-essential pkg-config            # compiler, make, pkg-config
    libpq-dev libmodbus-dev libsqlite3-dev libhiredis-dev
    libmicrohttpd-dev libsystemd-dev      # metrics/health HTTP endpoint; sd_notify
    systemd                               # systemd-analyze verify of dist/aldrecd.service
    postgresql postgresql-contrib         # server for demo/tests (pg_stat_statements)
    redis-server                          # L2 metadata cache
    openssl                               # the TLS tests' private CA (db_tls)
    pgbouncer                             # connection pooling test (db_pgbouncer)
    socat                                 # serial pty pairs for Modbus RTU tests
    strace                                # the line framing aldrec and aldrecd ask for (acq_rtu_get)
    clang libclang-rt-14-dev              # libFuzzer targets (the fuzzer and sanitizer
                                          # runtimes are in libclang-rt-14-dev, only
                                          # recommended by clang)
    python3                               # query tests parse the SVG, JSON and CSV they get
    valgrind                              # make valgrind
    mandoc                                # mandoc -Tlint of dist/man/ (tests/check/man.sh)
    chromium fonts-dejavu-core            # the web pages' browser tests (headless Chromium)
    curl                                  # the web API's tests
    collectd-core                         # make soak's reference: collectd's modbus plugin
                                          # on the same devices (run by the soak, in the
                                          # foreground with its own config)
)
# npm ci of package-lock.json (uPlot; playwright-core): Debian's nodejs
# and npm, unless a node with npm is installed already (e.g. NodeSource's
# nodejs, which ships npm and conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || PKGS+=(nodejs npm)

# The npm packages pinned in package-lock.json: the charting library the
# pages serve from aldrec's own files, and the browser tests' driver
# (playwright-core drives Debian's chromium; it downloads no browser).
npm_ci() {
    cd "$(dirname "$0")/.."
    if [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        echo "setup: npm ci (package-lock.json)"
        npm ci --no-audit --no-fund --loglevel=error >/dev/null
    fi
}

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then npm_ci; exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run 'make setup' as root, or: apt-get install ${missing[*]}" >&2
    exit 1
fi

# The project runs its own private clusters; don't let the package create
# and start a system-wide one on port 5432.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
npm_ci
echo "setup: done"
