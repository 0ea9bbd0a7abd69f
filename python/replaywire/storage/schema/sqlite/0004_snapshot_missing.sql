-- The tracker's latest snapshot_missing notice: the page's full snapshot
-- could not be delivered (why, its size in bytes, the limit it was over,
-- and when the server heard it, epoch seconds). All NULL when no notice
-- came; SessionRecord.to_json shows them as one "snapshotMissing" object.

ALTER TABLE sessions ADD COLUMN snapshot_missing_reason TEXT;
ALTER TABLE sessions ADD COLUMN snapshot_missing_bytes INTEGER;
ALTER TABLE sessions ADD COLUMN snapshot_missing_limit_bytes INTEGER;
ALTER TABLE sessions ADD COLUMN snapshot_missing_at REAL;
