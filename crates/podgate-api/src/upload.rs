//! Large request bodies (image archives, build contexts) spooled to a scratch file of the
//! server's, up to its import limit.

use axum::extract::Request;
use axum::http::StatusCode;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::{ApiError, AppState};

/// Writes the request's body to a new scratch file (removed when dropped); past the server's
/// `--max-import-bytes` it stops with 413.
pub async fn spool(st: &AppState, req: Request) -> Result<tempfile::NamedTempFile, ApiError> {
    let internal =
        |e: std::io::Error| ApiError::from(podgate_core::Error::Internal(format!("spooling the upload: {e}")));
    let file = st.sandboxes.snapshots().scratch_file()?;
    let max = st.sandboxes.snapshots().max_import_bytes();
    let mut out = tokio::fs::File::create(file.path()).await.map_err(internal)?;
    let mut body = req.into_body().into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("reading the upload: {e}"))
        })?;
        total += chunk.len() as u64;
        if total > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the upload is larger than this server's limit of {max} bytes"),
            ));
        }
        out.write_all(&chunk).await.map_err(internal)?;
    }
    out.flush().await.map_err(internal)?;
    Ok(file)
}
