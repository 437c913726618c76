-- 0002_roles.sql — least-privilege group roles.
--
--   aldrec_recorder  what aldrecd and the aldrec CLI need: read the machine
--                    description, open/close processes, append data points
--                    and ledger rows. No UPDATE/DELETE on recorded data.
--   aldrec_reader    engineers: read everything, change nothing.
--
-- Both are NOLOGIN; a deployment creates login roles that are members
-- (see scripts/pgcluster.sh), with passwords kept in a passfile, never in a
-- config file's conninfo or on a command line.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aldrec_recorder') THEN
        CREATE ROLE aldrec_recorder NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aldrec_reader') THEN
        CREATE ROLE aldrec_reader NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO aldrec_recorder, aldrec_reader;

GRANT SELECT ON machines, machine_components, component_parameters
    TO aldrec_recorder;
GRANT SELECT, INSERT ON processes TO aldrec_recorder;
GRANT UPDATE (ended_at, status) ON processes TO aldrec_recorder;
GRANT USAGE ON SEQUENCE processes_id_seq TO aldrec_recorder;
GRANT INSERT ON process_data_points TO aldrec_recorder;
GRANT SELECT, INSERT ON ingest_ledger TO aldrec_recorder;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO aldrec_reader;
