-- Snapshots: a sandbox's filesystem saved as an image its owner can create sandboxes from.
CREATE TABLE snapshots (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id),
    name       TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    image      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX snapshots_owner_name ON snapshots (owner_id, name) WHERE deleted_at IS NULL;
