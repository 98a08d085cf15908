//! `ApiError`: core errors and request rejections as `{"error":{"code","message"}}` with a status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use podgate_core::Error;
use podgate_types::api::{ErrorBody, ErrorDetail};

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// For 429: the limit per minute and the seconds until the window resets.
    pub rate_limit: Option<(u32, u64)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.into(), message: message.into(), rate_limit: None }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError { rate_limit: e.retry(), ..ApiError::new(e.status(), e.code(), e.to_string()) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(ErrorBody { error: ErrorDetail { code: self.code, message: self.message } }))
            .into_response();
        if let Some((limit, retry_after)) = self.rate_limit {
            use axum::http::HeaderValue;
            let h = resp.headers_mut();
            h.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(retry_after));
            h.insert("ratelimit-limit", HeaderValue::from(limit));
            h.insert("ratelimit-remaining", HeaderValue::from(0));
            h.insert("ratelimit-reset", HeaderValue::from(retry_after));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
