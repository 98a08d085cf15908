//! Sandbox rows: insert, look up by id or name, list, and compare-and-set state changes.

use podgate_types::state::SandboxState;

use crate::{Error, Result, SandboxRow, Store};

impl Store {
    /// Inserts a new sandbox with no quota; a name already used by the owner's live sandboxes is
    /// a conflict.
    pub async fn insert_sandbox(&self, s: &SandboxRow) -> Result<()> {
        self.insert_sandbox_within(s, crate::Ceiling::UNLIMITED).await.map(|_| ())
    }

    /// The sandbox with this id, including deleted ones.
    pub async fn sandbox(&self, id: &str) -> Result<Option<SandboxRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM sandboxes WHERE id = $1").bind(id).fetch_optional(p).await?))
    }

    /// The owner's live (not deleted) sandbox with this name.
    pub async fn sandbox_by_name(&self, owner_id: &str, name: &str) -> Result<Option<SandboxRow>> {
        Ok(on_db!(self, p => {
            sqlx::query_as("SELECT * FROM sandboxes WHERE owner_id = $1 AND name = $2 AND state <> 'deleted'")
                .bind(owner_id)
                .bind(name)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Live sandboxes, of one owner or of everyone, oldest first.
    pub async fn list_sandboxes(&self, owner_id: Option<&str>) -> Result<Vec<SandboxRow>> {
        Ok(on_db!(self, p => {
            match owner_id {
                Some(o) => sqlx::query_as(
                    "SELECT * FROM sandboxes WHERE owner_id = $1 AND state <> 'deleted' ORDER BY created_at, id",
                )
                .bind(o)
                .fetch_all(p)
                .await?,
                None => {
                    sqlx::query_as("SELECT * FROM sandboxes WHERE state <> 'deleted' ORDER BY created_at, id")
                        .fetch_all(p)
                        .await?
                }
            }
        }))
    }

    /// Live sandboxes whose expiry is at or before `now`.
    pub async fn expired_sandboxes(&self, now: i64) -> Result<Vec<SandboxRow>> {
        Ok(on_db!(self, p => {
            sqlx::query_as(
                "SELECT * FROM sandboxes WHERE state <> 'deleted' AND expires_at IS NOT NULL AND expires_at <= $1",
            )
            .bind(now)
            .fetch_all(p)
            .await?
        }))
    }

    /// Number of live sandboxes in `state`, for each state that has any.
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>> {
        Ok(on_db!(self, p => {
            sqlx::query_as("SELECT state, COUNT(*) FROM sandboxes GROUP BY state").fetch_all(p).await?
        }))
    }

    /// Moves the sandbox to `to` if its state is one of `from`; returns whether it moved.
    /// `error` replaces the stored error; entering `deleted` stamps `deleted_at`. A move that
    /// [`SandboxState::sources`] does not allow is refused before the database is asked.
    pub async fn transition(
        &self,
        id: &str,
        from: &[SandboxState],
        to: SandboxState,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        if let Some(f) = from.iter().find(|f| !f.may_move_to(to)) {
            return Err(Error::Illegal(format!("sandbox {id}: {f} → {to} is not a legal move")));
        }
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 6)).collect();
        let sql = format!(
            "UPDATE sandboxes SET state = $1, error = $2, updated_at = $3, \
             deleted_at = CASE WHEN $4 = 'deleted' THEN $3 ELSE deleted_at END \
             WHERE id = $5 AND state IN ({})",
            placeholders.join(", ")
        );
        let n = on_db!(self, p => {
            let mut q = sqlx::query(&sql).bind(to.as_str()).bind(error).bind(now).bind(to.as_str()).bind(id);
            for f in from {
                q = q.bind(f.as_str());
            }
            q.execute(p).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// Replaces the spec of a live sandbox, and with `expires_at` its expiry, if its revision is
    /// still `revision` (compare-and-set: a concurrent update makes this return false, and the
    /// caller reads the row again and retries). Bumps the revision.
    pub async fn update_spec(&self, row: &SandboxRow, expires_at: Option<i64>, now: i64) -> Result<bool> {
        let n = on_db!(self, p => {
            sqlx::query(
                "UPDATE sandboxes SET spec = $1, expires_at = COALESCE($2, expires_at), updated_at = $3, \
                 revision = revision + 1 \
                 WHERE id = $4 AND revision = $5 AND state NOT IN ('stopping', 'deleted')",
            )
            .bind(row.spec.to_string())
            .bind(expires_at)
            .bind(now)
            .bind(&row.id)
            .bind(row.revision)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// The owner's live sandboxes held by the warm pool of its template `pool`, oldest first.
    pub async fn pool_sandboxes(&self, owner_id: &str, pool: &str) -> Result<Vec<SandboxRow>> {
        Ok(on_db!(self, p => {
            sqlx::query_as(
                "SELECT * FROM sandboxes WHERE owner_id = $1 AND pool = $2 AND state <> 'deleted' \
                 ORDER BY created_at, id",
            )
            .bind(owner_id)
            .bind(pool)
            .fetch_all(p)
            .await?
        }))
    }

    /// Moves the expiry of a sandbox that is not being deleted to `expires_at`; returns whether
    /// it was.
    pub async fn set_expiry(&self, id: &str, expires_at: i64, now: i64) -> Result<bool> {
        let n = on_db!(self, p => {
            sqlx::query(
                "UPDATE sandboxes SET expires_at = $1, updated_at = $2 \
                 WHERE id = $3 AND state NOT IN ('stopping', 'deleted')",
            )
            .bind(expires_at)
            .bind(now)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records user activity on a sandbox at `at` (never moving it back).
    pub async fn set_last_active(&self, id: &str, at: i64) -> Result<()> {
        on_db!(self, p => sqlx::query(
            "UPDATE sandboxes SET last_active_at = $1 WHERE id = $2 AND (last_active_at IS NULL OR last_active_at < $1)",
        )
        .bind(at)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Records a sandbox's bootstrap status (JSON) and, once it ended, the end of its log.
    pub async fn set_bootstrap(&self, id: &str, status: &str, log: Option<&[u8]>, now: i64) -> Result<()> {
        on_db!(self, p => {
            sqlx::query(
                "UPDATE sandboxes SET bootstrap = $1, bootstrap_log = COALESCE($2, bootstrap_log), updated_at = $3 \
                 WHERE id = $4",
            )
            .bind(status)
            .bind(log)
            .bind(now)
            .bind(id)
            .execute(p)
            .await?.rows_affected()
        });
        Ok(())
    }

    pub async fn set_agent_url(&self, id: &str, url: &str, now: i64) -> Result<()> {
        on_db!(self, p => {
            sqlx::query("UPDATE sandboxes SET agent_url = $1, updated_at = $2 WHERE id = $3")
                .bind(url)
                .bind(now)
                .bind(id)
                .execute(p)
                .await?.rows_affected()
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use podgate_types::spec::SandboxSpec;
    use podgate_types::state::SandboxState::*;

    use crate::{Error, SandboxRow, UserRow};

    fn row(id: &str, name: &str) -> SandboxRow {
        SandboxRow {
            id: id.into(),
            owner_id: "u1".into(),
            name: name.into(),
            state: Pending,
            image: "img".into(),
            spec: SandboxSpec::default(),
            error: None,
            agent_secret: "s".into(),
            agent_url: None,
            created_at: 1,
            updated_at: 1,
            expires_at: Some(50),
            deleted_at: None,
            bootstrap: None,
            bootstrap_log: None,
            last_active_at: None,
            charged_cpu: 0.0,
            charged_memory: 0,
            charged_disk: 0,
            pool: None,
            revision: 0,
        }
    }

    crate::test_util::both!(lifecycle_and_name_reuse);
    async fn lifecycle_and_name_reuse(s: crate::Store) {
        s.insert_user(&UserRow { id: "u1".into(), name: "a".into(), role: "user".into(), created_at: 1, quota: None })
            .await
            .unwrap();
        s.insert_sandbox(&row("s1", "web")).await.unwrap();
        assert!(matches!(s.insert_sandbox(&row("s2", "web")).await, Err(Error::Conflict(_))));
        assert!(s.transition("s1", &[Pending], Starting, None, 4).await.unwrap());
        assert!(s.transition("s1", &[Starting], Running, None, 5).await.unwrap());
        assert!(!s.transition("s1", &[Pending], Starting, None, 6).await.unwrap());
        assert_eq!(s.sandbox_by_name("u1", "web").await.unwrap().unwrap().state, Running);
        // A move the table does not allow never reaches the database.
        assert!(matches!(s.transition("s1", &[Running], Pending, None, 6).await, Err(Error::Illegal(_))));
        assert!(matches!(s.transition("s1", &[Running], Deleted, None, 6).await, Err(Error::Illegal(_))));
        assert_eq!(s.expired_sandboxes(49).await.unwrap().len(), 0);
        assert_eq!(s.expired_sandboxes(50).await.unwrap().len(), 1);
        assert!(s.transition("s1", &[Running, Failed], Stopping, None, 7).await.unwrap());
        assert!(s.transition("s1", &[Stopping], Deleted, Some("gone"), 7).await.unwrap());
        let gone = s.sandbox("s1").await.unwrap().unwrap();
        assert_eq!((gone.deleted_at, gone.error.as_deref()), (Some(7), Some("gone")));
        assert!(s.list_sandboxes(Some("u1")).await.unwrap().is_empty());
        // The name is free again once the first sandbox is deleted.
        s.insert_sandbox(&row("s3", "web")).await.unwrap();
        assert_eq!(s.list_sandboxes(None).await.unwrap().len(), 1);
        let counts = s.count_by_state().await.unwrap();
        assert!(counts.contains(&("deleted".to_string(), 1)) && counts.contains(&("pending".to_string(), 1)));
    }

    crate::test_util::both!(spec_updates_are_compare_and_set);
    async fn spec_updates_are_compare_and_set(s: crate::Store) {
        s.insert_user(&UserRow { id: "u1".into(), name: "a".into(), role: "user".into(), created_at: 1, quota: None })
            .await
            .unwrap();
        s.insert_sandbox(&row("s1", "web")).await.unwrap();
        let read = s.sandbox("s1").await.unwrap().unwrap();
        // Two writers read the same revision; the second one's update is refused, not lost.
        let mut a = read.clone();
        a.spec.ttl_seconds = Some(600);
        let mut b = read.clone();
        b.spec.idle_timeout_seconds = Some(30);
        assert!(s.update_spec(&a, Some(99), 2).await.unwrap());
        assert!(!s.update_spec(&b, None, 3).await.unwrap(), "a stale revision must not overwrite");
        let now = s.sandbox("s1").await.unwrap().unwrap();
        assert_eq!((now.spec.ttl_seconds, now.spec.idle_timeout_seconds, now.expires_at), (Some(600), None, Some(99)));
        assert_eq!(now.revision, 1);
        let mut b = now.clone();
        b.spec.idle_timeout_seconds = Some(30);
        assert!(s.update_spec(&b, None, 4).await.unwrap());
        let now = s.sandbox("s1").await.unwrap().unwrap();
        assert_eq!(
            (now.spec.ttl_seconds, now.spec.idle_timeout_seconds, now.expires_at),
            (Some(600), Some(30), Some(99))
        );
    }

    crate::test_util::both!(pools_are_found_by_their_column);
    async fn pools_are_found_by_their_column(s: crate::Store) {
        s.insert_user(&UserRow { id: "u1".into(), name: "a".into(), role: "user".into(), created_at: 1, quota: None })
            .await
            .unwrap();
        s.insert_sandbox(&SandboxRow { pool: Some("t".into()), ..row("s1", "a") }).await.unwrap();
        s.insert_sandbox(&SandboxRow { pool: Some("tt".into()), ..row("s2", "b") }).await.unwrap();
        s.insert_sandbox(&row("s3", "c")).await.unwrap();
        let ids: Vec<String> = s.pool_sandboxes("u1", "t").await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["s1"]);
        assert!(s.pool_sandboxes("u2", "t").await.unwrap().is_empty());
    }
}
