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

/// A user's limits that differ from the server's defaults; absent fields use the default.
/// Body of `PUT /v1/users/{id}/quota` (admins).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuotaOverrides {
    /// Live sandboxes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandboxes: Option<u32>,
    /// CPU cores over all live sandboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory over all live sandboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::MemorySize>,
    /// Longest TTL of one sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_seconds: Option<u64>,
    /// Which sidecars the user may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecars: Option<crate::api::SidecarPolicy>,
    /// Persistent volumes kept at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<u32>,
    /// Disk held at once: sandboxes' own filesystems, volumes and snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<crate::MemorySize>,
}

/// The limits that apply to a user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaLimits {
    pub sandboxes: u32,
    pub cpu: f64,
    pub memory: crate::MemorySize,
    pub max_ttl_seconds: u64,
    #[serde(default)]
    pub sidecars: crate::api::SidecarPolicy,
    #[serde(default)]
    pub volumes: u32,
    #[serde(default)]
    pub disk: crate::MemorySize,
}

/// What a user's live sandboxes hold now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaUsage {
    pub sandboxes: u32,
    pub cpu: f64,
    pub memory: crate::MemorySize,
    #[serde(default)]
    pub volumes: u32,
    #[serde(default)]
    pub disk: crate::MemorySize,
}

/// Body of `GET /v1/users/{id}/quota`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quota {
    pub user_id: String,
    /// What applies: the overrides over the server's defaults.
    pub limits: QuotaLimits,
    pub overrides: QuotaOverrides,
    pub usage: QuotaUsage,
}

/// Body of `POST /v1/users/{id}/ssh-keys`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddSshKeyRequest {
    /// A name to tell keys apart [default: the key's comment].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The public key as in `~/.ssh/id_ed25519.pub`: `ssh-ed25519 AAAA… comment`.
    pub public_key: String,
}

/// A registered SSH public key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshKeyInfo {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    pub public_key: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshKeyList {
    pub keys: Vec<SshKeyInfo>,
}
