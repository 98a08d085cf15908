//! Code bootstrap wire types: a code bundle (zip, tar.gz or git) pinned by checksum or commit,
//! an install step and a command started in the sandbox's main terminal.

use serde::{Deserialize, Serialize};

/// Where the code comes from (`code` of `POST /v1/sandboxes`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CodeSource {
    /// `https://…` (`http://` only where the server allows it).
    pub url: String,
    /// zip, tar.gz or git; from the URL's ending (`.zip`, `.tar.gz`/`.tgz`, `.git`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CodeKind>,
    /// SHA-256 of the archive, 64 hex digits (required for zip and tar.gz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The commit to check out, 40 (or 64) hex digits (required for git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The kind of a code bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CodeKind {
    #[serde(rename = "zip")]
    Zip,
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "git")]
    Git,
}

/// A command: an argv array, or one string run by the sandbox shell (only with `shell: true`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum CommandLine {
    Argv(Vec<String>),
    Line(String),
}

/// How far a bootstrap got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BootstrapPhase {
    Fetching,
    Verifying,
    Extracting,
    Installing,
    Starting,
    /// The command runs in the main terminal.
    Ready,
    Failed,
}

impl BootstrapPhase {
    /// Whether the bootstrap is over (ready or failed).
    pub fn is_final(self) -> bool {
        matches!(self, BootstrapPhase::Ready | BootstrapPhase::Failed)
    }
}

/// A sandbox's bootstrap as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootstrapStatus {
    pub phase: BootstrapPhase,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the code is (the single top-level folder of an archive, or the repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The main terminal running `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// Bytes written to the bootstrap log so far.
    #[serde(default)]
    pub log_bytes: u64,
}

/// What the server asks the agent to do (`POST /v1/bootstrap` on the agent). The URL was
/// validated by the server, which also resolved it: the agent connects only to `addrs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeFetch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<CommandLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandLine>,
    #[serde(default)]
    pub shell: bool,
}

/// A validated code source with the addresses its host resolved to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeFetch {
    pub url: String,
    pub kind: CodeKind,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    /// `ip:port` pairs checked by the server; the only addresses the agent may connect to.
    pub addrs: Vec<String>,
    /// Extra trusted CA certificates (PEM) set by the server's admin, e.g. a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}
