//! The SFTP subsystem's wire: the raw SFTP v3 byte stream in WebSocket binary frames.

/// Subprotocol of the agent's SFTP WebSocket (`/v1/sftp`).
pub const SUBPROTOCOL: &str = "podgate.sftp.v1";
