//! Forwarding a request to a sandbox's agent with body and answer streamed through: the core
//! authorizes, sends and audits it (`AgentRequests::forward`); this only translates.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// Sends `req` (its query and, unless GET or DELETE, its body) to `agent_path` on the agent of
/// the caller's sandbox `id` and returns the agent's answer as it streams.
pub async fn forward(
    st: &AppState,
    caller: &podgate_core::Caller,
    id: &str,
    agent_path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{agent_path}?{q}"),
        None => agent_path.to_string(),
    };
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = if method == Method::GET || method == Method::DELETE { Body::empty() } else { req.into_body() };
    let resp = st
        .sandboxes
        .agent_requests()
        .forward(caller, id, method, &path_and_query, content_type.as_deref(), body)
        .await?;
    Ok(resp.map(Body::new).into_response())
}
