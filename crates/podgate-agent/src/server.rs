//! The agent's HTTP API (axum), guarded by the per-sandbox secret.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use podgate_types::AGENT_PROTOCOL_VERSION;
use podgate_types::agent::{AgentHealth, SECRET_HEADER};
use podgate_types::api::{ErrorBody, ErrorDetail, ExecRequest};

use crate::exec::{self, ExecError};
use crate::paths::Dirs;
use crate::reaper::Reaper;

/// Largest request body the agent accepts.
pub const MAX_BODY: usize = 64 << 20;

/// Shared state of the agent's handlers.
pub struct AgentState {
    pub secret: String,
    pub reaper: Reaper,
    pub dirs: Dirs,
}

/// The `/v1` router.
pub fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/exec", post(exec_handler))
        .layer(middleware::from_fn_with_state(state.clone(), check_secret))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
        },
    };
    (status, Json(body)).into_response()
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn check_secret(State(st): State<Arc<AgentState>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same(given, st.secret.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong agent secret",
        );
    }
    next.run(req).await
}

async fn health() -> Json<AgentHealth> {
    Json(AgentHealth {
        protocol_version: AGENT_PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
    })
}

async fn exec_handler(
    State(st): State<Arc<AgentState>>,
    body: Result<Json<ExecRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()),
    };
    match exec::run(&st.reaper, &st.dirs, req).await {
        Ok(r) => Json(r).into_response(),
        Err(ExecError::Invalid(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        Err(ExecError::Spawn(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, "spawn_failed", m),
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn compares_secrets() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }
}
