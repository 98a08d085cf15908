//! Users and API tokens.

use crate::error::conflict_on_unique;
use crate::{Result, Store, TokenRow, UserRow};

impl Store {
    /// Inserts a user; a taken name is [`crate::Error::Conflict`].
    pub async fn insert_user(&self, u: &UserRow) -> Result<()> {
        on_db!(self, p => sqlx::query("INSERT INTO users (id, name, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&u.id)
                .bind(&u.name)
                .bind(&u.role)
                .bind(u.created_at)
                .execute(p)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("user {:?} already exists", u.name)))?
                .rows_affected());
        Ok(())
    }

    /// The user named `name`.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM users WHERE name = $1").bind(name).fetch_optional(p).await?))
    }

    /// The user with this id.
    pub async fn user(&self, id: &str) -> Result<Option<UserRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(p).await?))
    }

    /// Every user, oldest first.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        Ok(on_db!(self, p => sqlx::query_as("SELECT * FROM users ORDER BY created_at, id").fetch_all(p).await?))
    }

    /// A user's tokens (without secrets: only hashes are stored), oldest first.
    pub async fn tokens_of(&self, user_id: &str) -> Result<Vec<TokenRow>> {
        Ok(on_db!(self, p => {
            sqlx::query_as("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id")
                .bind(user_id)
                .fetch_all(p)
                .await?
        }))
    }

    /// The token with this id.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        Ok(on_db!(self, p => {
            sqlx::query_as("SELECT * FROM api_tokens WHERE id = $1").bind(id).fetch_optional(p).await?
        }))
    }

    /// Revokes a token (once: a revoked token keeps its first revocation time).
    pub async fn revoke_token(&self, id: &str, now: i64) -> Result<()> {
        on_db!(self, p => {
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Inserts a token row.
    pub async fn insert_token(&self, t: &TokenRow) -> Result<()> {
        on_db!(self, p => sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at, last_used_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&t.id)
            .bind(&t.user_id)
            .bind(&t.name)
            .bind(&t.token_hash)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(t.last_used_at)
            .bind(t.revoked_at)
            .execute(p)
            .await
            .map_err(|e| conflict_on_unique(e, || "token already exists".to_string()))?
            .rows_affected());
        Ok(())
    }

    /// The token with this hash and its user, whatever its expiry or revocation (the caller decides).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<(TokenRow, UserRow)>> {
        let Some(t): Option<TokenRow> = (on_db!(self, p => {
            sqlx::query_as("SELECT * FROM api_tokens WHERE token_hash = $1").bind(hash).fetch_optional(p).await?
        })) else {
            return Ok(None);
        };
        let u: Option<UserRow> = on_db!(self, p => {
            sqlx::query_as("SELECT * FROM users WHERE id = $1").bind(&t.user_id).fetch_optional(p).await?
        });
        Ok(u.map(|u| (t, u)))
    }

    /// Records that the token was used at `now`, at most once per minute to spare writes.
    pub async fn touch_token(&self, id: &str, now: i64) -> Result<()> {
        on_db!(self, p => sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(now)
            .bind(id)
            .bind(now - 60_000)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Error, TokenRow, UserRow};

    crate::test_util::both!(users_and_tokens);
    async fn users_and_tokens(s: crate::Store) {
        let u = UserRow { id: "u1".into(), name: "admin".into(), role: "admin".into(), created_at: 1, quota: None };
        s.insert_user(&u).await.unwrap();
        assert!(matches!(s.insert_user(&UserRow { id: "u2".into(), ..u.clone() }).await, Err(Error::Conflict(_))));
        assert_eq!(s.user_by_name("admin").await.unwrap(), Some(u.clone()));
        let t = TokenRow {
            id: "t1".into(),
            user_id: "u1".into(),
            name: "first".into(),
            token_hash: "h".into(),
            created_at: 1,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        s.insert_token(&t).await.unwrap();
        let (got, user) = s.token_by_hash("h").await.unwrap().unwrap();
        assert_eq!((got, user), (t, u));
        assert!(s.token_by_hash("nope").await.unwrap().is_none());
        s.touch_token("t1", 100_000).await.unwrap();
        let (got, _) = s.token_by_hash("h").await.unwrap().unwrap();
        assert_eq!(got.last_used_at, Some(100_000));
    }
}
