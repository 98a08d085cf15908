//! envd's REST routes: file download and upload (`/files`, raw or multipart), `/health` and
//! `/envs`, translated into podgate's agent file API.

use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures_util::TryStreamExt as _;
use hyper::Method;
use podgate_types::agent::paths;
use podgate_types::files::FileInfo;
use serde::{Deserialize, Serialize};

use crate::daemon::{Daemon, read_answer};
use crate::filesystem::with_query;
use crate::{E2bError, error::Result};

#[derive(Deserialize)]
pub struct FileQuery {
    path: Option<String>,
    username: Option<String>,
}

/// What envd answers for each written file.
#[derive(Serialize)]
struct Written {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    path: String,
}

/// The user a `/files` request acts as: `username`, else the Basic header's, else the sandbox's.
fn user_of(d: &Daemon, q: &FileQuery) -> Option<String> {
    match q.username.as_deref() {
        Some("") | Some("user") => None,
        Some(u) => Some(u.to_string()),
        None => d.user.clone(),
    }
}

/// `GET /files?path=`: the file's bytes, streamed.
pub async fn download(d: Daemon, Query(q): Query<FileQuery>) -> Result<Response> {
    let path =
        q.path.as_deref().filter(|p| !p.is_empty()).ok_or_else(|| E2bError::bad_request("`path` is required"))?;
    let resp =
        d.send(Method::GET, &with_query(paths::FILES, &[("path", path)]), None, http_body_util::Empty::new()).await?;
    if !resp.status().is_success() {
        return Err(read_answer::<serde_json::Value>(resp).await.err().unwrap_or_else(|| E2bError::not_found(path)));
    }
    let (parts, body) = resp.into_parts();
    let mut out = Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, "application/octet-stream");
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH) {
        out = out.header(header::CONTENT_LENGTH, len);
    }
    Ok(out.body(Body::new(body)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// Streams `body` to `path` in the sandbox (parents made, an existing file replaced).
async fn write<B>(d: &Daemon, path: &str, owner: Option<&str>, body: B) -> Result<Written>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut pairs = vec![("path", path), ("parents", "true")];
    if let Some(o) = owner {
        pairs.push(("owner", o));
    }
    let resp = d.send(Method::PUT, &with_query(paths::FILES, &pairs), Some("application/octet-stream"), body).await?;
    let info: FileInfo = read_answer(resp).await?;
    Ok(Written { name: info.name, kind: "file", path: info.path })
}

/// `POST /files?path=`: one file as the raw body, or files as `multipart/form-data` parts named by
/// their file names (or `path` for one).
pub async fn upload(d: Daemon, Query(q): Query<FileQuery>, req: Request) -> Result<Response> {
    let owner = user_of(&d, &q);
    let ctype = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if ctype.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(&ctype).map_err(|e| E2bError::bad_request(format!("multipart: {e}")))?;
        let stream = req.into_body().into_data_stream();
        let mut parts = multer::Multipart::new(stream, boundary);
        let mut written = Vec::new();
        while let Some(field) =
            parts.next_field().await.map_err(|e| E2bError::bad_request(format!("multipart: {e}")))?
        {
            let path = match (field.file_name(), q.path.as_deref()) {
                (_, Some(p)) if !p.is_empty() && written.is_empty() => p.to_string(),
                (Some(name), _) if !name.is_empty() => name.to_string(),
                _ => return Err(E2bError::bad_request("each file part needs a file name (its path), or give `path`")),
            };
            let body = http_body_util::StreamBody::new(
                field.map_ok(hyper::body::Frame::data).map_err(|e| std::io::Error::other(e.to_string())),
            );
            written.push(write(&d, &path, owner.as_deref(), body).await?);
        }
        if written.is_empty() {
            return Err(E2bError::bad_request("the multipart body holds no file"));
        }
        return Ok(axum::Json(written).into_response());
    }
    let path =
        q.path.as_deref().filter(|p| !p.is_empty()).ok_or_else(|| E2bError::bad_request("`path` is required"))?;
    if req.headers().get(header::CONTENT_ENCODING).is_some_and(|e| e != "identity") {
        return Err(E2bError::unsupported("a compressed upload (Content-Encoding)"));
    }
    let written = write(&d, path, owner.as_deref(), req.into_body()).await?;
    Ok(axum::Json(vec![written]).into_response())
}

/// `GET /health`: 204 while the sandbox runs (the extractor answers 502 when it is gone).
pub async fn health(d: Daemon) -> Result<StatusCode> {
    let _: serde_json::Value = d.call(Method::GET, paths::HEALTH, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /envs`: the sandbox's environment variables.
pub async fn envs(d: Daemon) -> Result<axum::Json<std::collections::BTreeMap<String, String>>> {
    let sandbox = d.state.sandboxes.get(&d.caller, &d.sandbox).await?;
    Ok(axum::Json(sandbox.env))
}
