-- Terminal recordings (asciicast v2) live in the database, so every replica serves them: one row
-- per recording and its text in ordered chunks, removed with it.
CREATE TABLE recordings (
    sandbox_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    size BIGINT NOT NULL DEFAULT 0,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, terminal_id)
);
CREATE INDEX recordings_modified_at ON recordings (modified_at);
CREATE TABLE recording_chunks (
    sandbox_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (sandbox_id, terminal_id, seq),
    FOREIGN KEY (sandbox_id, terminal_id) REFERENCES recordings (sandbox_id, terminal_id) ON DELETE CASCADE
);
