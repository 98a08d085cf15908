//! Route handlers: each translates HTTP into one call of the core service.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use podgate_types::api::{
    CreateSandboxRequest, ExecRequest, ExecResponse, ExtendRequest, Sandbox, SandboxList, UserInfo,
};

use crate::extract::{ApiJson, Authed};
use crate::{ApiError, AppState};

/// The authenticated `/v1` routes.
pub fn v1() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/users/me", get(me))
        .route("/v1/sandboxes", post(create_sandbox).get(list_sandboxes))
        .route("/v1/sandboxes/{id}", get(get_sandbox).delete(delete_sandbox))
        .route("/v1/sandboxes/{id}/exec", post(exec))
        .route("/v1/sandboxes/{id}/pause", post(pause_sandbox))
        .route("/v1/sandboxes/{id}/resume", post(resume_sandbox))
        .route("/v1/sandboxes/{id}/extend", post(extend_sandbox))
}

/// The process is alive.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The database and the runtime answer.
pub async fn readyz(State(st): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    st.sandboxes.ready().await?;
    Ok(Json(serde_json::json!({ "status": "ready" })))
}

/// Prometheus text exposition.
pub async fn metrics(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let body = st.metrics.render(st.sandboxes.store()).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The caller's identity.
#[utoipa::path(get, path = "/v1/users/me", tag = "users",
    responses((status = 200, body = UserInfo), (status = 401, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(Authed(caller): Authed) -> Json<UserInfo> {
    Json(UserInfo { id: caller.user_id, name: caller.user_name, role: caller.role.as_str().into() })
}

/// Creates a sandbox; answers once it runs and its agent answers.
#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", request_body = CreateSandboxRequest,
    responses(
        (status = 201, body = Sandbox, description = "running, agent answering"),
        (status = 400, body = podgate_types::api::ErrorBody, description = "malformed JSON"),
        (status = 401, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "name in use"),
        (status = 413, body = podgate_types::api::ErrorBody),
        (status = 422, body = podgate_types::api::ErrorBody, description = "invalid values, or an image that cannot be used"),
        (status = 503, body = podgate_types::api::ErrorBody, description = "runtime or agent unavailable")),
    security(("bearer" = [])))]
pub async fn create_sandbox(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CreateSandboxRequest>,
) -> Result<(StatusCode, Json<Sandbox>), ApiError> {
    let sb = st.sandboxes.create(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(sb)))
}

/// The caller's sandboxes (all of them for an admin).
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes",
    responses((status = 200, body = SandboxList), (status = 401, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_sandboxes(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<Json<SandboxList>, ApiError> {
    Ok(Json(SandboxList { sandboxes: st.sandboxes.list(&caller).await? }))
}

/// One sandbox, by id or name.
#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = Sandbox), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_sandbox(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Sandbox>, ApiError> {
    Ok(Json(st.sandboxes.get(&caller, &id).await?))
}

/// Query of `DELETE /v1/sandboxes/{id}`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// Also delete the sandbox's persistent volume.
    #[serde(default)]
    volume: bool,
}

/// Deletes a sandbox, by id or name; its persistent volume stays unless `volume=true`.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "sandbox id or name"), DeleteQuery),
    responses((status = 204), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_sandbox(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    st.sandboxes.delete_with(&caller, &id, q.volume).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a process to completion in the sandbox, through its agent. `stdin`, `stdout` and
/// `stderr` are exact bytes as base64.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/exec", tag = "sandboxes", request_body = ExecRequest,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses(
        (status = 200, body = ExecResponse),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "sandbox not running"),
        (status = 422, body = podgate_types::api::ErrorBody, description = "invalid argv, or the program cannot start"),
        (status = 503, body = podgate_types::api::ErrorBody, description = "agent unreachable")),
    security(("bearer" = [])))]
pub async fn exec(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExecRequest>,
) -> Result<Json<ExecResponse>, ApiError> {
    Ok(Json(st.sandboxes.exec(&caller, &id, req).await?))
}

/// Freezes a running sandbox: its processes stop where they are and keep their memory. Using it
/// (exec, terminals, files, ports, SSH) resumes it.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", tag = "sandboxes",
    params(("id" = String, Path, description = "sandbox id or name")),
    responses(
        (status = 200, body = Sandbox, description = "paused (or already paused)"),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "not running, or the driver cannot pause")),
    security(("bearer" = [])))]
pub async fn pause_sandbox(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Sandbox>, ApiError> {
    Ok(Json(st.sandboxes.lifecycle().pause(&caller, &id).await?))
}

/// Continues a paused sandbox where it stopped.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", tag = "sandboxes",
    params(("id" = String, Path, description = "sandbox id or name")),
    responses(
        (status = 200, body = Sandbox, description = "running"),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "neither paused nor running")),
    security(("bearer" = [])))]
pub async fn resume_sandbox(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Sandbox>, ApiError> {
    Ok(Json(st.sandboxes.lifecycle().resume(&caller, &id).await?))
}

/// Moves the sandbox's expiry to `ttl_seconds` from now (within the caller's quota) and/or sets
/// its idle timeout.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/extend", tag = "sandboxes", request_body = ExtendRequest,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses(
        (status = 200, body = Sandbox),
        (status = 403, body = podgate_types::api::ErrorBody, description = "over the quota's maximum TTL"),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn extend_sandbox(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExtendRequest>,
) -> Result<Json<Sandbox>, ApiError> {
    Ok(Json(st.sandboxes.lifecycle().extend(&caller, &id, req).await?))
}
