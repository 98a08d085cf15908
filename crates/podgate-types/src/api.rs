//! REST API request and response bodies (also used by the CLI and the typed client).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Base64Bytes, MemorySize};

/// Body of `POST /v1/sandboxes`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxRequest {
    /// Container image; the server's default image (`podgate/base:latest`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Name, unique among the caller's sandboxes: lowercase letters, digits and `-`, at most 63.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Environment variables of every process in the sandbox (empty values are valid).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Main command (argv) started by the agent; the sandbox keeps running when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// CPU limit in cores (e.g. 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySize>,
    /// Most bytes the sandbox may write to its own filesystem (everything outside `/workspace`
    /// volumes and the in-memory `/tmp`); writes past it fail with "disk quota exceeded". The
    /// server's default when absent. Counts against the owner's disk quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<MemorySize>,
    /// Size of the persistent `/workspace` volume when `persist` creates it (an existing
    /// volume keeps its size); the server's default when absent. Counts against the owner's
    /// disk quota while the volume exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<MemorySize>,
    /// Seconds after creation at which the sandbox is deleted; the server default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A code bundle fetched, verified and extracted inside the sandbox before `install` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::bootstrap::CodeSource>,
    /// Run once in the code's folder after extraction; its output is the bootstrap log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<crate::bootstrap::CommandLine>,
    /// Started in the sandbox's main terminal once `install` succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<crate::bootstrap::CommandLine>,
    /// `install` and `command` given as strings run through the sandbox shell.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shell: bool,
    /// Who everything in the sandbox runs as: a uid, `uid:gid`, or `root` (only where the
    /// server's policy allows root sandboxes). The server's sandbox user (1000) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Network access; the server's default (`egress`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// Mount the image's root filesystem read-only (`/tmp` and `/workspace` stay writable).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_root: bool,
    /// Record every terminal of the sandbox (asciicast v2), where the server's recording policy
    /// allows it; a server that records every terminal does so anyway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_terminals: bool,
    /// Containers started beside the sandbox in its network namespace (reachable on
    /// `localhost`), where the owner's sidecar policy allows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Sidecar>,
    /// Mount the owner's volume named like the sandbox at `/workspace`, creating it on first use;
    /// it outlives the sandbox (delete it with the volume API or `?volume=true` on delete).
    /// Without it `/workspace` is the image's, gone with the sandbox.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persist: bool,
    /// Keep the persistent `/workspace` encrypted at rest (with `persist`, where the server's
    /// policy allows it): a new volume is encrypted with a key derived from `passphrase`, which
    /// the server never stores; an existing encrypted volume is unlocked with it, or starts
    /// locked without it (`POST /v1/volumes/{id}/unlock` opens it later).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypt: bool,
    /// The passphrase of an encrypted workspace (never stored, logged or shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<crate::passphrase::Passphrase>,
    /// Pause the sandbox after this many seconds without user activity (terminals, SSH, exec,
    /// files, ports); using it resumes it. 0: never [default: the server's].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Start from one of your snapshots (id or name) instead of `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Start from a template: its request, with the fields given here on top (`env` and
    /// `labels` merged). A template with a warm pool hands over a ready sandbox when only
    /// `name`, `env`, `labels` and `ttl_seconds` are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A container beside a sandbox, sharing its network namespace (e.g. a database, or a
/// Docker-in-Docker daemon with `privileged`). It runs its image's own entrypoint and user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Unique within the sandbox: 1-32 of `a-z`, `0-9`, `-`.
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Replaces the image's command (its entrypoint stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// CPU limit in cores [default: 0.5].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory limit [default: 512Mi].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySize>,
    /// All capabilities and devices (Docker-in-Docker needs this); only under a `privileged`
    /// sidecar policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
}

/// Which sidecars a user may start (an admin policy: the server's default, overridden per user
/// in the quota).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SidecarPolicy {
    /// No sidecars.
    #[default]
    None,
    /// Sidecars with a minimal capability set and no-new-privileges.
    Unprivileged,
    /// Also privileged sidecars.
    Privileged,
}

impl std::str::FromStr for SidecarPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SidecarPolicy::None),
            "unprivileged" => Ok(SidecarPolicy::Unprivileged),
            "privileged" => Ok(SidecarPolicy::Privileged),
            _ => Err(format!("sidecar policy {s:?}: use none, unprivileged or privileged")),
        }
    }
}

/// A sandbox's network access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// No network at all (loopback only).
    None,
    /// Outbound connections to public addresses; cloud metadata, private, loopback and
    /// link-local ranges (and other sandboxes) are blocked unless the server allows them.
    #[default]
    Egress,
}

impl NetworkMode {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Egress => "egress",
        }
    }
}

pub use crate::state::SandboxState;

/// A sandbox as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sandbox {
    pub id: String,
    pub name: String,
    /// Id of the owning user.
    pub owner: String,
    pub state: SandboxState,
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub cmd: Option<Vec<String>>,
    pub cpu: Option<f64>,
    pub memory: Option<MemorySize>,
    /// Most bytes it may write to its own filesystem (absent: made before disk limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<MemorySize>,
    pub labels: BTreeMap<String, String>,
    pub ttl_seconds: Option<u64>,
    /// Who everything in the sandbox runs as (`uid:gid`).
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub network: NetworkMode,
    #[serde(default)]
    pub read_only_root: bool,
    /// Whether its terminals are recorded.
    #[serde(default)]
    pub record_terminals: bool,
    /// Its sidecars, with their limits.
    #[serde(default)]
    pub sidecars: Vec<Sidecar>,
    /// Why the sandbox failed, when `state` is `failed`.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Progress of the code bootstrap, when the sandbox has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<crate::bootstrap::BootstrapStatus>,
    /// Id of the persistent volume mounted at `/workspace`, when it asked to persist it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Seconds without user activity after which it is paused (0: never).
    #[serde(default)]
    pub idle_timeout_seconds: u64,
    /// Last user activity the server recorded (written every few seconds at most).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_active_at: Option<OffsetDateTime>,
    /// While it is starting: what it waits for, as the runtime said (e.g. no node fits yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// A named sandbox request (admins define them); `template` on create starts from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    pub name: String,
    pub request: CreateSandboxRequest,
    /// Ready sandboxes kept for it (a warm pool), 0 for none.
    pub pool_size: u32,
    /// Ready sandboxes in the pool now.
    pub pool_ready: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    /// Why the pool's last refill failed, and when, until one succeeds (refills back off from
    /// 5 s to 5 min meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub pool_error_at: Option<OffsetDateTime>,
}

/// Where a template's sandboxes run on Kubernetes (set by admins on a template; the Docker driver
/// has no nodes and ignores it). Added to the server's `--kube-*` scheduling flags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Scheduling {
    /// A RuntimeClass (e.g. `gvisor`, `kata`), replacing the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// Node labels the pods must be placed on, over the server's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations, `KEY[=VALUE]:EFFECT`, besides the server's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<String>,
}

/// Body of `PUT /v1/templates/{name}` (admins).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// The sandbox request (no `name`, `template` or `snapshot`).
    pub request: CreateSandboxRequest,
    /// Ready sandboxes to keep, at most 100; they count against the defining admin's quota until
    /// claimed.
    #[serde(default)]
    pub pool_size: u32,
    /// Where its sandboxes run on Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
}

/// Body of `GET /v1/templates`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateList {
    pub templates: Vec<Template>,
}

/// A sandbox's filesystem saved as an image its owner can start sandboxes from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    /// Id of the owning user.
    pub owner: String,
    /// The sandbox it was taken of.
    pub sandbox: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Bytes it holds beyond its base image, counted against the owner's disk quota.
    #[serde(default)]
    pub bytes: u64,
}

/// Body of `GET /v1/snapshots`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotList {
    pub snapshots: Vec<Snapshot>,
}

/// Body of `POST /v1/sandboxes/{id}/snapshot` and `…/fork`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NameRequest {
    /// The new snapshot's (or fork's) name [default: one the server picks].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Body of `POST /v1/sandboxes/{id}/extend`: fields left out stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// The sandbox expires this many seconds from now (within your quota's maximum TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// New idle timeout in seconds (0: never paused for idleness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
}

/// A user's persistent volume: the `/workspace` of the sandbox of the same name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Volume {
    pub id: String,
    pub name: String,
    /// Id of the owning user.
    pub owner: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The live sandbox it is mounted in, if any.
    pub sandbox: Option<String>,
    /// Its size (0: unbounded, made before sizes existed), counted against the owner's disk quota.
    #[serde(default)]
    pub size: MemorySize,
    /// Encrypted at rest with a key derived from its owner's passphrase.
    #[serde(default)]
    pub encrypted: bool,
}

/// Body of `GET /v1/volumes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeList {
    pub volumes: Vec<Volume>,
}

/// Body of `GET /v1/sandboxes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxList {
    pub sandboxes: Vec<Sandbox>,
}

/// Runs one process to completion inside a sandbox (`POST /v1/sandboxes/{id}/exec`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments, run without a shell. With `shell: true`, exactly one string: a
    /// command line run by the sandbox user's shell (`SHELL -c`).
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shell: bool,
    /// Extra environment variables, on top of the sandbox's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; relative paths resolve against the sandbox workdir, `~` is home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// User to run as: a name from the sandbox's /etc/passwd, a uid, or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Kill the process (and its process group) after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Bytes written to the process's stdin, then stdin is closed (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Base64Bytes>,
}

/// Result of an exec. `stdout` and `stderr` are the exact bytes, base64-encoded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecResponse {
    /// Exit code; 128+N when the process was killed by signal N.
    pub exit_code: i32,
    /// The signal that ended the process, if any.
    pub signal: Option<i32>,
    /// Whether `timeout_seconds` passed and the process was killed.
    pub timed_out: bool,
    pub stdout: Base64Bytes,
    pub stderr: Base64Bytes,
    /// Whether output beyond the per-stream limit was dropped.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: u64,
}

/// Every API error: `{"error":{"code":"…","message":"…"}}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Machine-readable code and human-readable message of an API error.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Body of `GET /v1/users/me`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    pub id: String,
    pub name: String,
    pub role: String,
}

/// One audit event: who did what to which sandbox, from where, with what result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// Increasing with time.
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// The user who acted; absent for anonymous requests and for the server itself (`actor_name`
    /// is then `system`).
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    /// The client's address.
    pub source: Option<String>,
    /// E.g. `sandbox.create`, `sandbox.exec`, `terminal.open`, `file.write`, `auth.failed`.
    pub action: String,
    pub sandbox_id: Option<String>,
    /// `ok`, or the error code (`not_found`, `quota_exceeded`, `rate_limited`, …).
    pub result: String,
    pub detail: Option<String>,
}

/// Body of `GET /v1/audit` and `GET /v1/sandboxes/{id}/events`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditList {
    pub events: Vec<AuditEvent>,
}
