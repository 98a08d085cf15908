//! A sandbox's own servers on ports other than the daemon's, as the E2B SDKs reach them (the
//! code interpreter's port 49999, a user's web server): the request needs the sandbox's traffic
//! or daemon access token, and goes through an agent tunnel to `127.0.0.1:PORT` inside the
//! sandbox as HTTP/1.1, its answer streamed back. An upgrade (a WebSocket) that the sandbox's
//! server accepts joins the two connections, byte for byte, until either side closes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse as _, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use podgate_core::access_tokens::Scope;
use podgate_types::agent::paths;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::routing::Target;
use crate::{E2bError, E2bState};

/// A sandbox younger than this (ms) may still be starting its servers.
const YOUNG_MS: i64 = 60_000;
/// How long a young sandbox's closed port is tried again.
const STARTING_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Headers that address or authorize the sandbox, never passed to its server.
const STRIPPED: [&str; 5] =
    ["e2b-sandbox-id", "e2b-sandbox-port", "x-access-token", "e2b-traffic-access-token", "authorization"];

/// Relays one request to port `target.port` of the sandbox.
pub async fn relay(st: Arc<E2bState>, target: Target, req: Request) -> Response {
    let mut req = req;
    match relay_inner(&st, &target, &mut req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The request as the sandbox's server gets it: without podgate's addressing and tokens.
fn outgoing(req: Request, port: u16) -> Result<Request, E2bError> {
    let (parts, body) = req.into_parts();
    let mut out = hyper::Request::builder()
        .method(parts.method)
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string());
    for (name, value) in &parts.headers {
        if !STRIPPED.contains(&name.as_str()) && name != HeaderName::from_static("host") {
            out = out.header(name, value);
        }
    }
    out = out.header(axum::http::header::HOST, format!("localhost:{port}"));
    out.body(body).map_err(|e| E2bError::bad_request(e.to_string()))
}

async fn relay_inner(st: &E2bState, target: &Target, req: &mut Request) -> Result<Response, E2bError> {
    let (traffic, daemon) = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        (header("e2b-traffic-access-token"), header("x-access-token"))
    };
    let upgrade = req.headers().contains_key(axum::http::header::UPGRADE);
    let source = crate::source(req.extensions());
    let tokens = st.sandboxes.access_tokens();
    let caller = match (traffic, daemon) {
        (Some(t), _) => tokens.authorize(&target.sandbox_id, &t, Scope::Traffic, source.as_deref()).await,
        (None, Some(t)) => tokens.authorize(&target.sandbox_id, &t, Scope::Daemon, source.as_deref()).await,
        (None, None) => {
            return Err(E2bError::unauthenticated(
                "missing E2B-Traffic-Access-Token (the sandbox's trafficAccessToken) or X-Access-Token",
            ));
        }
    }
    .map_err(crate::daemon::gone)?;
    st.sandboxes.limiter().user(&caller).await?;
    let (row, agent) = st.sandboxes.running_agent(&caller, &target.sandbox_id).await.map_err(crate::daemon::gone)?;
    let tunnel_path = format!("{}?host=127.0.0.1&port={}", paths::TUNNEL, target.port);
    // A sandbox's own server may still be starting just after the sandbox did (the code
    // interpreter's): a young sandbox's closed port is tried again for a few seconds.
    let young = row.created_at > podgate_core::clock::now_ms() - YOUNG_MS;
    let deadline = tokio::time::Instant::now() + STARTING_GRACE;
    let socket = loop {
        match agent.tunnel("127.0.0.1", target.port).await {
            Err(_) if young && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            r => break r,
        }
    };
    let status = if socket.is_ok() { 101 } else { 502 };
    st.sandboxes.agent_requests().record(&caller, &target.sandbox_id, &hyper::Method::GET, &tunnel_path, status).await;
    let socket = socket.map_err(|e| {
        E2bError::new(StatusCode::BAD_GATEWAY, format!("port {} of the sandbox is not open: {e}", target.port))
    })?;
    let (mine, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(pump(socket, theirs));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(mine))
        .await
        .map_err(|e| E2bError::new(StatusCode::BAD_GATEWAY, format!("port {}: {e}", target.port)))?;
    tokio::spawn(conn.with_upgrades());
    // The client's side of an upgrade, taken before the request is passed on.
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut *req));
    let out = outgoing(std::mem::take(req), target.port)?;
    let mut resp = sender.send_request(out).await.map_err(|e| {
        E2bError::new(StatusCode::BAD_GATEWAY, format!("port {} of the sandbox did not answer: {e}", target.port))
    })?;
    if let Some(client_side) = client_side
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let server_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(join(client_side, server_side));
    }
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Copies bytes both ways between the client's and the sandbox server's upgraded connections.
async fn join(client: hyper::upgrade::OnUpgrade, server: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, server) {
        Ok((client, server)) => {
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(server)).await;
        }
        Err(e) => tracing::debug!(error = %e, "an upgrade to a sandbox port did not complete"),
    }
}

/// Copies bytes between an agent tunnel and one end of a pipe until both directions end.
async fn pump(mut socket: podgate_core::agent_client::AgentSocket, pipe: tokio::io::DuplexStream) {
    let (mut from_pipe, mut to_pipe) = tokio::io::split(pipe);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pipe_open = true;
    loop {
        tokio::select! {
            n = from_pipe.read(&mut buf), if pipe_open => match n {
                Ok(0) | Err(_) => {
                    pipe_open = false;
                    // An empty frame: nothing more to send; the answer still comes back.
                    if socket.send(Message::Binary(Vec::new().into())).await.is_err() { return }
                }
                Ok(n) => if socket.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() { return },
            },
            msg = socket.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if b.is_empty() || to_pipe.write_all(&b).await.is_err() {
                        let _ = to_pipe.shutdown().await;
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = to_pipe.shutdown().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
