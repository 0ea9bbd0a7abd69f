-- 0001: sessions, their stored chunks, and the errors answered to trackers.
-- Times are epoch seconds (REAL) on the server clock, except chunks.first_ts
-- and last_ts, which are the events' own timestamps (ms) as the tracker sent
-- them. chunks.payload comes last so that scans reading only the small
-- columns never touch the payload's overflow pages.

CREATE TABLE sessions (
    session_id         TEXT    NOT NULL PRIMARY KEY,
    user_id            TEXT,
    url                TEXT,
    user_agent         TEXT,
    referrer           TEXT,
    time_zone          TEXT,
    viewport_width     INTEGER,
    viewport_height    INTEGER,
    device_pixel_ratio REAL,
    client_start_time  REAL,
    started_at         REAL    NOT NULL,
    ended_at           REAL,
    last_event_at      REAL,
    event_count        INTEGER NOT NULL DEFAULT 0,
    byte_count         INTEGER NOT NULL DEFAULT 0,
    status             TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended'))
);
CREATE INDEX sessions_status_last_event ON sessions (status, last_event_at);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE chunks (
    session_id  TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    first_index INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    first_ts    REAL,
    last_ts     REAL,
    codec       TEXT    NOT NULL,
    stored_at   REAL    NOT NULL,
    payload     BLOB    NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX chunks_by_index ON chunks (session_id, first_index);

CREATE TABLE session_errors (
    id         INTEGER PRIMARY KEY,  -- rowid alias: assigned in insert order
    session_id TEXT    NOT NULL,
    at         REAL    NOT NULL,
    code       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    seq        INTEGER
);
CREATE INDEX session_errors_by_time ON session_errors (session_id, at);
