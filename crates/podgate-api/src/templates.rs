//! Template routes: admins define templates (with warm pools); everyone lists them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use podgate_types::api::{Template, TemplateList, TemplateRequest};

use crate::extract::{ApiJson, Authed};
use crate::{ApiError, AppState};

/// Template routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/templates", get(list_templates))
        .route("/v1/templates/{name}", put(put_template).delete(delete_template))
        .route("/v1/templates/{name}/build", axum::routing::post(build_template))
}

/// Builds the template's image from a build context (a tar with a `Dockerfile`; nothing is
/// pulled) and points the template at it; its pool refills from the new image (admins).
#[utoipa::path(post, path = "/v1/templates/{name}/build", tag = "templates",
    params(("name" = String, Path, description = "template name")),
    request_body(content = String, content_type = "application/x-tar", description = "the build context"),
    responses(
        (status = 200, body = Template),
        (status = 403, body = podgate_types::api::ErrorBody, description = "not an admin"),
        (status = 404, body = podgate_types::api::ErrorBody),
        (status = 413, body = podgate_types::api::ErrorBody),
        (status = 422, body = podgate_types::api::ErrorBody, description = "the build failed, with its output")),
    security(("bearer" = [])))]
pub async fn build_template(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    req: axum::extract::Request,
) -> Result<Json<Template>, ApiError> {
    caller.require_admin()?;
    let context = crate::upload::spool(&st, req).await?;
    Ok(Json(st.sandboxes.templates().build(&caller, &name, context.path()).await?))
}

/// Every template, with its warm pool's size and ready sandboxes.
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses((status = 200, body = TemplateList), (status = 401, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_templates(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<Json<TemplateList>, ApiError> {
    Ok(Json(TemplateList { templates: st.sandboxes.templates().list(&caller).await? }))
}

/// Defines or replaces a template (admins); `template` on create starts from it.
#[utoipa::path(put, path = "/v1/templates/{name}", tag = "templates", request_body = TemplateRequest,
    params(("name" = String, Path, description = "template name")),
    responses(
        (status = 200, body = Template),
        (status = 403, body = podgate_types::api::ErrorBody, description = "not an admin"),
        (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_template(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<TemplateRequest>,
) -> Result<Json<Template>, ApiError> {
    Ok(Json(st.sandboxes.templates().put(&caller, &name, req).await?))
}

/// Deletes a template and its pool's unclaimed sandboxes (admins).
#[utoipa::path(delete, path = "/v1/templates/{name}", tag = "templates",
    params(("name" = String, Path, description = "template name")),
    responses((status = 204), (status = 403, body = podgate_types::api::ErrorBody), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_template(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.sandboxes.templates().delete(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
