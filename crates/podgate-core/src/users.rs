//! User and API token management: admins create and list users; a user manages their own tokens
//! and an admin anyone's. Another user's token answers exactly like a missing one.

use podgate_store::{TokenRow, UserRow};
use podgate_types::api::UserInfo;
use podgate_types::users::{CreatedToken, CreatedUser, TokenInfo};
use podgate_types::validate;

use crate::audit::Event;
use crate::clock::now_ms;
use crate::{Auth, Caller, Error, Result, Role};

/// Longest token name.
const MAX_TOKEN_NAME: usize = 64;
/// Longest token lifetime a caller may ask for (ten years).
const MAX_EXPIRY_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The user `id_or_me` (`me` is the caller) whose tokens and quota the caller may see: their
/// own, or anyone's for an admin. Another user answers exactly like a missing one.
pub(crate) async fn managed_user(store: &podgate_store::Store, caller: &Caller, id_or_me: &str) -> Result<UserRow> {
    let id = if id_or_me == "me" { caller.user_id.as_str() } else { id_or_me };
    let missing = || Error::NotFound(format!("user {id_or_me:?} not found"));
    if !caller.may_access(id) {
        return Err(missing());
    }
    store.user(id).await?.ok_or_else(missing)
}

fn user_info(u: &UserRow) -> UserInfo {
    UserInfo { id: u.id.clone(), name: u.name.clone(), role: u.role.clone() }
}

fn token_info(t: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        user_id: t.user_id.clone(),
        name: t.name.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
    }
}

impl Auth {
    /// Every user (admins).
    pub async fn list_users(&self, caller: &Caller) -> Result<Vec<UserInfo>> {
        caller.require_admin()?;
        Ok(self.store().users().await?.iter().map(user_info).collect())
    }

    /// Creates a user with a first token named `initial` (admins).
    pub async fn add_user(&self, caller: &Caller, name: &str, role: Option<&str>) -> Result<CreatedUser> {
        caller.require_admin()?;
        validate::user_name(name).map_err(Error::Invalid)?;
        let role = match role.unwrap_or("user") {
            "user" => Role::User,
            "admin" => Role::Admin,
            other => return Err(Error::Invalid(format!("unknown role {other:?}: use user or admin"))),
        };
        let (user, secret) = self.create_user(name, role, "initial").await?;
        let token = self.store().tokens_of(&user.id).await?.into_iter().next().map(|t| token_info(&t));
        let info = token.ok_or_else(|| Error::Internal(format!("user {} has no token", user.id)))?;
        let detail = format!("user {} ({}, {})", user.name, user.id, role.as_str());
        self.audit.record(Event::by(caller, "user.create").detail(detail)).await;
        Ok(CreatedUser { user: user_info(&user), token: CreatedToken { info, secret } })
    }

    /// A user's tokens, without secrets.
    pub async fn list_tokens(&self, caller: &Caller, user: &str) -> Result<Vec<TokenInfo>> {
        let owner = managed_user(self.store(), caller, user).await?;
        Ok(self.store().tokens_of(&owner.id).await?.iter().map(token_info).collect())
    }

    /// Issues a token for a user; the secret is in the answer only.
    pub async fn add_token(
        &self,
        caller: &Caller,
        user: &str,
        name: &str,
        expires_in_seconds: Option<u64>,
    ) -> Result<CreatedToken> {
        let owner = managed_user(self.store(), caller, user).await?;
        if name.trim().is_empty() || name.len() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
            return Err(Error::Invalid(format!("token name must be 1-{MAX_TOKEN_NAME} printable characters")));
        }
        let expires_at = match expires_in_seconds {
            None => None,
            Some(s) if (1..=MAX_EXPIRY_SECONDS).contains(&s) => Some(now_ms() + (s as i64) * 1000),
            Some(s) => {
                return Err(Error::Invalid(format!(
                    "expires_in_seconds {s} is out of range: use 1 to {MAX_EXPIRY_SECONDS}"
                )));
            }
        };
        let secret = self.issue_token(&owner.id, name, expires_at).await?;
        let row = self
            .store()
            .token_by_hash(&crate::auth::hash_token(&secret))
            .await?
            .ok_or_else(|| Error::Internal("the new token is missing".into()))?
            .0;
        let detail = format!("token {} ({}) of user {}", row.id, row.name, owner.id);
        self.audit.record(Event::by(caller, "token.create").detail(detail)).await;
        Ok(CreatedToken { info: token_info(&row), secret })
    }

    /// Revokes a token of the caller's (or anyone's, for an admin). Idempotent.
    pub async fn revoke(&self, caller: &Caller, token_id: &str) -> Result<TokenInfo> {
        let missing = || Error::NotFound(format!("token {token_id:?} not found"));
        let row = self.store().token(token_id).await?.filter(|t| caller.may_access(&t.user_id)).ok_or_else(missing)?;
        self.store().revoke_token(&row.id, now_ms()).await?;
        self.audit.record(Event::by(caller, "token.revoke").detail(format!("token {}", row.id))).await;
        let row = self.store().token(&row.id).await?.ok_or_else(missing)?;
        Ok(token_info(&row))
    }
}
