//! Streaming process wire types, shared by the agent, the server API and the clients.
//!
//! On a process WebSocket, binary frames carry one channel byte ([`STDIN`], [`STDOUT`],
//! [`STDERR`]) followed by raw bytes; text frames carry one JSON message each
//! ([`ClientMessage`] from the client, [`ServerMessage`] from the agent). All output is sent
//! before the `exit` message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Subprotocol spoken on process WebSockets.
pub const SUBPROTOCOL: &str = "podgate.process.v1";
/// Channel byte of stdin data (client → agent).
pub const STDIN: u8 = 0;
/// Channel byte of stdout data (agent → client); a PTY's output is all on stdout.
pub const STDOUT: u8 = 1;
/// Channel byte of stderr data (agent → client).
pub const STDERR: u8 = 2;

/// What to run (`POST /v1/sandboxes/{id}/processes`, or the `start` message of a stream).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Program and arguments, run without a shell. With `shell: true`, exactly one string: a
    /// command line run by the sandbox user's shell (`SHELL -c`).
    pub argv: Vec<String>,
    #[serde(default)]
    pub shell: bool,
    /// Extra environment variables, on top of the sandbox's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; relative paths resolve against the sandbox workdir, `~` is home
    /// [default: the workdir; for another user than the sandbox's, that user's home].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// User to run as: a name from the sandbox's /etc/passwd, a uid, or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run on a PTY of this size (stdout and stderr are then one stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<PtySize>,
    /// Kill the process group after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Keep stdin open for input sent over the stream; otherwise stdin is `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// A caller's label for the process, shown when listed (for finding it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A PTY's size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PtySize {
    pub cols: u16,
    pub rows: u16,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessExit {
    /// Exit code; 128+N when signal N ended the process.
    pub exit_code: i32,
    /// The signal that ended the process, if any.
    pub signal: Option<i32>,
    /// Whether `timeout_seconds` passed and the process was killed.
    pub timed_out: bool,
}

/// A process as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessInfo {
    pub id: String,
    pub pid: i32,
    pub argv: Vec<String>,
    pub shell: bool,
    pub pty: bool,
    pub user: Option<String>,
    /// The working directory it started in.
    #[serde(default)]
    pub cwd: String,
    /// The caller's label, from the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Clients attached now.
    pub clients: u32,
    /// Set once the process ended and all its output was read.
    pub exit: Option<ProcessExit>,
}

/// A JSON message from the client, in a text frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message on `/v1/sandboxes/{id}/processes`: start this process.
    Start { process: ProcessSpec },
    /// Close the process's stdin (on a PTY: send the EOF character).
    StdinEnd,
    /// Send a signal (`TERM`, `KILL`, `INT`, `HUP`, … or a number) to the process group.
    Signal { signal: String },
    /// Resize the PTY.
    Resize { cols: u16, rows: u16 },
}

/// A JSON message from the agent, in a text frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The process runs (sent first on a new stream and on every attach).
    Started { process: ProcessInfo },
    /// `bytes` of `stream` (`stdout` or `stderr`) were evicted from the bounded buffer before
    /// this client could read them.
    Dropped { stream: String, bytes: u64 },
    /// The process ended; no output follows.
    Exit {
        #[serde(flatten)]
        exit: ProcessExit,
    },
    /// A client message could not be carried out; the stream goes on.
    Error { message: String },
}

/// Body of the agent's `POST /v1/processes/{id}/resize`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    pub cols: u16,
    pub rows: u16,
}

/// Body of `POST /v1/sandboxes/{id}/processes/{pid}/signal`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    pub signal: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m: ClientMessage = serde_json::from_str(r#"{"type":"start","process":{"argv":["ls"]}}"#).unwrap();
        assert_eq!(m, ClientMessage::Start { process: ProcessSpec { argv: vec!["ls".into()], ..Default::default() } });
        let exit = ServerMessage::Exit { exit: ProcessExit { exit_code: 137, signal: Some(9), timed_out: false } };
        let s = serde_json::to_string(&exit).unwrap();
        assert_eq!(s, r#"{"type":"exit","exit_code":137,"signal":9,"timed_out":false}"#);
        assert_eq!(serde_json::from_str::<ServerMessage>(&s).unwrap(), exit);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"launch"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"signal","signal":"INT","x":1}"#).is_err());
    }
}
