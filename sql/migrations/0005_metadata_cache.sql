-- 0005_metadata_cache.sql — a per-machine metadata version for the
-- parameter cache (cache/pcache.c), bumped by triggers and announced with
-- NOTIFY; and the table of set-point events.
--
-- Invalidation contract:
--   * Every statement that changes machines, machine_components or
--     component_parameters sets machine_metadata.version of each machine it
--     touched to a fresh value of metadata_version_seq (so a version never
--     goes backwards, even for a machine deleted and created again) and
--     sends NOTIFY aldrec_metadata with the machine id as payload.
--   * The notification is delivered when (and only if) the transaction
--     commits; PostgreSQL folds identical notifications of one transaction
--     into one.
--   * The cache loads the version in the same query as the parameters
--     (one snapshot), so a map and its version always agree. A machine
--     without a row here has version 0.
--
-- The triggers are statement-level with transition tables: a bulk change
-- of 1,000 parameters bumps each machine once, not 1,000 times.

CREATE SEQUENCE metadata_version_seq AS bigint;

CREATE TABLE machine_metadata (
    machine_id int PRIMARY KEY REFERENCES machines(id) ON DELETE CASCADE,
    version    bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO machine_metadata (machine_id, version)
SELECT id, nextval('metadata_version_seq') FROM machines;

-- Bumps the version of the given machines and notifies listeners.
-- SECURITY DEFINER: whoever may change the metadata tables may bump their
-- versions without privileges on machine_metadata or the sequence.
CREATE FUNCTION aldrec_metadata_bump(machine_ids int[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    mid int;
BEGIN
    FOR mid IN SELECT DISTINCT u FROM unnest(machine_ids) u
               WHERE u IS NOT NULL AND EXISTS (SELECT 1 FROM machines WHERE id = u)
               ORDER BY 1
    LOOP
        INSERT INTO machine_metadata AS mm (machine_id, version, changed_at)
        VALUES (mid, nextval('metadata_version_seq'), now())
        ON CONFLICT (machine_id) DO UPDATE
            SET version = EXCLUDED.version, changed_at = EXCLUDED.changed_at;
        PERFORM pg_notify('aldrec_metadata', mid::text);
    END LOOP;
END
$$;

-- One function per table; TG_OP says which transition tables exist
-- (PL/pgSQL plans a statement only when it runs, so the branch that names
-- a missing transition table is never planned).
CREATE FUNCTION aldrec_machines_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM aldrec_metadata_bump(ARRAY(SELECT id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM aldrec_metadata_bump(ARRAY(SELECT id FROM new_rows));
    END IF;
    -- DELETE: machine_metadata goes with the machine (ON DELETE CASCADE);
    -- nobody can load a machine that no longer exists.
    RETURN NULL;
END
$$;

CREATE FUNCTION aldrec_components_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM aldrec_metadata_bump(ARRAY(SELECT machine_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM aldrec_metadata_bump(ARRAY(SELECT machine_id FROM new_rows
                                           UNION SELECT machine_id FROM old_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM aldrec_metadata_bump(ARRAY(SELECT machine_id FROM old_rows));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION aldrec_parameters_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM aldrec_metadata_bump(ARRAY(
            SELECT mc.machine_id FROM new_rows n JOIN machine_components mc ON mc.id = n.component_id));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM aldrec_metadata_bump(ARRAY(
            SELECT mc.machine_id FROM new_rows n JOIN machine_components mc ON mc.id = n.component_id
            UNION
            SELECT mc.machine_id FROM old_rows o JOIN machine_components mc ON mc.id = o.component_id));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM aldrec_metadata_bump(ARRAY(
            SELECT mc.machine_id FROM old_rows o JOIN machine_components mc ON mc.id = o.component_id));
    END IF;
    RETURN NULL;
END
$$;

-- Transition tables allow one event per trigger: three triggers per table.
CREATE TRIGGER machines_metadata_ins AFTER INSERT ON machines
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_machines_changed();
CREATE TRIGGER machines_metadata_upd AFTER UPDATE ON machines
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_machines_changed();

CREATE TRIGGER components_metadata_ins AFTER INSERT ON machine_components
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_components_changed();
CREATE TRIGGER components_metadata_upd AFTER UPDATE ON machine_components
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_components_changed();
CREATE TRIGGER components_metadata_del AFTER DELETE ON machine_components
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_components_changed();

CREATE TRIGGER parameters_metadata_ins AFTER INSERT ON component_parameters
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_parameters_changed();
CREATE TRIGGER parameters_metadata_upd AFTER UPDATE ON component_parameters
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_parameters_changed();
CREATE TRIGGER parameters_metadata_del AFTER DELETE ON component_parameters
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aldrec_parameters_changed();

-- Set points changed by `aldrec set`, recorded through aldrecd's spool
-- (record kind 2 EVENTS). COPY columns, in this order: process_id,
-- parameter_id, ts, requested, readback, quality, requested_by.
-- process_id is NULL when no process was being recorded; readback is NULL
-- when the read-back failed (quality says why, codes as for data points).
CREATE TABLE setpoint_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    process_id   bigint,
    parameter_id int         NOT NULL,
    ts           timestamptz NOT NULL,
    requested    float8      NOT NULL,
    readback     float8,
    quality      smallint    NOT NULL CHECK (quality >= 0),
    requested_by text        NOT NULL
);
CREATE INDEX setpoint_events_process_ts ON setpoint_events (process_id, ts);
CREATE INDEX setpoint_events_param_ts ON setpoint_events (parameter_id, ts);

GRANT SELECT ON machine_metadata TO aldrec_recorder, aldrec_reader;
GRANT INSERT ON setpoint_events TO aldrec_recorder;
GRANT SELECT ON setpoint_events TO aldrec_reader;
