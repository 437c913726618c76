# bench4.sh — the reference machine of the acquisition benchmarks
# (tests/bench/bench_acq.sh, soak.sh): machine bench4, four aldsim devices
# d1..d4, 100 parameters each — 10 coils, 10 discrete inputs, 30 holding
# f32, 50 input u16 in two runs (0-39, 60-69) split by a 20-register gap.
# Sourced after scripts/lib.sh, with PostgreSQL up and migrated.

# bench4_machine POLL_MS — starts the devices and describes the machine.
bench4_machine() {
    local poll_ms=$1 d
    for d in 1 2 3 4; do
        aldsim_start "d$d" --seed "$d"
    done
    psql -q -v ON_ERROR_STOP=1 "$ADMIN_DSN" >/dev/null <<SQL
INSERT INTO machines (name) VALUES ('bench4');
INSERT INTO machine_components (machine_id, name, host, port)
SELECT m.id, 'dev' || d, '127.0.0.1', p
  FROM machines m, (VALUES (1, $SIM_PORT_d1), (2, $SIM_PORT_d2), (3, $SIM_PORT_d3),
                           (4, $SIM_PORT_d4)) AS v(d, p)
 WHERE m.name = 'bench4';
INSERT INTO component_parameters (component_id, name, register_type, address, data_type, poll_interval_ms)
SELECT mc.id, t.name || a, t.tab, t.base + a * t.step, t.typ, $poll_ms
  FROM machine_components mc
  JOIN machines m ON m.id = mc.machine_id AND m.name = 'bench4'
 CROSS JOIN (VALUES ('c', 'coil', 'bool', 0, 1, 10), ('d', 'discrete', 'bool', 0, 1, 10),
                    ('h', 'holding', 'f32', 10, 2, 30), ('i', 'input', 'u16', 0, 1, 40),
                    ('j', 'input', 'u16', 60, 1, 10)) AS t(name, tab, typ, base, step, n)
 CROSS JOIN generate_series(0, 99) AS a
 WHERE a < t.n;
SQL
}
