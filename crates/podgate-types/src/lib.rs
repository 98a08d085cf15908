//! Shared podgate types: API and agent wire types, sandbox states and the agent protocol version (serde only, no IO).

pub mod agent;
pub mod api;
pub mod bootstrap;
pub mod bytes;
pub mod files;
pub mod image_ref;
pub mod memory;
pub mod metrics;
pub mod passphrase;
pub mod ports;
pub mod process;
pub mod sftp;
pub mod spec;
pub mod state;
pub mod terminal;
pub mod users;
pub mod validate;

pub use bytes::Base64Bytes;
pub use memory::MemorySize;

/// Version of the server ↔ agent protocol. The server refuses an agent that reports another one.
pub const AGENT_PROTOCOL_VERSION: u32 = 4;
