//! Port API types: listening TCP sockets in a sandbox.

use serde::{Deserialize, Serialize};

/// A listening TCP socket inside a sandbox.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListeningPort {
    pub port: u16,
    /// Local address, e.g. `0.0.0.0`, `127.0.0.1`, `::`.
    pub address: String,
    /// Pid of a process holding the socket, if it could be found.
    pub pid: Option<u32>,
    /// That process's name (`comm`).
    pub process: Option<String>,
}

/// Subprotocol of tunnel WebSockets: binary frames are the TCP connection's bytes; an empty
/// binary frame from the client means it has no more to send (the agent shuts down its sending
/// side, and the answer still comes back).
pub const TUNNEL_SUBPROTOCOL: &str = "podgate.tunnel.v1";

/// Subprotocol of listener WebSockets (`/v1/listen` and `/v1/listen/{id}/accept` on the agent).
/// The control socket's first text frame is [`ListenMessage::Listening`]; the listener stays open
/// until the control socket closes. An accept socket waits for one connection, sends
/// [`ListenMessage::Accepted`], and then its binary frames are that connection's bytes.
pub const LISTEN_SUBPROTOCOL: &str = "podgate.listen.v1";

/// Text frames of listener WebSockets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ListenMessage {
    /// The listener is open: `address` is `IP:PORT` for TCP (the port the kernel chose when 0
    /// was asked) or the socket's path for a Unix listener.
    Listening { id: String, address: String, port: u16 },
    /// A connection came in from `peer` (`IP:PORT`, empty for a Unix socket).
    Accepted { peer: String },
}
