-- Rate-limit counters shared by every server on this database (fixed one-minute windows), and
-- per-user quota overrides (JSON of the limits that differ from the server's defaults).
CREATE TABLE rate_counters (
    key    TEXT NOT NULL,
    "window" BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (key, "window")
);

ALTER TABLE users ADD COLUMN quota TEXT;
