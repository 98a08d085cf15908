//! The Connect protocol with the JSON codec, as the E2B SDKs speak it to envd: unary calls are a
//! JSON body answered with JSON (errors as `{code, message}` with the code's HTTP status);
//! server streams are enveloped messages (one flag byte, a 4-byte big-endian length) ending with
//! an end-of-stream envelope (flag 2) that carries the error, if any. The binary protobuf codec
//! and compressed messages are refused with a clear error.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::E2bError;

/// Largest request message.
pub const MAX_MESSAGE: usize = 4 << 20;
/// Envelope flag of a compressed message.
const FLAG_COMPRESSED: u8 = 0x01;
/// Envelope flag of the end-of-stream message.
const FLAG_END: u8 = 0x02;

/// A Connect error: a code from the Connect spec and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectError {
    pub code: &'static str,
    pub message: String,
}

impl ConnectError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ConnectError {
        ConnectError { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> ConnectError {
        ConnectError::new("invalid_argument", message)
    }

    pub fn not_found(message: impl Into<String>) -> ConnectError {
        ConnectError::new("not_found", message)
    }

    /// The HTTP status of a unary error with this code.
    fn status(&self) -> StatusCode {
        match self.code {
            "invalid_argument" | "failed_precondition" | "out_of_range" => StatusCode::BAD_REQUEST,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "permission_denied" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "already_exists" | "aborted" => StatusCode::CONFLICT,
            "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
            "canceled" => StatusCode::REQUEST_TIMEOUT,
            "deadline_exceeded" => StatusCode::GATEWAY_TIMEOUT,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code, "message": self.message })
    }
}

impl From<E2bError> for ConnectError {
    fn from(e: E2bError) -> Self {
        let code = match e.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid_argument",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            StatusCode::FORBIDDEN => "permission_denied",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "already_exists",
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => "resource_exhausted",
            StatusCode::NOT_IMPLEMENTED => "unimplemented",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => "unavailable",
            StatusCode::GATEWAY_TIMEOUT => "deadline_exceeded",
            _ => "internal",
        };
        ConnectError::new(code, e.message)
    }
}

impl From<podgate_core::Error> for ConnectError {
    fn from(e: podgate_core::Error) -> Self {
        E2bError::from(e).into()
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim()
}

fn check_encoding(headers: &HeaderMap, name: &str) -> Result<(), ConnectError> {
    match headers.get(name).and_then(|v| v.to_str().ok()) {
        None | Some("identity") => Ok(()),
        Some(other) => {
            Err(ConnectError::new("unimplemented", format!("{name} {other:?} is not supported: send identity")))
        }
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConnectError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| ConnectError::invalid(format!("invalid message: {e}")))
}

async fn read_body(req: Request) -> Result<Bytes, ConnectError> {
    axum::body::to_bytes(req.into_body(), MAX_MESSAGE + 5)
        .await
        .map_err(|_| ConnectError::new("resource_exhausted", format!("the message is larger than {MAX_MESSAGE} bytes")))
}

/// The request message of a unary call.
pub struct Unary<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Unary<T> {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        match content_type(req.headers()) {
            "application/json" => {}
            "application/proto" => {
                return Err(ConnectError::new("unimplemented", "podgate speaks Connect with the JSON codec only")
                    .into_response());
            }
            other => {
                return Err(
                    ConnectError::invalid(format!("content type {other:?}: send application/json")).into_response()
                );
            }
        }
        check_encoding(req.headers(), "content-encoding").map_err(IntoResponse::into_response)?;
        let body = read_body(req).await.map_err(closing)?;
        if body.len() > MAX_MESSAGE {
            return Err(closing(too_large()));
        }
        Ok(Unary(parse(&body).map_err(IntoResponse::into_response)?))
    }
}

fn too_large() -> ConnectError {
    ConnectError::new("resource_exhausted", format!("the message is larger than {MAX_MESSAGE} bytes"))
}

/// `e` answered on a connection that then closes: the rest of a request body that was not read
/// must not be taken for the next request.
fn closing(e: impl IntoResponse) -> Response {
    let mut r = e.into_response();
    r.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    r
}

/// The request message of a server-streaming call (one envelope), and the keepalive interval the
/// client asked for.
pub struct StreamRequest<T> {
    pub message: T,
    pub keepalive: Option<Duration>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StreamRequest<T> {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        // Errors of a stream are its end message, with status 200.
        let fail = |e: ConnectError| end_only(Some(e));
        match content_type(req.headers()) {
            "application/connect+json" => {}
            "application/connect+proto" => {
                return Err(fail(ConnectError::new(
                    "unimplemented",
                    "podgate speaks Connect with the JSON codec only",
                )));
            }
            other => {
                return Err(ConnectError::invalid(format!("content type {other:?}: send application/connect+json"))
                    .into_response());
            }
        }
        check_encoding(req.headers(), "connect-content-encoding").map_err(fail)?;
        let keepalive = req
            .headers()
            .get("keepalive-ping-interval")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s.min(3600)));
        let body = read_body(req).await.map_err(|e| closing(fail(e)))?;
        let message = envelope(&body).map_err(fail)?;
        Ok(StreamRequest { message: parse(message).map_err(fail)?, keepalive })
    }
}

/// The message inside the one envelope of `body`.
fn envelope(body: &[u8]) -> Result<&[u8], ConnectError> {
    if body.len() < 5 {
        return Err(ConnectError::invalid("the request is not a Connect envelope (5-byte prefix)"));
    }
    if body[0] & FLAG_COMPRESSED != 0 {
        return Err(ConnectError::new("unimplemented", "compressed messages are not supported"));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if len > MAX_MESSAGE {
        return Err(too_large());
    }
    if body.len() != 5 + len {
        return Err(ConnectError::invalid("the envelope's length does not match the request body"));
    }
    Ok(&body[5..])
}

fn frame(flags: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 5);
    b.put_u8(flags);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

fn end_frame(error: Option<&ConnectError>) -> Bytes {
    let body = match error {
        Some(e) => serde_json::json!({ "error": e.body() }),
        None => serde_json::json!({}),
    };
    frame(FLAG_END, body.to_string().as_bytes())
}

fn stream_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/connect+json")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A stream answered with only its end message.
pub fn end_only(error: Option<ConnectError>) -> Response {
    stream_response(Body::from(end_frame(error.as_ref())))
}

/// The sending half of a server stream.
pub struct Sender(mpsc::Sender<Bytes>);

impl Sender {
    /// Sends one message; false once the client has gone.
    pub async fn send<T: Serialize>(&self, message: &T) -> bool {
        let json = serde_json::to_vec(message).unwrap_or_default();
        self.0.send(frame(0, &json)).await.is_ok()
    }

    /// Ends the stream, with `error` if it failed.
    pub async fn end(self, error: Option<ConnectError>) {
        let _ = self.0.send(end_frame(error.as_ref())).await;
    }

    /// Resolves once the client has gone.
    pub async fn closed(&self) {
        self.0.closed().await
    }
}

/// A streaming response, and the sender that writes it.
pub fn server_stream() -> (Sender, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (Sender(tx), stream_response(Body::from_stream(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_checked() {
        let msg = br#"{"a":1}"#;
        let body = frame(0, msg);
        assert_eq!(envelope(&body).unwrap(), msg);
        assert_eq!(envelope(b"\0\0").unwrap_err().code, "invalid_argument");
        assert_eq!(envelope(&frame(FLAG_COMPRESSED, msg)).unwrap_err().code, "unimplemented");
        let mut long = frame(0, msg).to_vec();
        long.push(b'x');
        assert_eq!(envelope(&long).unwrap_err().code, "invalid_argument");
        let huge = [0u8, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(envelope(&huge).unwrap_err().code, "resource_exhausted");
    }

    #[test]
    fn the_end_message_carries_the_error() {
        let end = end_frame(Some(&ConnectError::not_found("no such process")));
        assert_eq!(end[0], FLAG_END);
        let json: serde_json::Value = serde_json::from_slice(&end[5..]).unwrap();
        assert_eq!(json["error"]["code"], "not_found");
        assert_eq!(&end_frame(None)[5..], b"{}");
    }
}
