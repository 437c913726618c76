-- 0006_queries.sql — the read side: recipe step markers, time partitions of
-- process_data_points with retention, and views/functions engineers (role
-- aldrec_reader) use from psql, Grafana, Python or `aldrec export|summary|
-- plot`.
--
-- Contents
--   1. process_steps + view process_step_spans (a step ends where the next
--      one starts, or at the end of the process)
--   2. process_data_points becomes a partitioned table (RANGE on ts); the
--      existing table is kept, with its rows and indexes, as the partition
--      process_data_points_legacy; a DEFAULT partition catches rows no
--      partition covers, so ingest never fails for lack of a partition
--   3. partition maintenance: aldrec_partition_create(), aldrec_maintain()
--      (admin only; run by `aldrec db maintain`)
--   4. views: parameter_names, process_runs
--   5. functions: series_bucketed(), process_summary(), compare_runs()
--   6. grants
--
-- Times: every boundary is computed in UTC, whatever the session's TimeZone.

--------------------------------------------------------------------------
-- 1. step markers
--------------------------------------------------------------------------

-- One row per recipe step, written by the recorder (spool record kind 3,
-- COPY columns process_id, step_no, name, started_at). started_at comes
-- from the controller's clock, like the samples' ts, so steps and samples
-- line up. A step number identifies one step of a run; a recipe that loops
-- numbers its iterations.
CREATE TABLE process_steps (
    process_id bigint      NOT NULL,
    step_no    int         NOT NULL CHECK (step_no >= 0),
    name       text        NOT NULL CHECK (name <> ''),
    started_at timestamptz NOT NULL,
    PRIMARY KEY (process_id, step_no)
);
CREATE INDEX process_steps_process_started ON process_steps (process_id, started_at);

-- Steps with their end: the next step's start (in time order), else the
-- process end (NULL while the process is still running).
CREATE VIEW process_step_spans AS
SELECT s.process_id, s.step_no, s.name, s.started_at,
       coalesce(lead(s.started_at) OVER w, p.ended_at) AS ended_at
FROM process_steps s
JOIN processes p ON p.id = s.process_id
WINDOW w AS (PARTITION BY s.process_id ORDER BY s.started_at, s.step_no);

--------------------------------------------------------------------------
-- 2. partitioning process_data_points
--------------------------------------------------------------------------

-- The old table keeps its rows and its indexes and becomes the partition
-- [MINVALUE, B) where B is the next UTC midnight after its newest row (an
-- empty old table is simply dropped). Its indexes are renamed so that the
-- partitioned table's indexes take the names the rest of the code knows;
-- ATTACH PARTITION adopts matching indexes instead of building new ones.
ALTER TABLE process_data_points RENAME TO process_data_points_legacy;
ALTER INDEX process_data_points_process_param_ts RENAME TO process_data_points_legacy_process_param_ts;
ALTER INDEX process_data_points_param_ts RENAME TO process_data_points_legacy_param_ts;
ALTER INDEX process_data_points_ts_brin RENAME TO process_data_points_legacy_ts_brin;

CREATE TABLE process_data_points (
    process_id   bigint      NOT NULL,
    parameter_id int         NOT NULL,
    ts           timestamptz NOT NULL,
    value        float8,
    quality      smallint    NOT NULL
                 CONSTRAINT process_data_points_quality_check CHECK (quality >= 0)
) PARTITION BY RANGE (ts);

-- Same indexes as 0001 (see there for the questions they answer). The
-- unique index contains the partition key ts, so it is enforced across
-- partitions: no sample can be stored twice, whatever partition it lands in.
CREATE UNIQUE INDEX process_data_points_process_param_ts
    ON process_data_points (process_id, parameter_id, ts) INCLUDE (value, quality);
CREATE INDEX process_data_points_param_ts
    ON process_data_points (parameter_id, ts) INCLUDE (value, quality);
CREATE INDEX process_data_points_ts_brin
    ON process_data_points USING brin (ts);

DO $$
DECLARE
    b timestamptz;
BEGIN
    SELECT (date_trunc('day', max(ts) AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
      INTO b FROM process_data_points_legacy;
    IF b IS NULL THEN
        -- Nothing recorded yet: nothing to keep.
        DROP TABLE process_data_points_legacy;
    ELSE
        EXECUTE format('ALTER TABLE process_data_points ATTACH PARTITION process_data_points_legacy'
                       ' FOR VALUES FROM (MINVALUE) TO (%L)', b);
    END IF;
END
$$;

CREATE TABLE process_data_points_default PARTITION OF process_data_points DEFAULT;

--------------------------------------------------------------------------
-- 3. partition maintenance
--------------------------------------------------------------------------

-- The partitions of process_data_points with their bounds (NULL lower bound
-- = MINVALUE), the DEFAULT partition excluded.
CREATE VIEW data_partitions AS
SELECT c.oid::regclass AS partition, c.relname AS name,
       CASE WHEN m[1] = 'MINVALUE' THEN NULL ELSE trim(both '''' from m[1])::timestamptz END AS lower_bound,
       CASE WHEN m[2] = 'MAXVALUE' THEN NULL ELSE trim(both '''' from m[2])::timestamptz END AS upper_bound
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                'FROM \((.*)\) TO \((.*)\)') AS m
WHERE i.inhparent = 'process_data_points'::regclass AND m IS NOT NULL;

-- Creates the partition [lo, hi) and moves into it the rows the DEFAULT
-- partition holds for that range (PostgreSQL refuses a new partition while
-- the default one has rows that belong to it). Returns the rows moved.
-- Ranges must not overlap existing partitions.
CREATE FUNCTION aldrec_partition_create(lo timestamptz, hi timestamptz, pname text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    IF hi <= lo THEN
        RAISE EXCEPTION 'partition %: empty range [%, %)', pname, lo, hi;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE process_data_points INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   pname);
    EXECUTE format('WITH m AS (DELETE FROM process_data_points_default'
                   ' WHERE ts >= $1 AND ts < $2 RETURNING *)'
                   ' INSERT INTO %I SELECT * FROM m', pname) USING lo, hi;
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('ALTER TABLE process_data_points ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   pname, lo, hi);
    RETURN moved;
END
$$;

-- What `aldrec db maintain` runs:
--   - makes sure that every period (UTC day, ISO week or month) from the
--     current one to `ahead` periods ahead is covered by partitions; where
--     existing partitions cover part of a period (e.g. after switching from
--     days to months) only the uncovered pieces are created;
--   - with a retention, drops every partition whose upper bound is at least
--     `retention` in the past (never the DEFAULT partition; never one that
--     still holds newer rows, since its upper bound says it cannot);
--   - reports rows sitting in the DEFAULT partition (a sign that
--     maintenance did not run ahead enough).
-- One result row per action: action ('created', 'dropped', 'default'),
-- partition, bounds, rows (moved out of the default / in the default).
CREATE FUNCTION aldrec_maintain(period text, ahead int, retention interval DEFAULT NULL)
RETURNS TABLE (action text, partition text, lower_bound timestamptz,
               upper_bound timestamptz, rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
    step interval;
    p_lo timestamptz;
    p_hi timestamptz;
    cur timestamptz;
    r record;
    pname text;
BEGIN
    IF period NOT IN ('day', 'week', 'month') THEN
        RAISE EXCEPTION 'period must be day, week or month, not "%"', period;
    END IF;
    IF ahead < 0 THEN
        RAISE EXCEPTION 'ahead must be >= 0, not %', ahead;
    END IF;
    step := ('1 ' || period)::interval;
    -- Serialise concurrent maintenance runs.
    PERFORM pg_advisory_xact_lock(hashtext('aldrec partition maintenance'));

    FOR i IN 0 .. ahead LOOP
        p_lo := (date_trunc(period, now() AT TIME ZONE 'UTC') + i * step) AT TIME ZONE 'UTC';
        p_hi := (date_trunc(period, now() AT TIME ZONE 'UTC') + (i + 1) * step) AT TIME ZONE 'UTC';
        cur := p_lo;
        FOR r IN SELECT d.lower_bound AS lo, d.upper_bound AS hi FROM data_partitions d
                 WHERE coalesce(d.upper_bound, 'infinity') > p_lo
                   AND coalesce(d.lower_bound, '-infinity') < p_hi
                 ORDER BY d.lower_bound NULLS FIRST LOOP
            IF coalesce(r.lo, '-infinity') > cur THEN
                pname := 'process_data_points_p' || to_char(cur AT TIME ZONE 'UTC', 'YYYYMMDD');
                IF cur <> date_trunc('day', cur AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
                    pname := pname || to_char(cur AT TIME ZONE 'UTC', '"_"HH24MISS');
                END IF;
                rows := aldrec_partition_create(cur, r.lo, pname);
                action := 'created'; partition := pname; lower_bound := cur; upper_bound := r.lo;
                RETURN NEXT;
            END IF;
            cur := greatest(cur, coalesce(r.hi, 'infinity'));
        END LOOP;
        IF cur < p_hi THEN
            pname := 'process_data_points_p' || to_char(cur AT TIME ZONE 'UTC', 'YYYYMMDD');
            IF cur <> date_trunc('day', cur AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
                pname := pname || to_char(cur AT TIME ZONE 'UTC', '"_"HH24MISS');
            END IF;
            rows := aldrec_partition_create(cur, p_hi, pname);
            action := 'created'; partition := pname; lower_bound := cur; upper_bound := p_hi;
            RETURN NEXT;
        END IF;
    END LOOP;

    IF retention IS NOT NULL THEN
        FOR r IN SELECT d.name, d.lower_bound AS lo, d.upper_bound AS hi FROM data_partitions d
                 WHERE d.upper_bound <= now() - retention
                 ORDER BY d.upper_bound LOOP
            EXECUTE format('SELECT count(*) FROM %I', r.name) INTO rows;
            EXECUTE format('DROP TABLE %I', r.name);
            action := 'dropped'; partition := r.name; lower_bound := r.lo; upper_bound := r.hi;
            RETURN NEXT;
        END LOOP;
    END IF;

    SELECT count(*) INTO rows FROM process_data_points_default;
    IF rows > 0 THEN
        action := 'default'; partition := 'process_data_points_default';
        SELECT min(ts), max(ts) INTO lower_bound, upper_bound FROM process_data_points_default;
        RETURN NEXT;
    END IF;
END
$$;

-- A fresh installation gets today's partition and three days ahead, so the
-- first run does not land in the DEFAULT partition before the first
-- `aldrec db maintain`.
SELECT count(*) FROM aldrec_maintain('day', 3);

--------------------------------------------------------------------------
-- 4. views
--------------------------------------------------------------------------

-- Parameters by their everyday name "component.parameter", with units and
-- limits, and the interval at which samples are expected (for gap finding):
-- the poll interval, or max_interval_ms for a parameter recorded on change.
CREATE VIEW parameter_names AS
SELECT cp.id AS parameter_id, m.id AS machine_id, m.name AS machine,
       mc.name AS component, cp.name AS parameter,
       mc.name || '.' || cp.name AS full_name,
       cp.units, cp.min_value, cp.max_value,
       CASE WHEN cp.deadband IS NOT NULL AND cp.max_interval_ms IS NOT NULL
            THEN cp.max_interval_ms ELSE cp.poll_interval_ms END AS expected_interval_ms
FROM component_parameters cp
JOIN machine_components mc ON mc.id = cp.component_id
JOIN machines m ON m.id = mc.machine_id;

-- Runs with their duration (until now while running), number of steps and
-- stored points. Points come from the ingest ledger (one row per stored
-- batch), so listing runs never counts raw rows; when the ledger records
-- the kind of each batch (0004), only point batches count.
DO $$
BEGIN
    EXECUTE format($v$
CREATE VIEW process_runs AS
SELECT p.id AS process_id, m.name AS machine, p.recipe, p.lot, p.recorder_id,
       p.started_at, p.ended_at,
       coalesce(p.ended_at, now()) - p.started_at AS duration,
       p.status,
       (SELECT count(*) FROM process_steps s WHERE s.process_id = p.id) AS steps,
       (SELECT coalesce(sum(l.rows), 0) FROM ingest_ledger l
         WHERE l.process_id = p.id %s) AS points
FROM processes p
JOIN machines m ON m.id = p.machine_id
$v$, CASE WHEN EXISTS (SELECT 1 FROM information_schema.columns
                         WHERE table_name = 'ingest_ledger' AND column_name = 'kind')
          THEN 'AND l.kind = 1' ELSE '' END);
END
$$;
CREATE INDEX ingest_ledger_process ON ingest_ledger (process_id);

--------------------------------------------------------------------------
-- 5. functions for everyone
--------------------------------------------------------------------------

-- Bucketed series: per parameter and time bucket (date_bin, buckets aligned
-- to the process start) the number of samples, min/mean/max of the values
-- and the number of samples whose quality is not good. A spike of one
-- sample always shows in max (or min), never averaged away.
--   SELECT * FROM series_bucketed(4711, ARRAY[12, 13], '1 second');
-- param_ids NULL = every parameter; from_ts/to_ts NULL = the whole run.
CREATE FUNCTION series_bucketed(process bigint, param_ids int[], bucket interval,
                                from_ts timestamptz DEFAULT NULL,
                                to_ts timestamptz DEFAULT NULL)
RETURNS TABLE (parameter_id int, bucket_start timestamptz, samples bigint,
               min float8, mean float8, max float8, bad_quality bigint)
LANGUAGE sql STABLE AS $$
    SELECT d.parameter_id,
           date_bin(bucket, d.ts, p.started_at) AS b,
           count(*), min(d.value), avg(d.value), max(d.value),
           count(*) FILTER (WHERE d.quality <> 0)
    FROM processes p
    JOIN process_data_points d ON d.process_id = p.id
    WHERE p.id = process
      AND (param_ids IS NULL OR d.parameter_id = ANY (param_ids))
      AND (from_ts IS NULL OR d.ts >= from_ts)
      AND (to_ts IS NULL OR d.ts < to_ts)
    GROUP BY d.parameter_id, b
    ORDER BY b, d.parameter_id
$$;

-- Per parameter, per step and for the whole run (step_no NULL):
--   samples       rows stored (every quality)
--   min/max/mean/stddev  over the values (bad-quality rows have none)
--   bad_quality   rows whose quality is not 0 (good)
--   outside_s     time spent outside [min_value, max_value]: for each pair
--                 of consecutive samples within the step (or run) whose
--                 first value is outside, the time to the next sample
--   gaps, gap_s   holes between consecutive samples within the step (or
--                 run) longer than 2.5 × the expected interval
--                 (parameter_names.expected_interval_ms)
-- Points before the first step or after the process end belong to no step
-- (they count for the run). With step => N only that step is computed, from
-- its time range (an index range scan per parameter). from_ts/to_ts, when
-- given, only narrow where rows are looked for (constants let the planner
-- skip partitions); they must cover the run or step.
--   SELECT * FROM process_summary(4711);
--   SELECT * FROM process_summary(4711, step => 12, param_ids => ARRAY[7]);
CREATE FUNCTION process_summary(process bigint, step int DEFAULT NULL, param_ids int[] DEFAULT NULL,
                                from_ts timestamptz DEFAULT NULL, to_ts timestamptz DEFAULT NULL)
RETURNS TABLE (step_no int, step_name text, parameter_id int, parameter text,
               units text, samples bigint, min float8, max float8, mean float8,
               stddev float8, bad_quality bigint, outside_s float8, gaps bigint,
               gap_s float8, min_limit float8, max_limit float8)
LANGUAGE sql STABLE AS $$
    WITH spans AS (
        SELECT s.step_no, s.name, s.started_at, coalesce(s.ended_at, 'infinity') AS ended_at
        FROM process_step_spans s
        WHERE s.process_id = process AND (step IS NULL OR s.step_no = step)
    ),
    bounds AS (   -- step starts + process end, for width_bucket()
        SELECT array_agg(started_at ORDER BY started_at) ||
                   (SELECT coalesce(p.ended_at, 'infinity') FROM processes p WHERE p.id = process)
                   AS edges,
               array_agg(step_no ORDER BY started_at) AS nos
        FROM process_step_spans s WHERE s.process_id = process
    ),
    pts AS (
        SELECT d.parameter_id, d.ts, d.value, d.quality,
               b.nos[nullif(width_bucket(d.ts, b.edges), 0)] AS step_no
        FROM process_data_points d CROSS JOIN bounds b
        WHERE d.process_id = process
          AND (param_ids IS NULL OR d.parameter_id = ANY (param_ids))
          AND (step IS NULL OR (d.ts >= (SELECT started_at FROM spans)
                                AND d.ts < (SELECT ended_at FROM spans)))
          AND (from_ts IS NULL OR d.ts >= from_ts)
          AND (to_ts IS NULL OR d.ts < to_ts)
    ),
    pairs AS (
        SELECT p.*, n.min_value, n.max_value, n.expected_interval_ms,
               extract(epoch FROM lead(p.ts) OVER (PARTITION BY p.parameter_id, p.step_no ORDER BY p.ts) - p.ts) AS dt_step,
               extract(epoch FROM lead(p.ts) OVER (PARTITION BY p.parameter_id ORDER BY p.ts) - p.ts) AS dt_run,
               p.value < n.min_value OR p.value > n.max_value AS outside
        FROM pts p JOIN parameter_names n ON n.parameter_id = p.parameter_id
    ),
    agg AS (
        SELECT x.step_no, grouping(x.step_no) AS whole_run, x.parameter_id,
               count(*) AS samples, min(x.value) AS min, max(x.value) AS max,
               avg(x.value) AS mean, stddev_samp(x.value) AS stddev,
               count(*) FILTER (WHERE x.quality <> 0) AS bad_quality,
               coalesce(sum(x.dt_step) FILTER (WHERE x.outside), 0) AS outside_step,
               coalesce(sum(x.dt_run) FILTER (WHERE x.outside), 0) AS outside_run,
               count(*) FILTER (WHERE x.dt_step > 2.5 * x.expected_interval_ms / 1000.0) AS gaps_step,
               count(*) FILTER (WHERE x.dt_run > 2.5 * x.expected_interval_ms / 1000.0) AS gaps_run,
               coalesce(sum(x.dt_step) FILTER (WHERE x.dt_step > 2.5 * x.expected_interval_ms / 1000.0), 0) AS gap_s_step,
               coalesce(sum(x.dt_run) FILTER (WHERE x.dt_run > 2.5 * x.expected_interval_ms / 1000.0), 0) AS gap_s_run
        FROM pairs x
        GROUP BY GROUPING SETS ((x.parameter_id, x.step_no), (x.parameter_id))
    )
    SELECT a.step_no, s.name, a.parameter_id, n.full_name, n.units, a.samples,
           a.min, a.max, a.mean, a.stddev, a.bad_quality,
           (CASE WHEN a.whole_run = 1 THEN a.outside_run ELSE a.outside_step END)::float8,
           CASE WHEN a.whole_run = 1 THEN a.gaps_run ELSE a.gaps_step END,
           (CASE WHEN a.whole_run = 1 THEN a.gap_s_run ELSE a.gap_s_step END)::float8,
           n.min_value, n.max_value
    FROM agg a
    JOIN parameter_names n ON n.parameter_id = a.parameter_id
    LEFT JOIN spans s ON s.step_no = a.step_no
    WHERE (a.whole_run = 1 AND step IS NULL)
       OR (a.whole_run = 0 AND a.step_no IS NOT NULL AND (step IS NULL OR a.step_no = step))
    ORDER BY a.step_no NULLS FIRST, n.full_name
$$;

-- Two runs of the same recipe side by side: one parameter in one step,
-- aligned by the time since that step started in each run, in buckets.
-- Raises an error when the recipes differ or a run lacks the step.
--   SELECT * FROM compare_runs(4711, 4712, 12, 7, '1 second');
CREATE FUNCTION compare_runs(run_a bigint, run_b bigint, step int, param int,
                             bucket interval DEFAULT '1 second')
RETURNS TABLE (offset_s float8, a_samples bigint, a_min float8, a_mean float8, a_max float8,
               b_samples bigint, b_min float8, b_mean float8, b_max float8,
               mean_diff float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ra text;
    rb text;
    sa record;
    sb record;
BEGIN
    SELECT recipe INTO ra FROM processes WHERE id = run_a;
    SELECT recipe INTO rb FROM processes WHERE id = run_b;
    IF ra IS NULL OR rb IS NULL THEN
        RAISE EXCEPTION 'unknown process %', CASE WHEN ra IS NULL THEN run_a ELSE run_b END;
    END IF;
    IF ra <> rb THEN
        RAISE EXCEPTION 'process % ran recipe "%", process % ran "%": compare runs of the same recipe',
            run_a, ra, run_b, rb;
    END IF;
    SELECT started_at, coalesce(ended_at, 'infinity') AS ended_at INTO sa
      FROM process_step_spans WHERE process_id = run_a AND step_no = step;
    SELECT started_at, coalesce(ended_at, 'infinity') AS ended_at INTO sb
      FROM process_step_spans WHERE process_id = run_b AND step_no = step;
    IF sa IS NULL OR sb IS NULL THEN
        RAISE EXCEPTION 'process % has no step %', CASE WHEN sa IS NULL THEN run_a ELSE run_b END, step;
    END IF;
    RETURN QUERY
    WITH a AS (
        SELECT extract(epoch FROM date_bin(bucket, d.ts, sa.started_at) - sa.started_at)::float8 AS o,
               count(*) AS n, min(d.value) AS lo, avg(d.value) AS mean, max(d.value) AS hi
        FROM process_data_points d
        WHERE d.process_id = run_a AND d.parameter_id = param
          AND d.ts >= sa.started_at AND d.ts < sa.ended_at
        GROUP BY 1
    ), b AS (
        SELECT extract(epoch FROM date_bin(bucket, d.ts, sb.started_at) - sb.started_at)::float8 AS o,
               count(*) AS n, min(d.value) AS lo, avg(d.value) AS mean, max(d.value) AS hi
        FROM process_data_points d
        WHERE d.process_id = run_b AND d.parameter_id = param
          AND d.ts >= sb.started_at AND d.ts < sb.ended_at
        GROUP BY 1
    )
    SELECT coalesce(a.o, b.o), a.n, a.lo, a.mean, a.hi, b.n, b.lo, b.mean, b.hi, b.mean - a.mean
    FROM a FULL JOIN b ON a.o = b.o
    ORDER BY 1;
END
$$;

--------------------------------------------------------------------------
-- 6. grants
--------------------------------------------------------------------------

-- The recorder appends (COPY) points and step markers; it reads nothing it
-- records. Engineers read everything and use the functions.
GRANT INSERT ON process_data_points, process_steps TO aldrec_recorder;
GRANT SELECT ON process_data_points, process_steps, process_step_spans, parameter_names,
                process_runs, data_partitions TO aldrec_reader;
REVOKE ALL ON FUNCTION aldrec_partition_create(timestamptz, timestamptz, text),
                       aldrec_maintain(text, int, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION series_bucketed(bigint, int[], interval, timestamptz, timestamptz),
                          process_summary(bigint, int, int[], timestamptz, timestamptz),
                          compare_runs(bigint, bigint, int, int, interval)
    TO aldrec_reader;
