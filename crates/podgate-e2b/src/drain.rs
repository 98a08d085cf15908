//! Refusals that leave a request body unread: the refused client is still writing it, and a
//! connection closed under it reads as a broken pipe instead of the answer (Node's `fetch` does
//! this). So the body of a refused request that nobody started to read is read and dropped, up to
//! [`DRAIN_LIMIT`] and [`DRAIN_TIME`], before the answer goes out.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Frame, SizeHint};

/// Most bytes of a refused body read before the connection is given up.
pub const DRAIN_LIMIT: usize = 1 << 20;
/// Longest wait for a refused body.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

type Slot = Arc<Mutex<Option<Body>>>;

/// Middleware: answers as the inner service does, and first reads an untouched body of a request
/// that was refused (a 4xx or 5xx answer).
pub async fn drain_refused(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let slot: Slot = Arc::new(Mutex::new(Some(body)));
    let resp = next.run(Request::from_parts(parts, Body::new(Lazy { slot: slot.clone(), body: None }))).await;
    if resp.status().is_client_error() || resp.status().is_server_error() {
        let untouched = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(body) = untouched {
            let _ = tokio::time::timeout(DRAIN_TIME, http_body_util::Limited::new(body, DRAIN_LIMIT).collect()).await;
        }
    }
    resp
}

/// A body that takes the request's from the slot when it is first read, so the middleware can
/// tell whether anybody did.
struct Lazy {
    slot: Slot,
    body: Option<Body>,
}

impl Lazy {
    fn with_body<T>(&self, f: impl FnOnce(&Body) -> T, none: T) -> T {
        match &self.body {
            Some(b) => f(b),
            None => self.slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(none, f),
        }
    }
}

impl hyper::body::Body for Lazy {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.body.is_none() {
            let taken = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            self.body = taken;
        }
        match self.body.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.with_body(|b| b.is_end_stream(), true)
    }

    fn size_hint(&self) -> SizeHint {
        self.with_body(|b| b.size_hint(), SizeHint::with_exact(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt as _;

    /// A body that records whether it was read to its end.
    fn watched(data: &'static [u8]) -> (Body, Arc<Mutex<bool>>) {
        let done = Arc::new(Mutex::new(false));
        let flag = done.clone();
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(data))]).chain(
            futures_util::stream::once(async move {
                *flag.lock().unwrap() = true;
                Ok(Bytes::new())
            }),
        );
        (Body::from_stream(stream), done)
    }

    use futures_util::StreamExt as _;

    #[tokio::test]
    async fn a_refused_body_is_read_and_a_served_one_reaches_the_handler() {
        let app = Router::new()
            .route("/refuse", post(|| async { (axum::http::StatusCode::UNAUTHORIZED, "no") }))
            .route("/echo", post(|b: Bytes| async move { b }))
            .layer(axum::middleware::from_fn(drain_refused));
        let (body, done) = watched(b"payload");
        let resp = app.clone().oneshot(Request::post("/refuse").body(body).unwrap()).await.unwrap();
        assert_eq!(resp.status(), 401);
        assert!(*done.lock().unwrap(), "the refused body was read");
        let (body, _) = watched(b"payload");
        let resp = app.oneshot(Request::post("/echo").body(body).unwrap()).await.unwrap();
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), Bytes::from_static(b"payload"));
    }
}
