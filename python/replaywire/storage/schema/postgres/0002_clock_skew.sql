-- 0002: clock skew. chunks.received_at is when the server accepted the
-- batch (server clock; NULL for chunks stored before this migration), sent
-- by the Rust COPY encoder between codec and stored_at (the COPY column
-- list names the columns, so the stream's order need not be the table's);
-- sessions.clock_skew_ms is how far the tracker's clock is ahead of the
-- server's, in ms (see replaywire.sessions.skew).
--
-- Both columns are nullable without a default: adding them rewrites no
-- rows, so the migration takes its ACCESS EXCLUSIVE locks for milliseconds.
-- On the partitioned chunks table the column is added to every partition,
-- and partitions created later copy it (LIKE chunks INCLUDING ALL).

ALTER TABLE sessions ADD COLUMN clock_skew_ms double precision;
ALTER TABLE chunks ADD COLUMN received_at timestamptz;
