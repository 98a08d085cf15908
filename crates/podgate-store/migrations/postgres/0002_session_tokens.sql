-- Keys that sign terminal session tokens, and the ids of tokens already used (single use).
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- No longer used to sign from this time.
    retired_at  BIGINT,
    -- No longer published nor accepted from this time.
    expires_at  BIGINT
);

CREATE TABLE used_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_tokens_expires ON used_tokens (expires_at);
