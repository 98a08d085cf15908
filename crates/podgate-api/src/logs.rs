//! `GET /v1/sandboxes/{id}/logs`: the bootstrap log, streamed from the agent while the sandbox
//! runs (followed with `follow=true`), or the end of it kept by the server once it ended; and
//! `GET /v1/sandboxes/{id}/metrics`: the resource samples the sandbox's agent took.

use podgate_types::agent::paths;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use podgate_core::bootstrap::BootstrapLog;
use serde::Deserialize;

use crate::extract::Authed;
use crate::{ApiError, AppState};

/// Log routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/sandboxes/{id}/logs", get(logs)).route("/v1/sandboxes/{id}/metrics", get(metrics))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    follow: bool,
}

fn text(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The bootstrap log: fetch, verification and extraction steps, then the install step's output.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/logs", tag = "sandboxes",
    params(("id" = String, Path, description = "sandbox id or name"),
        ("follow" = Option<bool>, Query, description = "keep streaming until the bootstrap ends")),
    responses((status = 200, description = "the log", content_type = "text/plain"),
        (status = 404, body = podgate_types::api::ErrorBody, description = "no such sandbox, or it has no bootstrap")),
    security(("bearer" = [])))]
pub async fn logs(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    match st.sandboxes.bootstrap().log(&caller, &id).await? {
        BootstrapLog::Kept(bytes) => Ok(text(Body::from(bytes))),
        BootstrapLog::Live(agent) => {
            let path = format!("{}?follow={}", paths::BOOTSTRAP_LOG, q.follow);
            match agent.forward(Method::GET, &path, None, Body::empty()).await {
                Ok(resp) if resp.status().is_success() => Ok(text(Body::new(resp.into_body()))),
                _ => Err(podgate_core::Error::Unavailable(format!("the agent of sandbox {id} is unreachable")).into()),
            }
        }
    }
}

/// CPU, memory and disk samples, every 5 seconds for the last hour, oldest first; none while the
/// sandbox is paused (reading them does not wake it).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/metrics", tag = "sandboxes",
    params(("id" = String, Path, description = "sandbox id or name"),
        ("start" = Option<i64>, Query, description = "first second (Unix time) to include"),
        ("end" = Option<i64>, Query, description = "last second (Unix time) to include")),
    responses((status = 200, body = Vec<podgate_types::metrics::MetricsSample>),
        (status = 404, body = podgate_types::api::ErrorBody, description = "no such sandbox")),
    security(("bearer" = [])))]
pub async fn metrics(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Query(q): Query<podgate_types::metrics::MetricsQuery>,
) -> Result<axum::Json<Vec<podgate_types::metrics::MetricsSample>>, ApiError> {
    Ok(axum::Json(st.sandboxes.observe().samples(&caller, &id, &q).await?))
}
