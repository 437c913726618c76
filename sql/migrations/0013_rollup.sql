-- 0013_rollup.sql — the coarse copy of the process data that long views
-- read (a 10-hour run drawn whole by `aldrec web`): per process, parameter
-- and 10-second bucket (aligned to the Unix epoch), the samples' count, the
-- bad ones' count and time range, and the first, lowest, highest and last
-- good sample with their times. aldrecd writes these rows in the
-- transaction that stores the points (store/rollup.h), so they are stored
-- exactly once with them; a bucket whose samples arrive in several
-- transactions has a row from each (partial aggregates, merged by the
-- reader), so writing never updates a row. About one row per parameter
-- per batch: a tenth of the points' rows at 10 Hz with 1-second batches.
CREATE TABLE process_data_rollup (
    process_id   bigint      NOT NULL,
    parameter_id int         NOT NULL,
    bucket       timestamptz NOT NULL,
    samples      int         NOT NULL,
    bad          int         NOT NULL,   -- NULL value or quality <> 0
    first_ts     timestamptz,            -- good samples; NULL when none
    first_v      float8,
    min_ts       timestamptz,
    min_v        float8,
    max_ts       timestamptz,
    max_v        float8,
    last_ts      timestamptz,
    last_v       float8,
    bad_first    timestamptz,            -- the bad samples' first and last time
    bad_last     timestamptz
);
CREATE INDEX process_data_rollup_run ON process_data_rollup (process_id, parameter_id, bucket);

-- Whether a run's rollup rows are complete. `aldrec process start` sets it
-- for the runs it starts (its aldrecd, from the same package, stores every
-- batch with its rollup rows); it stays false for the runs already
-- recorded, for those started by a tool not yet upgraded (a site migrates
-- its historian before its tools) and for rows made another way: readers
-- draw those from the points, or from the rollup after
-- aldrec_rollup_rebuild().
ALTER TABLE processes ADD COLUMN rollup boolean NOT NULL DEFAULT false;

-- Rebuilds a run's rollup from its points (for rows that reached
-- process_data_points another way, or runs recorded before this migration)
-- and marks it complete. Returns the rows written.
--   SELECT aldrec_rollup_rebuild(4711);
CREATE FUNCTION aldrec_rollup_rebuild(run bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM process_data_rollup WHERE process_id = run;
    INSERT INTO process_data_rollup
    SELECT run, d.parameter_id, d.bucket, count(*)::int,
           count(*) FILTER (WHERE NOT d.good)::int,
           (array_agg(d.ts ORDER BY d.ts) FILTER (WHERE d.good))[1],
           (array_agg(d.value ORDER BY d.ts) FILTER (WHERE d.good))[1],
           (array_agg(d.ts ORDER BY d.value, d.ts) FILTER (WHERE d.good))[1],
           min(d.value) FILTER (WHERE d.good),
           (array_agg(d.ts ORDER BY d.value DESC, d.ts) FILTER (WHERE d.good))[1],
           max(d.value) FILTER (WHERE d.good),
           (array_agg(d.ts ORDER BY d.ts DESC) FILTER (WHERE d.good))[1],
           (array_agg(d.value ORDER BY d.ts DESC) FILTER (WHERE d.good))[1],
           min(d.ts) FILTER (WHERE NOT d.good),
           max(d.ts) FILTER (WHERE NOT d.good)
    FROM (SELECT p.parameter_id, p.ts, p.value,
                 p.value IS NOT NULL AND p.quality = 0 AS good,
                 'epoch'::timestamptz + floor(extract(epoch FROM p.ts) / 10) * interval '10 s' AS bucket
          FROM process_data_points p WHERE p.process_id = run) d
    GROUP BY d.parameter_id, d.bucket;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE processes SET rollup = true WHERE id = run;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION aldrec_rollup_rebuild(bigint) FROM PUBLIC;   -- the owner's
GRANT INSERT ON process_data_rollup TO aldrec_recorder;
GRANT SELECT ON process_data_rollup TO aldrec_reader;
