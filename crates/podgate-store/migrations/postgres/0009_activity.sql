-- Last user activity of a sandbox (unix ms), written at most every few seconds by the replica
-- that saw it, so that idle shutdown sees activity on every replica.
ALTER TABLE sandboxes ADD COLUMN last_active_at BIGINT;
