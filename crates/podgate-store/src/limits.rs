//! Rate-limit counters and quota checks: both live in the database so that several servers on
//! one database enforce one limit.

use crate::{Db, Result, SandboxRow, Store};

/// What one user's live sandboxes hold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub sandboxes: i64,
    pub cpu: f64,
    pub memory: i64,
    /// Live persistent volumes.
    pub volumes: i64,
    /// Bytes of disk held: live sandboxes' `disk`, live volumes' sizes, live snapshots' bytes.
    pub disk: i64,
}

/// The most a user may hold at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ceiling {
    pub sandboxes: i64,
    pub cpu: f64,
    pub memory: i64,
    pub disk: i64,
}

impl Ceiling {
    /// No limit at all.
    pub const UNLIMITED: Ceiling = Ceiling { sandboxes: i64::MAX, cpu: f64::MAX, memory: i64::MAX, disk: i64::MAX };
}

/// States whose sandboxes count against a quota (they hold, or may soon hold, a container).
pub(crate) const HOLDING: &str = "state IN ('pending', 'starting', 'running', 'paused', 'stopping')";

/// The columns `n`, `cpu`, `memory` and `disk` summed over a set of sandbox rows (what each is
/// charged, with its sidecars).
pub(crate) const HELD_COLUMNS: &str = "count(*) AS n, CAST(coalesce(sum(charged_cpu), 0.0) AS DOUBLE PRECISION) AS cpu, \
     CAST(coalesce(sum(charged_memory), 0) AS BIGINT) AS memory, CAST(coalesce(sum(charged_disk), 0) AS BIGINT) AS disk";

/// Bytes the owner bound to `param` holds outside sandboxes: its live volumes' sizes and its
/// live snapshots' bytes (the same SQL in both dialects).
pub(crate) fn stored_disk(param: &str) -> String {
    format!(
        "CAST((SELECT coalesce(sum(size), 0) FROM volumes WHERE owner_id = {param} AND deleted_at IS NULL) \
         + (SELECT coalesce(sum(bytes), 0) FROM snapshots WHERE owner_id = {param} AND deleted_at IS NULL) AS BIGINT)"
    )
}

/// Bytes the owner bound to `param` holds in live sandboxes' own filesystems.
pub(crate) fn sandbox_disk(param: &str) -> String {
    format!(
        "(SELECT CAST(coalesce(sum(charged_disk), 0) AS BIGINT) FROM sandboxes WHERE owner_id = {param} AND {HOLDING})"
    )
}

/// A statement that holds a per-owner lock until the transaction ends (PostgreSQL reads committed
/// rows, so two quota checks could otherwise pass together; SQLite serialises writers anyway).
pub(crate) fn owner_lock(db: &Db) -> Option<&'static str> {
    match db {
        Db::Sqlite(_) => None,
        Db::Postgres(_) => Some("SELECT pg_advisory_xact_lock(hashtext($1))::text"),
    }
}

impl Store {
    /// Counts one hit on `key` in `window` and returns the hits so far in it.
    pub async fn rate_hit(&self, key: &str, window: i64) -> Result<i64> {
        Ok(on_db!(self, p => {
            let (n,): (i64,) = sqlx::query_as(
                "INSERT INTO rate_counters (key, \"window\", count) VALUES ($1, $2, 1) \
                 ON CONFLICT (key, \"window\") DO UPDATE SET count = rate_counters.count + 1 RETURNING count",
            )
            .bind(key)
            .bind(window)
            .fetch_one(p)
            .await?;
            n
        }))
    }

    /// Removes counters of windows before `window`.
    pub async fn purge_rate_counters(&self, window: i64) -> Result<u64> {
        Ok(on_db!(self, p => sqlx::query("DELETE FROM rate_counters WHERE \"window\" < $1")
                .bind(window)
                .execute(p)
                .await?
                .rows_affected()))
    }

    /// What `owner_id`'s live sandboxes hold.
    pub async fn usage(&self, owner_id: &str) -> Result<Usage> {
        let sql = format!(
            "SELECT held.*, {} AS stored FROM (SELECT {} FROM sandboxes WHERE owner_id = $1 AND {HOLDING}) AS held",
            stored_disk("$1"),
            HELD_COLUMNS
        );
        let (sandboxes, cpu, memory, disk, stored): (i64, f64, i64, i64, i64) =
            on_db!(self, p => sqlx::query_as(&sql).bind(owner_id).fetch_one(p).await?);
        let volumes = self.count_volumes(owner_id).await?;
        Ok(Usage { sandboxes, cpu, memory, volumes, disk: disk.saturating_add(stored) })
    }

    /// Inserts a new sandbox only if its owner's sandboxes, with it, stay within `ceiling`, in one
    /// transaction under the owner's lock so that concurrent creates cannot both pass. Its
    /// `charged_*` are what it adds (its disk is summed with the owner's volumes and snapshots).
    /// Returns false (nothing inserted) when it would not fit.
    pub async fn insert_sandbox_within(&self, s: &SandboxRow, ceiling: Ceiling) -> Result<bool> {
        let sql = format!(
            "INSERT INTO sandboxes (id, owner_id, name, state, image, spec, error, agent_secret, agent_url, \
             created_at, updated_at, expires_at, deleted_at, charged_cpu, charged_memory, charged_disk, pool) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $17, $19, $21 FROM \
             (SELECT {} FROM sandboxes WHERE owner_id = $2 AND {HOLDING}) AS held \
             WHERE held.n + 1 <= $14 AND held.cpu + $15 <= $16 + 1e-9 AND held.memory + $17 <= $18 \
             AND held.disk + {} + $19 <= $20",
            HELD_COLUMNS,
            stored_disk("$2")
        );
        let lock = owner_lock(&self.db);
        let taken = || format!("sandbox name {:?} is already in use", s.name);
        let inserted = on_db!(self, p => {
            let mut tx = p.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(&s.owner_id).execute(&mut *tx).await?;
            }
            let n = sqlx::query(&sql)
                .bind(&s.id)
                .bind(&s.owner_id)
                .bind(&s.name)
                .bind(s.state.as_str())
                .bind(&s.image)
                .bind(s.spec.to_string())
                .bind(&s.error)
                .bind(&s.agent_secret)
                .bind(&s.agent_url)
                .bind(s.created_at)
                .bind(s.updated_at)
                .bind(s.expires_at)
                .bind(s.deleted_at)
                .bind(ceiling.sandboxes)
                .bind(s.charged_cpu)
                .bind(ceiling.cpu)
                .bind(s.charged_memory)
                .bind(ceiling.memory)
                .bind(s.charged_disk)
                .bind(ceiling.disk)
                .bind(&s.pool)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::error::conflict_on_unique(e, taken))?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(inserted == 1)
    }

    /// Sets (or with `None` clears) a user's quota overrides, as JSON.
    pub async fn set_user_quota(&self, user_id: &str, quota: Option<&str>) -> Result<bool> {
        Ok(on_db!(self, p => {
            sqlx::query("UPDATE users SET quota = $1 WHERE id = $2")
                .bind(quota)
                .bind(user_id)
                .execute(p)
                .await?
                .rows_affected()
                == 1
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, owner: &str, cpu: f64, memory: i64) -> SandboxRow {
        SandboxRow {
            id: id.into(),
            owner_id: owner.into(),
            name: id.into(),
            state: podgate_types::state::SandboxState::Pending,
            image: "i".into(),
            spec: Default::default(),
            error: None,
            agent_secret: "s".into(),
            agent_url: None,
            created_at: 0,
            updated_at: 0,
            expires_at: None,
            deleted_at: None,
            bootstrap: None,
            bootstrap_log: None,
            last_active_at: None,
            charged_cpu: cpu,
            charged_memory: memory,
            charged_disk: 0,
            pool: None,
            revision: 0,
        }
    }

    crate::test_util::both!(counts_hits_per_window_and_purges);
    async fn counts_hits_per_window_and_purges(s: crate::Store) {
        assert_eq!(s.rate_hit("ip:1", 10).await.unwrap(), 1);
        assert_eq!(s.rate_hit("ip:1", 10).await.unwrap(), 2);
        assert_eq!(s.rate_hit("ip:2", 10).await.unwrap(), 1);
        assert_eq!(s.rate_hit("ip:1", 11).await.unwrap(), 1);
        assert_eq!(s.purge_rate_counters(11).await.unwrap(), 2);
    }

    crate::test_util::both!(inserts_only_within_the_ceiling);
    async fn inserts_only_within_the_ceiling(s: crate::Store) {
        let u = crate::UserRow { id: "u1".into(), name: "u".into(), role: "user".into(), created_at: 0, quota: None };
        s.insert_user(&u).await.unwrap();
        let ceiling = Ceiling { sandboxes: 2, cpu: 1.5, memory: 3 << 30, disk: i64::MAX };
        assert!(s.insert_sandbox_within(&row("a", &u.id, 1.0, 1 << 30), ceiling).await.unwrap());
        assert!(!s.insert_sandbox_within(&row("b", &u.id, 1.0, 1 << 30), ceiling).await.unwrap());
        assert!(s.insert_sandbox_within(&row("c", &u.id, 0.5, 2 << 30), ceiling).await.unwrap());
        assert!(!s.insert_sandbox_within(&row("d", &u.id, 0.0, 0), ceiling).await.unwrap(), "count");
        assert!(s.sandbox("b").await.unwrap().is_none());
        let usage = Usage { sandboxes: 2, cpu: 1.5, memory: 3 << 30, volumes: 0, disk: 0 };
        assert_eq!(s.usage(&u.id).await.unwrap(), usage);
    }

    crate::test_util::both!(disk_counts_sandboxes_volumes_and_snapshots_together);
    async fn disk_counts_sandboxes_volumes_and_snapshots_together(s: crate::Store) {
        let u = crate::UserRow { id: "u1".into(), name: "u".into(), role: "user".into(), created_at: 0, quota: None };
        s.insert_user(&u).await.unwrap();
        let ceiling = Ceiling { disk: 10, ..Ceiling::UNLIMITED };
        let with_disk = |id: &str, disk: i64| SandboxRow { charged_disk: disk, ..row(id, "u1", 0.0, 0) };
        assert!(s.insert_sandbox_within(&with_disk("a", 4), ceiling).await.unwrap());
        let v = crate::VolumeRow {
            id: "v1".into(),
            owner_id: "u1".into(),
            name: "a".into(),
            size: 3,
            created_at: 0,
            deleted_at: None,
            encryption: None,
        };
        assert!(!s.insert_volume_within(&crate::VolumeRow { size: 7, ..v.clone() }, 10, ceiling.disk).await.unwrap());
        assert!(s.insert_volume_within(&v, 10, ceiling.disk).await.unwrap());
        let snap = |id: &str, bytes: i64| crate::SnapshotRow {
            id: id.into(),
            owner_id: "u1".into(),
            name: id.into(),
            sandbox_id: "a".into(),
            image: format!("img:{id}"),
            bytes,
            created_at: 0,
            deleted_at: None,
        };
        assert!(!s.insert_snapshot_within(&snap("s1", 4), ceiling.disk).await.unwrap());
        assert!(s.insert_snapshot_within(&snap("s2", 2), ceiling.disk).await.unwrap());
        assert_eq!(s.usage("u1").await.unwrap().disk, 9);
        assert!(!s.insert_sandbox_within(&with_disk("b", 2), ceiling).await.unwrap());
        assert!(s.insert_sandbox_within(&with_disk("c", 1), ceiling).await.unwrap());
        s.mark_snapshot_deleted("s2", 1).await.unwrap();
        assert_eq!(s.usage("u1").await.unwrap().disk, 8);
    }

    crate::test_util::both!(concurrent_inserts_never_pass_the_ceiling_together);
    async fn concurrent_inserts_never_pass_the_ceiling_together(s: crate::Store) {
        let u = crate::UserRow { id: "u1".into(), name: "u".into(), role: "user".into(), created_at: 0, quota: None };
        s.insert_user(&u).await.unwrap();
        let ceiling = Ceiling { sandboxes: 3, ..Ceiling::UNLIMITED };
        let tries: Vec<_> = (0..12)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.insert_sandbox_within(&row(&format!("s{i}"), "u1", 1.0, 1), ceiling).await.unwrap()
                })
            })
            .collect();
        let mut inserted = 0;
        for t in tries {
            inserted += usize::from(t.await.unwrap());
        }
        assert_eq!(inserted, 3);
        assert_eq!(s.usage("u1").await.unwrap().sandboxes, 3);
    }
}
