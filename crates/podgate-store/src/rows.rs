//! Row types as stored. Times are unix milliseconds.

use podgate_types::spec::SandboxSpec;
use podgate_types::state::SandboxState;

/// A user.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    /// JSON of the user's quota overrides.
    #[sqlx(default)]
    pub quota: Option<String>,
}

/// An API token; only the SHA-256 hash of the secret is stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A sandbox: its typed state and spec, and beside the spec what queries need (the quota charge,
/// the warm pool) and its revision (bumped by every spec update, for compare-and-set).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SandboxRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub state: SandboxState,
    pub image: String,
    #[sqlx(try_from = "String")]
    pub spec: SandboxSpec,
    pub error: Option<String>,
    pub agent_secret: String,
    pub agent_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// JSON of the bootstrap status, for sandboxes with a code bootstrap.
    #[sqlx(default)]
    pub bootstrap: Option<String>,
    /// The end of the bootstrap log, kept once the bootstrap ended.
    #[sqlx(default)]
    pub bootstrap_log: Option<Vec<u8>>,
    /// Last user activity seen (written at most every few seconds).
    #[sqlx(default)]
    pub last_active_at: Option<i64>,
    /// What it counts against its owner's quota: its own limits plus its sidecars'.
    pub charged_cpu: f64,
    pub charged_memory: i64,
    /// Bytes of disk: its own cap and each sidecar's.
    pub charged_disk: i64,
    /// The template whose warm pool holds it, until a user claims it.
    pub pool: Option<String>,
    /// Bumped by every update of `spec`.
    pub revision: i64,
}
