//! podgate's core: the `Sandboxes` service every way in (REST, WebSocket, SSH; E2B and gRPC to come) translates
//! into, authentication, the agent client, the reconciler and metrics.

pub mod access_tokens;
pub mod activity;
pub mod agent_client;
pub mod agent_requests;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod code_source;
pub mod config;
pub mod error;
pub mod ids;
mod kernel;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod oidc;
mod pools;
pub mod quotas;
pub mod reconciler;
pub mod recordings;
pub mod sandboxes;
pub mod sessions;
pub mod sidecars;
pub mod signer;
pub mod snapshots;
mod spec;
pub mod ssh_keys;
mod startup;
pub mod templates;
pub mod terminals;
pub mod users;
pub mod volumes;
mod workspace_keys;

pub use auth::{Auth, Caller, Role};
pub use config::{CoreConfig, SandboxPolicy};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use sandboxes::Sandboxes;
pub use terminals::Terminals;
