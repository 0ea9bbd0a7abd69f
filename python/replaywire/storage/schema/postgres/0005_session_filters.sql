-- GET /sessions filters: a user's sessions newest first, in the
-- listing order (tenant, then started_at and session_id descending), so a
-- filter by user and a page after a cursor read the index in order. It
-- replaces sessions_by_user, whose (tenant, user_id) it starts with. Like
-- the others it leaves out the columns every flush rewrites, so those
-- upserts stay HOT updates. The URL substring and the minimum duration are
-- checked on the rows these select (see storage.base.SessionFilter).

CREATE INDEX sessions_by_user_started
    ON sessions (tenant, user_id, started_at DESC, session_id DESC);
DROP INDEX sessions_by_user;
