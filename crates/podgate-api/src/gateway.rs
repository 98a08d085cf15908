//! The terminal WebSocket gateway: checks the session token and the `Origin`, then passes the
//! client's handshake to the sandbox's agent and splices the two upgraded byte streams. Frames are
//! never decoded or re-encoded on the way.

use podgate_types::agent::paths;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use podgate_core::sessions::Refusal;
use podgate_core::terminals::ConnectError;
use podgate_types::terminal::{SUBPROTOCOL, TOKEN_PROTOCOL_PREFIX};
use serde::Deserialize;

use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Whether a browser `Origin` may open terminals: same origin as the request's `Host`, or listed.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn refuse(st: &AppState, reason: &str, status: StatusCode, message: &str) -> Response {
    st.metrics.gateway_refused(reason);
    tracing::info!(reason, "terminal connection refused");
    ApiError::new(status, if status == StatusCode::FORBIDDEN { "forbidden" } else { "unauthenticated" }, message)
        .into_response()
}

/// `GET /v1/sandboxes/{id}/terminals/{tid}/connect`: the terminal's WebSocket, subprotocol
/// `podgate.terminal.v1`. The session token (from `POST /v1/sandboxes/{id}/terminals` or a
/// share link) comes as a `token.<TOKEN>` subprotocol or the `token` query parameter.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/terminals/{tid}/connect", tag = "terminals",
    params(("id" = String, Path, description = "sandbox id"), ("tid" = String, Path, description = "terminal id"),
        ("token" = Option<String>, Query, description = "session token (single use)")),
    responses((status = 101, description = "the terminal (WebSocket)"),
        (status = 401, body = podgate_types::api::ErrorBody), (status = 403, body = podgate_types::api::ErrorBody)))]
pub async fn connect(
    State(st): State<Arc<AppState>>,
    Path((sandbox, terminal)): Path<(String, String)>,
    Query(q): Query<TokenQuery>,
    req: Request,
) -> Response {
    let headers = req.headers();
    let key = match websocket_key(headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !origin_allowed(origin, host, &st.allowed_origins) {
            return refuse(&st, "origin", StatusCode::FORBIDDEN, &format!("origin {origin:?} is not allowed"));
        }
    }
    let offered = offered_protocols(headers);
    let token = offered
        .iter()
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
        .map(str::to_string)
        .or(q.token)
        .unwrap_or_default();
    let (claims, agent) = match st.terminals.connect(&token, &sandbox, &terminal).await {
        Ok(ok) => ok,
        Err(ConnectError::Refused(r)) => {
            let status = match r {
                Refusal::WrongAudience | Refusal::WrongTarget => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            return refuse(&st, r.as_str(), status, &format!("session token refused: {}", r.as_str()));
        }
        Err(ConnectError::Unavailable(e)) => return ApiError::from(e).into_response(),
    };
    let protocol = offered.iter().any(|p| p == SUBPROTOCOL).then_some(SUBPROTOCOL);
    let path = format!("{}?read_only={}", paths::with_id(paths::TERMINAL_ATTACH, &terminal), claims.read_only);
    st.metrics.gateway_connected();
    tracing::info!(sandbox_id = %sandbox, terminal_id = %terminal, user_id = %claims.sub, read_only = claims.read_only, "terminal connected");
    splice(req, &agent, &path, &key, protocol, &format!("terminal {terminal:?}")).await
}

/// Passes the client's WebSocket handshake to `agent_path` on the agent, answers the client with
/// the agent's 101, and copies bytes both ways between the two upgraded connections.
pub async fn splice(
    mut req: Request,
    agent: &podgate_core::agent_client::AgentClient,
    agent_path: &str,
    key: &str,
    protocol: Option<&str>,
    what: &str,
) -> Response {
    let (agent_parts, agent_io) = match agent.upgrade(agent_path, key, protocol).await {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!(error = %e, "agent refused a websocket for {what}");
            // The agent's own refusals (no such terminal or process, bad target, closed port) pass
            // through with its message; anything else is the agent being unavailable.
            if let podgate_core::agent_client::AgentError::Refused { status, code, message } = &e
                && let Ok(status) = StatusCode::from_u16(*status)
                && (status.is_client_error() || status == StatusCode::BAD_GATEWAY)
            {
                return ApiError::new(status, code, message.clone()).into_response();
            }
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("{what} cannot be reached"))
                .into_response();
        }
    };
    let client_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match client_upgrade.await {
            Ok(client_io) => bridge(TokioIo::new(client_io), TokioIo::new(agent_io)).await,
            Err(e) => tracing::warn!(error = %e, "client upgrade failed"),
        }
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket");
    for name in [header::SEC_WEBSOCKET_ACCEPT, header::SEC_WEBSOCKET_PROTOCOL] {
        if let Some(v) = agent_parts.headers.get(&name) {
            resp = resp.header(name, v.clone());
        }
    }
    resp.body(Body::empty()).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Authorizes `caller` for sandbox `id`, then splices the WebSocket upgrade in `req` to
/// `agent_path` on its agent, with the request's query appended and `protocol` selected when the
/// client offers it.
pub async fn splice_to_agent(
    st: &AppState,
    caller: &podgate_core::Caller,
    id: &str,
    agent_path: &str,
    protocol: Option<&'static str>,
    req: Request,
) -> Result<Response, ApiError> {
    // Authorization first: another user's sandbox is a 404 whatever the request looks like.
    let (row, agent) = st.sandboxes.running_agent(caller, id).await?;
    let key = websocket_key(req.headers())?;
    let protocol = protocol.filter(|p| offered_protocols(req.headers()).iter().any(|o| o == p));
    let path = match req.uri().query() {
        Some(q) => format!("{agent_path}?{q}"),
        None => agent_path.to_string(),
    };
    let resp = splice(req, &agent, &path, &key, protocol, &format!("{agent_path} of sandbox {}", row.id)).await;
    // Recorded beside the connection, not before its 101: the client is not kept waiting.
    let (sandboxes, caller, status) = (st.sandboxes.clone(), caller.clone(), resp.status().as_u16());
    tokio::spawn(async move {
        sandboxes.agent_requests().record(&caller, &row.id, &Method::GET, &path, status).await;
    });
    Ok(resp)
}

/// How long a client may keep sending after the agent's side ended.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Copies bytes both ways. When the agent's side ends first (a process exited, a terminal
/// closed), what the client still sends is read and dropped until it closes too (at most
/// [`LINGER`]): closing a socket with unread input makes the kernel reset the connection, and a
/// reset makes the client lose the last messages it has not read yet (the exit status).
async fn bridge<C, A>(client: C, agent: A)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite,
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    use tokio::io::AsyncWriteExt as _;
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut agent_rx, mut agent_tx) = tokio::io::split(agent);
    let down = async {
        let _ = tokio::io::copy(&mut agent_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
    };
    let up = async {
        if tokio::io::copy(&mut client_rx, &mut agent_tx).await.is_err() {
            // The agent is gone (or the client reset): drain until the client closes.
            let _ = tokio::io::copy(&mut client_rx, &mut tokio::io::sink()).await;
        }
        // However the client's side ended, the agent learns it.
        let _ = agent_tx.shutdown().await;
    };
    tokio::pin!(down, up);
    tokio::select! {
        _ = &mut up => down.await,
        _ = &mut down => {
            let _ = tokio::time::timeout(LINGER, up).await;
        }
    }
}

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request, or a 400.
pub fn websocket_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let is_upgrade =
        headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    match headers.get(header::SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()) {
        Some(k) if is_upgrade => Ok(k.to_string()),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", "expected a WebSocket upgrade")),
    }
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed("http://127.0.0.1:7070", Some("127.0.0.1:7070"), &[]));
        assert!(origin_allowed("https://app.example.com", Some("api.example.com"), &allowed));
        assert!(!origin_allowed("https://evil.example", Some("127.0.0.1:7070"), &allowed));
        assert!(!origin_allowed("null", Some("127.0.0.1:7070"), &[]));
        assert!(!origin_allowed("http://127.0.0.1:7071", Some("127.0.0.1:7070"), &[]));
    }
}
