//! podgate's E2B-compatible API, so that the unmodified E2B SDKs work against podgate: the E2B
//! control plane (`/sandboxes`, `/v2/sandboxes`, `/templates`, …) and what the SDKs call on a
//! sandbox's daemon (envd's process and filesystem services over Connect RPC, `/files`,
//! `/health`, `/envs`). Everything is a translator into the core: sandboxes, ownership, quotas,
//! rate limits and the audit are the core's, and the daemon's calls become calls to podgate's own
//! agent through `AgentRequests`.
//!
//! One listener serves both: a request that names a sandbox (the `E2b-Sandbox-Id` header, or a
//! host name `PORT-SANDBOXID.DOMAIN`) goes to that sandbox (its daemon, or on another port its
//! own server), anything else to the control plane.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use podgate_core::{Auth, Sandboxes};

mod connect;
mod control;
mod daemon;
mod drain;
mod error;
mod files;
mod filesystem;
mod observe;
mod ports;
mod process;
mod proto;
mod routing;
mod signature;
mod watch;

pub use error::E2bError;

/// The envd version the daemon translation answers as: the newest whose features (stdin,
/// default user, octet-stream uploads, recursive watch) it all implements. The SDKs gate
/// features on it.
pub const ENVD_VERSION: &str = "0.5.7";
/// The port the SDKs address the daemon on.
pub const ENVD_PORT: u16 = 49983;

/// How the E2B API is reached.
#[derive(Clone, Debug, Default)]
pub struct E2bConfig {
    /// The domain sandboxes are reached under as `PORT-SANDBOXID.DOMAIN` (wildcard DNS), given to
    /// the SDKs in each sandbox's `domain`; none: clients set `E2B_SANDBOX_URL`.
    pub domain: Option<String>,
}

/// What the E2B handlers share.
#[derive(Clone)]
pub struct E2bState {
    pub sandboxes: Sandboxes,
    pub auth: Auth,
    pub cfg: E2bConfig,
    /// The polling directory watchers made on this server.
    watchers: Arc<watch::Watchers>,
}

impl E2bState {
    pub fn new(sandboxes: Sandboxes, auth: Auth, cfg: E2bConfig) -> E2bState {
        E2bState { sandboxes, auth, cfg, watchers: Default::default() }
    }
}

/// The E2B API: the control plane and the sandboxes' daemons on one router.
pub fn router(state: E2bState) -> Router {
    let state = Arc::new(state);
    let control = control::routes().with_state(state.clone());
    let daemon = daemon::routes()
        .layer(axum::middleware::from_fn_with_state(state.clone(), daemon::other_ports))
        .with_state(state.clone());
    let domain = state.cfg.domain.clone();
    Router::new()
        .fallback(move |req: Request| dispatch(control.clone(), daemon.clone(), domain.clone(), req))
        .layer(axum::middleware::from_fn(drain::drain_refused))
        .layer(axum::middleware::from_fn_with_state(state, limit_by_address))
}

/// Sends a request to a sandbox's daemon when it names one, else to the control plane.
async fn dispatch(control: Router, daemon: Router, domain: Option<String>, mut req: Request) -> Response {
    use tower::ServiceExt as _;
    match routing::target(req.headers(), domain.as_deref()) {
        Ok(Some(target)) => {
            req.extensions_mut().insert(target);
            daemon.oneshot(req).await.unwrap_or_else(|e| match e {})
        }
        Ok(None) => control.oneshot(req).await.unwrap_or_else(|e| match e {}),
        Err(e) => e.into_response(),
    }
}

/// The per-address rate limit of podgate's own API, before authentication.
async fn limit_by_address(State(st): State<Arc<E2bState>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(ip) = peer
        && let Err(e) = st.sandboxes.limiter().address(&ip.to_string()).await
    {
        return E2bError::from(e).into_response();
    }
    next.run(req).await
}

/// The client's address, for the audit trail.
pub(crate) fn source(req: &axum::http::Extensions) -> Option<String> {
    req.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}
