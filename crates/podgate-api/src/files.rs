//! File routes: each forwards to the sandbox agent's file API with the body and the answer
//! streamed through, so a file of any size passes without being held in memory.

use podgate_types::agent::paths;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};

use crate::extract::Authed;
use crate::gateway::splice_to_agent;
use crate::proxy::forward;
use crate::{ApiError, AppState};

/// File routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sandboxes/{id}/files", get(content).put(content).delete(content))
        .route("/v1/sandboxes/{id}/files/tar", get(tar).put(tar))
        .route("/v1/sandboxes/{id}/files/watch", get(watch))
        .route("/v1/sandboxes/{id}/files/stat", get(stat))
        .route("/v1/sandboxes/{id}/files/list", get(list))
        .route("/v1/sandboxes/{id}/files/mkdir", post(mkdir))
        .route("/v1/sandboxes/{id}/files/move", post(move_))
}

/// `GET` downloads a file (raw bytes, `x-podgate-file-mode` header), `PUT` uploads one atomically
/// (`?path=&mode=644&owner=user&parents=true`; owner is a name, uid or uid:gid), `DELETE` removes
/// (`?recursive=true` for trees).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files", tag = "files",
    params(("id" = String, Path, description = "sandbox id or name"),
        ("path" = String, Query, description = "absolute, ~/…, or relative to the workdir")),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream"),
        (status = 404, body = podgate_types::api::ErrorBody), (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn content(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::FILES, req).await
}

/// Directories as tar streams: `GET` downloads the tree at `path` (symlinks kept as links),
/// `PUT` extracts the body into `path` (created if missing). Entries with absolute paths, `..`,
/// symlinks or hard links leading outside the target, and device or fifo entries are refused
/// with a 422 naming the entry; nothing is ever written outside the target.
#[utoipa::path(put, path = "/v1/sandboxes/{id}/files/tar", tag = "files",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "target directory")),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses((status = 200, body = podgate_types::files::TarUploaded),
        (status = 422, body = podgate_types::api::ErrorBody, description = "a refused entry, or not a tar stream")),
    security(("bearer" = [])))]
pub async fn tar(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::FILES_TAR, req).await
}

/// WebSocket: a text frame per change under a directory (`recursive=true` for the whole tree):
/// `{"kind":"create|modify|delete|rename|overflow","path":…,"to":…}`. Renames within the tree
/// are one `rename`; moves in and out are `create` and `delete`; `overflow` means events were
/// lost and the client should rescan.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/watch", tag = "files",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "directory"),
        ("recursive" = Option<bool>, Query, description = "watch the whole tree")),
    responses((status = 101, description = "events (WebSocket)", body = podgate_types::files::WatchEvent),
        (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn watch(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    splice_to_agent(&st, &caller, &id, paths::FILES_WATCH, None, req).await
}

/// Metadata of a path.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/stat", tag = "files",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "path")),
    responses((status = 200, body = podgate_types::files::FileInfo), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stat(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::FILES_STAT, req).await
}

/// A directory's entries, `depth` levels deep (default 1, at most 10).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/list", tag = "files",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "directory"),
        ("depth" = Option<u32>, Query, description = "levels, 1 to 10")),
    responses((status = 200, body = Vec<podgate_types::files::FileInfo>), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::FILES_LIST, req).await
}

/// `mkdir -p`.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/files/mkdir", tag = "files", request_body = podgate_types::files::MkdirRequest,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 201, body = podgate_types::files::FileInfo)), security(("bearer" = [])))]
pub async fn mkdir(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::FILES_MKDIR, req).await
}

/// Move or rename.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/files/move", tag = "files", request_body = podgate_types::files::MoveRequest,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = podgate_types::files::FileInfo), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn move_(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(&st, &caller, &id, paths::FILES_MOVE, req).await
}
