-- Disk quotas: a volume's size and the bytes a snapshot adds to its base image (0 for those
-- made before sizes existed), summed with sandboxes' `disk` against a user's disk quota.
ALTER TABLE volumes ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
-- An encrypted volume's key derivation (salt, parameters) and passphrase verifier, as JSON;
-- never the key or the passphrase. NULL: not encrypted.
ALTER TABLE volumes ADD COLUMN encryption TEXT;
