//! A sandbox's daemon as the E2B SDKs address it: who the caller is (the sandbox's access token
//! in `X-Access-Token`, which makes them its owner for this sandbox only), which Linux user they
//! act as (`Authorization: Basic base64(USER:)`), and the routes of envd's services.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use podgate_core::Caller;
use podgate_core::access_tokens::Scope;

use crate::routing::Target;
use crate::{E2bError, E2bState};

/// The routes of the daemon (envd): Connect RPCs and REST.
pub fn routes() -> Router<Arc<E2bState>> {
    Router::new()
        .route("/process.Process/Start", post(crate::process::start))
        .route("/process.Process/Connect", post(crate::process::connect))
        .route("/process.Process/List", post(crate::process::list))
        .route("/process.Process/SendInput", post(crate::process::send_input))
        .route("/process.Process/SendSignal", post(crate::process::send_signal))
        .route("/process.Process/CloseStdin", post(crate::process::close_stdin))
        .route("/process.Process/Update", post(crate::process::update))
        .route("/filesystem.Filesystem/Stat", post(crate::filesystem::stat))
        .route("/filesystem.Filesystem/MakeDir", post(crate::filesystem::make_dir))
        .route("/filesystem.Filesystem/Move", post(crate::filesystem::move_entry))
        .route("/filesystem.Filesystem/ListDir", post(crate::filesystem::list_dir))
        .route("/filesystem.Filesystem/Remove", post(crate::filesystem::remove))
        .route("/filesystem.Filesystem/WatchDir", post(crate::watch::watch_dir))
        .route("/filesystem.Filesystem/CreateWatcher", post(crate::watch::create_watcher))
        .route("/filesystem.Filesystem/GetWatcherEvents", post(crate::watch::get_watcher_events))
        .route("/filesystem.Filesystem/RemoveWatcher", post(crate::watch::remove_watcher))
        .route("/files", get(crate::files::download).post(crate::files::upload))
        .route("/health", get(crate::files::health))
        .route("/envs", get(crate::files::envs))
        .fallback(unknown)
}

/// Sends requests for ports other than the daemon's to the sandbox's own servers.
pub async fn other_ports(
    axum::extract::State(st): axum::extract::State<Arc<E2bState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    match req.extensions().get::<Target>().cloned() {
        Some(t) if t.port != crate::ENVD_PORT => crate::ports::relay(st, t, req).await,
        _ => next.run(req).await,
    }
}

async fn unknown(req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/process.") || path.starts_with("/filesystem.") {
        crate::connect::ConnectError::new("unimplemented", format!("{path} is not implemented by podgate"))
            .into_response()
    } else {
        E2bError::not_found(format!("no route {path} on the sandbox daemon")).into_response()
    }
}

/// A request to a sandbox's daemon: the caller its access token makes, the sandbox, and the
/// Linux user asked for (none: the sandbox's own).
pub struct Daemon {
    pub caller: Caller,
    pub sandbox: String,
    pub user: Option<String>,
    pub state: Arc<E2bState>,
}

/// A sandbox that is gone is answered as E2B's proxy does (502, "… was not found"), which the
/// SDKs read as "the sandbox is not running".
pub fn gone(e: podgate_core::Error) -> E2bError {
    match e {
        podgate_core::Error::NotFound(m) => E2bError::new(axum::http::StatusCode::BAD_GATEWAY, m),
        e => e.into(),
    }
}

/// The user of `Authorization: Basic base64(USER:)`; E2B's default user `user` is the sandbox's.
fn basic_user(parts: &Parts) -> Result<Option<String>, E2bError> {
    let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
    let bad = || E2bError::bad_request("the Authorization header must be 'Basic base64(USER:)'");
    let h = h.to_str().map_err(|_| bad())?;
    let encoded = h.strip_prefix("Basic ").ok_or_else(bad)?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
    Ok(match user {
        "" | "user" => None,
        u => Some(u.to_string()),
    })
}

impl FromRequestParts<Arc<E2bState>> for Daemon {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<E2bState>) -> Result<Self, E2bError> {
        let target =
            parts.extensions.get::<Target>().cloned().ok_or_else(|| E2bError::not_found("no sandbox named"))?;
        let token = parts.headers.get("x-access-token").and_then(|v| v.to_str().ok());
        let source = crate::source(&parts.extensions);
        let tokens = state.sandboxes.access_tokens();
        let caller = match (token, crate::signature::SignedUrl::of(parts)) {
            (Some(token), _) => tokens.authorize(&target.sandbox_id, token, Scope::Daemon, source.as_deref()).await,
            (None, Some(signed)) => {
                let signed = signed?;
                signed.check_expiry(time::OffsetDateTime::now_utc().unix_timestamp())?;
                tokens
                    .authorize_proof(&target.sandbox_id, Scope::Daemon, source.as_deref(), |t| signed.made_with(t))
                    .await
            }
            (None, None) => {
                return Err(E2bError::unauthenticated("missing X-Access-Token: the sandbox's envdAccessToken"));
            }
        }
        .map_err(gone)?;
        state.sandboxes.limiter().user(&caller).await?;
        let user = basic_user(parts)?;
        Ok(Daemon { caller, sandbox: target.sandbox_id, user, state: state.clone() })
    }
}

/// Most bytes of an agent's JSON answer read into memory.
const MAX_ANSWER: usize = 16 << 20;

impl Daemon {
    /// Sends a request to the sandbox's agent through the core (owner check, resume when paused,
    /// audit) and returns its answer unread.
    pub async fn send<B>(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: B,
    ) -> Result<hyper::Response<hyper::body::Incoming>, E2bError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let requests = self.state.sandboxes.agent_requests();
        requests.forward(&self.caller, &self.sandbox, method, path_and_query, content_type, body).await.map_err(gone)
    }

    /// Calls the agent with an optional JSON body and reads its JSON answer; the agent's refusals
    /// keep their status and message.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        json: Option<serde_json::Value>,
    ) -> Result<T, E2bError> {
        let (ctype, body) = match json {
            Some(v) => (Some("application/json"), bytes::Bytes::from(v.to_string())),
            None => (None, bytes::Bytes::new()),
        };
        let resp = self.send(method, path_and_query, ctype, http_body_util::Full::new(body)).await?;
        read_answer(resp).await
    }

    /// The sandbox's agent, for WebSockets (the caller's access was checked on extraction).
    pub async fn agent(&self) -> Result<podgate_core::agent_client::AgentClient, E2bError> {
        Ok(self.state.sandboxes.running_agent(&self.caller, &self.sandbox).await.map_err(gone)?.1)
    }
}

/// Reads an agent's answer: JSON on success (`null` for an empty body), its error otherwise.
pub async fn read_answer<T: serde::de::DeserializeOwned>(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<T, E2bError> {
    use http_body_util::BodyExt as _;
    let status = resp.status();
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| E2bError::new(axum::http::StatusCode::BAD_GATEWAY, format!("reading the agent's answer: {e}")))?
        .to_bytes();
    if status.is_success() {
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        return serde_json::from_slice(bytes)
            .map_err(|e| E2bError::new(axum::http::StatusCode::BAD_GATEWAY, format!("the agent's answer: {e}")));
    }
    let message = serde_json::from_slice::<podgate_types::api::ErrorBody>(&bytes)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| format!("the agent answered {status}"));
    Err(E2bError::new(status, message))
}
