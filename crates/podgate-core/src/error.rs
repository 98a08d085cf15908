//! Errors of the core service; each maps to one API status and code.

/// What a core operation can fail with. Messages are safe to show to the caller; internal causes
/// are logged, not returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, unknown, expired or revoked credentials (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such thing, or not the caller's (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed JSON but its values are invalid (422).
    #[error("{0}")]
    Invalid(String),
    /// The image cannot be used (422), with the engine's reason.
    #[error("{0}")]
    ImageUnavailable(String),
    /// Too many requests (429); retry after `retry_after` seconds.
    #[error("{message}")]
    RateLimited { message: String, limit: u32, retry_after: u64 },
    /// The request would take the caller over a quota (403).
    #[error("{0}")]
    QuotaExceeded(String),
    /// A dependency (engine, agent, database) is unavailable (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500); details are in the log.
    #[error("internal error")]
    Internal(String),
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status every API answers this error with (an internal cause is logged here, once).
    pub fn status(&self) -> hyper::StatusCode {
        use hyper::StatusCode as S;
        match self {
            Error::Unauthenticated(_) => S::UNAUTHORIZED,
            Error::Forbidden(_) | Error::QuotaExceeded(_) => S::FORBIDDEN,
            Error::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            Error::NotFound(_) => S::NOT_FOUND,
            Error::Conflict(_) => S::CONFLICT,
            Error::Invalid(_) | Error::ImageUnavailable(_) => S::UNPROCESSABLE_ENTITY,
            Error::Unavailable(_) => S::SERVICE_UNAVAILABLE,
            Error::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                S::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// For a rate limit: the limit and the seconds to wait before retrying.
    pub fn retry(&self) -> Option<(u32, u64)> {
        match self {
            Error::RateLimited { limit, retry_after, .. } => Some((*limit, *retry_after)),
            _ => None,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Invalid(_) => "invalid_request",
            Error::ImageUnavailable(_) => "image_unavailable",
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<podgate_store::Error> for Error {
    fn from(e: podgate_store::Error) -> Self {
        match e {
            podgate_store::Error::Conflict(m) => Error::Conflict(m),
            other => {
                tracing::error!(error = %other, "store failure");
                Error::Unavailable("the database is unavailable".into())
            }
        }
    }
}

impl From<podgate_runtime::Error> for Error {
    fn from(e: podgate_runtime::Error) -> Self {
        use podgate_runtime::Error as R;
        match e {
            R::ImageUnavailable { .. } => Error::ImageUnavailable(e.to_string()),
            R::InvalidSpec(m) => Error::Invalid(m),
            R::NotFound(m) => Error::NotFound(format!("no instance for sandbox {m}")),
            R::Unavailable(m) => {
                tracing::error!(error = %m, "runtime failure");
                Error::Unavailable("the container runtime is unavailable".into())
            }
            R::Unsupported { .. } => Error::Conflict(e.to_string()),
            // The cluster's own reasons reach the caller: they say what to change or wait for.
            R::Refused(_) => Error::Invalid(e.to_string()),
            R::QuotaExhausted(_) => Error::QuotaExceeded(e.to_string()),
            R::NotStarted(m) => Error::Unavailable(m),
        }
    }
}
