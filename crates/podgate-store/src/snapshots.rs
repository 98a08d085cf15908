//! Snapshots of sandboxes: images owned by users, one live snapshot per user and name.

use crate::error::conflict_on_unique;
use crate::{Result, Store};

/// A user's snapshot; `image` is the runtime's reference to it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SnapshotRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub sandbox_id: String,
    pub image: String,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

impl Store {
    /// Adds a snapshot; a live one of the same owner and name is a conflict.
    pub async fn insert_snapshot(&self, s: &SnapshotRow) -> Result<()> {
        let taken = || format!("snapshot name {:?} is already in use", s.name);
        on_db!(self, p => sqlx::query(
            "INSERT INTO snapshots (id, owner_id, name, sandbox_id, image, created_at, deleted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&s.id)
        .bind(&s.owner_id)
        .bind(&s.name)
        .bind(&s.sandbox_id)
        .bind(&s.image)
        .bind(s.created_at)
        .execute(p)
        .await
        .map_err(|e| conflict_on_unique(e, taken))?
        .rows_affected());
        Ok(())
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
