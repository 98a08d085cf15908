//! Revocations of terminal share links: a time per terminal before which its links are refused.

use crate::{Result, Store};

impl Store {
    /// Refuses the share links of `sandbox`'s terminal `terminal` issued up to `at` (unix ms).
    pub async fn revoke_shares(&self, sandbox: &str, terminal: &str, at: i64) -> Result<()> {
        on_db!(self, p => sqlx::query(
            "INSERT INTO share_revocations (sandbox_id, terminal_id, revoked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (sandbox_id, terminal_id) DO UPDATE SET revoked_at = excluded.revoked_at",
        )
        .bind(sandbox)
        .bind(terminal)
        .bind(at)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// When the share links of `sandbox`'s terminal `terminal` were last revoked (unix ms).
    pub async fn shares_revoked_at(&self, sandbox: &str, terminal: &str) -> Result<Option<i64>> {
        let row: Option<(i64,)> = on_db!(self, p => sqlx::query_as(
            "SELECT revoked_at FROM share_revocations WHERE sandbox_id = $1 AND terminal_id = $2",
        )
        .bind(sandbox)
        .bind(terminal)
        .fetch_optional(p)
        .await?);
        Ok(row.map(|(t,)| t))
    }
}

#[cfg(test)]
mod tests {
    crate::test_util::both!(revocations_move_forward_per_terminal);
    async fn revocations_move_forward_per_terminal(s: crate::Store) {
        assert_eq!(s.shares_revoked_at("sb", "t1").await.unwrap(), None);
        s.revoke_shares("sb", "t1", 100).await.unwrap();
        s.revoke_shares("sb", "t1", 200).await.unwrap();
        assert_eq!(s.shares_revoked_at("sb", "t1").await.unwrap(), Some(200));
        assert_eq!(s.shares_revoked_at("sb", "t2").await.unwrap(), None, "another terminal");
    }
}
