-- Templates: named sandbox requests admins define; a template may keep a warm pool of ready
-- sandboxes, owned by the admin who defined it until a user claims one.
CREATE TABLE templates (
    name       TEXT PRIMARY KEY,
    request    TEXT NOT NULL,
    pool_size  BIGINT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
