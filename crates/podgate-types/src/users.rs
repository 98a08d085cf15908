//! User and API token management bodies (`/v1/users`, `/v1/tokens`).

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/users` (admins).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Lowercase letters, digits and `-`, at most 63.
    pub name: String,
    /// `user` (default) or `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A new user and its first API token (the secret is shown this once).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedUser {
    pub user: crate::api::UserInfo,
    pub token: CreatedToken,
}

/// Body of `POST /v1/users/{id}/tokens`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// What the token is for, e.g. `ci` or `laptop`.
    pub name: String,
    /// The token stops working this many seconds from now [default: never].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// An API token as listed; the secret is never shown again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// Unix milliseconds, like the other times here.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// Recorded at most once a minute.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new token: its listing and the secret, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub secret: String,
}
