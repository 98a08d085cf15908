//! Templates: named sandbox requests, and the transfer of a warm pool's sandbox to the user
//! who claims it.

use crate::limits::{Ceiling, HELD_COLUMNS, owner_lock};
use crate::{Result, SandboxRow, Store};

/// A template; `request` is the JSON of its sandbox request.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct TemplateRow {
    pub name: String,
    pub request: String,
    pub pool_size: i64,
    pub owner_id: String,
    pub created_at: i64,
    /// Where its sandboxes are scheduled on Kubernetes (JSON), if the admin said.
    pub scheduling: Option<String>,
    /// Why its warm pool's last refill failed, and when (ms), until one succeeds.
    #[sqlx(default)]
    pub pool_error: Option<String>,
    #[sqlx(default)]
    pub pool_error_at: Option<i64>,
}

impl Store {
    /// Adds or replaces template `t.name`.
    pub async fn put_template(&self, t: &TemplateRow) -> Result<()> {
        on_db!(self, p => sqlx::query(
            "INSERT INTO templates (name, request, pool_size, owner_id, created_at, scheduling) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET request = excluded.request, pool_size = excluded.pool_size, \
             owner_id = excluded.owner_id, scheduling = excluded.scheduling, pool_error = NULL, pool_error_at = NULL",
        )
        .bind(&t.name)
        .bind(&t.request)
        .bind(t.pool_size)
        .bind(&t.owner_id)
        .bind(t.created_at)
        .bind(&t.scheduling)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Template `name`.
    pub async fn template(&self, name: &str) -> Result<Option<TemplateRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM templates WHERE name = $1")
            .bind(name)
            .fetch_optional(p)
            .await?))
    }

    /// Every template, by name.
    pub async fn templates(&self) -> Result<Vec<TemplateRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM templates ORDER BY name").fetch_all(p).await?))
    }

    /// Records why template `name`'s pool refill failed (`None`: it succeeded).
    pub async fn set_pool_error(&self, name: &str, error: Option<&str>, at: i64) -> Result<()> {
        on_db!(self, p => sqlx::query("UPDATE templates SET pool_error = $1, pool_error_at = $2 WHERE name = $3")
            .bind(error)
            .bind(error.map(|_| at))
            .bind(name)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Deletes template `name`; false when there was none.
    pub async fn delete_template(&self, name: &str) -> Result<bool> {
        Ok(on_db!(self, p => sqlx::query("DELETE FROM templates WHERE name = $1")
            .bind(name)
            .execute(p)
            .await?
            .rows_affected())
            == 1)
    }

    /// Hands the running sandbox `to.id`, owned by `from_owner`, to `to.owner_id` with `to`'s
    /// name, spec, expiry and pool (none once claimed), if the new owner's sandboxes stay within
    /// `ceiling` with its charge (in one statement under the new owner's lock, like a create).
    /// False when it was claimed already, stopped, or would not fit; a name the new owner uses
    /// already is a conflict.
    pub async fn transfer_sandbox_within(&self, to: &SandboxRow, from_owner: &str, ceiling: Ceiling) -> Result<bool> {
        let sql = format!(
            "UPDATE sandboxes SET owner_id = $1, name = $2, spec = $3, expires_at = $4, updated_at = $5, \
             pool = $15, revision = revision + 1 \
             WHERE id = $6 AND owner_id = $7 AND state = 'running' AND EXISTS (SELECT 1 FROM \
             (SELECT {} FROM sandboxes WHERE owner_id = $1 AND {}) AS held \
             WHERE held.n + 1 <= $8 AND held.cpu + $9 <= $10 + 1e-9 AND held.memory + $11 <= $12 \
             AND held.disk + {} + $13 <= $14)",
            HELD_COLUMNS,
            crate::limits::HOLDING,
            crate::limits::stored_disk("$1")
        );
        let lock = owner_lock(&self.db);
        let taken = || format!("sandbox name {:?} is already in use", to.name);
        let n = on_db!(self, p => {
            let mut tx = p.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(&to.owner_id).execute(&mut *tx).await?;
            }
            let n = sqlx::query(&sql)
                .bind(&to.owner_id)
                .bind(&to.name)
                .bind(to.spec.to_string())
                .bind(to.expires_at)
                .bind(to.updated_at)
                .bind(&to.id)
                .bind(from_owner)
                .bind(ceiling.sandboxes)
                .bind(to.charged_cpu)
                .bind(ceiling.cpu)
                .bind(to.charged_memory)
                .bind(ceiling.memory)
                .bind(to.charged_disk)
                .bind(ceiling.disk)
                .bind(&to.pool)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::error::conflict_on_unique(e, taken))?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }
}
