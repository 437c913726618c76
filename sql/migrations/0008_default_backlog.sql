-- 0008_default_backlog.sql — partition maintenance empties the DEFAULT
-- partition of rows of any period, not only of the periods ahead.
--
-- Until now aldrec_maintain() (0006) created partitions from the current
-- period forward; creating one moves the DEFAULT partition's rows of its
-- range. Rows stamped in the past (a backlog older than the installation,
-- data forwarded after an outage across days, a controller whose clock was
-- behind) found no partition ever created for their time: they stayed in
-- the DEFAULT partition for good, and retention, which drops partitions,
-- never dropped them.
--
-- Now, for every period (UTC day, ISO week or month) that the DEFAULT
-- partition holds rows of, maintenance creates the partitions covering that
-- period (only the pieces no partition covers yet), moving the rows into
-- them; the retention then applies to those partitions like to any other.
-- Each period is created, filled and attached in one transaction:
-- `aldrec db maintain` commits period by period (a long backlog is not one
-- huge transaction, and what was moved stays moved if a later period fails);
-- aldrec_maintain() called on its own does all of it in its caller's
-- transaction, each backlog period in a subtransaction, so one period that
-- cannot be moved (e.g. a table in the way of its partition's name) leaves
-- only its own rows in the DEFAULT partition, with a WARNING, and the rest
-- of the maintenance still happens. Rows at ±infinity belong to no period
-- and stay in the DEFAULT partition (reported).
--
-- Indexes: a partition created by aldrec_partition_create() (0006) gets the
-- partitioned table's indexes when it is attached, after its rows are in.
--
-- Contents
--   aldrec_maintain_period(period, at)   covers the period holding `at`
--   aldrec_default_periods(period)       the periods the DEFAULT partition holds rows of
--   aldrec_maintain(period, ahead, retention)   redefined (same signature and result)
-- All three run as their owner, aldrec_owner (as 0007 made the 0006 ones),
-- and nobody but the owner group may call them.

-- Makes sure the period (day, week, month; UTC) holding `at` is covered by
-- partitions: creates a partition for each piece of it no partition covers
-- (all of it, or what is left after e.g. a switch from days to months),
-- moving the DEFAULT partition's rows of that piece into it. One result row
-- per partition created ('created', name, bounds, rows moved); none when the
-- period was covered already.
CREATE FUNCTION aldrec_maintain_period(period text, at timestamptz)
RETURNS TABLE (action text, partition text, lower_bound timestamptz,
               upper_bound timestamptz, rows bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    p_lo timestamptz;
    p_hi timestamptz;
    cur timestamptz;
    r record;
    pieces tstzrange[] := '{}';
    piece tstzrange;
    pname text;
BEGIN
    IF period NOT IN ('day', 'week', 'month') THEN
        RAISE EXCEPTION 'period must be day, week or month, not "%"', period;
    END IF;
    IF NOT isfinite(at) THEN
        RAISE EXCEPTION 'no % holds %', period, at;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('aldrec partition maintenance'));
    p_lo := date_trunc(period, at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    p_hi := (date_trunc(period, at AT TIME ZONE 'UTC') + ('1 ' || period)::interval) AT TIME ZONE 'UTC';
    cur := p_lo;
    FOR r IN SELECT d.lower_bound AS lo, d.upper_bound AS hi FROM data_partitions d
             WHERE coalesce(d.upper_bound, 'infinity') > p_lo
               AND coalesce(d.lower_bound, '-infinity') < p_hi
             ORDER BY d.lower_bound NULLS FIRST LOOP
        IF coalesce(r.lo, '-infinity') > cur THEN
            pieces := pieces || tstzrange(cur, r.lo);
        END IF;
        cur := greatest(cur, coalesce(r.hi, 'infinity'));
    END LOOP;
    IF cur < p_hi THEN
        pieces := pieces || tstzrange(cur, p_hi);
    END IF;
    FOREACH piece IN ARRAY pieces LOOP
        pname := 'process_data_points_p' || to_char(lower(piece) AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF lower(piece) <> date_trunc('day', lower(piece) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
            pname := pname || to_char(lower(piece) AT TIME ZONE 'UTC', '"_"HH24MISS');
        END IF;
        rows := aldrec_partition_create(lower(piece), upper(piece), pname);
        action := 'created'; partition := pname;
        lower_bound := lower(piece); upper_bound := upper(piece);
        RETURN NEXT;
    END LOOP;
END
$$;

-- The start of every period (oldest first) that rows in the DEFAULT
-- partition belong to; rows at ±infinity belong to none.
CREATE FUNCTION aldrec_default_periods(period text)
RETURNS SETOF timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT DISTINCT date_trunc(period, ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    FROM process_data_points_default
    WHERE isfinite(ts)
    ORDER BY 1
$$;

-- What `aldrec db maintain` runs, after it has moved the DEFAULT
-- partition's backlog period by period (so that here it normally finds
-- none left):
--   - makes sure that every period from the current one to `ahead` periods
--     ahead is covered by partitions (as before; a failure raises);
--   - then does the same for every other period the DEFAULT partition holds
--     rows of, each in a subtransaction: a period that fails keeps its rows
--     in the DEFAULT partition and is named in a WARNING;
--   - with a retention, drops every partition whose upper bound is at least
--     `retention` in the past, including those just filled from the DEFAULT
--     partition (never the DEFAULT partition itself);
--   - reports the rows still in the DEFAULT partition.
-- One result row per action: action ('created', 'dropped', 'default'),
-- partition, bounds, rows (moved out of the default / dropped / left in the
-- default).
CREATE OR REPLACE FUNCTION aldrec_maintain(period text, ahead int, retention interval DEFAULT NULL)
RETURNS TABLE (action text, partition text, lower_bound timestamptz,
               upper_bound timestamptz, rows bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    step interval;
    p timestamptz;
    r record;
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
        RETURN QUERY SELECT * FROM aldrec_maintain_period(period,
            (date_trunc(period, now() AT TIME ZONE 'UTC') + i * step) AT TIME ZONE 'UTC');
    END LOOP;

    FOR p IN SELECT * FROM aldrec_default_periods(period) LOOP
        BEGIN
            -- aldrec_maintain_period() returns its rows only once it is
            -- done, so a period that fails adds none to the result.
            RETURN QUERY SELECT * FROM aldrec_maintain_period(period, p);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'rows of the % from % stay in the default partition: %', period, p, SQLERRM;
        END;
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

REVOKE ALL ON FUNCTION aldrec_maintain_period(text, timestamptz),
                       aldrec_default_periods(text) FROM PUBLIC;

-- Rows already waiting in the DEFAULT partition move at the next
-- `aldrec db maintain`, by the site's partition_interval (not known here).
