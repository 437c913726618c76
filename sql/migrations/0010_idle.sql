-- 0010_idle.sql — machine history between runs: what the recorder keeps
-- while no process is being recorded (docs/store-and-forward.md "Idle
-- history").
--
-- Design: a table of its own, machine_history, not rows with a NULL or
-- sentinel process in process_data_points:
--   * runs and idle history have different lives: idle history is kept for
--     [database] idle_retention_days (default 30), runs for retention_days
--     (default: for ever). Partitions of one table cannot hold both (a
--     partition is dropped whole), and DELETE of idle rows from the run
--     table would be slow and leave bloat in the table every run query
--     reads.
--   * a process's queries stay as they were: their indexes lead with
--     process_id and see no idle row at all, and process_data_points keeps
--     process_id NOT NULL in its unique key (NULL would make the key unable
--     to refuse a duplicate idle sample, since NULLs are distinct).
--   * the unique key (parameter_id, ts) refuses an idle sample stored twice.
-- A machine window (aldrec export --machine, machine_series_bucketed())
-- reads both tables; a sample belongs to exactly one: the batcher puts the
-- samples of cycles completed before START in idle history and the rest in
-- the run, until STOP (recorder/daemon/batcher.h).
--
-- Contents
--   1. component_parameters.idle_interval_ms
--   2. machine_history, partitioned by UTC day, with a DEFAULT partition
--   3. aldrec_idle_maintain(ahead, retention): partitions ahead, the DEFAULT
--      partition's rows moved into day partitions, retention
--   4. machine_series_bucketed(), machine_points view
--   5. grants

--------------------------------------------------------------------------
-- 1. the idle policy of a parameter
--------------------------------------------------------------------------

-- Outside a process a parameter's samples (after its deadband, 0003) are
-- kept at most once per idle_interval_ms (a change of quality is always
-- kept). NULL: the recorder's [recorder] idle_interval_ms (default 1000;
-- 0 there turns idle recording off for such parameters); 0: never kept
-- while idle.
ALTER TABLE component_parameters
    ADD COLUMN idle_interval_ms int CHECK (idle_interval_ms >= 0);
COMMENT ON COLUMN component_parameters.idle_interval_ms IS
    'outside a process keep at most one sample per this many ms; NULL: the recorder''s [recorder] idle_interval_ms; 0: not kept while idle';

--------------------------------------------------------------------------
-- 2. machine_history (record kind 5 "idle", recorder/store/records.c)
--------------------------------------------------------------------------

-- COPY columns parameter_id, ts, value, quality. The machine is the
-- parameter's (parameter_names.machine_id); value NULL when the read failed,
-- quality as in process_data_points.
CREATE TABLE machine_history (
    parameter_id int         NOT NULL,
    ts           timestamptz NOT NULL,
    value        float8,
    quality      smallint    NOT NULL
                 CONSTRAINT machine_history_quality_check CHECK (quality >= 0)
) PARTITION BY RANGE (ts);

-- One sample per parameter and time, across partitions (ts is the key);
-- INCLUDE makes "parameter P between T1 and T2" an index-only scan.
CREATE UNIQUE INDEX machine_history_param_ts
    ON machine_history (parameter_id, ts) INCLUDE (value, quality);
CREATE INDEX machine_history_ts_brin ON machine_history USING brin (ts);

CREATE TABLE machine_history_default PARTITION OF machine_history DEFAULT;

CREATE VIEW history_partitions AS
SELECT c.oid::regclass AS partition, c.relname AS name,
       trim(both '''' from m[1])::timestamptz AS lower_bound,
       trim(both '''' from m[2])::timestamptz AS upper_bound
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                'FROM \((.*)\) TO \((.*)\)') AS m
WHERE i.inhparent = 'machine_history'::regclass AND m IS NOT NULL;

--------------------------------------------------------------------------
-- 3. maintenance and retention (run by `aldrec db maintain`)
--------------------------------------------------------------------------

-- Idle history is partitioned by UTC day whatever [database]
-- partition_interval says: the retention is in days, and a day of a
-- machine at 1 Hz is a small partition.
--   - creates the day partitions from today to `ahead` days ahead, and one
--     for every day the DEFAULT partition holds rows of (moving them);
--   - with a retention, drops every day partition whose upper bound is at
--     least `retention` in the past. It touches machine_history only:
--     never a run's rows (process_data_points), steps or set-point events.
-- One result row per action ('created', 'dropped', 'default'), like
-- aldrec_maintain() (0006, 0008).
CREATE FUNCTION aldrec_idle_maintain(ahead int, retention interval DEFAULT NULL)
RETURNS TABLE (action text, partition text, lower_bound timestamptz,
               upper_bound timestamptz, rows bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    d timestamptz;
    r record;
    pname text;
BEGIN
    IF ahead < 0 THEN
        RAISE EXCEPTION 'ahead must be >= 0, not %', ahead;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('aldrec idle history maintenance'));
    FOR d IN
        SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') + i * interval '1 day') AT TIME ZONE 'UTC'
          FROM generate_series(0, ahead) i
        UNION
        SELECT DISTINCT date_trunc('day', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
          FROM machine_history_default WHERE isfinite(ts)
        ORDER BY 1
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM history_partitions h
                               WHERE h.lower_bound < d + interval '1 day' AND h.upper_bound > d);
        pname := 'machine_history_p' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD');
        EXECUTE format('CREATE TABLE %I (LIKE machine_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       pname);
        EXECUTE format('WITH m AS (DELETE FROM machine_history_default'
                       ' WHERE ts >= $1 AND ts < $2 RETURNING *)'
                       ' INSERT INTO %I SELECT * FROM m', pname) USING d, d + interval '1 day';
        GET DIAGNOSTICS rows = ROW_COUNT;
        EXECUTE format('ALTER TABLE machine_history ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       pname, d, d + interval '1 day');
        action := 'created'; partition := pname; lower_bound := d; upper_bound := d + interval '1 day';
        RETURN NEXT;
    END LOOP;

    IF retention IS NOT NULL THEN
        FOR r IN SELECT h.name, h.lower_bound AS lo, h.upper_bound AS hi FROM history_partitions h
                 WHERE h.upper_bound <= now() - retention
                 ORDER BY h.upper_bound LOOP
            EXECUTE format('SELECT count(*) FROM %I', r.name) INTO rows;
            EXECUTE format('DROP TABLE %I', r.name);
            action := 'dropped'; partition := r.name; lower_bound := r.lo; upper_bound := r.hi;
            RETURN NEXT;
        END LOOP;
    END IF;

    SELECT count(*) INTO rows FROM machine_history_default;
    IF rows > 0 THEN
        action := 'default'; partition := 'machine_history_default';
        SELECT min(ts), max(ts) INTO lower_bound, upper_bound FROM machine_history_default;
        RETURN NEXT;
    END IF;
END
$$;

SELECT count(*) FROM aldrec_idle_maintain(3);

--------------------------------------------------------------------------
-- 4. reading a machine's history, runs or not
--------------------------------------------------------------------------

-- Every stored sample of every machine: the runs' rows (process_id set)
-- and the idle history (process_id NULL). A sample is in one of the two.
-- Filter on machine_id or parameter_id and ts so both tables' indexes are
-- used.
CREATE VIEW machine_points AS
SELECT n.machine_id, d.process_id, d.parameter_id, d.ts, d.value, d.quality
FROM process_data_points d JOIN parameter_names n ON n.parameter_id = d.parameter_id
UNION ALL
SELECT n.machine_id, NULL::bigint, h.parameter_id, h.ts, h.value, h.quality
FROM machine_history h JOIN parameter_names n ON n.parameter_id = h.parameter_id;

-- Bucketed series of a machine over [from_ts, to_ts), runs and idle time
-- alike, like series_bucketed() (0006) for a process: per parameter and
-- bucket (date_bin aligned to from_ts) the samples, min/mean/max and the
-- samples whose quality is not good; in_run counts the samples that belong
-- to a process.
--   SELECT * FROM machine_series_bucketed('ald-demo', NULL, '1 minute',
--                                         now() - interval '1 day', now());
CREATE FUNCTION machine_series_bucketed(machine text, param_ids int[], bucket interval,
                                        from_ts timestamptz, to_ts timestamptz)
RETURNS TABLE (parameter_id int, bucket_start timestamptz, samples bigint,
               min float8, mean float8, max float8, bad_quality bigint, in_run bigint)
LANGUAGE sql STABLE AS $$
    WITH params AS (
        SELECT n.parameter_id FROM parameter_names n
        WHERE n.machine = machine_series_bucketed.machine
          AND (param_ids IS NULL OR n.parameter_id = ANY (param_ids))
    ), pts AS (
        SELECT d.parameter_id, d.ts, d.value, d.quality, 1 AS run
        FROM process_data_points d
        WHERE d.parameter_id IN (SELECT p.parameter_id FROM params p)
          AND d.ts >= from_ts AND d.ts < to_ts
        UNION ALL
        SELECT h.parameter_id, h.ts, h.value, h.quality, 0
        FROM machine_history h
        WHERE h.parameter_id IN (SELECT p.parameter_id FROM params p)
          AND h.ts >= from_ts AND h.ts < to_ts
    )
    SELECT x.parameter_id, date_bin(bucket, x.ts, from_ts) AS b,
           count(*), min(x.value), avg(x.value), max(x.value),
           count(*) FILTER (WHERE x.quality <> 0), sum(x.run)
    FROM pts x
    GROUP BY x.parameter_id, b
    ORDER BY b, x.parameter_id
$$;

--------------------------------------------------------------------------
-- 5. grants
--------------------------------------------------------------------------

-- Owner group (0007): what this migration created belongs to it.
ALTER TABLE machine_history OWNER TO aldrec_owner;
ALTER TABLE machine_history_default OWNER TO aldrec_owner;
ALTER VIEW history_partitions OWNER TO aldrec_owner;
ALTER VIEW machine_points OWNER TO aldrec_owner;
ALTER FUNCTION aldrec_idle_maintain(int, interval) OWNER TO aldrec_owner;
ALTER FUNCTION machine_series_bucketed(text, int[], interval, timestamptz, timestamptz)
    OWNER TO aldrec_owner;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT name FROM history_partitions LOOP
        EXECUTE format('ALTER TABLE %I OWNER TO aldrec_owner', r.name);
    END LOOP;
END
$$;

-- The recorder appends idle samples (COPY) and reads none of them.
GRANT INSERT ON machine_history TO aldrec_recorder;
GRANT SELECT ON machine_history, history_partitions, machine_points TO aldrec_reader;
REVOKE ALL ON FUNCTION aldrec_idle_maintain(int, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION machine_series_bucketed(text, int[], interval, timestamptz, timestamptz)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION machine_series_bucketed(text, int[], interval, timestamptz, timestamptz)
    TO aldrec_reader;
