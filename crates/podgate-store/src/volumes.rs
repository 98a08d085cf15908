//! Persistent volumes of users: one live volume per user and name.

use crate::error::conflict_on_unique;
use crate::limits::{owner_lock, sandbox_disk, stored_disk};
use crate::{Result, Store};

/// A user's persistent volume.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct VolumeRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    /// Bytes (0: made before sizes, unbounded).
    pub size: i64,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
    /// How its key is derived and checked (JSON), for an encrypted volume.
    pub encryption: Option<String>,
}

impl Store {
    /// Adds a volume unless its owner holds `max` live volumes already, or its size would take
    /// the owner's disk (sandboxes, volumes, snapshots) over `max_disk` (false then); a live
    /// volume of the same owner and name is a conflict.
    pub async fn insert_volume_within(&self, v: &VolumeRow, max: i64, max_disk: i64) -> Result<bool> {
        let sql = format!(
            "INSERT INTO volumes (id, owner_id, name, size, created_at, deleted_at, encryption) \
             SELECT $1, $2, $3, $6, $4, NULL, $8 FROM \
             (SELECT count(*) AS n FROM volumes WHERE owner_id = $2 AND deleted_at IS NULL) AS held \
             WHERE held.n + 1 <= $5 AND {} + {} + $6 <= $7",
            sandbox_disk("$2"),
            stored_disk("$2")
        );
        let lock = owner_lock(&self.db);
        let taken = || format!("volume name {:?} is already in use", v.name);
        let inserted = on_db!(self, p => {
            let mut tx = p.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(&v.owner_id).execute(&mut *tx).await?;
            }
            let n = sqlx::query(&sql)
            .bind(&v.id)
            .bind(&v.owner_id)
            .bind(&v.name)
            .bind(v.created_at)
            .bind(max)
            .bind(v.size)
            .bind(max_disk)
            .bind(&v.encryption)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, taken))?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(inserted == 1)
    }

    /// The live volume `name` of `owner_id`.
    pub async fn live_volume_by_name(&self, owner_id: &str, name: &str) -> Result<Option<VolumeRow>> {
        Ok(on_db!(self, p => sqlx::query_as(
            "SELECT * FROM volumes WHERE owner_id = $1 AND name = $2 AND deleted_at IS NULL",
        )
        .bind(owner_id)
        .bind(name)
        .fetch_optional(p)
        .await?))
    }

    /// The volume with this id, live or deleted.
    pub async fn volume(&self, id: &str) -> Result<Option<VolumeRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM volumes WHERE id = $1").bind(id).fetch_optional(p).await?))
    }

    /// Live volumes, of one owner or of everyone, oldest first.
    pub async fn live_volumes(&self, owner_id: Option<&str>) -> Result<Vec<VolumeRow>> {
        Ok(on_db!(self, p => match owner_id {
            Some(o) => sqlx::query_as(
                "SELECT * FROM volumes WHERE owner_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
            )
            .bind(o)
            .fetch_all(p)
            .await?,
            None => sqlx::query_as("SELECT * FROM volumes WHERE deleted_at IS NULL ORDER BY created_at, id")
                .fetch_all(p)
                .await?,
        }))
    }

    /// Number of live volumes of `owner_id`.
    pub async fn count_volumes(&self, owner_id: &str) -> Result<i64> {
        Ok(on_db!(self, p => {
            let (n,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM volumes WHERE owner_id = $1 AND deleted_at IS NULL")
                    .bind(owner_id)
                    .fetch_one(p)
                    .await?;
            n
        }))
    }

    /// Marks a volume deleted (its name is free again); false when it was not live.
    pub async fn mark_volume_deleted(&self, id: &str, now: i64) -> Result<bool> {
        Ok(on_db!(self, p => sqlx::query("UPDATE volumes SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected())
            == 1)
    }

    /// Forgets a volume that was never used (its sandbox could not be created).
    pub async fn forget_volume(&self, id: &str) -> Result<()> {
        on_db!(self, p => sqlx::query("DELETE FROM volumes WHERE id = $1").bind(id).execute(p).await?.rows_affected());
        Ok(())
    }
}
