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

/// The agent's HTTP paths, defined once: the agent routes them, the server's clients (core's
/// `AgentClient`, the API's forwarding, SSH) call them. Patterns with `{id}` are the agent's
/// routes; the functions fill them in.
pub mod paths {
    pub const HEALTH: &str = "/v1/health";
    pub const ENV: &str = "/v1/env";
    pub const EXEC: &str = "/v1/exec";
    pub const FILES: &str = "/v1/files";
    pub const FILES_TAR: &str = "/v1/files/tar";
    pub const FILES_WATCH: &str = "/v1/files/watch";
    pub const FILES_STAT: &str = "/v1/files/stat";
    pub const FILES_LIST: &str = "/v1/files/list";
    pub const FILES_MKDIR: &str = "/v1/files/mkdir";
    pub const FILES_MOVE: &str = "/v1/files/move";
    pub const METRICS: &str = "/v1/metrics";
    pub const PORTS: &str = "/v1/ports";
    pub const PORTS_WATCH: &str = "/v1/ports/watch";
    pub const TUNNEL: &str = "/v1/tunnel";
    pub const SFTP: &str = "/v1/sftp";
    pub const BOOTSTRAP: &str = "/v1/bootstrap";
    pub const BOOTSTRAP_LOG: &str = "/v1/bootstrap/log";
    pub const TERMINALS: &str = "/v1/terminals";
    pub const TERMINAL: &str = "/v1/terminals/{id}";
    pub const TERMINAL_ATTACH: &str = "/v1/terminals/{id}/attach";
    pub const PROCESSES: &str = "/v1/processes";
    pub const PROCESSES_STREAM: &str = "/v1/processes/stream";
    pub const PROCESS: &str = "/v1/processes/{id}";
    pub const PROCESS_SIGNAL: &str = "/v1/processes/{id}/signal";
    pub const PROCESS_ATTACH: &str = "/v1/processes/{id}/attach";
    /// `POST`: the body goes to the process's stdin.
    pub const PROCESS_INPUT: &str = "/v1/processes/{id}/input";
    /// `POST`: closes the process's stdin (on a PTY: types the EOF character).
    pub const PROCESS_CLOSE_STDIN: &str = "/v1/processes/{id}/close-stdin";
    /// `POST` a [`crate::process::ResizeRequest`]: resizes the process's PTY.
    pub const PROCESS_RESIZE: &str = "/v1/processes/{id}/resize";
    pub const LISTEN: &str = "/v1/listen";
    pub const LISTENER_ACCEPT: &str = "/v1/listen/{id}/accept";

    /// `pattern` with its `{id}` replaced by `id` (which callers have checked is one path
    /// segment).
    pub fn with_id(pattern: &str, id: &str) -> String {
        pattern.replacen("{id}", id, 1)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn ids_fill_the_pattern() {
            assert_eq!(super::with_id(super::TERMINAL_ATTACH, "t-1"), "/v1/terminals/t-1/attach");
            assert_eq!(super::with_id(super::PROCESS, "p-9"), "/v1/processes/p-9");
        }
    }
}
