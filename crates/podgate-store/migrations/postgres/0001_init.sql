-- Initial schema: server metadata, users, API tokens, sandboxes. Times are unix milliseconds.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE sandboxes (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    image        TEXT NOT NULL,
    spec         TEXT NOT NULL,
    error        TEXT,
    agent_secret TEXT NOT NULL,
    agent_url    TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    deleted_at   BIGINT
);

-- Names are unique per owner among sandboxes that are not deleted.
CREATE UNIQUE INDEX sandboxes_owner_name ON sandboxes (owner_id, name) WHERE state <> 'deleted';
CREATE INDEX sandboxes_state ON sandboxes (state);
