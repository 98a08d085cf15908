//! The audit trail: append-only events, queried by actor, sandbox, action and time.

use sqlx::QueryBuilder;

use crate::{Result, Store};

/// One audit event. `id` orders events; `at` is unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub sandbox_id: Option<String>,
    pub result: String,
    pub detail: Option<String>,
}

/// Which events to read; absent filters match everything.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub sandbox_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Oldest first (a sandbox's life) instead of newest first.
    pub oldest_first: bool,
    pub limit: i64,
}

impl Store {
    /// Appends an event (its `id` is assigned here).
    pub async fn insert_audit(&self, e: &AuditRow) -> Result<()> {
        on_db!(self, p => {
            sqlx::query(
                "INSERT INTO audit_events (at, actor_id, actor_name, source, action, sandbox_id, result, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(e.at)
            .bind(&e.actor_id)
            .bind(&e.actor_name)
            .bind(&e.source)
            .bind(&e.action)
            .bind(&e.sandbox_id)
            .bind(&e.result)
            .bind(&e.detail)
            .execute(p)
            .await?.rows_affected()
        });
        Ok(())
    }

    /// Events matching `f`.
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        Ok(on_db!(self, p => {
            let mut q = QueryBuilder::new("SELECT * FROM audit_events WHERE 1 = 1");
            if let Some(a) = &f.actor_id {
                q.push(" AND actor_id = ").push_bind(a.clone());
            }
            if let Some(s) = &f.sandbox_id {
                q.push(" AND sandbox_id = ").push_bind(s.clone());
            }
            if let Some(a) = &f.action {
                q.push(" AND action = ").push_bind(a.clone());
            }
            if let Some(t) = f.since {
                q.push(" AND at >= ").push_bind(t);
            }
            if let Some(t) = f.until {
                q.push(" AND at < ").push_bind(t);
            }
            q.push(if f.oldest_first { " ORDER BY id ASC" } else { " ORDER BY id DESC" });
            q.push(" LIMIT ").push_bind(f.limit);
            q.build_query_as().fetch_all(p).await?
        }))
    }
}

impl Store {
    /// Deletes events from before `before` (unix ms); returns how many.
    pub async fn purge_audit(&self, before: i64) -> Result<u64> {
        Ok(on_db!(self, p => sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(p)
            .await?
            .rows_affected()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::test_util::both!(filters_and_orders);
    async fn filters_and_orders(s: crate::Store) {
        let ev = |at: i64, actor: &str, action: &str, sb: Option<&str>| AuditRow {
            at,
            actor_id: Some(actor.into()),
            action: action.into(),
            sandbox_id: sb.map(str::to_string),
            result: "ok".into(),
            ..Default::default()
        };
        s.insert_audit(&ev(10, "a", "sandbox.create", Some("sb1"))).await.unwrap();
        s.insert_audit(&ev(20, "b", "sandbox.create", Some("sb2"))).await.unwrap();
        s.insert_audit(&ev(30, "a", "sandbox.exec", Some("sb1"))).await.unwrap();
        let all = s.audit(&AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.iter().map(|e| e.at).collect::<Vec<_>>(), [30, 20, 10]);
        let f = AuditFilter { sandbox_id: Some("sb1".into()), oldest_first: true, limit: 10, ..Default::default() };
        assert_eq!(
            s.audit(&f).await.unwrap().iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["sandbox.create", "sandbox.exec"]
        );
        let f = AuditFilter {
            actor_id: Some("a".into()),
            since: Some(15),
            until: Some(31),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(s.audit(&f).await.unwrap().len(), 1);
        let f = AuditFilter { action: Some("sandbox.create".into()), limit: 1, ..Default::default() };
        assert_eq!(s.audit(&f).await.unwrap()[0].at, 20);
        assert_eq!(s.purge_audit(20).await.unwrap(), 1);
        let left = s.audit(&AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(left.iter().map(|e| e.at).collect::<Vec<_>>(), [30, 20]);
    }
}
