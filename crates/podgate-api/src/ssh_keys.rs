//! SSH key routes: a user's public keys for `ssh NAME@podgate` (`me` for the caller; admins may
//! manage anyone's).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use podgate_types::users::{AddSshKeyRequest, SshKeyInfo, SshKeyList};

use crate::extract::{ApiJson, Authed};
use crate::{ApiError, AppState};

/// SSH key routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/users/{id}/ssh-keys", get(list_ssh_keys).post(add_ssh_key))
        .route("/v1/users/{id}/ssh-keys/{key}", delete(remove_ssh_key))
}

/// A user's SSH public keys.
#[utoipa::path(get, path = "/v1/users/{id}/ssh-keys", tag = "users",
    params(("id" = String, Path, description = "user id, or `me`")),
    responses((status = 200, body = SshKeyList), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_ssh_keys(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<SshKeyList>, ApiError> {
    Ok(Json(SshKeyList { keys: st.auth.ssh_keys(&caller, &id).await? }))
}

/// Registers an SSH public key; a key registered already (by anyone) is a conflict.
#[utoipa::path(post, path = "/v1/users/{id}/ssh-keys", tag = "users", request_body = AddSshKeyRequest,
    params(("id" = String, Path, description = "user id, or `me`")),
    responses((status = 201, body = SshKeyInfo), (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody), (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_ssh_key(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AddSshKeyRequest>,
) -> Result<(StatusCode, Json<SshKeyInfo>), ApiError> {
    Ok((StatusCode::CREATED, Json(st.auth.add_ssh_key(&caller, &id, &req).await?)))
}

/// Removes an SSH public key.
#[utoipa::path(delete, path = "/v1/users/{id}/ssh-keys/{key}", tag = "users",
    params(("id" = String, Path, description = "user id, or `me`"), ("key" = String, Path, description = "key id")),
    responses((status = 204), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_ssh_key(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    st.auth.remove_ssh_key(&caller, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
