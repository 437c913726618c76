#!/bin/bash
# demo.sh — `make demo`: record one simulated ALD run end to end.
#
# Starts a private PostgreSQL cluster and Redis on loopback (under build/run/
# demo, touching no system service), aldsim (the simulated reactor) and
# aldrecd; runs a short recipe through `aldrec process start/stop`; prints
# what was recorded, read back from PostgreSQL; stops everything it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap ald_cleanup EXIT

RECORD_S=${DEMO_SECONDS:-8}

ald_workdir demo
ald_log "starting PostgreSQL 15 and Redis on loopback (in $WORK)"
pg_start
redis_start
aldsim_start reactor --seed 42
ald_log "aldsim (simulated ALD reactor) on 127.0.0.1:$SIM_PORT_reactor"

CFG=$WORK/aldrec.conf
aldrecd_config "$CFG" recorder.id=demo-recorder recorder.batch_rows=500 recorder.flush_interval_ms=500
pg_migrate "$CFG"
demo_machine_load "$SIM_PORT_reactor" 100
ald_log "schema migrated; demo machine 'ald-demo' loaded (32 parameters at 10 Hz)"

aldrecd_start "$CFG"
ald_log "aldrecd running (pid $ALDRECD_PID); recipe: start, record ${RECORD_S}s, stop"

ALDREC="$BIN/aldrec --config $CFG"
PROC=$($ALDREC process start --recipe demo-al2o3 --lot DEMO-LOT-1)
ald_log "process $PROC started"
sleep "$RECORD_S"
$ALDREC process stop >&2
echo
$ALDREC status | sed 's/^/  /'
echo

cat <<EOF2
Process $PROC as recorded in PostgreSQL (read back with psql):

EOF2
psql -q -P footer=off "$ADMIN_DSN" -v proc="$PROC" <<'SQL'
SELECT p.id AS process, p.recipe, p.lot, p.status,
       to_char(p.ended_at - p.started_at, 'SS.MS') || ' s' AS duration,
       (SELECT count(*) FROM ingest_ledger l WHERE l.process_id = p.id) AS batches
FROM processes p WHERE p.id = :proc;

SELECT mc.name || '.' || cp.name AS parameter,
       cp.units,
       count(*)                                AS rows,
       round(min(d.value)::numeric, 4)         AS min,
       round(avg(d.value)::numeric, 4)         AS mean,
       round(max(d.value)::numeric, 4)         AS max,
       count(*) FILTER (WHERE d.quality <> 0)  AS bad_quality
FROM process_data_points d
JOIN component_parameters cp ON cp.id = d.parameter_id
JOIN machine_components mc ON mc.id = cp.component_id
WHERE d.process_id = :proc
GROUP BY mc.name, cp.name, cp.units
ORDER BY mc.name, cp.name;
SQL
ald_log "demo finished; stopping everything it started"
