//! Listeners the agent opens inside the sandbox for the server: a TCP port for SSH `-R`
//! (remote forwarding) and a private Unix socket for SSH `-A` (agent forwarding). A control
//! WebSocket holds a listener open; each accept WebSocket waits for one connection and then
//! carries its bytes. Everything is done as the sandbox user, so it can bind what they can.

use podgate_types::agent::paths;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt as _;
use podgate_types::ports::{LISTEN_SUBPROTOCOL, ListenMessage};
use serde::Deserialize;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::server::{AgentState, error};

/// Most listeners open at once (every SSH `-R` and `-A` of every connection to this sandbox).
const MAX_LISTENERS: usize = 256;

/// The listeners open now, by id.
#[derive(Default)]
pub struct Listeners {
    open: Mutex<HashMap<String, Arc<Entry>>>,
}

struct Entry {
    socket: Socket,
    /// Changes (with an error) when the control socket is gone.
    closed: watch::Receiver<()>,
}

enum Socket {
    Tcp(TcpListener),
    /// The listener and the private folder holding its socket.
    Unix(UnixListener, PathBuf),
}

/// Keeps a listener open; dropping it closes the listener and removes a Unix socket's folder.
struct Held {
    state: Arc<AgentState>,
    id: String,
    _closing: watch::Sender<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let entry = self.state.listeners.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
        if let Some(Socket::Unix(_, dir)) = entry.as_deref().map(|e| &e.socket) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A connection accepted by a listener.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Conn for T {}

impl Entry {
    /// The next connection and its peer, or `None` once the listener is closed.
    async fn accept(&self) -> Option<std::io::Result<(Box<dyn Conn>, String)>> {
        let mut closed = self.closed.clone();
        tokio::select! {
            r = async {
                match &self.socket {
                    Socket::Tcp(l) => l.accept().await.map(|(s, peer)| {
                        let _ = s.set_nodelay(true);
                        (Box::new(s) as Box<dyn Conn>, peer.to_string())
                    }),
                    Socket::Unix(l, _) => l.accept().await.map(|(s, _)| (Box::new(s) as Box<dyn Conn>, String::new())),
                }
            } => Some(r),
            _ = closed.changed() => None,
        }
    }
}

/// Listener routes.
pub fn routes() -> Router<Arc<AgentState>> {
    Router::new().route(paths::LISTEN, get(listen)).route(paths::LISTENER_ACCEPT, get(accept))
}

#[derive(Deserialize)]
struct ListenQuery {
    /// The address to bind: an IP literal, `localhost` (the default) or `*` for every address.
    host: Option<String>,
    /// The port; 0 lets the kernel choose.
    #[serde(default)]
    port: u16,
    /// A private Unix socket instead of a TCP port.
    #[serde(default)]
    unix: bool,
}

/// The address a TCP listener binds: like sshd with `GatewayPorts clientspecified`, the loopback
/// address unless the client names another.
pub fn bind_address(host: Option<&str>, port: u16) -> Result<SocketAddr, String> {
    let ip = match host.unwrap_or("") {
        "" | "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("host {h:?} must be an IP address, localhost or *"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// A new private folder under the temporary directory holding the socket `agent.sock`.
fn unix_socket() -> std::io::Result<(UnixListener, PathBuf, PathBuf)> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = std::env::temp_dir().join(format!("podgate-ssh-{}", crate::random::token(12)));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let path = dir.join("agent.sock");
    match UnixListener::bind(&path) {
        Ok(l) => Ok((l, dir, path)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

fn bind_error(e: std::io::Error, what: &str) -> Response {
    let message = format!("cannot listen on {what} in the sandbox: {e}");
    match e.kind() {
        std::io::ErrorKind::AddrInUse => error(StatusCode::CONFLICT, "address_in_use", message),
        std::io::ErrorKind::PermissionDenied => error(StatusCode::FORBIDDEN, "forbidden", message),
        _ => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message),
    }
}

/// WebSocket: opens a listener (binding happens first, so a port in use is a plain 409) and
/// keeps it open until the socket closes.
async fn listen(
    State(st): State<Arc<AgentState>>,
    q: Result<Query<ListenQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()),
    };
    if st.listeners.open.lock().unwrap_or_else(|e| e.into_inner()).len() >= MAX_LISTENERS {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_listeners",
            format!("{MAX_LISTENERS} listeners are open"),
        );
    }
    let (socket, address, port) = if q.unix {
        match unix_socket() {
            Ok((l, dir, path)) => (Socket::Unix(l, dir), path.display().to_string(), 0),
            Err(e) => return bind_error(e, "a Unix socket"),
        }
    } else {
        let addr = match bind_address(q.host.as_deref(), q.port) {
            Ok(a) => a,
            Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        };
        match TcpListener::bind(addr).await {
            Ok(l) => {
                let local = l.local_addr().unwrap_or(addr);
                (Socket::Tcp(l), local.to_string(), local.port())
            }
            Err(e) => return bind_error(e, &addr.to_string()),
        }
    };
    let id = crate::random::token(26);
    let (closing, closed) = watch::channel(());
    st.listeners.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), Arc::new(Entry { socket, closed }));
    let held = Held { state: st.clone(), id: id.clone(), _closing: closing };
    ws.protocols([LISTEN_SUBPROTOCOL]).on_upgrade(move |socket| hold(socket, held, address, port))
}

/// Announces the listener, then keeps it until the control socket closes.
async fn hold(mut socket: WebSocket, held: Held, address: String, port: u16) {
    let hello = ListenMessage::Listening { id: held.id.clone(), address, port };
    if socket.send(Message::Text(serde_json::to_string(&hello).unwrap_or_default().into())).await.is_err() {
        return;
    }
    until_closed(&mut socket).await;
    drop(held);
}

/// WebSocket: waits for one connection on listener `id`, announces it, then carries its bytes.
async fn accept(State(st): State<Arc<AgentState>>, Path(id): Path<String>, ws: WebSocketUpgrade) -> Response {
    let Some(entry) = st.listeners.open.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such listener");
    };
    ws.protocols([LISTEN_SUBPROTOCOL]).on_upgrade(move |mut socket| async move {
        let accepted = tokio::select! {
            r = entry.accept() => r,
            // The server gave up waiting.
            _ = until_closed(&mut socket) => return,
        };
        let (conn, peer) = match accepted {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                eprintln!("podgate-agent: accepting on a listener failed: {e}");
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            None => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        };
        drop(entry);
        let hello = ListenMessage::Accepted { peer };
        if socket.send(Message::Text(serde_json::to_string(&hello).unwrap_or_default().into())).await.is_err() {
            return;
        }
        crate::tunnel::splice(socket, conn).await;
    })
}

/// Returns when the peer closes `socket` (or it breaks); other frames are ignored.
async fn until_closed(socket: &mut WebSocket) {
    while let Some(Ok(m)) = socket.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bind_address;

    #[test]
    fn bind_addresses() {
        assert_eq!(bind_address(None, 0).unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(bind_address(Some("localhost"), 8080).unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(bind_address(Some(""), 8080).unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(bind_address(Some("*"), 80).unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(bind_address(Some("0.0.0.0"), 80).unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(bind_address(Some("[::1]"), 22).unwrap().to_string(), "[::1]:22");
        assert!(bind_address(Some("example.com"), 80).is_err());
    }
}
