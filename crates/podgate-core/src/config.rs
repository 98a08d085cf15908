//! Settings of the core service, with their defaults.

use std::time::Duration;

/// How the core service behaves.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Image used when a create request names none.
    pub default_image: String,
    /// TTL given to sandboxes that ask for none.
    pub default_ttl: Duration,
    /// Longest TTL a sandbox may ask for.
    pub max_ttl: Duration,
    /// How long a create waits for the agent to answer.
    pub startup_timeout: Duration,
    /// How often the reconciler runs.
    pub reconcile_interval: Duration,
    /// What code URLs the bootstrap may fetch.
    pub code: crate::code_source::CodePolicy,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_image: "podgate/base:latest".into(),
            default_ttl: Duration::from_secs(24 * 3600),
            max_ttl: Duration::from_secs(7 * 24 * 3600),
            startup_timeout: Duration::from_secs(60),
            reconcile_interval: Duration::from_secs(5),
            code: Default::default(),
        }
    }
}
