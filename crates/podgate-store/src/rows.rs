//! Row types as stored. Times are unix milliseconds.

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

/// A sandbox. `spec` is the JSON of the validated create request; `state` its snake_case state.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SandboxRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub state: String,
    pub image: String,
    pub spec: String,
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
}
