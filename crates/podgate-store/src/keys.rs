//! Signing keys for session tokens, and the single-use record of token ids.

use crate::{Result, Store};

/// A signing key. `private_key` is PKCS#8 (base64), `public_key` the raw key (base64url).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
    pub public_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl Store {
    /// Adds a key.
    pub async fn insert_signing_key(&self, k: &SigningKeyRow) -> Result<()> {
        on_db!(self, p => {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at, retired_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.private_key)
            .bind(&k.public_key)
            .bind(k.created_at)
            .bind(k.retired_at)
            .bind(k.expires_at)
            .execute(p)
            .await?.rows_affected()
        });
        Ok(())
    }

    /// Keys not expired at `now`, newest first.
    pub async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>> {
        Ok(on_db!(self, p => sqlx::query_as(
                "SELECT * FROM signing_keys WHERE expires_at IS NULL OR expires_at > $1 ORDER BY created_at DESC, kid",
            )
            .bind(now)
            .fetch_all(p)
            .await?))
    }

    /// Stops signing with every key but `keep` from `now`, and drops them at `expires_at`.
    pub async fn retire_signing_keys(&self, keep: &str, now: i64, expires_at: i64) -> Result<()> {
        on_db!(self, p => {
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $1, expires_at = $2 WHERE kid <> $3 AND retired_at IS NULL",
            )
            .bind(now)
            .bind(expires_at)
            .bind(keep)
            .execute(p)
            .await?.rows_affected()
        });
        Ok(())
    }

    /// Records a token id as used; `false` if it was used before.
    pub async fn use_token_once(&self, jti: &str, expires_at: i64) -> Result<bool> {
        let n = on_db!(self, p => {
            sqlx::query("INSERT INTO used_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
                .bind(jti)
                .bind(expires_at)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Forgets used token ids that expired before `now` (they cannot be replayed anyway).
    pub async fn purge_used_tokens(&self, now: i64) -> Result<u64> {
        Ok(on_db!(self, p => {
            sqlx::query("DELETE FROM used_tokens WHERE expires_at < $1").bind(now).execute(p).await?.rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::SigningKeyRow;

    crate::test_util::both!(keys_rotate_and_tokens_are_single_use);
    async fn keys_rotate_and_tokens_are_single_use(s: crate::Store) {
        let key = |kid: &str, at| SigningKeyRow {
            kid: kid.into(),
            alg: "EdDSA".into(),
            private_key: "p".into(),
            public_key: "k".into(),
            created_at: at,
            retired_at: None,
            expires_at: None,
        };
        s.insert_signing_key(&key("a", 1)).await.unwrap();
        s.insert_signing_key(&key("b", 2)).await.unwrap();
        s.retire_signing_keys("b", 10, 20).await.unwrap();
        let ks = s.signing_keys(15).await.unwrap();
        assert_eq!(ks.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(ks[1].retired_at, Some(10));
        assert_eq!(s.signing_keys(20).await.unwrap().len(), 1, "a is gone after its overlap");
        assert!(s.use_token_once("j1", 100).await.unwrap());
        assert!(!s.use_token_once("j1", 100).await.unwrap());
        assert_eq!(s.purge_used_tokens(101).await.unwrap(), 1);
    }
}
