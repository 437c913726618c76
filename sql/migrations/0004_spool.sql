-- 0004_spool.sql — store and forward: the ledger learns which spool file a
-- batch came from and what kind of rows it carried; gap records.
--
-- A recorder's spool file (recorder/store/spool.h) numbers its batches; a file
-- that had to be replaced (corrupt) starts a new random spool_id, so
-- (recorder_id, spool_id, batch_seq) never names two different batches and
-- a batch replayed after an unclear failure always finds its ledger row.
-- Rows written before this migration belong to spool_id 0.

ALTER TABLE ingest_ledger
    ADD COLUMN spool_id bigint NOT NULL DEFAULT 0 CHECK (spool_id >= 0),
    -- 1 points, 2 set-point events, 3 step markers, 4 gap records
    -- (recorder/store/batch.h; values are never renumbered)
    ADD COLUMN kind smallint NOT NULL DEFAULT 1 CHECK (kind > 0);
ALTER TABLE ingest_ledger ALTER COLUMN spool_id DROP DEFAULT;
ALTER TABLE ingest_ledger ALTER COLUMN kind DROP DEFAULT;
-- Same constraint name: the recorder recognises a replay by it.
ALTER TABLE ingest_ledger DROP CONSTRAINT ingest_ledger_pkey;
ALTER TABLE ingest_ledger ADD CONSTRAINT ingest_ledger_pkey
    PRIMARY KEY (recorder_id, spool_id, batch_seq);

-- Points the recorder had to drop: its spool reached [spool] max_bytes
-- while PostgreSQL was out of reach (oldest batches dropped first, by
-- default), a spool write failed, or an operator dropped a quarantined
-- batch. One row per episode and process; engineers see the hole here.
CREATE TABLE data_gaps (
    process_id    bigint,                 -- NULL: no process was recording
    first_ts      timestamptz NOT NULL,   -- first and last sample time dropped
    last_ts       timestamptz NOT NULL,
    points        bigint NOT NULL CHECK (points >= 0),
    batches       int    NOT NULL CHECK (batches >= 0),
    parameter_ids int[]  NOT NULL,        -- every parameter with a dropped value
    reason        text   NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (last_ts >= first_ts)
);
CREATE INDEX data_gaps_process ON data_gaps (process_id, first_ts);

GRANT INSERT ON data_gaps TO aldrec_recorder;
GRANT SELECT ON data_gaps TO aldrec_reader;
