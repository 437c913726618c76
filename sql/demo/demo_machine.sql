-- demo_machine.sql — the demo machine "ald-demo", matching aldsim's register
-- map (firmware/REGISTERS.md) parameter for parameter.
--
-- Not a migration: production databases never get a demo machine. Load with
--   psql -v sim_host=127.0.0.1 -v sim_port=1502 -v poll_ms=100 -f demo_machine.sql
-- Idempotent: re-running it updates the endpoint and the parameter rows.

\set ON_ERROR_STOP on
BEGIN;

INSERT INTO machines (name, description)
VALUES ('ald-demo', 'Simulated thermal ALD reactor (aldsim)')
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description;

CREATE TEMP TABLE demo_components (name text, kind text) ON COMMIT DROP;
INSERT INTO demo_components VALUES
    ('chamber',     'pressure gauge'),
    ('heater1',     'heater zone'),
    ('heater2',     'heater zone'),
    ('mfc_carrier', 'mass-flow controller (N2 carrier)'),
    ('mfc_tma',     'mass-flow controller (TMA precursor)'),
    ('mfc_h2o',     'mass-flow controller (H2O precursor)'),
    ('valve_tma',   'ALD pulse valve'),
    ('valve_h2o',   'ALD pulse valve'),
    ('ald',         'ALD cycle sequencer'),
    ('system',      'controller diagnostics'),
    ('test',        'test pattern (constant registers)');

INSERT INTO machine_components (machine_id, name, kind, host, port, unit_id, is_activated)
SELECT m.id, c.name, c.kind, :'sim_host', :sim_port, 1, true
FROM machines m CROSS JOIN demo_components c
WHERE m.name = 'ald-demo'
ON CONFLICT (machine_id, name) DO UPDATE
    SET kind = EXCLUDED.kind, host = EXCLUDED.host, port = EXCLUDED.port,
        unit_id = EXCLUDED.unit_id, is_activated = true;

CREATE TEMP TABLE demo_params (
    component text, name text, units text, register_type text, address int,
    data_type text, word_order text, scale float8, value_offset float8,
    min_value float8, max_value float8, set_value float8, is_writable boolean
) ON COMMIT DROP;

--                  component      name            units    table       addr type   order   scale  offset  min    max     set    writable
INSERT INTO demo_params VALUES
    ('chamber',     'pressure',     'Torr',  'input',    0,  'f32', 'ABCD', 1,    0,      0,     10,     NULL,  false),
    ('heater1',     'setpoint',     'degC',  'holding',  0,  'f32', 'ABCD', 1,    0,      0,     400,    200,   true),
    ('heater1',     'temperature',  'degC',  'input',    2,  'f32', 'ABCD', 1,    0,      0,     400,    NULL,  false),
    ('heater1',     'power',        '%',     'input',    5,  'i16', 'ABCD', 0.1,  0,      0,     100,    NULL,  false),
    ('heater1',     'at_setpoint',  '',      'discrete', 0,  'bool','ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('heater2',     'setpoint',     'degC',  'holding',  2,  'f32', 'CDAB', 1,    0,      0,     400,    150,   true),
    ('heater2',     'temperature',  'degC',  'input',    4,  'i16', 'ABCD', 0.1,  0,      0,     400,    NULL,  false),
    ('heater2',     'at_setpoint',  '',      'discrete', 1,  'bool','ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('mfc_carrier', 'setpoint',     'sccm',  'holding',  4,  'f32', 'ABCD', 1,    0,      0,     500,    100,   true),
    ('mfc_carrier', 'flow',         'sccm',  'input',    6,  'f32', 'CDAB', 1,    0,      0,     500,    NULL,  false),
    ('mfc_tma',     'setpoint',     'sccm',  'holding',  6,  'u16', 'ABCD', 0.1,  0,      0,     50,     20,    true),
    ('mfc_tma',     'flow',         'sccm',  'input',    8,  'u16', 'ABCD', 0.1,  0,      0,     50,     NULL,  false),
    ('mfc_h2o',     'setpoint',     'sccm',  'holding',  7,  'u16', 'ABCD', 0.1,  0,      0,     50,     30,    true),
    ('mfc_h2o',     'flow',         'sccm',  'input',    9,  'u16', 'ABCD', 0.1,  0,      0,     50,     NULL,  false),
    ('valve_tma',   'open',         '',      'coil',     0,  'bool','ABCD', 1,    0,      NULL,  NULL,   NULL,  true),
    ('valve_h2o',   'open',         '',      'coil',     1,  'bool','ABCD', 1,    0,      NULL,  NULL,   NULL,  true),
    ('ald',         'enable',       '',      'coil',     2,  'bool','ABCD', 1,    0,      NULL,  NULL,   1,     true),
    ('ald',         'pulse_ms',     'ms',    'holding',  8,  'u16', 'ABCD', 1,    0,      1,     5000,   50,    true),
    ('ald',         'purge_ms',     'ms',    'holding',  9,  'u16', 'ABCD', 1,    0,      1,     60000,  200,   true),
    ('ald',         'pulses_tma',   'count', 'input',    10, 'u32', 'CDAB', 1,    0,      NULL,  NULL,   NULL,  false),
    ('ald',         'pulses_h2o',   'count', 'input',    12, 'u32', 'ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('ald',         'cycles',       'count', 'input',    14, 'u32', 'DCBA', 1,    0,      NULL,  NULL,   NULL,  false),
    ('system',      'read_counter', 'count', 'input',    20, 'u32', 'ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('system',      'uptime',       's',     'input',    22, 'f64', 'ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'u16',          '',      'input',    30, 'u16', 'ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'i16',          '',      'input',    31, 'i16', 'ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'u32',          '',      'input',    32, 'u32', 'ABCD', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'i32',          '',      'input',    34, 'i32', 'CDAB', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'f32_badc',     '',      'input',    36, 'f32', 'BADC', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'f32_dcba',     '',      'input',    38, 'f32', 'DCBA', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'f64_cdab',     '',      'input',    40, 'f64', 'CDAB', 1,    0,      NULL,  NULL,   NULL,  false),
    ('test',        'scaled',       '',      'input',    44, 'i16', 'ABCD', 0.01, -50,    NULL,  NULL,   NULL,  false);

INSERT INTO component_parameters
    (component_id, name, units, register_type, address, data_type, word_order,
     scale, value_offset, min_value, max_value, set_value, is_writable,
     is_active, poll_interval_ms)
SELECT mc.id, p.name, p.units, p.register_type, p.address, p.data_type,
       p.word_order, p.scale, p.value_offset, p.min_value, p.max_value,
       p.set_value, p.is_writable, true, :poll_ms
FROM demo_params p
JOIN machine_components mc ON mc.name = p.component
JOIN machines m ON m.id = mc.machine_id AND m.name = 'ald-demo'
ON CONFLICT (component_id, name) DO UPDATE
    SET units = EXCLUDED.units, register_type = EXCLUDED.register_type,
        address = EXCLUDED.address, data_type = EXCLUDED.data_type,
        word_order = EXCLUDED.word_order, scale = EXCLUDED.scale,
        value_offset = EXCLUDED.value_offset, min_value = EXCLUDED.min_value,
        max_value = EXCLUDED.max_value, set_value = EXCLUDED.set_value,
        is_writable = EXCLUDED.is_writable, is_active = true,
        poll_interval_ms = EXCLUDED.poll_interval_ms;

COMMIT;
