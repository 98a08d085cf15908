-- The audit trail: who did what to which sandbox, from where, with what result.
CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor_id   TEXT,
    actor_name TEXT,
    source     TEXT,
    action     TEXT NOT NULL,
    sandbox_id TEXT,
    result     TEXT NOT NULL,
    detail     TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at);
CREATE INDEX audit_events_sandbox ON audit_events (sandbox_id, at);
