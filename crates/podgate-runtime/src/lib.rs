//! podgate's runtime seam: the `Driver` trait every runtime (Docker, Kubernetes) implements, its
//! errors, and the conformance suite each driver must pass (feature `test-util`).

use std::collections::BTreeMap;
use std::path::PathBuf;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod fake;
mod timed;

pub use timed::{Deadlines, Timed};

/// Errors a driver reports. Messages carry the engine's own reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image does not exist and could not be pulled.
    #[error("image {image:?} is not available: {reason}")]
    ImageUnavailable { image: String, reason: String },
    /// The engine rejected the specification (e.g. an invalid image reference).
    #[error("invalid sandbox specification: {0}")]
    InvalidSpec(String),
    /// No instance exists for this sandbox.
    #[error("no instance for sandbox {0}")]
    NotFound(String),
    /// The engine cannot be reached or failed.
    #[error("runtime unavailable: {0}")]
    Unavailable(String),
    /// This driver cannot do that.
    #[error("not supported by the {driver} driver: {what}")]
    Unsupported { driver: &'static str, what: String },
    /// The platform's policy refuses the sandbox as asked (Kubernetes: Pod Security admission,
    /// an admission webhook, a LimitRange); the request has to change.
    #[error("refused by the cluster: {0}")]
    Refused(String),
    /// A quota of the platform itself is used up (Kubernetes: the namespace's ResourceQuota).
    #[error("the cluster's quota is used up: {0}")]
    QuotaExhausted(String),
    /// The platform found no room for the sandbox, or did not get it running, in the time it
    /// had; the message says where it stopped (no node fits, a claim not bound, a slow pull).
    #[error("{0}")]
    NotStarted(String),
}

/// Result with the driver [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a driver needs to place one sandbox.
#[derive(Clone, Debug, Default)]
pub struct PlacementSpec {
    pub sandbox_id: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    /// Main command, started by the agent.
    pub cmd: Option<Vec<String>>,
    /// CPU limit in cores.
    pub cpu: Option<f64>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Most bytes the sandbox may write to its own filesystem (not volumes or tmpfs); a driver
    /// whose engine cannot cap it says so once at start (see [`Driver::disk_caps`]).
    pub disk: Option<u64>,
    /// Secret the agent must require on every request.
    pub agent_secret: String,
    /// uid and gid everything in the sandbox runs as; the agent drops to them at start.
    pub user: (u32, u32),
    /// Whether the sandbox gets the egress network (else no network at all).
    pub egress: bool,
    /// Mount the image's root filesystem read-only.
    pub read_only_root: bool,
    /// Containers beside the sandbox, in its network namespace, started after it.
    pub sidecars: Vec<SidecarPlacement>,
    /// A persistent volume to mount at `/workspace` (created when missing), by its runtime name.
    pub workspace_volume: Option<String>,
    /// Size in bytes of the workspace volume when it is created (0 or absent: the driver's
    /// unbounded kind, as before sizes existed).
    pub workspace_size: Option<u64>,
    /// The key of an encrypted workspace volume: a new volume is encrypted with it, an
    /// existing encrypted one unlocked with it. Without it an encrypted volume stays locked.
    pub workspace_key: Option<VolumeKey>,
    /// The user's labels (validated by the core), kept on the instance for operators.
    pub labels: BTreeMap<String, String>,
    /// Where a cluster places it (from its template); drivers without nodes ignore it.
    pub scheduling: Scheduling,
}

/// Scheduling of a sandbox on a cluster, validated by the core; added to the driver's own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scheduling {
    pub runtime_class: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// `KEY[=VALUE]:EFFECT`.
    pub tolerations: Vec<String>,
}

/// One sidecar as placed: the policy was checked and defaults applied by the core.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SidecarPlacement {
    pub name: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    /// Replaces the image's command.
    pub cmd: Option<Vec<String>>,
    pub cpu: f64,
    /// Bytes.
    pub memory: u64,
    pub privileged: bool,
}

/// The raw key of an encrypted volume (64 bytes), wiped from memory when dropped and never
/// printed.
#[derive(Clone)]
pub struct VolumeKey(pub zeroize::Zeroizing<[u8; 64]>);

impl std::fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VolumeKey(***)")
    }
}

/// Which disk limits a driver's engine enforces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCaps {
    /// [`PlacementSpec::disk`] caps the sandbox's own filesystem.
    pub layer: bool,
    /// [`PlacementSpec::workspace_size`] caps a new workspace volume.
    pub volume: bool,
    /// Workspace volumes can be encrypted ([`PlacementSpec::workspace_key`]).
    pub encryption: bool,
}

/// Where the server reaches a sandbox's agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEndpoint {
    /// A unix socket on the server's host served by this server's own forwarder (Kubernetes
    /// port-forward access).
    Unix(PathBuf),
    /// A unix socket on the server's host that only process `pid` (host pid namespace) may
    /// serve: the Docker driver's agent, PID 1 of its container. A sandbox that could reach its
    /// socket's directory (a root sandbox) and serve the path itself is refused before the
    /// agent's secret is sent.
    UnixAgent { path: PathBuf, pid: u32 },
    /// A TCP address (`host:port`), e.g. a pod IP (Kubernetes driver).
    Tcp(String),
}

impl AgentEndpoint {
    /// `unix:///path`, `unix:///path?pid=N` or `tcp://host:port`, as stored.
    pub fn to_url(&self) -> String {
        match self {
            AgentEndpoint::Unix(p) => format!("unix://{}", p.display()),
            AgentEndpoint::UnixAgent { path, pid } => format!("unix://{}?pid={pid}", path.display()),
            AgentEndpoint::Tcp(a) => format!("tcp://{a}"),
        }
    }

    /// Parses what [`AgentEndpoint::to_url`] wrote.
    pub fn from_url(s: &str) -> Option<AgentEndpoint> {
        if let Some(p) = s.strip_prefix("unix://") {
            Some(match p.rsplit_once("?pid=") {
                Some((path, pid)) => AgentEndpoint::UnixAgent { path: PathBuf::from(path), pid: pid.parse().ok()? },
                None => AgentEndpoint::Unix(PathBuf::from(p)),
            })
        } else {
            s.strip_prefix("tcp://").map(|a| AgentEndpoint::Tcp(a.to_string()))
        }
    }
}

/// What the runtime says about a sandbox's instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceStatus {
    /// Placed but not started.
    Created,
    Running,
    Paused,
    /// Ended; `reason` is the engine's description (exit code, OOM kill…).
    Exited {
        reason: String,
    },
    /// Anything else the engine reports (restarting, being removed…).
    Other(String),
}

/// One instance placed by this server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub sandbox_id: String,
    pub status: InstanceStatus,
    /// The user's labels kept on the instance (`inspect` reports them; `list` may not).
    pub labels: BTreeMap<String, String>,
}

impl Instance {
    /// An instance in `status`, without its labels.
    pub fn new(sandbox_id: impl Into<String>, status: InstanceStatus) -> Instance {
        Instance { sandbox_id: sandbox_id.into(), status, labels: BTreeMap::new() }
    }
}

/// A runtime that places sandboxes and hands back how to reach their agents. Implementations
/// only touch instances labelled as this server's, so several servers can share one engine.
#[async_trait::async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Short name, e.g. `docker`.
    fn name(&self) -> &'static str;
    /// Checks the engine answers.
    async fn ping(&self) -> Result<()>;
    /// Creates the instance (pulling the image when missing) without starting it.
    async fn create(&self, spec: &PlacementSpec) -> Result<()>;
    /// Starts a created instance and returns where its agent will listen.
    async fn start(&self, sandbox_id: &str) -> Result<AgentEndpoint>;
    /// The instance of this sandbox, if any.
    async fn inspect(&self, sandbox_id: &str) -> Result<Option<Instance>>;
    /// Every instance this server placed.
    async fn list(&self) -> Result<Vec<Instance>>;
    /// Removes the instance and its host-side state; succeeds when there is nothing to remove.
    async fn delete(&self, sandbox_id: &str) -> Result<()>;
    /// The last `lines` lines of the instance's output (its main process's and the agent's
    /// stdout and stderr), each line starting with its RFC 3339 timestamp and a space.
    async fn logs(&self, sandbox_id: &str, lines: usize) -> Result<String>;
    /// Freezes every process of the instance (and its sidecars), keeping their memory; a
    /// driver that cannot answers [`Error::Unsupported`].
    async fn pause(&self, sandbox_id: &str) -> Result<()>;
    /// Continues a paused instance: exactly where it stopped (Docker), or recreated from its
    /// kept volume (Kubernetes' hibernation). Returns the agent's new endpoint when it moved.
    async fn resume(&self, sandbox_id: &str) -> Result<Option<AgentEndpoint>>;
    /// Saves the instance's filesystem (not its memory, tmpfs or volumes) as image `image`;
    /// returns the bytes it adds to the instance's image.
    async fn snapshot(&self, sandbox_id: &str, image: &str) -> Result<u64>;
    /// Deletes an image [`Driver::snapshot`] made; succeeds when it does not exist, and fails
    /// with [`Error::InvalidSpec`] while an instance uses it.
    async fn delete_image(&self, image: &str) -> Result<()>;
    /// Writes image `image` as an archive (`docker save` format) to the file `dest`.
    async fn save_image(&self, image: &str, dest: &std::path::Path) -> Result<()>;
    /// Loads the image archive `src` (one image, untagged: see `podgate_tar::image`) and names
    /// it `image`; on failure nothing it loaded stays. Returns the image's size in bytes.
    async fn load_image(&self, src: &std::path::Path, image: &str) -> Result<u64>;
    /// Builds image `image` from the build context `context` (a tar with a `Dockerfile`),
    /// pulling nothing; returns the end of the build's output.
    async fn build_image(&self, context: &std::path::Path, image: &str) -> Result<String>;
    /// What a sandbox whose [`Driver::start`] is still waiting waits for (e.g. "no node fits
    /// yet: 0/3 nodes are available: 3 Insufficient cpu"), for the API and the CLI to show.
    fn progress(&self, sandbox_id: &str) -> Option<String> {
        let _ = sandbox_id;
        None
    }
    /// Which disk limits this driver enforces (the core counts them against quotas either way).
    fn disk_caps(&self) -> DiskCaps {
        DiskCaps::default()
    }
    /// Unlocks the encrypted volume `name` with `key` (a wrong key is [`Error::InvalidSpec`]).
    async fn unlock_volume(&self, name: &str, key: &VolumeKey) -> Result<()> {
        let _ = (name, key);
        Err(Error::Unsupported { driver: self.name(), what: "encrypted volumes".into() })
    }
    /// Locks the encrypted volume `name`: its files are unreadable until it is unlocked again;
    /// succeeds when it is locked already or does not exist.
    async fn lock_volume(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(Error::Unsupported { driver: self.name(), what: "encrypted volumes".into() })
    }
    /// Deletes a persistent volume (see [`PlacementSpec::workspace_volume`]); succeeds when it
    /// does not exist.
    async fn delete_volume(&self, name: &str) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_round_trip() {
        for e in [
            AgentEndpoint::Unix("/a/b.sock".into()),
            AgentEndpoint::UnixAgent { path: "/a/b.sock".into(), pid: 4242 },
            AgentEndpoint::Tcp("10.0.0.1:49983".into()),
        ] {
            assert_eq!(AgentEndpoint::from_url(&e.to_url()), Some(e));
        }
        assert_eq!(AgentEndpoint::from_url("http://x"), None);
    }
}
