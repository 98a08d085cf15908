//! Persistent volume routes: list the caller's volumes, delete one, unlock and lock an
//! encrypted one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use podgate_types::api::{Volume, VolumeList};
use podgate_types::passphrase::UnlockRequest;

use crate::extract::Authed;
use crate::{ApiError, AppState};

/// Volume routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/volumes", get(list_volumes))
        .route("/v1/volumes/{id}", delete(delete_volume))
        .route("/v1/volumes/{id}/unlock", post(unlock_volume))
        .route("/v1/volumes/{id}/lock", post(lock_volume))
}

/// The caller's persistent volumes (everyone's for an admin), with the sandbox each is mounted in.
#[utoipa::path(get, path = "/v1/volumes", tag = "volumes",
    responses((status = 200, body = VolumeList), (status = 401, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_volumes(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<Json<VolumeList>, ApiError> {
    Ok(Json(VolumeList { volumes: st.sandboxes.volumes().list(&caller).await? }))
}

/// Deletes a persistent volume, by id or name, with its data.
#[utoipa::path(delete, path = "/v1/volumes/{id}", tag = "volumes",
    params(("id" = String, Path, description = "volume id or name")),
    responses(
        (status = 204),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "mounted in a live sandbox")),
    security(("bearer" = [])))]
pub async fn delete_volume(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.sandboxes.volumes().delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unlocks an encrypted volume with its passphrase: the sandbox it is mounted in sees its files.
#[utoipa::path(post, path = "/v1/volumes/{id}/unlock", tag = "volumes",
    params(("id" = String, Path, description = "volume id or name")),
    request_body = UnlockRequest,
    responses(
        (status = 200, body = Volume),
        (status = 403, body = podgate_types::api::ErrorBody, description = "wrong passphrase"),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "not mounted in a sandbox"),
        (status = 422, body = podgate_types::api::ErrorBody, description = "not encrypted")),
    security(("bearer" = [])))]
pub async fn unlock_volume(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Json(req): Json<UnlockRequest>,
) -> Result<Json<Volume>, ApiError> {
    Ok(Json(st.sandboxes.volumes().unlock(&caller, &id, &req.passphrase).await?))
}

/// Locks an encrypted volume: its files are unreadable (open ones once closed) until unlocked.
#[utoipa::path(post, path = "/v1/volumes/{id}/lock", tag = "volumes",
    params(("id" = String, Path, description = "volume id or name")),
    responses(
        (status = 200, body = Volume),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 422, body = podgate_types::api::ErrorBody, description = "not encrypted")),
    security(("bearer" = [])))]
pub async fn lock_volume(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Volume>, ApiError> {
    Ok(Json(st.sandboxes.volumes().lock(&caller, &id).await?))
}
