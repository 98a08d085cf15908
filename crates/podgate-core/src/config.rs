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
    /// Idle timeout of sandboxes that ask for none (zero: never paused for idleness).
    pub default_idle_timeout: Duration,
    /// How long a create waits for the agent to answer.
    pub startup_timeout: Duration,
    /// How often the reconciler runs.
    pub reconcile_interval: Duration,
    /// Where image exports and imports are spooled.
    pub scratch_dir: std::path::PathBuf,
    /// Largest image archive an import takes.
    pub max_import_bytes: u64,
    /// This replica's name among the servers sharing the database: the reconciler runs on the
    /// one holding the lease. A server restarted on the same data dir keeps it.
    pub replica_id: String,
    /// What code URLs the bootstrap may fetch.
    pub code: crate::code_source::CodePolicy,
    /// Who sandboxes run as and what they get by default.
    pub sandbox: SandboxPolicy,
    /// Requests allowed per minute.
    pub rates: crate::limits::RateLimits,
    /// What each user may hold unless an admin overrides it.
    pub quota: crate::limits::QuotaDefaults,
    /// How long driver calls may take.
    pub driver_deadlines: podgate_runtime::Deadlines,
    /// Which terminals are recorded, and where.
    pub recording: RecordingConfig,
}

/// The server's policy for sandboxes.
#[derive(Clone, Debug)]
pub struct SandboxPolicy {
    /// `uid:gid` of sandboxes that name no user.
    pub user: (u32, u32),
    /// Whether a sandbox may ask to run as root.
    pub allow_root: bool,
    /// Network of sandboxes that ask for none.
    pub network: podgate_types::api::NetworkMode,
    /// CPU limit (cores) of sandboxes that ask for none.
    pub default_cpu: f64,
    /// Memory limit (bytes) of sandboxes that ask for none.
    pub default_memory: u64,
    /// Cap (bytes) of the own filesystem of sandboxes that ask for none.
    pub default_disk: u64,
    /// Size (bytes) of new persistent volumes that ask for none.
    pub default_volume_size: u64,
    /// Whether users may ask for encrypted workspaces (where the runtime can encrypt).
    pub allow_encrypted_workspaces: bool,
    /// Registries sandbox and sidecar images may name (`*`: any); the engine never contacts
    /// another one for a user.
    pub image_registries: Vec<String>,
}

/// Terminal recording: which terminals, and how much of each.
#[derive(Clone, Debug)]
pub struct RecordingConfig {
    pub policy: RecordingPolicy,
    /// A recording stops (with a marker saying so) before it grows past this many bytes.
    pub max_bytes: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig { policy: RecordingPolicy::Off, max_bytes: 64 << 20 }
    }
}

/// Which terminals the server records (asciicast v2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingPolicy {
    /// None; a sandbox that asks for recording is refused (403).
    #[default]
    Off,
    /// Those of sandboxes created with `record_terminals: true`.
    Requested,
    /// Every terminal of every sandbox.
    Always,
}

impl std::str::FromStr for RecordingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(RecordingPolicy::Off),
            "requested" => Ok(RecordingPolicy::Requested),
            "always" => Ok(RecordingPolicy::Always),
            _ => Err(format!("terminal recording {s:?}: use off, requested or always")),
        }
    }
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        SandboxPolicy {
            user: (1000, 1000),
            allow_root: false,
            network: podgate_types::api::NetworkMode::Egress,
            default_cpu: 1.0,
            default_memory: 1 << 30,
            default_disk: 10 << 30,
            default_volume_size: 10 << 30,
            allow_encrypted_workspaces: false,
            image_registries: vec![podgate_types::image_ref::DEFAULT_REGISTRY.to_string()],
        }
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_image: "podgate/base:latest".into(),
            default_ttl: Duration::from_secs(24 * 3600),
            max_ttl: Duration::from_secs(7 * 24 * 3600),
            default_idle_timeout: Duration::ZERO,
            startup_timeout: Duration::from_secs(60),
            reconcile_interval: Duration::from_secs(5),
            replica_id: crate::ids::random_base32(12),
            scratch_dir: std::env::temp_dir(),
            max_import_bytes: 20 << 30,
            code: Default::default(),
            sandbox: Default::default(),
            rates: Default::default(),
            quota: Default::default(),
            driver_deadlines: Default::default(),
            recording: Default::default(),
        }
    }
}
