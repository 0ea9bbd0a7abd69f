-- 0001: sessions, their stored chunks, and the errors answered to trackers.
--
-- Applied by PostgresStorage.open() in one transaction holding
-- pg_advisory_xact_lock(8248188113342786913) (see postgres_schema.py), together
-- with its row in schema_migrations. Server times are timestamptz
-- (microseconds; epoch-second floats are rounded to the microsecond the way
-- Python's datetime.fromtimestamp rounds them); chunks.first_ts and last_ts
-- are the events' own timestamps (client ms) exactly as the tracker sent
-- them.

-- One row per recorded session. The primary key is session_id alone, not
-- (tenant, session_id): chunks and session_errors carry no tenant (the
-- chunk COPY layout is fixed by the Rust encoder), so a session id must
-- name one session across tenants or two tenants' rows would share one set
-- of chunks. `tenant` is kept now, always 'default', so that the indexes
-- (and the queries that will filter by tenant) need no rewrite of this
-- table when tenants arrive; making ids tenant-scoped then means adding
-- tenant to chunks and session_errors in a later migration.
--
-- The indexes avoid the columns every flush rewrites (event_count,
-- byte_count, last_event_at), so those upserts stay HOT updates.
-- Viewport sizes are bigint because the tracker protocol reads them as
-- 64-bit integers: a value the column could not hold would fail every
-- retry of the flush that carries it.
CREATE TABLE sessions (
    session_id         text             NOT NULL,
    tenant             text             NOT NULL DEFAULT 'default',
    user_id            text,
    url                text,
    user_agent         text,
    referrer           text,
    time_zone          text,
    viewport_width     bigint,
    viewport_height    bigint,
    device_pixel_ratio double precision,
    client_start_time  double precision,  -- tracker's startTime, ms
    started_at         timestamptz      NOT NULL,
    ended_at           timestamptz,
    last_event_at      timestamptz,
    event_count        bigint           NOT NULL DEFAULT 0,
    byte_count         bigint           NOT NULL DEFAULT 0,
    status             text             NOT NULL DEFAULT 'active',
    CONSTRAINT sessions_pkey PRIMARY KEY (session_id),
    -- Keep in step with replaywire.storage.base.STATUSES.
    CONSTRAINT sessions_status_check CHECK (status IN ('active', 'ended'))
);
-- list_sessions: newest first, ties by session_id, within a tenant.
CREATE INDEX sessions_by_tenant_started
    ON sessions (tenant, started_at DESC, session_id DESC);
-- list_sessions(status='active'): the live ones, a small part of the table.
CREATE INDEX sessions_active
    ON sessions (tenant, started_at DESC, session_id DESC) WHERE status = 'active';
CREATE INDEX sessions_by_user ON sessions (tenant, user_id);

-- One row per accepted tracker batch. Columns in exactly this order: the
-- Rust encoder (replaywire._core.encode_chunks_copy) emits them so for
-- COPY ... FROM STDIN (FORMAT BINARY).
--
-- Partitioned by RANGE on session_started_at, the START TIME OF THE SESSION
-- (not the time the chunk arrived), one partition a UTC day, named
-- chunks_pYYYYMMDD. So a whole session lives in one partition, retention
-- drops whole sessions by dropping whole partitions, and a chunk written
-- again on another day (a retry, a spool replay, a session resumed after
-- midnight) lands in the same partition as its first copy.
--
-- PostgreSQL requires the partition key in every unique constraint, hence
-- PRIMARY KEY (session_id, seq, session_started_at). A session's started_at
-- never changes, so for chunks this key is as unique as (session_id, seq):
-- a duplicate chunk always meets its first copy in the same partition's
-- index and is refused there ("first stored wins", see write()).
--
-- No DEFAULT partition: attaching a new partition would then have to scan
-- the default one (under lock) to prove it holds no rows of the new range,
-- and rows parked there would escape retention by partition. Partitions are
-- created ahead of need instead (open(), maintain(), and write() on demand).
CREATE TABLE chunks (
    session_id         text             NOT NULL,
    session_started_at timestamptz      NOT NULL,
    seq                bigint           NOT NULL,
    first_index        bigint           NOT NULL,
    last_index         bigint           NOT NULL,  -- first_index + event_count - 1
    event_count        integer          NOT NULL,
    first_ts           double precision,
    last_ts            double precision,
    codec              text             NOT NULL,
    stored_at          timestamptz      NOT NULL,
    -- lz4 rather than the default pglz: JSON compresses nearly as well and
    -- 500 x 12 KB flushes were written 2-3 times faster (PostgreSQL 15).
    payload            bytea            COMPRESSION lz4 NOT NULL,
    CONSTRAINT chunks_pkey PRIMARY KEY (session_id, seq, session_started_at)
) PARTITION BY RANGE (session_started_at);
-- A session's chunks in event order (read_chunks); seq breaks ties between
-- chunks that share a first_index (empty ones), so the index alone gives
-- the ORDER BY.
CREATE INDEX chunks_by_index ON chunks (session_id, first_index, seq);

CREATE TABLE session_errors (
    id         bigserial   NOT NULL,  -- insert order: breaks ties of `at`
    session_id text        NOT NULL,
    at         timestamptz NOT NULL,
    code       text        NOT NULL,
    message    text        NOT NULL,
    seq        bigint,
    CONSTRAINT session_errors_pkey PRIMARY KEY (id)
);
CREATE INDEX session_errors_by_time ON session_errors (session_id, at DESC, id DESC);
