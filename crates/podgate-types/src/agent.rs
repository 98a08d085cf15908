//! Agent wire types (served under `/v1` on the agent's socket). Exec reuses [`crate::api::ExecRequest`].

use serde::{Deserialize, Serialize};

/// Header that carries the per-sandbox secret on every agent request.
pub const SECRET_HEADER: &str = "x-podgate-agent-secret";

/// The uid and gid the agent of a non-root sandbox runs under when it starts as root (on
/// Docker): outside the range images give their users, and refused as a sandbox user.
pub const AGENT_UID: u32 = 999_999;

/// Body of the agent's `GET /v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentHealth {
    /// The protocol the agent speaks; see [`crate::AGENT_PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The agent's crate version.
    pub agent_version: String,
    /// The agent's pid inside the sandbox (1 when it runs as init).
    pub pid: u32,
}
