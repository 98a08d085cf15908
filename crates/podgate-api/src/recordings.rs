//! Terminal recordings (asciicast v2) of a sandbox: the list, and one recording's file. They
//! outlive the sandbox: a deleted sandbox's recordings are reached by its id.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use podgate_types::terminal::RecordingList;

use crate::extract::Authed;
use crate::{ApiError, AppState};

/// Recording routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sandboxes/{id}/recordings", get(list_recordings))
        .route("/v1/sandboxes/{id}/recordings/{tid}", get(get_recording))
}

/// The sandbox's terminal recordings, oldest first.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/recordings", tag = "terminals",
    params(("id" = String, Path, description = "sandbox id or name (id only once deleted)")),
    responses((status = 200, body = RecordingList), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_recordings(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<RecordingList>, ApiError> {
    Ok(Json(RecordingList { recordings: st.sandboxes.recordings().list(&caller, &id).await? }))
}

/// One terminal's recording as an asciicast v2 file (`asciinema play` plays it), also while
/// it is still being written.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/recordings/{tid}", tag = "terminals",
    params(("id" = String, Path, description = "sandbox id or name (id only once deleted)"),
        ("tid" = String, Path, description = "terminal id")),
    responses((status = 200, description = "the recording", content_type = "application/x-asciicast"),
        (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_recording(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, tid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let bytes = st.sandboxes.recordings().read(&caller, &id, &tid).await?;
    let body = Body::from_stream(bytes);
    Ok(([(header::CONTENT_TYPE, "application/x-asciicast")], body).into_response())
}
