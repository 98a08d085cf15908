//! Port routes: the sandbox's listening TCP ports, as a list or pushed over a WebSocket, and
//! tunnels to ports inside the sandbox.

use podgate_types::agent::paths;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::get;

use crate::extract::Authed;
use crate::gateway::splice_to_agent;
use crate::proxy::forward;
use crate::{ApiError, AppState};
use podgate_types::ports::TUNNEL_SUBPROTOCOL;

/// Port routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sandboxes/{id}/ports", get(list))
        .route("/v1/sandboxes/{id}/ports/watch", get(watch))
        .route("/v1/sandboxes/{id}/tunnel", get(tunnel))
}

/// The listening TCP ports (port, address, pid and process name).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/ports", tag = "ports",
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = Vec<podgate_types::ports::ListeningPort>), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::PORTS, req).await
}

/// WebSocket: a text frame with the full list now and each time it changes (no polling needed).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/ports/watch", tag = "ports",
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 101, description = "the listening ports, a JSON list per text frame (WebSocket)",
        body = Vec<podgate_types::ports::ListeningPort>), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn watch(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    splice_to_agent(&st, &caller, &id, paths::PORTS_WATCH, None, req).await
}

/// WebSocket: a TCP connection to `host:port` opened from inside the sandbox (default host
/// 127.0.0.1; an IP address or `localhost`), its bytes as binary frames both ways.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/tunnel", tag = "ports",
    params(("id" = String, Path, description = "sandbox id or name"),
        ("port" = u16, Query, description = "port to connect to"),
        ("host" = Option<String>, Query, description = "IP address or localhost [default 127.0.0.1]")),
    responses((status = 101, description = "tunnel (WebSocket)"),
        (status = 422, body = podgate_types::api::ErrorBody, description = "invalid host or port"),
        (status = 502, body = podgate_types::api::ErrorBody, description = "nothing accepts connections there")),
    security(("bearer" = [])))]
pub async fn tunnel(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    splice_to_agent(&st, &caller, &id, paths::TUNNEL, Some(TUNNEL_SUBPROTOCOL), req).await
}
