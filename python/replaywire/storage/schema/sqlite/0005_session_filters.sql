-- GET /sessions filters: a user's sessions newest first, and
-- pages by the (started_at, session_id) keyset, read from an index in the
-- listing order instead of sorting every matching row.

CREATE INDEX sessions_user_started ON sessions (user_id, started_at, session_id);
DROP INDEX sessions_user;
CREATE INDEX sessions_started_id ON sessions (started_at, session_id);
DROP INDEX sessions_started;
