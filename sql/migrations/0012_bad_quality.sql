-- 0012_bad_quality.sql — counting a run's bad-quality samples without
-- reading the run: a partial index holds only the samples whose quality is
-- not good (a device timeout, a stale or out-of-range value), which are
-- few, so it costs the writer next to nothing, and the runs list of
-- `aldrec web` counts them per run with an index-only scan.
--   SELECT count(*) FROM process_data_points WHERE process_id = 4711 AND quality <> 0;
CREATE INDEX process_data_points_bad ON process_data_points (process_id)
    WHERE quality <> 0;
