//! Snapshot routes: snapshot or fork a sandbox, list and delete snapshots.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
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
        .route("/v1/snapshots/{id}/export", get(export_snapshot))
        .route("/v1/snapshots/import", post(import_snapshot))
}

/// Streams a snapshot as an image archive (`docker save` format), for `docker load` or an
/// import elsewhere.
#[utoipa::path(get, path = "/v1/snapshots/{id}/export", tag = "snapshots",
    params(("id" = String, Path, description = "snapshot id or name")),
    responses((status = 200, description = "the image archive", content_type = "application/x-tar"),
        (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_snapshot(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (name, file) = st.sandboxes.snapshots().export(&caller, &id).await?;
    let open = tokio::fs::File::open(file.path()).await;
    // Unlinked now; the open file stays readable until the stream ends.
    drop(file);
    let open = open.map_err(|e| ApiError::from(podgate_core::Error::Internal(format!("the export: {e}"))))?;
    let len = open.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(open));
    let headers = [
        (header::CONTENT_TYPE, "application/x-tar".to_string()),
        (header::CONTENT_LENGTH, len.to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.tar\"")),
    ];
    Ok((headers, body).into_response())
}

/// Query of `POST /v1/snapshots/import`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// The new snapshot's name.
    name: String,
}

/// Imports an image archive (`docker save` format, one image) as a snapshot of yours. The
/// archive's own tags are dropped; entries leaving the archive, several images or a body over
/// the server's limit are refused, and a refused import leaves nothing.
#[utoipa::path(post, path = "/v1/snapshots/import", tag = "snapshots", params(ImportQuery),
    request_body(content = String, content_type = "application/x-tar", description = "the image archive"),
    responses(
        (status = 201, body = Snapshot),
        (status = 409, body = podgate_types::api::ErrorBody, description = "name in use"),
        (status = 413, body = podgate_types::api::ErrorBody, description = "over --max-import-bytes"),
        (status = 422, body = podgate_types::api::ErrorBody, description = "not an acceptable image archive")),
    security(("bearer" = [])))]
pub async fn import_snapshot(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Query(q): Query<ImportQuery>,
    req: Request,
) -> Result<(StatusCode, Json<Snapshot>), ApiError> {
    let upload = crate::upload::spool(&st, req).await?;
    let snap = st.sandboxes.snapshots().import(&caller, &q.name, upload.path()).await?;
    Ok((StatusCode::CREATED, Json(snap)))
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
    Ok((StatusCode::CREATED, Json(st.sandboxes.snapshots().create(&caller, &id, req).await?)))
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
    Ok((StatusCode::CREATED, Json(st.sandboxes.snapshots().fork(&caller, &id, req).await?)))
}

/// The caller's snapshots (everyone's for an admin).
#[utoipa::path(get, path = "/v1/snapshots", tag = "snapshots",
    responses((status = 200, body = SnapshotList), (status = 401, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_snapshots(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<Json<SnapshotList>, ApiError> {
    Ok(Json(SnapshotList { snapshots: st.sandboxes.snapshots().list(&caller).await? }))
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
    st.sandboxes.snapshots().delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
