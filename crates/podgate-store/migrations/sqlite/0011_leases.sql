-- Leases: one holder at a time for work a single replica must do (the reconciler), taken over
-- when the holder stops renewing.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
