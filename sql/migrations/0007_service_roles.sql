-- 0007_service_roles.sql — least privilege for a service that runs for
-- months: an owner group for the schema, and the recorder and reader
-- group roles cut down to exactly what they use.
--
--   aldrec_owner     NOLOGIN group that owns every table, view, sequence
--                    and function of the schema (and the schema). The admin
--                    login (the one in [database] admin_conninfo, used by
--                    `aldrec db migrate` and `aldrec db maintain`) is made a
--                    member here:  GRANT aldrec_owner TO <admin login>;
--                    for a second admin login run that statement once. Later
--                    migrations run as aldrec_owner (SET ROLE, cmd_db.c), so
--                    what they create belongs to the group, not to a person.
--   aldrec_recorder  aldrecd and the recipe commands: read the machine
--                    description and its metadata version; open and close
--                    processes (INSERT, UPDATE of status and ended_at, SELECT
--                    for RETURNING and WHERE); append points, set-point
--                    events, step markers, gap records and ledger rows
--                    (INSERT only: a replayed batch is recognised by the
--                    ledger's primary key violating, no SELECT needed).
--                    No SELECT of recorded data, no UPDATE, DELETE, TRUNCATE,
--                    no DDL (no CREATE on the schema, no TEMP tables, owns
--                    nothing).
--   aldrec_reader    engineers: SELECT on everything (also on what the owner
--                    creates later), EXECUTE on the query functions (0006).
--
-- Applying it needs a superuser or a login that may create roles and owns
-- the database (ALTER SCHEMA public OWNER).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aldrec_owner') THEN
        CREATE ROLE aldrec_owner NOLOGIN;
    END IF;
END
$$;
GRANT aldrec_owner TO CURRENT_USER;

-- Every object of the schema to the owner group. Sequences that belong to
-- a column (serial, identity) follow their table.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS obj, c.relkind
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND NOT (c.relkind = 'S' AND EXISTS (
                   SELECT 1 FROM pg_depend d
                    WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass
                      AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO aldrec_owner',
                       CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                      WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                      ELSE 'TABLE' END, r.obj);
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure AS fn
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public'
         WHERE p.prokind = 'f'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.objid = p.oid AND d.deptype = 'e')   -- not an extension's
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO aldrec_owner', r.fn);
    END LOOP;
END
$$;
ALTER SCHEMA public OWNER TO aldrec_owner;

-- Partition maintenance creates and drops partitions as the owner group,
-- whichever admin login runs `aldrec db maintain` (EXECUTE stays revoked
-- from PUBLIC, 0006).
ALTER FUNCTION aldrec_partition_create(timestamptz, timestamptz, text)
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION aldrec_maintain(text, int, interval)
    SECURITY DEFINER SET search_path = public, pg_temp;

-- The recorder: start from nothing, grant what it uses.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM aldrec_recorder;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM aldrec_recorder;
GRANT USAGE ON SCHEMA public TO aldrec_recorder;
GRANT SELECT ON machines, machine_components, component_parameters, machine_metadata
    TO aldrec_recorder;
GRANT SELECT, INSERT ON processes TO aldrec_recorder;
GRANT UPDATE (status, ended_at) ON processes TO aldrec_recorder;
GRANT USAGE ON SEQUENCE processes_id_seq TO aldrec_recorder;
GRANT INSERT ON process_data_points, setpoint_events, process_steps, data_gaps, ingest_ledger
    TO aldrec_recorder;
-- Bumping metadata versions is the triggers' business (run as whoever
-- changed the metadata: the owner), nobody else's.
REVOKE EXECUTE ON FUNCTION aldrec_metadata_bump(int[]) FROM PUBLIC;
-- No temporary tables for anybody but the owner group.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO aldrec_owner', current_database());
END
$$;

-- Engineers read everything, now and later.
GRANT USAGE ON SCHEMA public TO aldrec_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO aldrec_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE aldrec_owner IN SCHEMA public
    GRANT SELECT ON TABLES TO aldrec_reader;
