//! The agent's HTTP API (axum), guarded by the per-sandbox secret.

use podgate_types::agent::paths;

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_types::AGENT_PROTOCOL_VERSION;
use podgate_types::agent::{AgentHealth, SECRET_HEADER};
use podgate_types::api::{ErrorBody, ErrorDetail, ExecRequest};
use podgate_types::terminal::{Control, SUBPROTOCOL, TerminalInfo, TerminalSpec};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::exec::{self, ExecError};
use crate::files::{self, FileError};
use crate::paths::Dirs;
use crate::reaper::Reaper;
use crate::terminals::{Event, TermError, Terminal, Terminals};
use podgate_types::files::{MkdirRequest, MoveRequest};

/// Output is coalesced into WebSocket frames of up to this many bytes.
const MAX_FRAME: usize = 256 * 1024;

/// Largest request body the agent accepts.
pub const MAX_BODY: usize = 64 << 20;

/// Shared state of the agent's handlers.
pub struct AgentState {
    pub secret: String,
    pub reaper: Reaper,
    pub dirs: Dirs,
    pub terminals: Terminals,
    pub processes: crate::processes::Processes,
    pub bootstrap: Arc<crate::bootstrap::Bootstrap>,
    /// The listening ports, kept current by [`crate::ports::watch`].
    pub ports: tokio::sync::watch::Receiver<Vec<podgate_types::ports::ListeningPort>>,
    /// Listeners opened for SSH remote and agent forwarding.
    pub listeners: crate::listen::Listeners,
    /// Resource samples, taken by [`crate::metrics::Metrics::run`].
    pub metrics: crate::metrics::Metrics,
}

/// The `/v1` router.
pub fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .route(paths::HEALTH, get(health))
        .route(paths::ENV, axum::routing::put(set_env))
        .route(paths::EXEC, post(exec_handler))
        .route(paths::FILES, get(read_file).put(write_file).delete(remove_file))
        .route(paths::FILES_TAR, get(download_tar).put(upload_tar))
        .route(paths::FILES_WATCH, get(watch_dir))
        .route(paths::FILES_STAT, get(stat_file))
        .route(paths::FILES_LIST, get(list_files))
        .route(paths::FILES_MKDIR, post(make_dir))
        .route(paths::FILES_MOVE, post(move_file))
        .route(paths::METRICS, get(metrics))
        .route(paths::PORTS, get(list_ports))
        .route(paths::PORTS_WATCH, get(watch_ports))
        .route(paths::TUNNEL, get(open_tunnel))
        .route(paths::SFTP, get(open_sftp))
        .route(paths::BOOTSTRAP, post(start_bootstrap).get(bootstrap_status))
        .route(paths::BOOTSTRAP_LOG, get(bootstrap_log))
        .route(paths::TERMINALS, post(create_terminal).get(list_terminals))
        .route(paths::TERMINAL, delete(delete_terminal))
        .route(paths::TERMINAL_ATTACH, get(attach_terminal))
        .merge(crate::process_routes::routes())
        .merge(crate::listen::routes())
        .layer(middleware::from_fn_with_state(state.clone(), check_secret))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: code.into(), message: message.into() } };
    (status, Json(body)).into_response()
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn check_secret(State(st): State<Arc<AgentState>>, req: Request, next: Next) -> Response {
    let given = req.headers().get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !same(given, st.secret.as_bytes()) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong agent secret");
    }
    next.run(req).await
}

async fn health() -> Json<AgentHealth> {
    Json(AgentHealth {
        protocol_version: AGENT_PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
    })
}

async fn metrics(
    State(st): State<Arc<AgentState>>,
    Query(q): Query<podgate_types::metrics::MetricsQuery>,
) -> Json<Vec<podgate_types::metrics::MetricsSample>> {
    Json(st.metrics.between(&q))
}

async fn exec_handler(State(st): State<Arc<AgentState>>, JsonBody(req): JsonBody<ExecRequest>) -> Response {
    match exec::run(&st.processes, req).await {
        Ok(r) => Json(r).into_response(),
        Err(ExecError::Invalid(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        Err(ExecError::Spawn(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, "spawn_failed", m),
    }
}

fn file_error(e: FileError) -> Response {
    match e {
        FileError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", m),
        FileError::Invalid(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        FileError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", m),
        FileError::Denied(m) => error(StatusCode::FORBIDDEN, "forbidden", m),
        FileError::Io(m) => error(StatusCode::INTERNAL_SERVER_ERROR, "io_error", m),
    }
}

#[derive(Deserialize)]
struct FileQuery {
    path: String,
    /// Octal permission bits for uploads.
    mode: Option<String>,
    /// Owner for uploads: a user name, a uid, or `uid:gid`.
    owner: Option<String>,
    #[serde(default)]
    parents: bool,
    #[serde(default)]
    recursive: bool,
    depth: Option<u32>,
}

/// The file query string; a malformed one is a 400 in the API's error format.
struct FileQ(FileQuery);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for FileQ {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Response> {
        Query::<FileQuery>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| FileQ(q))
            .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

/// A JSON body; a malformed one is a 400 in the API's error format.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| JsonBody(v))
            .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

async fn read_file(State(st): State<Arc<AgentState>>, FileQ(q): FileQ) -> Response {
    let path = match files::resolve(&st.dirs, &q.path) {
        Ok(p) => p,
        Err(e) => return file_error(e),
    };
    match files::read(&path).await {
        Ok((len, mode, body)) => Response::builder()
            .header(axum::http::header::CONTENT_TYPE, "application/octet-stream")
            .header(axum::http::header::CONTENT_LENGTH, len)
            .header(podgate_types::files::MODE_HEADER, format!("{mode:o}"))
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(e) => file_error(e),
    }
}

async fn write_file(State(st): State<Arc<AgentState>>, FileQ(q): FileQ, body: axum::body::Body) -> Response {
    let mode = match q.mode.as_deref().map(|m| u32::from_str_radix(m, 8)) {
        None => None,
        Some(Ok(m)) if m <= 0o7777 => Some(m),
        Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "mode must be octal, e.g. 644"),
    };
    let owner = match q.owner.as_deref().map(|o| {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        crate::launch::account(&passwd, o)
    }) {
        None => None,
        Some(Ok(a)) => Some((a.uid, a.gid)),
        Some(Err(m)) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
    };
    let path = match files::resolve(&st.dirs, &q.path) {
        Ok(p) => p,
        Err(e) => return file_error(e),
    };
    match files::write(&path, mode, owner, q.parents, body.into_data_stream()).await {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => file_error(e),
    }
}

async fn download_tar(State(st): State<Arc<AgentState>>, FileQ(q): FileQ) -> Response {
    match files::resolve(&st.dirs, &q.path).and_then(crate::archive::pack) {
        Ok(body) => Response::builder()
            .header(axum::http::header::CONTENT_TYPE, "application/x-tar")
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(e) => file_error(e),
    }
}

async fn upload_tar(State(st): State<Arc<AgentState>>, FileQ(q): FileQ, body: axum::body::Body) -> Response {
    let dst = match files::resolve(&st.dirs, &q.path) {
        Ok(p) => p,
        Err(e) => return file_error(e),
    };
    match crate::archive::unpack(dst, body).await {
        Ok(n) => Json(podgate_types::files::TarUploaded { files: n.files, bytes: n.bytes }).into_response(),
        Err(e) => file_error(e),
    }
}

/// WebSocket: create/modify/delete/rename events under a directory (`recursive=true` for the
/// whole tree). The watch starts before the upgrade, so a missing directory is a plain 404.
async fn watch_dir(State(st): State<Arc<AgentState>>, FileQ(q): FileQ, ws: WebSocketUpgrade) -> Response {
    let dir = match files::resolve(&st.dirs, &q.path) {
        Ok(p) => p,
        Err(e) => return file_error(e),
    };
    match crate::watch::start(&dir, q.recursive) {
        Ok(w) => ws.on_upgrade(move |socket| crate::watch::serve(socket, w)),
        Err(m) if !dir.exists() => error(StatusCode::NOT_FOUND, "not_found", m),
        Err(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
    }
}

async fn remove_file(State(st): State<Arc<AgentState>>, FileQ(q): FileQ) -> Response {
    match files::resolve(&st.dirs, &q.path).and_then(|p| files::remove(&p, q.recursive)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => file_error(e),
    }
}

async fn stat_file(State(st): State<Arc<AgentState>>, FileQ(q): FileQ) -> Response {
    match files::resolve(&st.dirs, &q.path).and_then(|p| files::stat(&p)) {
        Ok(info) => Json(info).into_response(),
        Err(e) => file_error(e),
    }
}

async fn list_files(State(st): State<Arc<AgentState>>, FileQ(q): FileQ) -> Response {
    let depth = q.depth.unwrap_or(1);
    match files::resolve(&st.dirs, &q.path).and_then(|p| files::list(&p, depth)) {
        Ok(list) => Json(list).into_response(),
        Err(e) => file_error(e),
    }
}

async fn make_dir(State(st): State<Arc<AgentState>>, JsonBody(req): JsonBody<MkdirRequest>) -> Response {
    match files::resolve(&st.dirs, &req.path).and_then(|p| files::mkdir(&p)) {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => file_error(e),
    }
}

async fn move_file(State(st): State<Arc<AgentState>>, JsonBody(req): JsonBody<MoveRequest>) -> Response {
    let paths = files::resolve(&st.dirs, &req.from).and_then(|f| Ok((f, files::resolve(&st.dirs, &req.to)?)));
    match paths.and_then(|(from, to)| files::rename(&from, &to)) {
        Ok(info) => Json(info).into_response(),
        Err(e) => file_error(e),
    }
}

async fn list_ports(State(st): State<Arc<AgentState>>) -> Response {
    Json(st.ports.borrow().clone()).into_response()
}

/// Sends the list of listening ports now and again whenever it changes.
async fn watch_ports(State(st): State<Arc<AgentState>>, ws: WebSocketUpgrade) -> Response {
    let mut rx = st.ports.clone();
    ws.on_upgrade(move |socket| async move {
        let (mut tx, mut incoming) = socket.split();
        loop {
            let list = serde_json::to_string(&*rx.borrow_and_update()).unwrap_or_default();
            if tx.send(Message::Text(list.into())).await.is_err() {
                return;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                msg = incoming.next() => match msg {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    })
}

async fn start_bootstrap(
    State(st): State<Arc<AgentState>>,
    JsonBody(spec): JsonBody<podgate_types::bootstrap::BootstrapSpec>,
) -> Response {
    match st.bootstrap.start(spec) {
        Ok(status) => (StatusCode::CREATED, Json(status)).into_response(),
        Err(m) => error(StatusCode::CONFLICT, "conflict", m),
    }
}

async fn bootstrap_status(State(st): State<Arc<AgentState>>) -> Response {
    match st.bootstrap.status() {
        Some(s) => Json(s).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no bootstrap was started"),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    from: u64,
    #[serde(default)]
    follow: bool,
}

async fn bootstrap_log(State(st): State<Arc<AgentState>>, Query(q): Query<LogQuery>) -> Response {
    Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(st.bootstrap.log_body(q.from, q.follow))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[derive(Deserialize)]
struct TunnelQuery {
    host: Option<String>,
    port: u16,
}

/// Sets the environment of every process started from now on (a claimed warm-pool sandbox).
async fn set_env(JsonBody(env): JsonBody<std::collections::BTreeMap<String, String>>) -> Response {
    match crate::launch::set_claimed_env(env) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
    }
}

/// An SFTP session (for SSH's `sftp` subsystem) over a WebSocket.
async fn open_sftp(State(st): State<Arc<AgentState>>, ws: WebSocketUpgrade) -> Response {
    let home = st.dirs.home.clone();
    ws.protocols([crate::sftp::SUBPROTOCOL]).on_upgrade(move |socket| crate::sftp::serve(socket, home))
}

/// WebSocket: the bytes of a TCP connection to `host:port` (default host 127.0.0.1) made from
/// inside the sandbox. Connecting happens first, so a closed port is a plain 502.
async fn open_tunnel(
    q: Result<Query<TunnelQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()),
    };
    let addr = match crate::tunnel::target(q.host.as_deref(), q.port) {
        Ok(a) => a,
        Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
    };
    match crate::tunnel::connect(addr).await {
        Ok(tcp) => ws
            .protocols([podgate_types::ports::TUNNEL_SUBPROTOCOL])
            .on_upgrade(move |socket| crate::tunnel::splice(socket, tcp)),
        Err(m) => error(StatusCode::BAD_GATEWAY, "connect_failed", m),
    }
}

fn term_error(e: TermError) -> Response {
    match e {
        TermError::Invalid(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        TermError::Spawn(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "spawn_failed", m),
        TermError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", m),
    }
}

async fn create_terminal(State(st): State<Arc<AgentState>>, JsonBody(spec): JsonBody<TerminalSpec>) -> Response {
    match st.terminals.create(spec) {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => term_error(e),
    }
}

async fn list_terminals(State(st): State<Arc<AgentState>>) -> Json<Vec<TerminalInfo>> {
    Json(st.terminals.list())
}

async fn delete_terminal(State(st): State<Arc<AgentState>>, Path(id): Path<String>) -> Response {
    match st.terminals.delete(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => term_error(e),
    }
}

#[derive(Deserialize)]
struct AttachQuery {
    #[serde(default)]
    read_only: bool,
    /// The server's recorder (the gateway never passes a client's query here).
    #[serde(default)]
    recorder: bool,
}

async fn attach_terminal(
    State(st): State<Arc<AgentState>>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let term = match st.terminals.get(&id) {
        Ok(t) => t,
        Err(e) => return term_error(e),
    };
    ws.protocols([SUBPROTOCOL]).on_upgrade(move |socket| serve_client(socket, term, q.read_only, q.recorder))
}

/// One attached client: a redraw first, then live output; input and control unless read-only.
async fn serve_client(socket: WebSocket, term: Arc<Terminal>, read_only: bool, recorder: bool) {
    let guard = term.attach(recorder);
    let (mut tx, mut rx) = socket.split();
    let (snap, mut events, exited) = term.subscribe();
    if tx.send(Message::Binary(snap.into())).await.is_err() {
        return;
    }
    if let Some(code) = exited {
        let _ = send_exit(&mut tx, code).await;
        return;
    }
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(Event::Output(b)) => {
                    guard.progressed();
                    // Coalesce what is already waiting into one frame: far fewer frames and
                    // syscalls when a program floods the terminal.
                    let mut batch = b.to_vec();
                    let mut exit = None;
                    while batch.len() < MAX_FRAME {
                        match events.try_recv() {
                            Ok(Event::Output(more)) => batch.extend_from_slice(&more),
                            Ok(Event::Exit(code)) => {
                                exit = Some(code);
                                break;
                            }
                            // Lagged or empty: the next recv() handles it.
                            Err(_) => break,
                        }
                    }
                    if tx.send(Message::Binary(batch.into())).await.is_err() {
                        return;
                    }
                    guard.progressed();
                    if let Some(code) = exit {
                        let _ = send_exit(&mut tx, code).await;
                        return;
                    }
                }
                Ok(Event::Exit(code)) => {
                    let _ = send_exit(&mut tx, code).await;
                    return;
                }
                Err(RecvError::Lagged(_)) => {
                    // Too far behind: drop the backlog and redraw the current screen instead.
                    let (snap, fresh, _) = term.subscribe();
                    events = fresh;
                    if tx.send(Message::Binary(snap.into())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) if !read_only => {
                    if term.input(&b).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Text(t))) if !read_only => {
                    let reply = match serde_json::from_str::<Control>(&t) {
                        Ok(Control::Resize { cols, rows }) => term.resize(cols, rows).err(),
                        Ok(Control::Signal { signal }) => term.signal(&signal).err(),
                        Ok(Control::Exit { .. }) => Some(TermError::Invalid("exit is sent by the agent".into())),
                        Err(e) => Some(TermError::Invalid(format!("bad control message: {e}"))),
                    };
                    if let Some(TermError::Invalid(m) | TermError::Spawn(m) | TermError::NotFound(m)) = reply {
                        let body = serde_json::json!({"type": "error", "message": m}).to_string();
                        if tx.send(Message::Text(body.into())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Read-only clients' input, pings and pongs.
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send_exit<S>(tx: &mut S, code: i32) -> Result<(), axum::Error>
where
    S: futures_util::Sink<Message, Error = axum::Error> + Unpin,
{
    let msg = serde_json::to_string(&Control::Exit { code }).unwrap_or_default();
    tx.send(Message::Text(msg.into())).await?;
    tx.send(Message::Close(None)).await
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn compares_secrets() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }
}
