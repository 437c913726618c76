-- 0009_stale.sql — the "stale" quality code (4) for values that stopped
-- changing.
--
-- A device whose controller hung while its Modbus stack goes on answering
-- serves the same registers for ever: every read succeeds, every value
-- looks good, and nobody can tell that the heater's "187.4 °C" is an hour
-- old. Measured signals are never exactly constant (noise), so a value
-- whose registers have not changed for stale_after_ms is stored with
-- quality 4 (stale), the value kept. NULL (the default): never stale, for
-- set points, counters and other values that are constant on purpose.
-- The recorder tracks the registers as read (before scale and offset); a
-- failed read starts the watch anew.
ALTER TABLE component_parameters
    ADD COLUMN stale_after_ms int CHECK (stale_after_ms > 0);

COMMENT ON COLUMN component_parameters.stale_after_ms IS
    'store the value with quality 4 (stale) once its registers have not changed for this long; NULL: never';
