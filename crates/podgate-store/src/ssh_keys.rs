//! SSH public keys of users, found by fingerprint at login.

use crate::error::conflict_on_unique;
use crate::{Result, Store};

/// A user's SSH public key (OpenSSH one-line form).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SshKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Store {
    /// Adds a key; a key already registered (by anyone) is a conflict.
    pub async fn insert_ssh_key(&self, k: &SshKeyRow) -> Result<()> {
        on_db!(self, p => sqlx::query(
            "INSERT INTO ssh_keys (id, user_id, name, public_key, fingerprint, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.id)
        .bind(&k.user_id)
        .bind(&k.name)
        .bind(&k.public_key)
        .bind(&k.fingerprint)
        .bind(k.created_at)
        .bind(k.last_used_at)
        .execute(p)
        .await
        .map_err(|e| conflict_on_unique(e, || "this SSH key is already registered".to_string()))?
        .rows_affected());
        Ok(())
    }

    /// A user's keys, oldest first.
    pub async fn ssh_keys_of(&self, user_id: &str) -> Result<Vec<SshKeyRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM ssh_keys WHERE user_id = $1 ORDER BY created_at, id")
            .bind(user_id)
            .fetch_all(p)
            .await?))
    }

    /// The key with this fingerprint.
    pub async fn ssh_key_by_fingerprint(&self, fingerprint: &str) -> Result<Option<SshKeyRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM ssh_keys WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(p)
            .await?))
    }

    /// Deletes one of a user's keys; false when the user has no such key.
    pub async fn delete_ssh_key(&self, user_id: &str, id: &str) -> Result<bool> {
        Ok(on_db!(self, p => sqlx::query("DELETE FROM ssh_keys WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected())
            == 1)
    }

    /// Records a login with the key.
    pub async fn touch_ssh_key(&self, id: &str, now: i64) -> Result<()> {
        on_db!(self, p => sqlx::query("UPDATE ssh_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SshKeyRow;
    use crate::{Error, UserRow};

    crate::test_util::both!(keys_by_fingerprint);
    async fn keys_by_fingerprint(s: crate::Store) {
        s.insert_user(&UserRow { id: "u1".into(), name: "a".into(), role: "user".into(), created_at: 1, quota: None })
            .await
            .unwrap();
        let k = SshKeyRow {
            id: "k1".into(),
            user_id: "u1".into(),
            name: "laptop".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            fingerprint: "SHA256:x".into(),
            created_at: 1,
            last_used_at: None,
        };
        s.insert_ssh_key(&k).await.unwrap();
        assert!(matches!(s.insert_ssh_key(&SshKeyRow { id: "k2".into(), ..k.clone() }).await, Err(Error::Conflict(_))));
        assert_eq!(s.ssh_key_by_fingerprint("SHA256:x").await.unwrap().unwrap().id, "k1");
        s.touch_ssh_key("k1", 5).await.unwrap();
        assert_eq!(s.ssh_keys_of("u1").await.unwrap()[0].last_used_at, Some(5));
        assert!(!s.delete_ssh_key("u2", "k1").await.unwrap());
        assert!(s.delete_ssh_key("u1", "k1").await.unwrap());
        assert!(s.ssh_key_by_fingerprint("SHA256:x").await.unwrap().is_none());
    }
}
