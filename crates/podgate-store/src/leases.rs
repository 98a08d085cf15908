//! Leases: which replica does work only one may do at a time, renewed by its holder and taken
//! over by another once it expires.

use crate::{Result, Store};

impl Store {
    /// Takes or renews lease `name` for `holder` until `now + ttl_ms`; true when `holder` holds
    /// it now (it was free, expired, or already the holder's).
    pub async fn try_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        let n = on_db!(self, p => sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    crate::test_util::both!(one_holder_at_a_time_until_it_expires);
    async fn one_holder_at_a_time_until_it_expires(s: crate::Store) {
        assert!(s.try_lease("r", "a", 1000, 500).await.unwrap());
        assert!(!s.try_lease("r", "b", 1200, 500).await.unwrap(), "a holds it until 1500");
        assert!(s.try_lease("r", "a", 1400, 500).await.unwrap(), "a renews it until 1900");
        assert!(!s.try_lease("r", "b", 1800, 500).await.unwrap());
        assert!(s.try_lease("r", "b", 1900, 500).await.unwrap(), "expired: b takes over");
        assert!(!s.try_lease("r", "a", 2000, 500).await.unwrap(), "a lost it");
    }
}
