//! Store errors.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A uniqueness constraint was violated (e.g. a sandbox name already in use).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A state change that the lifecycle table does not allow (a bug in the caller).
    #[error("illegal state change: {0}")]
    Illegal(String),
    /// A stored value could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database URL or settings are unusable.
    #[error("{0}")]
    Config(String),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// Whether the database is not there (yet, or for now): down, restarting or out of reach, as
    /// opposed to a wrong URL, wrong credentials or a bad query.
    pub fn is_unreachable(&self) -> bool {
        let e = match self {
            Error::Database(e) | Error::Migrate(sqlx::migrate::MigrateError::Execute(e)) => e,
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
            // PostgreSQL's "operator intervention" class: shutting down, starting up, cannot connect now.
            sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("57P")),
            _ => false,
        }
    }
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps a unique-constraint violation to [`Error::Conflict`] with `what` as the message.
pub(crate) fn conflict_on_unique(e: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(what()),
        _ => Error::Database(e),
    }
}
