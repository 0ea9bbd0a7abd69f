-- The tracker's latest snapshot_missing notice: the page's full snapshot
-- could not be delivered (why, its size in bytes, the limit it was over,
-- and when the server heard it). All NULL when no notice came;
-- SessionRecord.to_json shows them as one "snapshotMissing" object.
-- Nullable with no default: adding them rewrites nothing. bigint, as the
-- protocol reads the sizes as 64-bit integers (below 2^63).

ALTER TABLE sessions ADD COLUMN snapshot_missing_reason text;
ALTER TABLE sessions ADD COLUMN snapshot_missing_bytes bigint;
ALTER TABLE sessions ADD COLUMN snapshot_missing_limit_bytes bigint;
ALTER TABLE sessions ADD COLUMN snapshot_missing_at timestamptz;
