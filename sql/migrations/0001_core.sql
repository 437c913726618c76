-- 0001_core.sql — machines, their Modbus components and parameters,
-- processes (runs), the recorded data points and the ingest ledger.
--
-- Applied by `aldrec db migrate` inside one transaction together with its
-- row in schema_migrations. Never edit an applied migration: add a new one.

CREATE TABLE machines (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A component is one addressable Modbus device (or one unit behind a gateway).
CREATE TABLE machine_components (
    id           serial PRIMARY KEY,
    machine_id   int NOT NULL REFERENCES machines(id),
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9_]+$'),
    kind         text NOT NULL DEFAULT '',
    host         text NOT NULL,
    port         int  NOT NULL DEFAULT 502 CHECK (port BETWEEN 1 AND 65535),
    unit_id      int  NOT NULL DEFAULT 1 CHECK (unit_id BETWEEN 0 AND 255),
    is_activated boolean NOT NULL DEFAULT true,
    UNIQUE (machine_id, name)
);

-- data_type is deliberately not constrained here: the recorder validates it
-- and skips (with a warning naming the parameter) a type it does not know,
-- so a newer type can be introduced without breaking older controllers.
CREATE TABLE component_parameters (
    id               serial PRIMARY KEY,
    component_id     int  NOT NULL REFERENCES machine_components(id),
    name             text NOT NULL CHECK (name ~ '^[A-Za-z0-9_]+$'),
    units            text NOT NULL DEFAULT '',
    register_type    text NOT NULL
                     CHECK (register_type IN ('coil', 'discrete', 'holding', 'input')),
    address          int  NOT NULL CHECK (address BETWEEN 0 AND 65535),
    data_type        text NOT NULL,
    word_order       text NOT NULL DEFAULT 'ABCD'
                     CHECK (word_order IN ('ABCD', 'CDAB', 'BADC', 'DCBA')),
    scale            float8 NOT NULL DEFAULT 1,
    value_offset     float8 NOT NULL DEFAULT 0,
    min_value        float8,
    max_value        float8,
    set_value        float8,
    is_writable      boolean NOT NULL DEFAULT false,
    is_active        boolean NOT NULL DEFAULT true,
    poll_interval_ms int  NOT NULL DEFAULT 1000 CHECK (poll_interval_ms > 0),
    description      text NOT NULL DEFAULT '',
    UNIQUE (component_id, name),
    CHECK (min_value IS NULL OR max_value IS NULL OR min_value <= max_value)
);

CREATE TABLE processes (
    id          bigserial PRIMARY KEY,
    machine_id  int  NOT NULL REFERENCES machines(id),
    recipe      text NOT NULL,
    lot         text,
    recorder_id text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'completed', 'aborted')),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX processes_machine_started ON processes (machine_id, started_at DESC);

-- One row per sampled value. value is NULL when the read failed; quality
-- then says why (see docs/acquisition.md "Quality codes"; 0 = good).
--
-- No foreign keys: they would cost a lookup per ingested row, and the ids
-- come from the recorder, which took them from the tables above.
CREATE TABLE process_data_points (
    process_id   bigint      NOT NULL,
    parameter_id int         NOT NULL,
    ts           timestamptz NOT NULL,
    value        float8,
    quality      smallint    NOT NULL CHECK (quality >= 0)
);

-- Question 1: one process over time (all or some of its parameters).
-- Unique, so that no bug anywhere can store the same sample twice; INCLUDE
-- makes "values of parameter P in process X" an index-only scan.
CREATE UNIQUE INDEX process_data_points_process_param_ts
    ON process_data_points (process_id, parameter_id, ts) INCLUDE (value, quality);

-- Question 2: one parameter over time across processes.
CREATE INDEX process_data_points_param_ts
    ON process_data_points (parameter_id, ts) INCLUDE (value, quality);

-- Time-window questions ("what was recorded between 14:00 and 14:05"): rows
-- arrive in time order, so a BRIN index is tiny and nearly free to maintain.
CREATE INDEX process_data_points_ts_brin
    ON process_data_points USING brin (ts);

-- Exactly-once ingest: a batch is committed in the same transaction as its
-- ledger row. A replayed batch finds its row and is skipped.
CREATE TABLE ingest_ledger (
    recorder_id  text   NOT NULL,
    batch_seq    bigint NOT NULL CHECK (batch_seq > 0),
    rows         int    NOT NULL CHECK (rows >= 0),
    process_id   bigint,
    first_ts     timestamptz,
    last_ts      timestamptz,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recorder_id, batch_seq)
);
