//! podgate's state store: one `Db` enum over SQLite (default) with portable SQL and per-dialect migrations.

mod audit;
mod error;
mod identities;
mod keys;
mod limits;
mod rows;
mod sandboxes;
mod users;

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use audit::{AuditFilter, AuditRow};
pub use error::{Error, Result};
pub use keys::SigningKeyRow;
pub use limits::{Ceiling, Usage};
pub use rows::{SandboxRow, TokenRow, UserRow};

/// The database behind the store. Queries are written once in portable SQL (`$1` placeholders);
/// each dialect has its own migrations with identical versions. PostgreSQL joins here for replicas.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
}

/// Handle to podgate's state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and runs its migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Store { db: Db::Sqlite(pool) })
    }

    /// The underlying database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
        }
        Ok(())
    }

    /// The value stored under `key`, setting it to `value` first if the key is new.
    pub async fn meta_get_or_init(&self, key: &str, value: &str) -> Result<String> {
        match &self.db {
            Db::Sqlite(p) => {
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(p)
                    .await?;
                let (v,): (String,) =
                    sqlx::query_as("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(p).await?;
                Ok(v)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::Store;

    pub async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
        (s, dir)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn meta_keeps_first_value() {
        let (s, _d) = super::test_util::store().await;
        assert_eq!(s.meta_get_or_init("k", "a").await.unwrap(), "a");
        assert_eq!(s.meta_get_or_init("k", "b").await.unwrap(), "a");
        s.ping().await.unwrap();
    }
}
