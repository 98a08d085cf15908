//! Extractors: the authenticated caller, and JSON bodies whose rejections use the API error format.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use podgate_core::Caller;
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// The caller, authenticated by `Authorization: Bearer <token>`.
pub struct Authed(pub Caller);

impl<S> FromRequestParts<S> for Authed
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let st = Arc::<AppState>::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "authorization header must be 'Bearer <token>'",
                )
            })?;
        let source = crate::peer(&parts.extensions).map(|ip| ip.to_string());
        let caller = st.auth.authenticate(token, source.as_deref()).await?;
        tracing::Span::current().record("user_id", caller.user_id.as_str());
        st.sandboxes.limiter().user(&caller).await?;
        Ok(Authed(caller))
    }
}

/// A JSON body; malformed JSON is 400, a wrong shape 422, a wrong content type 415, too large 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(rejection(rej)),
        }
    }
}

fn rejection(rej: JsonRejection) -> ApiError {
    let status = rej.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        _ => "malformed_request",
    };
    ApiError::new(status, code, rej.body_text())
}
