//! OIDC identities linked to users.

use crate::error::conflict_on_unique;
use crate::{Result, Store, UserRow};

impl Store {
    /// The user linked to `subject` at `issuer`.
    pub async fn identity_user(&self, issuer: &str, subject: &str) -> Result<Option<UserRow>> {
        Ok(on_db!(self, p => {
            sqlx::query_as(
                "SELECT users.* FROM identities JOIN users ON users.id = identities.user_id \
                 WHERE identities.issuer = $1 AND identities.subject = $2",
            )
            .bind(issuer)
            .bind(subject)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Links `subject` at `issuer` to a user; a link that exists already is a conflict.
    pub async fn link_identity(&self, issuer: &str, subject: &str, user_id: &str, now: i64) -> Result<()> {
        on_db!(self, p => {
            sqlx::query("INSERT INTO identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(issuer)
                .bind(subject)
                .bind(user_id)
                .bind(now)
                .execute(p)
                .await
                .map_err(|e| {
                    conflict_on_unique(e, || format!("identity {subject:?} of {issuer} is linked already"))
                })?.rows_affected()
        });
        Ok(())
    }

    /// Records a use at `now` unless one was recorded in the last minute; true when recorded.
    pub async fn touch_identity(&self, issuer: &str, subject: &str, now: i64) -> Result<bool> {
        Ok(on_db!(self, p => {
            sqlx::query(
                "UPDATE identities SET last_used_at = $1 WHERE issuer = $2 AND subject = $3 \
                 AND (last_used_at IS NULL OR last_used_at < $4)",
            )
            .bind(now)
            .bind(issuer)
            .bind(subject)
            .bind(now - 60_000)
            .execute(p)
            .await?
            .rows_affected()
                == 1
        }))
    }
}
