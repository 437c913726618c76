-- 0003_acquisition.sql — per-device Modbus settings and per-parameter
-- on-change recording.
--
-- A device is what the recorder opens one connection to: for TCP the
-- (host, port, unit_id) of a component, for RTU the (serial_port, unit_id).
-- Several components may share a device (a gateway, a multi-channel
-- controller); their settings must then agree, and where they do not the
-- recorder uses the most conservative value and says so.
--
-- NULL in any setting means "the recorder's [modbus] default".

ALTER TABLE machine_components
    ADD COLUMN transport text NOT NULL DEFAULT 'tcp'
        CHECK (transport IN ('tcp', 'rtu')),
    -- RTU: the serial line and its framing
    ADD COLUMN serial_port text,
    ADD COLUMN baud int CHECK (baud BETWEEN 300 AND 921600),
    ADD COLUMN parity text CHECK (parity IN ('N', 'E', 'O')),
    ADD COLUMN data_bits smallint CHECK (data_bits IN (7, 8)),
    ADD COLUMN stop_bits smallint CHECK (stop_bits IN (1, 2)),
    -- what the device accepts per request, and how requests are planned
    ADD COLUMN max_registers int CHECK (max_registers BETWEEN 1 AND 125),
    ADD COLUMN max_bits int CHECK (max_bits BETWEEN 1 AND 2000),
    ADD COLUMN max_gap int CHECK (max_gap BETWEEN 0 AND 125),
    -- address ranges a request must never touch, even to bridge a gap
    -- (devices that fault on unmapped registers), e.g.
    -- 'holding:16-19,input:26-29,coil:5'
    ADD COLUMN no_bridge text,
    ADD COLUMN response_timeout_ms int CHECK (response_timeout_ms BETWEEN 10 AND 60000),
    ADD CONSTRAINT machine_components_rtu_has_port
        CHECK (transport <> 'rtu' OR serial_port IS NOT NULL);

-- TCP components keep host/port; an RTU component has no host.
ALTER TABLE machine_components ALTER COLUMN host DROP NOT NULL;
ALTER TABLE machine_components
    ADD CONSTRAINT machine_components_tcp_has_host
        CHECK (transport <> 'tcp' OR host IS NOT NULL);

-- On-change recording: with a deadband, a value is stored when it differs
-- from the last stored one by more than deadband (engineering units), when
-- its quality changes, or when max_interval_ms has passed since the last
-- stored one (so a flat signal still shows it was alive). NULL deadband:
-- every poll is stored.
ALTER TABLE component_parameters
    ADD COLUMN deadband float8 CHECK (deadband >= 0),
    ADD COLUMN max_interval_ms int CHECK (max_interval_ms > 0);
