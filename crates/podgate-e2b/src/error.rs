//! `E2bError`: the crate's one error type, answered as E2B's `{code, message}` (the HTTP status
//! as `code`) on the control plane and the daemon's REST routes, and as a Connect error on its
//! RPCs (see `connect.rs`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to an E2B client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct E2bError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds to wait before retrying, for a rate limit.
    pub retry_after: Option<u64>,
}

impl E2bError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> E2bError {
        E2bError { status, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> E2bError {
        E2bError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> E2bError {
        E2bError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> E2bError {
        E2bError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// What podgate does not offer, said at once.
    pub fn unsupported(what: &str) -> E2bError {
        E2bError::new(StatusCode::NOT_IMPLEMENTED, format!("{what} is not supported by podgate"))
    }
}

impl From<podgate_core::Error> for E2bError {
    fn from(e: podgate_core::Error) -> Self {
        // E2B answers bad values with 400 where podgate's own API says 422.
        let status = match e.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        E2bError { retry_after: e.retry().map(|(_, after)| after), ..E2bError::new(status, e.to_string()) }
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.status.as_u16(), "message": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, after.into());
        }
        resp
    }
}

/// The crate's result.
pub type Result<T, E = E2bError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_their_status_but_bad_values_are_400_and_limits_say_when_to_retry() {
        let e = E2bError::from(podgate_core::Error::Invalid("ttl".into()));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(E2bError::from(podgate_core::Error::NotFound("x".into())).status, StatusCode::NOT_FOUND);
        let limited = podgate_core::Error::RateLimited { message: "slow down".into(), limit: 5, retry_after: 7 };
        let resp = E2bError::from(limited).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get(axum::http::header::RETRY_AFTER).unwrap(), "7");
    }
}
