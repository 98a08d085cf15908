//! Snapshots of sandboxes: images owned by users, one live snapshot per user and name.

use crate::error::conflict_on_unique;
use crate::limits::{owner_lock, sandbox_disk, stored_disk};
use crate::{Result, Store};

/// A user's snapshot; `image` is the runtime's reference to it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SnapshotRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub sandbox_id: String,
    pub image: String,
    /// Bytes it adds to its base image.
    pub bytes: i64,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

impl Store {
    /// Adds a snapshot unless its bytes would take its owner's disk (sandboxes, volumes,
    /// snapshots) over `max_disk` (false then), under the owner's lock; a live one of the same
    /// owner and name is a conflict.
    pub async fn insert_snapshot_within(&self, s: &SnapshotRow, max_disk: i64) -> Result<bool> {
        let taken = || format!("snapshot name {:?} is already in use", s.name);
        let sql = format!(
            "INSERT INTO snapshots (id, owner_id, name, sandbox_id, image, bytes, created_at, deleted_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, NULL WHERE {} + {} + $6 <= $8",
            sandbox_disk("$2"),
            stored_disk("$2")
        );
        let lock = owner_lock(&self.db);
        let inserted = on_db!(self, p => {
            let mut tx = p.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(&s.owner_id).execute(&mut *tx).await?;
            }
            let n = sqlx::query(&sql)
                .bind(&s.id)
                .bind(&s.owner_id)
                .bind(&s.name)
                .bind(&s.sandbox_id)
                .bind(&s.image)
                .bind(s.bytes)
                .bind(s.created_at)
                .bind(max_disk)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_on_unique(e, taken))?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(inserted == 1)
    }

    /// The live snapshot with this id.
    pub async fn live_snapshot(&self, id: &str) -> Result<Option<SnapshotRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM snapshots WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(p)
            .await?))
    }

    /// The live snapshot `name` of `owner_id`.
    pub async fn live_snapshot_by_name(&self, owner_id: &str, name: &str) -> Result<Option<SnapshotRow>> {
        Ok(on_db!(self, p => sqlx::query_as(
            "SELECT * FROM snapshots WHERE owner_id = $1 AND name = $2 AND deleted_at IS NULL",
        )
        .bind(owner_id)
        .bind(name)
        .fetch_optional(p)
        .await?))
    }

    /// Live snapshots, of one owner or of everyone, oldest first.
    pub async fn live_snapshots(&self, owner_id: Option<&str>) -> Result<Vec<SnapshotRow>> {
        Ok(on_db!(self, p => match owner_id {
            Some(o) => sqlx::query_as(
                "SELECT * FROM snapshots WHERE owner_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
            )
            .bind(o)
            .fetch_all(p)
            .await?,
            None => sqlx::query_as("SELECT * FROM snapshots WHERE deleted_at IS NULL ORDER BY created_at, id")
                .fetch_all(p)
                .await?,
        }))
    }

    /// Marks a snapshot deleted; false when it was not live.
    pub async fn mark_snapshot_deleted(&self, id: &str, now: i64) -> Result<bool> {
        Ok(on_db!(self, p => sqlx::query("UPDATE snapshots SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected())
            == 1)
    }
}
