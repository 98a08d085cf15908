-- Code bootstrap: its status (JSON) and the tail of its log once it ended.
ALTER TABLE sandboxes ADD COLUMN bootstrap TEXT;
ALTER TABLE sandboxes ADD COLUMN bootstrap_log BYTEA;
