//! Snapshot routes: snapshot or fork a sandbox, list and delete snapshots.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use podgate_types::api::{NameRequest, Sandbox, Snapshot, SnapshotList};

use crate::extract::{ApiJson, Authed};
use crate::{ApiError, AppState};

/// Snapshot routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sandboxes/{id}/snapshot", post(create_snapshot))
        .route("/v1/sandboxes/{id}/fork", post(fork_sandbox))
        .route("/v1/snapshots", get(list_snapshots))
        .route("/v1/snapshots/{id}", delete(delete_snapshot))
}

/// Saves the sandbox's filesystem (not its memory, `/tmp` or volume) as a snapshot of yours;
/// start sandboxes from it with `snapshot` on create.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/snapshot", tag = "snapshots", request_body = NameRequest,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses(
        (status = 201, body = Snapshot),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "name in use, sandbox not running, or the driver cannot snapshot")),
    security(("bearer" = [])))]
pub async fn create_snapshot(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NameRequest>,
) -> Result<(StatusCode, Json<Snapshot>), ApiError> {
    Ok((StatusCode::CREATED, Json(st.sandboxes.snapshot(&caller, &id, req).await?)))
}

/// Snapshots the sandbox and starts a new one from it with the same settings.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/fork", tag = "snapshots", request_body = NameRequest,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses(
        (status = 201, body = Sandbox),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn fork_sandbox(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NameRequest>,
) -> Result<(StatusCode, Json<Sandbox>), ApiError> {
    Ok((StatusCode::CREATED, Json(st.sandboxes.fork(&caller, &id, req).await?)))
}

/// The caller's snapshots (everyone's for an admin).
#[utoipa::path(get, path = "/v1/snapshots", tag = "snapshots",
    responses((status = 200, body = SnapshotList), (status = 401, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_snapshots(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<Json<SnapshotList>, ApiError> {
    Ok(Json(SnapshotList { snapshots: st.sandboxes.list_snapshots(&caller).await? }))
}

/// Deletes a snapshot and its image, by id or name.
#[utoipa::path(delete, path = "/v1/snapshots/{id}", tag = "snapshots",
    params(("id" = String, Path, description = "snapshot id or name")),
    responses(
        (status = 204),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "a live sandbox runs from it")),
    security(("bearer" = [])))]
pub async fn delete_snapshot(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.sandboxes.delete_snapshot(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
