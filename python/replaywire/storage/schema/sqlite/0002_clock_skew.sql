-- 0002: clock skew. chunks.received_at is when the server accepted the
-- batch (epoch seconds, server clock; NULL for chunks stored before this
-- migration); sessions.clock_skew_ms is how far the tracker's clock is ahead
-- of the server's, in ms (see replaywire.sessions.skew).
--
-- ALTER TABLE appends received_at after payload. Only read_chunks, which
-- reads the payload anyway, selects it; scans of the small columns
-- (resume_state) still never touch the payload's overflow pages.

ALTER TABLE sessions ADD COLUMN clock_skew_ms REAL;
ALTER TABLE chunks ADD COLUMN received_at REAL;
