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
}

impl E2bError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> E2bError {
        E2bError { status, message: message.into() }
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
        use podgate_core::Error as C;
        let status = match &e {
            C::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            C::Forbidden(_) | C::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            C::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            C::NotFound(_) => StatusCode::NOT_FOUND,
            C::Conflict(_) => StatusCode::CONFLICT,
            C::Invalid(_) | C::ImageUnavailable(_) => StatusCode::BAD_REQUEST,
            C::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            C::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        E2bError::new(status, e.to_string())
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.status.as_u16(), "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// The crate's result.
pub type Result<T, E = E2bError> = std::result::Result<T, E>;
