//! Forwarding a request to a sandbox's agent with body and answer streamed through.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use podgate_core::agent_client::AgentError;

use crate::{ApiError, AppState};

/// Authorizes `caller` for sandbox `id`, then sends `req` (its query and, unless GET or DELETE,
/// its body) to `agent_path` on the agent and returns the agent's answer as it streams.
pub async fn forward(
    st: &AppState,
    caller: &podgate_core::Caller,
    id: &str,
    agent_path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let (row, agent) = st.sandboxes.running_agent(caller, id).await?;
    let method = req.method().clone();
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{agent_path}?{q}"),
        None => agent_path.to_string(),
    };
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = if method == Method::GET || method == Method::DELETE { Body::empty() } else { req.into_body() };
    match agent.forward(method.clone(), &path_and_query, content_type.as_deref(), body).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            crate::audit::record_forwarded(st, caller, &row.id, &method, agent_path, &path_and_query, status).await;
            Ok(resp.map(Body::new).into_response())
        }
        Err(AgentError::Unreachable(m)) => {
            tracing::warn!(sandbox_id = %row.id, error = %m, "agent unreachable");
            Err(podgate_core::Error::Unavailable(format!("the agent of sandbox {} is unreachable", row.id)).into())
        }
        Err(e) => {
            tracing::error!(sandbox_id = %row.id, error = %e, "file request failed");
            Err(podgate_core::Error::Unavailable(format!("the agent of sandbox {} failed", row.id)).into())
        }
    }
}
