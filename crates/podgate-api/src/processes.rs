//! Process routes: start, list, signal and kill processes in a sandbox, and stream one over a
//! WebSocket (spliced through to the agent, frames untouched).

use podgate_types::agent::paths;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use podgate_types::process::SUBPROTOCOL;

use crate::extract::Authed;
use crate::gateway::splice_to_agent;
use crate::proxy::forward;
use crate::{ApiError, AppState};

/// Process routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sandboxes/{id}/processes", get(list_or_stream).post(start))
        .route("/v1/sandboxes/{id}/processes/{pid}", get(info).delete(kill))
        .route("/v1/sandboxes/{id}/processes/{pid}/signal", post(signal))
        .route("/v1/sandboxes/{id}/processes/{pid}/attach", get(attach))
}

/// Process ids are `p-` and letters and digits; anything else never reaches the agent.
fn process_id(pid: &str) -> Result<&str, ApiError> {
    let plain = !pid.is_empty() && pid.len() <= 64 && pid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain {
        Ok(pid)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("process {pid:?} not found")))
    }
}

fn is_upgrade(req: &Request) -> bool {
    req.headers().get(header::UPGRADE).is_some()
}

/// `GET` lists the processes (running, and ended ones for five minutes). With a WebSocket
/// upgrade it opens a process stream: the client sends `{"type":"start","process":{…}}`, then
/// stdin as binary frames with channel byte 0; the agent sends `started`, stdout (channel 1) and
/// stderr (channel 2) frames, and `exit` after all output. Subprotocol `podgate.process.v1`.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes", tag = "processes",
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = Vec<podgate_types::process::ProcessInfo>),
        (status = 101, description = "process stream (WebSocket)"),
        (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_or_stream(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    if is_upgrade(&req) {
        splice_to_agent(&st, &caller, &id, paths::PROCESSES_STREAM, Some(SUBPROTOCOL), req).await
    } else {
        forward(&st, &caller, &id, paths::PROCESSES, req).await
    }
}

/// Starts a process in the background; attach to its output with `…/processes/{pid}/attach`.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes", tag = "processes",
    request_body = podgate_types::process::ProcessSpec,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 201, body = podgate_types::process::ProcessInfo),
        (status = 422, body = podgate_types::api::ErrorBody, description = "invalid spec, or the program cannot start"),
        (status = 429, body = podgate_types::api::ErrorBody, description = "too many processes")),
    security(("bearer" = [])))]
pub async fn start(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::PROCESSES, req).await
}

/// One process, with its exit status once it ended.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes/{pid}", tag = "processes",
    params(("id" = String, Path, description = "sandbox id or name"), ("pid" = String, Path, description = "process id")),
    responses((status = 200, body = podgate_types::process::ProcessInfo), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn info(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, pid)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, &paths::with_id(paths::PROCESS, process_id(&pid)?), req).await
}

/// Kills the process group (SIGKILL).
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/processes/{pid}", tag = "processes",
    params(("id" = String, Path, description = "sandbox id or name"), ("pid" = String, Path, description = "process id")),
    responses((status = 204), (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "the process has ended")),
    security(("bearer" = [])))]
pub async fn kill(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, pid)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, &paths::with_id(paths::PROCESS, process_id(&pid)?), req).await
}

/// Sends a signal (`TERM`, `INT`, `HUP`, `KILL`, `USR1`, … or a number) to the process group.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/signal", tag = "processes",
    request_body = podgate_types::process::SignalRequest,
    params(("id" = String, Path, description = "sandbox id or name"), ("pid" = String, Path, description = "process id")),
    responses((status = 204), (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "the process has ended"),
        (status = 422, body = podgate_types::api::ErrorBody, description = "unknown signal")),
    security(("bearer" = [])))]
pub async fn signal(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, pid)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, &paths::with_id(paths::PROCESS_SIGNAL, process_id(&pid)?), req).await
}

/// WebSocket: re-attach to a process. Output still buffered is sent from `stdout_from` /
/// `stderr_from` (byte offsets, default 0); a `dropped` message tells how much was gone.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes/{pid}/attach", tag = "processes",
    params(("id" = String, Path, description = "sandbox id or name"), ("pid" = String, Path, description = "process id"),
        ("stdout_from" = Option<u64>, Query, description = "stdout byte offset to resume from"),
        ("stderr_from" = Option<u64>, Query, description = "stderr byte offset to resume from")),
    responses((status = 101, description = "process stream (WebSocket)"), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn attach(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, pid)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let path = paths::with_id(paths::PROCESS_ATTACH, process_id(&pid)?);
    splice_to_agent(&st, &caller, &id, &path, Some(SUBPROTOCOL), req).await
}
