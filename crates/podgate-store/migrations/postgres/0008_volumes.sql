-- Persistent workspaces: a user's named volume, mounted at /workspace by the sandbox of the same
-- name that asks to persist it; it outlives the sandbox until deleted.
CREATE TABLE volumes (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX volumes_owner_name ON volumes (owner_id, name) WHERE deleted_at IS NULL;
