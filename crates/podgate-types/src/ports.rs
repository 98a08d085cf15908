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
