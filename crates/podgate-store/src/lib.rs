//! podgate's state store: one `Db` enum over SQLite (default) or PostgreSQL, with portable SQL and
//! per-dialect migrations.

/// Runs `$body` with `$p` bound to the pool of whichever database the store uses. The body is
/// compiled once per dialect, so each portable query is written once.
macro_rules! on_db {
    ($store:expr, $p:ident => $body:expr) => {{
        // While the database is known to be out of reach, fail at once (see `Breaker`).
        $store.breaker.check()?;
        let r: $crate::Result<_> = async {
            Ok(match &$store.db {
                $crate::Db::Sqlite($p) => $body,
                $crate::Db::Postgres($p) => $body,
            })
        }
        .await;
        match r {
            Ok(v) => {
                $store.breaker.ok();
                v
            }
            Err(e) => {
                $store.breaker.saw(&e);
                return Err(e);
            }
        }
    }};
}

mod audit;
mod breaker;
mod error;
mod identities;
mod keys;
mod leases;
mod limits;
mod recordings;
mod rows;
mod sandboxes;
mod shares;
mod snapshots;
mod ssh_keys;
mod templates;
mod users;
mod volumes;

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use audit::{AuditFilter, AuditRow};
pub use error::{Error, Result};
pub use keys::SigningKeyRow;
pub use limits::{Ceiling, Usage};
pub use recordings::RecordingRow;
pub use rows::{SandboxRow, TokenRow, UserRow};
pub use snapshots::SnapshotRow;
pub use ssh_keys::SshKeyRow;
pub use templates::TemplateRow;
pub use volumes::VolumeRow;

/// The database behind the store. Queries are written once in portable SQL (`$1` placeholders);
/// each dialect has its own migrations with identical versions. PostgreSQL lets several servers
/// share one state.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The longest a single PostgreSQL statement may run.
const STATEMENT_TIMEOUT: &str = "30s";

/// Handle to podgate's state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    breaker: breaker::Breaker,
}

impl Store {
    /// Opens the database named by `url`: `postgres://…` (or `postgresql://…`) or `sqlite://PATH`.
    pub async fn open(url: &str) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::open_postgres(url).await
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Store::open_sqlite(Path::new(path)).await
        } else {
            Err(Error::Config(format!("unsupported database URL {url:?}: use postgres://… or sqlite://PATH")))
        }
    }

    /// Connects to the PostgreSQL database at `url` and runs its migrations (under PostgreSQL's
    /// migration lock, so replicas starting together migrate once).
    pub async fn open_postgres(url: &str) -> Result<Store> {
        let opts = PgConnectOptions::from_str(url)?
            .application_name("podgate")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(breaker::ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Store { db: Db::Postgres(pool), breaker: Default::default() })
    }

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
            .acquire_timeout(breaker::ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Store { db: Db::Sqlite(pool), breaker: Default::default() })
    }

    /// The underlying database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await?.rows_affected());
        Ok(())
    }

    /// The value stored under `key`, setting it to `value` first if the key is new.
    pub async fn meta_get_or_init(&self, key: &str, value: &str) -> Result<String> {
        on_db!(self, p => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(p)
                .await?;
            let (v,): (String,) =
                sqlx::query_as("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(p).await?;
            Ok(v)
        })
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Every store test runs on both dialects: `both!(name)` makes `name::sqlite` and
    //! `name::postgres` tests of `async fn name(store)`, the latter on a private PostgreSQL server.

    use super::Store;

    /// What keeps a test's database alive.
    pub enum Guard {
        Sqlite(#[allow(dead_code)] tempfile::TempDir),
        Postgres(#[allow(dead_code)] podgate_testpg::TestPg),
    }

    pub async fn sqlite() -> (Store, Guard) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        (s, Guard::Sqlite(dir))
    }

    pub async fn postgres() -> (Store, Guard) {
        let pg = podgate_testpg::TestPg::start();
        let s = Store::open(&pg.url()).await.unwrap();
        (s, Guard::Postgres(pg))
    }

    macro_rules! both {
        ($name:ident) => {
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let (s, _g) = crate::test_util::sqlite().await;
                    super::$name(s).await
                }

                #[tokio::test]
                async fn postgres() {
                    let (s, _g) = crate::test_util::postgres().await;
                    super::$name(s).await
                }
            }
        };
    }
    pub(crate) use both;
}

#[cfg(test)]
mod tests {
    crate::test_util::both!(meta_keeps_first_value);
    async fn meta_keeps_first_value(s: crate::Store) {
        assert_eq!(s.meta_get_or_init("k", "a").await.unwrap(), "a");
        assert_eq!(s.meta_get_or_init("k", "b").await.unwrap(), "a");
        s.ping().await.unwrap();
    }
}
