//! Port routes: the sandbox's listening TCP ports, as a list or pushed over a WebSocket.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::get;

use crate::extract::Authed;
use crate::gateway::{splice, websocket_key};
use crate::proxy::forward;
use crate::{ApiError, AppState};

/// Port routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/sandboxes/{id}/ports", get(list)).route("/v1/sandboxes/{id}/ports/watch", get(watch))
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
    forward(&st, &caller, &id, "/v1/ports", req).await
}

/// WebSocket: a text frame with the full list now and each time it changes (no polling needed).
pub async fn watch(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let key = websocket_key(req.headers())?;
    let (row, agent) = st.sandboxes.running_agent(&caller, &id).await?;
    Ok(splice(req, &agent, "/v1/ports/watch", &key, None, &format!("the ports of sandbox {}", row.id)).await)
}
