//! Terminal wire types, shared by the agent, the server API and the clients.
//!
//! On a terminal WebSocket, binary frames carry raw PTY bytes both ways and text frames carry one
//! JSON [`Control`] message each.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Subprotocol spoken on terminal WebSockets.
pub const SUBPROTOCOL: &str = "podgate.terminal.v1";
/// Prefix of the subprotocol entry that carries a session token (`token.<jwt>`).
pub const TOKEN_PROTOCOL_PREFIX: &str = "token.";

/// Creates a terminal (`POST /v1/terminals` on the agent).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TerminalSpec {
    /// Command (argv); the sandbox user's login shell when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Columns [default 80].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    /// Rows [default 24].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    /// `TERM` [default xterm-256color].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (`~` is home, relative is the workdir) [default: home].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// A terminal as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalInfo {
    pub id: String,
    pub cmd: Vec<String>,
    pub cols: u16,
    pub rows: u16,
    /// Clients attached now.
    pub clients: u32,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Exit code once the command ended (128+N for signal N).
    pub exit_code: Option<i32>,
}

/// A terminal recording (asciicast v2), as listed by `GET /v1/sandboxes/{id}/recordings`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingInfo {
    pub terminal_id: String,
    /// Size of the recording so far, in bytes.
    pub size: u64,
    /// Unix milliseconds of its last write.
    pub modified_at: i64,
}

/// `{"recordings": [...]}`, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingList {
    pub recordings: Vec<RecordingInfo>,
}

/// A JSON control message in a text frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Client → agent: resize the PTY (the last writer wins).
    Resize { cols: u16, rows: u16 },
    /// Client → agent: send a signal (`INT`, `TERM`, `HUP`, `KILL`, `QUIT`, `TSTP`, `CONT`,
    /// `USR1`, `USR2`, `WINCH`) to the terminal's process group.
    Signal { signal: String },
    /// Agent → client: the command ended with this code; the agent closes after it.
    Exit { code: i32 },
}

/// Body of `POST /v1/sandboxes/{id}/terminals`: start a terminal, or select an existing one with
/// `terminal_id`, and get a token to connect to it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenTerminalRequest {
    /// Attach to this terminal instead of starting one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// The connection may watch but not type.
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// Where and with what to connect to a terminal. The token is single-use and short-lived; send
/// it as the WebSocket subprotocol `token.<token>` (next to [`SUBPROTOCOL`]) or as `?token=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalSession {
    pub sandbox_id: String,
    pub terminal_id: String,
    /// WebSocket URL path (relative to the server) of the terminal gateway.
    pub url: String,
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub read_only: bool,
}

/// A read-only share token for a terminal (`POST …/terminals/{tid}/share`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareToken {
    pub share_token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Body of `POST /v1/terminal-sessions`: exchange a share token for a read-only session.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExchangeShare {
    pub share_token: String,
}
