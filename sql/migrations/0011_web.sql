-- 0011_web.sql — what the compare page of `aldrec web` reads: runs
-- aligned at the start of a step (or of the process), and the envelope of
-- a set of reference runs.

-- One run's series of one parameter, bucketed and aligned: offset_s is the
-- bucket's start in seconds since the start of step `step` of the run (the
-- process start when step is NULL), mean the mean of its good samples.
-- Rows up to the step's end (the process end when step is NULL).
--   SELECT * FROM aligned_series(4711, 3, 12, '1 second');
CREATE FUNCTION aligned_series(run bigint, step int, param int, bucket interval DEFAULT '1 second')
RETURNS TABLE (offset_s float8, samples bigint, min float8, mean float8, max float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
BEGIN
    IF step IS NULL THEN
        SELECT p.started_at, coalesce(p.ended_at, 'infinity') INTO t0, t1
          FROM processes p WHERE p.id = run;
    ELSE
        SELECT s.started_at, coalesce(s.ended_at, 'infinity') INTO t0, t1
          FROM process_step_spans s WHERE s.process_id = run AND s.step_no = step;
    END IF;
    IF t0 IS NULL THEN
        RAISE EXCEPTION 'process % has no step %', run, step;
    END IF;
    RETURN QUERY
    SELECT extract(epoch FROM date_bin(bucket, d.ts, t0) - t0)::float8,
           count(*), min(d.value), avg(d.value) FILTER (WHERE d.quality = 0), max(d.value)
    FROM process_data_points d
    WHERE d.process_id = run AND d.parameter_id = param AND d.ts >= t0 AND d.ts < t1
    GROUP BY 1 ORDER BY 1;
END
$$;

-- The envelope of reference runs: per aligned bucket, the mean and the
-- sample standard deviation of the runs' bucket means, and mean ± k·σ.
-- Buckets that fewer than two runs reach have no σ (NULL bounds).
--   SELECT * FROM run_envelope(ARRAY[4701, 4702, 4703], 3, 12, '1 second', 3);
CREATE FUNCTION run_envelope(runs bigint[], step int, param int, bucket interval, k float8)
RETURNS TABLE (offset_s float8, n int, mean float8, sd float8, lo float8, hi float8)
LANGUAGE sql STABLE AS $$
    SELECT a.offset_s, count(*)::int, avg(a.mean), stddev_samp(a.mean),
           avg(a.mean) - k * stddev_samp(a.mean), avg(a.mean) + k * stddev_samp(a.mean)
    FROM unnest(runs) AS r(id), aligned_series(r.id, step, param, bucket) a
    WHERE a.mean IS NOT NULL
    GROUP BY a.offset_s ORDER BY a.offset_s
$$;

GRANT EXECUTE ON FUNCTION aligned_series(bigint, int, int, interval),
                          run_envelope(bigint[], int, int, interval, float8)
    TO aldrec_reader;
