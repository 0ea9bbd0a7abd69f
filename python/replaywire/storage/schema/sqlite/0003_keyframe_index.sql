-- Where a late viewer of the session starts: the index of the meta event
-- before the latest full snapshot (or of that snapshot). Kept with the
-- session so that a viewer still starts there once the ring buffer has
-- trimmed it, and after a restart.
ALTER TABLE sessions ADD COLUMN keyframe_index INTEGER;
