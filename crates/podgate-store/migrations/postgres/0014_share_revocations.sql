-- Read-only share links of a terminal issued before `revoked_at` (unix ms) are refused.
CREATE TABLE share_revocations (
    sandbox_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, terminal_id)
);
