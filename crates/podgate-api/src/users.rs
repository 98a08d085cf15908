//! User and token routes: admins create and list users; everyone manages their own tokens
//! (`me` stands for the caller), admins anyone's.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use podgate_types::api::UserInfo;
use podgate_types::users::{
    CreateTokenRequest, CreateUserRequest, CreatedToken, CreatedUser, Quota, QuotaOverrides, TokenInfo,
};

use crate::extract::{ApiJson, Authed};
use crate::{ApiError, AppState};

/// User and token routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{id}/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/users/{id}/quota", get(get_quota).put(set_quota))
}

/// A user's quota, its overrides and what their live sandboxes hold (`me` for the caller;
/// admins may read anyone's).
#[utoipa::path(get, path = "/v1/users/{id}/quota", tag = "users",
    params(("id" = String, Path, description = "user id, or me")),
    responses((status = 200, body = Quota), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_quota(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Quota>, ApiError> {
    Ok(Json(st.sandboxes.quotas().get(&caller, &id).await?))
}

/// Sets a user's quota overrides (admins); fields left out use the server's defaults, `{}` resets.
#[utoipa::path(put, path = "/v1/users/{id}/quota", tag = "users", request_body = QuotaOverrides,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = Quota), (status = 403, body = podgate_types::api::ErrorBody),
        (status = 404, body = podgate_types::api::ErrorBody), (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_quota(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<QuotaOverrides>,
) -> Result<Json<Quota>, ApiError> {
    Ok(Json(st.sandboxes.quotas().set(&caller, &id, req).await?))
}

/// Every user (admins; 403 for others).
#[utoipa::path(get, path = "/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserInfo>), (status = 403, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(st.auth.list_users(&caller).await?))
}

/// Creates a user and its first API token, whose secret is in this answer only (admins).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), (status = 403, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "name taken"),
        (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let created = st.auth.add_user(&caller, &req.name, req.role.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A user's tokens (`me` for the caller), without secrets.
#[utoipa::path(get, path = "/v1/users/{id}/tokens", tag = "users",
    params(("id" = String, Path, description = "user id, or `me`")),
    responses((status = 200, body = Vec<TokenInfo>), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(st.auth.list_tokens(&caller, &id).await?))
}

/// Issues a token (`me` for the caller); the secret is in this answer only.
#[utoipa::path(post, path = "/v1/users/{id}/tokens", tag = "users", request_body = CreateTokenRequest,
    params(("id" = String, Path, description = "user id, or `me`")),
    responses((status = 201, body = CreatedToken), (status = 404, body = podgate_types::api::ErrorBody),
        (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = st.auth.add_token(&caller, &id, &req.name, req.expires_in_seconds).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Revokes a token; it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "users",
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = TokenInfo), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(st.auth.revoke(&caller, &id).await?))
}
